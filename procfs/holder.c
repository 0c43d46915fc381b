/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Restart survival: the connection holder. The /dev/fuse connection of the
 * mount is owned by a tiny holder process, not by the worker that answers
 * requests, so killing or upgrading the worker never breaks the containers'
 * bind mounts.
 *
 * - The first `veneer-procfs MNT` finds no holder (an abstract unix socket
 *   named after MNT), opens /dev/fuse, does mount(2) itself, and forks the
 *   holder into its own session (so a kill of the daemon's process group
 *   spares it). The holder keeps the fd and listens on the socket.
 * - Every worker, the first one included, attaches through the socket: it
 *   receives a copy of the fd (SCM_RIGHTS) and the recorded FUSE_INIT
 *   request. The first worker answers INIT live and hands the request to the
 *   holder; later workers replay it into their fresh libfuse session
 *   (fuse_session_process_buf): the session becomes initialised with the same
 *   negotiation, and the kernel drops the duplicate reply (unknown unique id).
 * - "Start it again" = run the same command again: it attaches, and the
 *   holder tells older workers to retire (exit without unmounting); this is
 *   also the upgrade path (a new binary attaches, the old one retires). When
 *   the last worker dies and nobody attaches within respawn_delay ms, the
 *   holder execs a fresh worker itself (the binary path it was started
 *   from, so an upgraded binary is picked up).
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
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "fd-util.h"
#include "log.h"
#include "procfs.h"

#define VP_HOLDER_INIT_TIMEOUT_MS 10000

struct vp_holder_worker {
	int ctl;
	pid_t pid;
	int journal; /* -1 until the worker is serving */
	gint64 since;
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
};

int vp_ctl_send(int fd, enum vp_msg_type type, const void *payload, size_t len, const int *fds,
		unsigned nfds)
{
	uint32_t hdr = (uint32_t)type;
	struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {(void *)payload, len}};
	char cbuf[CMSG_SPACE(sizeof(int) * VP_MSG_MAX_FDS)];
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};

	if (nfds > VP_MSG_MAX_FDS || len > VP_MSG_MAX_PAYLOAD)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

int vp_ctl_recv(int fd, enum vp_msg_type *ret_type, void *payload, size_t *ret_len, int *ret_fds,
		unsigned *ret_nfds)
{
	uint32_t hdr = 0;
	struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {payload, VP_MSG_MAX_PAYLOAD}};
	char cbuf[CMSG_SPACE(sizeof(int) * VP_MSG_MAX_FDS)];
	struct msghdr mh = {.msg_iov = iov,
			    .msg_iovlen = 2,
			    .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	ssize_t n;

	*ret_nfds = 0;
	*ret_len = 0;
	*ret_type = 0;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			unsigned k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			memcpy(ret_fds + *ret_nfds, CMSG_DATA(c), sizeof(int) * k);
			*ret_nfds += k;
		}
	}
	if (n == 0)
		return 0;
	if ((size_t)n < sizeof(hdr) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		for (unsigned i = 0; i < *ret_nfds; i++)
			close(ret_fds[i]);
		*ret_nfds = 0;
		return -EBADMSG;
	}
	*ret_type = (enum vp_msg_type)hdr;
	*ret_len = (size_t)n - sizeof(hdr);
	return 1;
}

/* The abstract socket address of the holder of mountpoint. */
static socklen_t vp_holder_addr(const char *mountpoint, struct sockaddr_un *sa)
{
	g_autofree char *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, mountpoint, -1);
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "veneer-procfs/%.40s", sum);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* --- the holder process ------------------------------------------------- */

static void vp_holder_worker_free(gpointer p)
{
	struct vp_holder_worker *w = p;

	close(w->ctl);
	if (w->journal >= 0)
		close(w->journal);
	g_free(w);
}

bool vp_fuse_conn_alive(int fuse_fd)
{
	struct pollfd p = {.fd = fuse_fd, .events = 0};

	return !(poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)));
}

/* Is the process at the other end of c running as our effective user? */
static bool vp_holder_peer_trusted(int c)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);

	return getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.uid == geteuid();
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

