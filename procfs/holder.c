/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Restart survival: the connection holder. The /dev/fuse connection of the
 * mount is owned by a tiny holder process, not by the worker that answers
 * requests, so killing or upgrading the worker never breaks the containers'
 * bind mounts. This file is the holder process; attach.c is the workers' side.
 *
 * - The first `veneer-procfs MNT` finds no holder of MNT (rendezvous.c: a
 *   socket in a directory only root can write), opens /dev/fuse, does mount(2)
 *   itself, and forks the holder into its own session (so a kill of the
 *   daemon's process group spares it). The holder keeps the fd and listens.
 * - Every worker, the first one included, attaches through the socket: it
 *   receives a copy of the fd (SCM_RIGHTS), the connection's identity and the
 *   recorded FUSE_INIT request. The first worker answers INIT live and hands
 *   the request to the holder; later workers replay it into their fresh
 *   libfuse session (fuse_session_process_buf): the session becomes
 *   initialised with the same negotiation, and the kernel drops the duplicate
 *   reply (unknown unique id).
 * - "Start it again" = run the same command again: it attaches, and the
 *   holder tells older workers to retire (exit without unmounting).
 *   `veneer-procfs --restart MNT` asks the holder to start the new worker
 *   itself, from the binary path it was started from (an upgraded binary is
 *   picked up; under systemd the worker inherits $NOTIFY_SOCKET and becomes the
 *   unit's main process). When the last worker dies and nobody attaches within
 *   respawn_delay ms, the holder starts one the same way.
 * - If the mount left the mount point (umount MNT while containers' binds keep
 *   the connection alive), a start for MNT is told so (ORPHANED) and mounts a
 *   new connection there; this holder keeps serving the old binds with its
 *   workers, which it starts itself, until the last bind is gone.
 * - Requests a worker had read but not answered when it died are in its
 *   journal (loop.c): a memfd the holder keeps and gives to the next worker,
 *   which replays them, so their readers get answers instead of hanging.
 * - If the holder itself is killed, the serving worker still has its copy of
 *   the fd and the INIT: it execs a new holder from them ("--internal-holder",
 *   vp_holder_adopt) and attaches to it, so the next restart still works.
 *   Only killing holder and every worker together ends the connection.
 * - The holder exits when the connection dies: the last mount of this
 *   filesystem (including the containers' bind mounts) is gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "fd-util.h"
#include "log.h"
#include "proc-title.h"
#include "procfs.h"

#define VP_HOLDER_INIT_TIMEOUT_MS 10000

struct vp_holder_worker {
	int ctl;
	pid_t pid;
	int journal; /* -1 until the worker is serving */
	gint64 since;
	bool restart; /* started for a --restart that waits for it */
};

/* The holder process' state (single-threaded). */
struct vp_holder {
	int fuse_fd;
	int listen_fd;
	char *init;
	size_t init_len;
	GPtrArray *workers; /* struct vp_holder_worker *, oldest first */
	GArray *orphans;    /* int: journals of dead workers not yet handed on */
	char *exe;
	char **respawn_argv;
	unsigned respawn_delay_ms;
	gint64 lonely_since; /* monotonic us since the last worker left; 0: has workers */
	pid_t respawned;     /* a worker we started that has not attached yet */
	struct vp_conn_id id;
	const char *mountpoint;
	struct vp_rdv rdv;
	char *mnt_name, *conn_name;
	int restart_client;    /* a --restart waiting for restart_pid to serve; -1: none */
	pid_t restart_pid;     /* the worker started for it */
	bool restart_attached; /* ... has attached (it may fork away when it daemonizes) */
};

/* What vp_holder_become needs besides the options. */
struct vp_holder_seed {
	int fuse_fd, listen_fd;
	char *init; /* NULL until the first worker hands it over */
	size_t init_len;
	char *exe;
	struct vp_conn_id id;
	struct vp_rdv rdv;
};

bool vp_fuse_conn_alive(int fuse_fd)
{
	struct pollfd p = {.fd = fuse_fd, .events = 0};

	return !(poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)));
}

/* Is the process at the other end of c running as our effective user? */
bool vp_peer_trusted(int c)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);

	return getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.uid == geteuid();
}