static void vp_holder_accept(struct vp_holder *h)
{
	char buf[VP_MSG_MAX_PAYLOAD];
	int fds[VP_MSG_MAX_FDS], send_fds[VP_MSG_MAX_FDS];
	struct vp_holder_worker *w;
	enum vp_msg_type type;
	struct timeval tv = {.tv_sec = 10};
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	unsigned nfds, n = 0;
	size_t len;
	int c, r;

	c = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	/* The socket is reachable from the whole network namespace, and a WELCOME
	 * hands out the connection: only our own user may attach, and nobody may
	 * stall the holder by connecting and staying silent. */
	if (!vp_holder_peer_trusted(c) ||
	    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		log_warning("refused an attach from an untrusted peer");
		close(c);
		return;
	}
	r = vp_ctl_recv(c, &type, buf, &len, fds, &nfds);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (r <= 0 || type != VP_MSG_ATTACH) {
		close(c);
		return;
	}
	w = g_new0(struct vp_holder_worker, 1);
	w->ctl = c;
	w->journal = -1;
	w->since = g_get_monotonic_time();
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		w->pid = cred.pid;
	send_fds[n++] = h->fuse_fd;
	while (h->orphans->len && n < VP_MSG_MAX_FDS) {
		send_fds[n++] = g_array_index(h->orphans, int, 0);
		g_array_remove_index(h->orphans, 0);
	}
	r = vp_ctl_send(c, VP_MSG_WELCOME, h->init, h->init ? h->init_len : 0, send_fds, n);
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
	g_ptr_array_add(h->workers, w);
	h->lonely_since = 0;
	log_info("worker %d attached", (int)w->pid);
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
		w->journal = fds[0];
		/* This worker serves now: older ones retire. */
		for (guint k = 0; k < h->workers->len; k++) {
			struct vp_holder_worker *o = h->workers->pdata[k];

			if (o != w && o->since < w->since)
				(void)vp_ctl_send(o->ctl, VP_MSG_RETIRE, NULL, 0, NULL, 0);
		}
		return true;
	}
	for (unsigned k = 0; k < nfds; k++)
		close(fds[k]);
	if (r > 0)
		return true; /* unknown message: ignore */
	log_info("worker %d left", (int)w->pid);
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

	if (h->respawn_delay_ms == 0 || h->workers->len || h->respawned || !h->lonely_since ||
	    g_get_monotonic_time() - h->lonely_since < (gint64)h->respawn_delay_ms * 1000)
		return;
	if (!vp_fuse_conn_alive(h->fuse_fd))
		return;
	pid = fork();
	if (pid < 0) {
		log_warning_errno(-errno, "could not fork a worker");
		return;
	}
	if (pid == 0) {
		execv(h->exe, h->respawn_argv);
		_exit(127);
	}
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

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (pid == h->respawned)
				h->respawned = 0; /* died before attaching; try again later */
		p[0].fd = h->fuse_fd;		  /* events 0: only POLLERR, the connection's end */
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
	/* No cleanup: the process image was forked from the launcher; exit as is. */
	_exit(0);
}