static void vp_holder_worker_free(gpointer p)
{
	struct vp_holder_worker *w = p;

	close(w->ctl);
	if (w->journal >= 0)
		close(w->journal);
	g_free(w);
}

/* Wait for the first worker's FUSE_INIT copy (nothing else can be served before it). */
static int vp_holder_wait_init(struct vp_holder *h, struct vp_holder_worker *w)
{
	char buf[VP_MSG_MAX_PAYLOAD];
	int fds[VP_MSG_MAX_FDS];
	enum vp_msg_type type;
	unsigned nfds;
	size_t len;
	struct pollfd p = {.fd = w->ctl, .events = POLLIN};
	int r;

	r = poll(&p, 1, VP_HOLDER_INIT_TIMEOUT_MS);
	if (r <= 0)
		return r < 0 ? -errno : -ETIMEDOUT;
	r = vp_ctl_recv(w->ctl, &type, buf, &len, fds, &nfds);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (r <= 0)
		return r < 0 ? r : -EPIPE;
	if (type != VP_MSG_INIT || len == 0)
		return -EBADMSG;
	h->init = g_memdup2(buf, len);
	h->init_len = len;
	return 0;
}

/* Answer the waiting --restart: the new worker's pid, or -errno; then forget it. */
static void vp_holder_restart_done(struct vp_holder *h, int32_t result)
{
	if (h->restart_client < 0)
		return;
	(void)vp_ctl_send(h->restart_client, VP_MSG_RESTARTED, &result, sizeof(result), NULL, 0);
	close(h->restart_client);
	h->restart_client = -1;
	h->restart_pid = 0;
	h->restart_attached = false;
}

/* Start a worker from our binary; it attaches to this holder by its connection's name. */
static pid_t vp_holder_spawn(struct vp_holder *h)
{
	g_autofree char *path = g_build_filename(h->rdv.dir, h->conn_name, NULL);
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return log_warning_errno(-errno, "could not fork a worker");
	if (pid == 0) {
		/* Single-threaded: setenv is safe here. */
		if (setenv("VENEER_PROCFS_HOLDER", path, 1) < 0)
			_exit(127);
		execv(h->exe, h->respawn_argv);
		_exit(127);
	}
	return pid;
}

static void vp_holder_on_restart(struct vp_holder *h, int c)
{
	int32_t res;
	pid_t pid;

	if (h->restart_client >= 0) {
		res = -EBUSY;
		(void)vp_ctl_send(c, VP_MSG_RESTARTED, &res, sizeof(res), NULL, 0);
		close(c);
		return;
	}
	pid = vp_holder_spawn(h);
	if (pid < 0) {
		res = pid;
		(void)vp_ctl_send(c, VP_MSG_RESTARTED, &res, sizeof(res), NULL, 0);
		close(c);
		return;
	}
	log_notice("restart: started %s as pid %d", h->exe, (int)pid);
	h->restart_client = c;
	h->restart_pid = pid;
	h->restart_attached = false;
}

/* Does our mount still sit on the mount point? (Unknown id: assume so.) */
static bool vp_holder_mounted(struct vp_holder *h)
{
	uint64_t id;

	return h->id.mnt_id == 0 || vp_mount_id_at(h->mountpoint, h->id.mnt_id, &id) == 0;
}