static char **vp_holder_argv(struct vp_opts *opts)
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
static int vp_holder_exe(char **ret)
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
static VC_NORETURN void vp_holder_become(struct vp_opts *opts, int ffd, int lfd, char *init,
					 size_t init_len, char *exe)
{
	struct vp_holder h = {
		.fuse_fd = ffd,
		.listen_fd = lfd,
		.init = init,
		.init_len = init_len,
		.workers = g_ptr_array_new_with_free_func(vp_holder_worker_free),
		.orphans = g_array_new(FALSE, FALSE, sizeof(int)),
		.exe = exe,
		.respawn_argv = vp_holder_argv(opts),
		.respawn_delay_ms = opts->respawn_delay_ms,
		.lonely_since = g_get_monotonic_time(),
	};
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	setsid();
	if (fork() != 0)
		_exit(0);
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

static int vp_holder_listen(struct vp_opts *opts, int *ret)
{
	_cleanup_close_ int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa;
	socklen_t sl = vp_holder_addr(opts->mountpoint, &sa);

	if (lfd < 0)
		return -errno;
	/* The bind is the lock: one holder per mount point. */
	if (bind(lfd, (struct sockaddr *)&sa, sl) < 0)
		return -errno;
	if (listen(lfd, 16) < 0)
		return -errno;
	*ret = TAKE_FD(lfd);
	return 0;
}

/* Mount and fork the holder. -EADDRINUSE: another holder appeared meanwhile. */
static int vp_holder_create(struct vp_opts *opts)
{
	_cleanup_close_ int lfd = -1, ffd = -1;
	g_autofree char *exe = NULL;
	struct stat st;
	char mopts[128];
	pid_t pid;
	int r;

	r = vp_holder_listen(opts, &lfd);
	if (r < 0)
		return r;
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
	ffd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (ffd < 0)
		return log_error_errno(-errno, "could not open /dev/fuse");
	snprintf(mopts, sizeof(mopts),
		 "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions", ffd);
	if (mount("veneer-procfs", opts->mountpoint, "fuse.veneer-procfs", MS_NOSUID | MS_NODEV,
		  mopts) < 0)
		return log_error_errno(-errno, "could not mount on '%s'", opts->mountpoint);
	fflush(NULL);
	/* Double fork: the holder is reparented at once and is no child of a worker. */
	pid = fork();
	if (pid < 0) {
		r = -errno;
		umount2(opts->mountpoint, MNT_DETACH);
		return log_error_errno(r, "could not fork the holder");
	}
	if (pid == 0)
		vp_holder_become(opts, TAKE_FD(ffd), TAKE_FD(lfd), NULL, 0, g_steal_pointer(&exe));
	(void)waitpid(pid, NULL, 0);
	log_info("mounted '%s' and started its holder", opts->mountpoint);
	return 0;
}

int vp_holder_adopt(struct vp_opts *opts, int fuse_fd, int init_fd)
{
	g_autofree char *init = g_malloc(VP_MSG_MAX_PAYLOAD), *exe = NULL;
	ssize_t len = pread(init_fd, init, VP_MSG_MAX_PAYLOAD, 0);
	int lfd = -1, r;

	close(init_fd);
	if (len <= 0)
		return log_error_errno(len < 0 ? -errno : -EINVAL, "no FUSE_INIT handed over");
	r = vp_holder_listen(opts, &lfd);
	if (r == -EADDRINUSE)
		_exit(0); /* another worker replaced the holder first */
	if (r < 0)
		return log_error_errno(r, "could not listen as the holder of '%s'",
				       opts->mountpoint);
	r = vp_holder_exe(&exe);
	if (r < 0)
		return r;
	(void)fcntl(fuse_fd, F_SETFD, FD_CLOEXEC);
	log_notice("taking over as the holder of '%s'", opts->mountpoint);
	vp_holder_become(opts, fuse_fd, lfd, g_steal_pointer(&init), (size_t)len,
			 g_steal_pointer(&exe));
}

static int vp_holder_connect(struct vp_opts *opts, int *ret)
{
	struct sockaddr_un sa;
	socklen_t sl = vp_holder_addr(opts->mountpoint, &sa);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sl) < 0)
		return -errno;
	/* Somebody else could have taken the name first: only trust a holder of our user. */
	if (!vp_holder_peer_trusted(fd))
		return log_error_errno(-EPERM, "the holder socket of '%s' belongs to another user",
				       opts->mountpoint);
	*ret = TAKE_FD(fd);
	return 0;
}

static int vp_holder_handshake(struct vp_attach *ret);

int vp_holder_attach(struct vp_opts *opts, struct vp_attach *ret)
{
	int r = -ECONNREFUSED;

	memset(ret, 0, sizeof(*ret));
	ret->ctl = ret->fuse_fd = -1;
	for (int attempt = 0; attempt < 100; attempt++) {
		r = vp_holder_connect(opts, &ret->ctl);
		if (r >= 0)
			break;
		if (r != -ECONNREFUSED && r != -ENOENT)
			return log_error_errno(r, "could not reach the holder of '%s'",
					       opts->mountpoint);
		r = vp_holder_create(opts);
		if (r < 0 && r != -EADDRINUSE)
			return r;
		if (r == -EADDRINUSE)
			g_usleep(20000); /* another instance is creating it */
	}
	if (ret->ctl < 0)
		return log_error_errno(r, "no holder for '%s'", opts->mountpoint);
	return vp_holder_handshake(ret);
}