static void vp_holder_welcome(struct vp_holder *h, int c)
{
	char payload[sizeof(struct vp_conn_id) + VP_MSG_MAX_PAYLOAD];
	int send_fds[VP_MSG_MAX_FDS];
	struct vp_holder_worker *w;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	size_t len = sizeof(h->id);
	unsigned n = 0;
	int r;

	w = g_new0(struct vp_holder_worker, 1);
	w->ctl = c;
	w->journal = -1;
	w->since = g_get_monotonic_time();
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		w->pid = cred.pid;
	memcpy(payload, &h->id, sizeof(h->id));
	if (h->init && h->init_len <= VP_MSG_MAX_PAYLOAD - sizeof(h->id)) {
		memcpy(payload + len, h->init, h->init_len);
		len += h->init_len;
	}
	send_fds[n++] = h->fuse_fd;
	while (h->orphans->len && n < VP_MSG_MAX_FDS) {
		send_fds[n++] = g_array_index(h->orphans, int, 0);
		g_array_remove_index(h->orphans, 0);
	}
	r = vp_ctl_send(c, VP_MSG_WELCOME, payload, len, send_fds, n);
	for (unsigned i = 1; i < n; i++)
		close(send_fds[i]); /* handed on (or lost with a worker that died at once) */
	if (r < 0) {
		vp_holder_worker_free(w);
		return;
	}
	if (!h->init) {
		r = vp_holder_wait_init(h, w);
		if (r < 0) {
			log_error_errno(r, "worker %d did not hand over FUSE_INIT", (int)w->pid);
			vp_holder_worker_free(w);
			return;
		}
	}
	if (w->pid == h->respawned)
		h->respawned = 0;
	if (h->restart_pid && w->pid == h->restart_pid) {
		w->restart = true;
		h->restart_attached = true;
	}
	g_ptr_array_add(h->workers, w);
	h->lonely_since = 0;
	log_info("worker %d attached", (int)w->pid);
}

static void vp_holder_accept(struct vp_holder *h)
{
	char buf[VP_MSG_MAX_PAYLOAD];
	int fds[VP_MSG_MAX_FDS];
	enum vp_msg_type type;
	struct timeval tv = {.tv_sec = 10};
	unsigned nfds;
	size_t len;
	int c, r;

	c = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	/* A WELCOME hands out the connection: only our own user may attach (the
	 * directory is ours alone too), and nobody may stall the holder by
	 * connecting and staying silent. */
	if (!vp_peer_trusted(c) || setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		log_warning("refused an attach from an untrusted peer");
		close(c);
		return;
	}
	r = vp_ctl_recv(c, &type, buf, &len, fds, &nfds);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (r <= 0) {
		close(c);
		return;
	}
	if (type == VP_MSG_RESTART) {
		vp_holder_on_restart(h, c);
		return;
	}
	if (type != VP_MSG_ATTACH) {
		close(c);
		return;
	}
	/* Attaching for the mount point: not to us once our mount left it. */
	if (len >= 1 && buf[0] == 1 && !vp_holder_mounted(h)) {
		log_info("'%s' is no longer our mount: a new start mounts it", h->mountpoint);
		(void)vp_ctl_send(c, VP_MSG_ORPHANED, NULL, 0, NULL, 0);
		close(c);
		return;
	}
	vp_holder_welcome(h, c);
}

/* A message from worker i, or its end. Returns false when the worker is gone. */
static bool vp_holder_worker_event(struct vp_holder *h, guint i)
{
	struct vp_holder_worker *w = h->workers->pdata[i];
	char buf[VP_MSG_MAX_PAYLOAD];
	int fds[VP_MSG_MAX_FDS];
	enum vp_msg_type type;
	unsigned nfds;
	size_t len;
	int r = vp_ctl_recv(w->ctl, &type, buf, &len, fds, &nfds);

	if (r > 0 && type == VP_MSG_JOURNAL && nfds == 1 && w->journal < 0) {
		int32_t pid = w->pid;

		w->journal = fds[0];
		/* This worker serves now: older ones retire. */
		for (guint k = 0; k < h->workers->len; k++) {
			struct vp_holder_worker *o = h->workers->pdata[k];

			if (o != w && o->since < w->since)
				(void)vp_ctl_send(o->ctl, VP_MSG_RETIRE, NULL, 0, NULL, 0);
		}
		if (w->restart) {
			if (len >= sizeof(pid))
				memcpy(&pid, buf, sizeof(pid)); /* its pid after daemonizing */
			w->restart = false;
			vp_holder_restart_done(h, pid);
		}
		return true;
	}
	for (unsigned k = 0; k < nfds; k++)
		close(fds[k]);
	if (r > 0)
		return true; /* unknown message: ignore */
	log_info("worker %d left", (int)w->pid);
	if (w->restart)
		vp_holder_restart_done(h, -ECHILD);
	if (w->journal >= 0) {
		int j = TAKE_FD(w->journal);

		g_array_append_val(h->orphans, j);
	}
	g_ptr_array_remove_index(h->workers, i);
	if (h->workers->len == 0) {
		h->lonely_since = g_get_monotonic_time();
	} else if (h->orphans->len) {
		/* A live worker replays what the dead one left unanswered. */
		struct vp_holder_worker *o = h->workers->pdata[h->workers->len - 1];

		if (vp_ctl_send(o->ctl, VP_MSG_REPLAY, NULL, 0, (int *)h->orphans->data,
				MIN(h->orphans->len, VP_MSG_MAX_FDS)) >= 0) {
			for (guint k = 0; k < h->orphans->len; k++)
				close(g_array_index(h->orphans, int, k));
			g_array_set_size(h->orphans, 0);
		}
	}
	return false;
}