/* ATTACH -> WELCOME on ret->ctl: our fd copy, the recorded INIT, orphan journals. */
static int vp_holder_handshake(struct vp_attach *ret)
{
	char buf[VP_MSG_MAX_PAYLOAD];
	int fds[VP_MSG_MAX_FDS];
	enum vp_msg_type type;
	unsigned nfds;
	size_t len;
	int r;

	r = vp_ctl_send(ret->ctl, VP_MSG_ATTACH, NULL, 0, NULL, 0);
	if (r < 0)
		return log_error_errno(r, "could not attach to the holder");
	r = vp_ctl_recv(ret->ctl, &type, buf, &len, fds, &nfds);
	if (r <= 0 || type != VP_MSG_WELCOME || nfds < 1) {
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		return log_error_errno(r < 0 ? r : -EPROTO, "the holder refused the attach");
	}
	if (ret->fuse_fd >= 0)
		close(ret->fuse_fd);
	ret->fuse_fd = fds[0];
	if (!ret->orphans)
		ret->orphans = g_array_new(FALSE, FALSE, sizeof(int));
	g_array_append_vals(ret->orphans, fds + 1, nfds - 1);
	if (len && !ret->init) {
		ret->init = g_memdup2(buf, len);
		ret->init_len = len;
	}
	return 0;
}

int vp_holder_replace(struct vp_opts *opts, int fuse_fd, struct vp_attach *a)
{
	_cleanup_close_ int memfd = -1, ctl = -1;
	g_auto(GStrv) base = vp_holder_argv(opts);
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
	int target;
	pid_t pid;
	int r;

	if (!a->init)
		return -ENODATA;
	memfd = memfd_create("veneer-procfs-init", MFD_CLOEXEC);
	if (memfd < 0)
		return -errno;
	r = vc_write_all(memfd, a->init, a->init_len);
	if (r < 0)
		return r;
	/* Fixed numbers above both fds, so the dup2()s in the child cannot collide. */
	target = MAX(fuse_fd, memfd) + 1;
	g_ptr_array_add(argv, g_strdup(base[0]));
	g_ptr_array_add(argv, g_strdup("--internal-holder"));
	g_ptr_array_add(argv, g_strdup_printf("%d", target));
	g_ptr_array_add(argv, g_strdup_printf("%d", target + 1));
	for (guint i = 1; base[i]; i++)
		g_ptr_array_add(argv, g_strdup(base[i]));
	g_ptr_array_add(argv, NULL);
	/* We have threads: the child only dup2()s and execs (async-signal-safe). */
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (dup2(fuse_fd, target) < 0 || dup2(memfd, target + 1) < 0)
			_exit(127);
		execv("/proc/self/exe", (char **)argv->pdata);
		_exit(127);
	}
	/* It binds the socket, forks the real holder and exits. */
	(void)waitpid(pid, NULL, 0);
	for (int attempt = 0; attempt < 100; attempt++) {
		r = vp_holder_connect(opts, &ctl);
		if (r >= 0)
			break;
		g_usleep(20000);
	}
	if (r < 0)
		return r;
	if (a->ctl >= 0)
		close(a->ctl);
	a->ctl = TAKE_FD(ctl);
	return vp_holder_handshake(a);
}

int vp_holder_send_init(int ctl, const void *init, size_t len)
{
	return vp_ctl_send(ctl, VP_MSG_INIT, init, len, NULL, 0);
}

int vp_holder_send_journal(int ctl, int memfd)
{
	return vp_ctl_send(ctl, VP_MSG_JOURNAL, NULL, 0, &memfd, 1);
}

void vp_attach_clear(struct vp_attach *a)
{
	if (a->ctl >= 0)
		close(a->ctl);
	if (a->fuse_fd >= 0)
		close(a->fuse_fd);
	a->ctl = a->fuse_fd = -1;
	g_clear_pointer(&a->init, g_free);
	if (a->orphans) {
		for (guint i = 0; i < a->orphans->len; i++)
			close(g_array_index(a->orphans, int, i));
		g_clear_pointer(&a->orphans, g_array_unref);
	}
}