static void vp_holder_respawn(struct vp_holder *h)
{
	pid_t pid;

	if (h->respawn_delay_ms == 0 || h->workers->len || h->respawned || h->restart_pid ||
	    !h->lonely_since ||
	    g_get_monotonic_time() - h->lonely_since < (gint64)h->respawn_delay_ms * 1000)
		return;
	if (!vp_fuse_conn_alive(h->fuse_fd))
		return;
	pid = vp_holder_spawn(h);
	if (pid < 0)
		return;
	log_notice("no worker for %u ms: started %s as pid %d", h->respawn_delay_ms, h->exe,
		   (int)pid);
	h->respawned = pid;
	h->lonely_since = g_get_monotonic_time();
}

static VC_NORETURN void vp_holder_main(struct vp_holder *h)
{
	for (;;) {
		g_autofree struct pollfd *p = g_new0(struct pollfd, h->workers->len + 2);
		int status;
		pid_t pid;

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid == h->respawned)
				h->respawned = 0; /* died before attaching; try again later */
			if (pid == h->restart_pid && !h->restart_attached)
				vp_holder_restart_done(h, -ECHILD);
		}
		p[0].fd = h->fuse_fd; /* events 0: only POLLERR, the connection's end */
		p[1].fd = h->listen_fd;
		p[1].events = POLLIN;
		for (guint i = 0; i < h->workers->len; i++) {
			p[i + 2].fd = ((struct vp_holder_worker *)h->workers->pdata[i])->ctl;
			p[i + 2].events = POLLIN;
		}
		if (poll(p, h->workers->len + 2, 200) < 0 && errno != EINTR)
			break;
		if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			break;
		for (guint i = h->workers->len; i > 0; i--)
			if (p[i + 1].revents)
				(void)vp_holder_worker_event(h, i - 1);
		if (p[1].revents & POLLIN)
			vp_holder_accept(h);
		vp_holder_respawn(h);
	}
	log_info("the FUSE connection ended: holder exits");
	vp_holder_restart_done(h, -ENOTCONN);
	vp_rdv_remove(&h->rdv, h->mnt_name, h->conn_name);
	/* No other cleanup: the process image was forked from the launcher; exit as is. */
	_exit(0);
}

char **vp_holder_respawn_argv(struct vp_opts *opts)
{
	GPtrArray *a = g_ptr_array_new();

	g_ptr_array_add(a, g_strdup("veneer-procfs"));
	/* Foreground (a supervisor or test keeps our stderr): respawned workers log there
	 * too; otherwise they daemonize and log to syslog like the first one. */
	if (opts->cl.foreground)
		g_ptr_array_add(a, g_strdup("-f"));
	if (opts->cl.debug)
		g_ptr_array_add(a, g_strdup("-d"));
	if (opts->cl.singlethread)
		g_ptr_array_add(a, g_strdup("-s"));
	g_ptr_array_add(a, g_strdup("-o"));
	g_ptr_array_add(a,
			g_strdup_printf("cgroup_root=%s,cpu_quota=%d,threads=%u,respawn_delay=%u",
					opts->cgroup_root, opts->cpu_quota, opts->threads,
					opts->respawn_delay_ms));
	g_ptr_array_add(a, g_strdup(opts->mountpoint));
	g_ptr_array_add(a, NULL);
	return (char **)g_ptr_array_free(a, FALSE);
}

/* Our binary's path for respawns; a replaced (upgraded) binary's path names the new one. */
int vp_holder_exe(char **ret)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n < 0)
		return log_error_errno(-errno, "could not read /proc/self/exe");
	exe[n] = '\0';
	if (g_str_has_suffix(exe, " (deleted)"))
		exe[n - strlen(" (deleted)")] = '\0';
	*ret = g_strdup(exe);
	return 0;
}

/* In a fresh child: detach (setsid + fork, the parent exits) and run the holder. */
static VC_NORETURN void vp_holder_become(struct vp_opts *opts, struct vp_holder_seed *s)
{
	struct vp_holder h = {
		.fuse_fd = s->fuse_fd,
		.listen_fd = s->listen_fd,
		.init = s->init,
		.init_len = s->init_len,
		.workers = g_ptr_array_new_with_free_func(vp_holder_worker_free),
		.orphans = g_array_new(FALSE, FALSE, sizeof(int)),
		.exe = s->exe,
		.respawn_argv = vp_holder_respawn_argv(opts),
		.respawn_delay_ms = opts->respawn_delay_ms,
		.lonely_since = g_get_monotonic_time(),
		.id = s->id,
		.mountpoint = opts->mountpoint,
		.rdv = s->rdv,
		.mnt_name = vp_rdv_mnt_name(opts->mountpoint),
		.conn_name = vp_rdv_conn_name(s->id.token),
		.restart_client = -1,
	};
	g_autofree char *title = g_strdup_printf("veneer-procfs: holder %s", opts->mountpoint);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	setsid();
	if (fork() != 0)
		_exit(0);
	/* A directory fd of our own: flock() is per open file, and the inherited one is
	 * shared with the process that forked us. */
	vp_rdv_close(&h.rdv);
	if (vp_rdv_open(&h.rdv, true) < 0)
		h.rdv.dirfd = -1;
	/* Not "veneer-procfs": `pidof veneer-procfs`, `pkill veneer-procfs` and `ps -C
	 * veneer-procfs` name the workers only, which are safe to kill. */
	(void)vc_proc_set_title(title, "veneer-holder");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	if (opts->cl.ready_fd >= 0)
		close(opts->cl.ready_fd);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		/* Detached: never keep the caller's stdout/stderr (a pipe) open. */
		if (!opts->cl.foreground) {
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
		}
		close(null);
	}
	if (chdir("/") < 0)
		_exit(1);
	vc_log_init("veneer-procfs-holder");
	if (!opts->cl.foreground)
		vc_log_set_target(VC_LOG_SYSLOG);
	vp_holder_main(&h);
}

/*
 * Under the rendezvous lock, with nobody serving the mount point: mount a new
 * connection there, fork its holder, point the mount point's name at it.
 * Returns the connection's socket name to attach to.
 */
int vp_holder_create(struct vp_opts *opts, struct vp_rdv *rdv, char **ret_conn)
{
	_cleanup_close_ int lfd = -1, ffd = -1;
	g_autofree char *exe = NULL, *conn = NULL, *mnt = NULL;
	struct vp_conn_id id = {.mnt_id = 0};
	struct stat st;
	char mopts[128];
	pid_t pid;
	int r;

	/* Nobody serves this mount point: stat() cannot wait on ourselves. */
	if (stat(opts->mountpoint, &st) < 0 && (errno == ENOTCONN || errno == ECONNABORTED)) {
		/* A dead veneer-procfs (holder and workers killed): replace its mount. */
		log_warning("'%s' is a dead FUSE mount: detaching it", opts->mountpoint);
		(void)umount2(opts->mountpoint, MNT_DETACH);
	}
	if (stat(opts->mountpoint, &st) < 0)
		return log_error_errno(-errno, "mount point '%s'", opts->mountpoint);
	if (!S_ISDIR(st.st_mode))
		return log_error_errno(-ENOTDIR, "mount point '%s' is not a directory",
				       opts->mountpoint);
	r = vp_holder_exe(&exe);
	if (r < 0)
		return r;
	vp_rdv_sweep(rdv);
	r = vp_rdv_new_token(id.token);
	if (r < 0)
		return log_error_errno(r, "could not name the new connection");
	conn = vp_rdv_conn_name(id.token);
	mnt = vp_rdv_mnt_name(opts->mountpoint);
	r = vp_rdv_listen(rdv, conn, &lfd);
	if (r < 0)
		return log_error_errno(r, "could not listen on '%s/%s'", rdv->dir, conn);
	ffd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (ffd < 0) {
		r = log_error_errno(-errno, "could not open /dev/fuse");
		goto out_unlink;
	}
	snprintf(mopts, sizeof(mopts),
		 "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions", ffd);
	if (mount("veneer-procfs", opts->mountpoint, "fuse.veneer-procfs", MS_NOSUID | MS_NODEV,
		  mopts) < 0) {
		r = log_error_errno(-errno, "could not mount on '%s'", opts->mountpoint);
		goto out_unlink;
	}
	if (vp_mount_id_at(opts->mountpoint, 0, &id.mnt_id) < 0)
		log_warning("could not find the new mount of '%s' in mountinfo", opts->mountpoint);
	r = vp_rdv_point(rdv, mnt, conn);
	if (r < 0) {
		log_error_errno(r, "could not name the holder of '%s'", opts->mountpoint);
		goto out_umount;
	}
	fflush(NULL);
	/* Double fork: the holder is reparented at once and is no child of a worker. */
	pid = fork();
	if (pid < 0) {
		r = log_error_errno(-errno, "could not fork the holder");
		(void)unlinkat(rdv->dirfd, mnt, 0);
		goto out_umount;
	}
	if (pid == 0) {
		struct vp_holder_seed s = {
			.fuse_fd = TAKE_FD(ffd),
			.listen_fd = TAKE_FD(lfd),
			.exe = g_steal_pointer(&exe),
			.id = id,
			.rdv = *rdv,
		};

		vp_holder_become(opts, &s);
	}
	(void)waitpid(pid, NULL, 0);
	log_info("mounted '%s' and started its holder", opts->mountpoint);
	*ret_conn = g_steal_pointer(&conn);
	return 0;
out_umount:
	(void)umount2(opts->mountpoint, MNT_DETACH);
out_unlink:
	(void)unlinkat(rdv->dirfd, conn, 0);
	return r;
}

int vp_holder_adopt(struct vp_opts *opts, int fuse_fd, int init_fd)
{
	g_autofree char *buf = g_malloc(sizeof(struct vp_conn_id) + VP_MSG_MAX_PAYLOAD);
	g_autofree char *exe = NULL, *conn = NULL;
	struct vp_holder_seed s = {.fuse_fd = fuse_fd, .listen_fd = -1};
	ssize_t len = pread(init_fd, buf, sizeof(struct vp_conn_id) + VP_MSG_MAX_PAYLOAD, 0);
	int ctl = -1, r;

	close(init_fd);
	if (len <= (ssize_t)sizeof(struct vp_conn_id))
		return log_error_errno(len < 0 ? -errno : -EINVAL, "no FUSE_INIT handed over");
	memcpy(&s.id, buf, sizeof(s.id));
	s.id.token[VP_TOKEN_LEN] = '\0';
	s.init_len = (size_t)len - sizeof(s.id);
	s.init = g_memdup2(buf + sizeof(s.id), s.init_len);
	r = vp_holder_exe(&exe);
	if (r < 0)
		return r;
	r = vp_rdv_open(&s.rdv, true);
	if (r < 0)
		return r;
	r = vp_rdv_lock(&s.rdv);
	if (r < 0)
		return log_error_errno(r, "could not lock '%s'", s.rdv.dir);
	conn = vp_rdv_conn_name(s.id.token);
	if (vp_rdv_connect(&s.rdv, conn, &ctl) == 0) {
		close(ctl);
		_exit(0); /* another worker replaced the holder first */
	}
	r = vp_rdv_listen(&s.rdv, conn, &s.listen_fd);
	vp_rdv_unlock(&s.rdv);
	if (r < 0)
		return log_error_errno(r, "could not listen as the holder of '%s'",
				       opts->mountpoint);
	(void)fcntl(fuse_fd, F_SETFD, FD_CLOEXEC);
	log_notice("taking over as the holder of '%s'", opts->mountpoint);
	s.exe = g_steal_pointer(&exe);
	vp_holder_become(opts, &s);
}
