/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The workers' side of the holder (holder.c): the control protocol, attaching
 * to the holder of a mount point (creating it when there is none or when its
 * mount left the mount point), starting a new holder when ours died, and the
 * `--restart` request.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "fd-util.h"
#include "log.h"
#include "procfs.h"

#define VP_RESTART_TIMEOUT_S 60

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

/*
 * ATTACH -> WELCOME on ret->ctl: our fd copy, the connection's identity, the
 * recorded INIT, orphan journals. for_mount: we came by the mount point's name,
 * and only want a holder whose mount still sits there (-ESTALE: it does not).
 */
static int vp_attach_handshake(struct vp_attach *ret, bool for_mount)
{
	char buf[VP_MSG_MAX_PAYLOAD];
	int fds[VP_MSG_MAX_FDS];
	enum vp_msg_type type;
	uint8_t flag = for_mount;
	unsigned nfds;
	size_t len;
	int r;

	r = vp_ctl_send(ret->ctl, VP_MSG_ATTACH, &flag, sizeof(flag), NULL, 0);
	if (r < 0)
		return log_error_errno(r, "could not attach to the holder");
	r = vp_ctl_recv(ret->ctl, &type, buf, &len, fds, &nfds);
	if (r > 0 && type == VP_MSG_ORPHANED) {
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		return -ESTALE;
	}
	if (r <= 0 || type != VP_MSG_WELCOME || nfds < 1 || len < sizeof(struct vp_conn_id)) {
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
	memcpy(&ret->id, buf, sizeof(ret->id));
	ret->id.token[VP_TOKEN_LEN] = '\0';
	len -= sizeof(ret->id);
	if (len && !ret->init) {
		ret->init = g_memdup2(buf + sizeof(ret->id), len);
		ret->init_len = len;
	}
	return 0;
}

/* Connect to name in the rendezvous directory, and only to a holder of our own user. */
static int vp_attach_connect(struct vp_rdv *rdv, const char *name, int *ret)
{
	_cleanup_close_ int fd = -1;
	int r = vp_rdv_connect(rdv, name, &fd);

	if (r < 0)
		return r;
	if (!vp_peer_trusted(fd))
		return log_error_errno(-EPERM, "the holder socket '%s/%s' belongs to another user",
				       rdv->dir, name);
	*ret = TAKE_FD(fd);
	return 0;
}

/* Attach through name; -ENOENT/-ECONNREFUSED: nobody there, -ESTALE: the mount left. */
static int vp_attach_via(struct vp_rdv *rdv, const char *name, bool for_mount,
			 struct vp_attach *ret)
{
	int r = vp_attach_connect(rdv, name, &ret->ctl);

	if (r < 0)
		return r;
	r = vp_attach_handshake(ret, for_mount);
	if (r < 0) {
		close(ret->ctl);
		ret->ctl = -1;
	}
	return r;
}

static bool vp_attach_nobody(int r)
{
	return r == -ENOENT || r == -ECONNREFUSED || r == -ESTALE;
}

int vp_holder_attach(struct vp_opts *opts, struct vp_attach *ret)
{
	g_autofree char *mnt = vp_rdv_mnt_name(opts->mountpoint), *conn = NULL;
	const char *env = getenv("VENEER_PROCFS_HOLDER");
	struct vp_rdv rdv = {.dirfd = -1};
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->ctl = ret->fuse_fd = -1;
	if (env) {
		/* Started by a holder (respawn, --restart): attach to that one, whether or
		 * not its mount is still on the mount point. */
		g_autofree char *path = g_strdup(env);
		g_autofree char *name = g_path_get_basename(path);

		unsetenv("VENEER_PROCFS_HOLDER");
		r = vp_rdv_open(&rdv, false);
		if (r >= 0) {
			r = vp_attach_via(&rdv, name, false, ret);
			vp_rdv_close(&rdv);
		}
		if (r < 0)
			return log_error_errno(r, "could not attach to the holder at '%s'", path);
		return 0;
	}
	r = vp_rdv_open(&rdv, true);
	if (r < 0)
		return r;
	r = vp_attach_via(&rdv, mnt, true, ret);
	if (r >= 0 || !vp_attach_nobody(r))
		goto out;
	/* Nobody serves the mount point: under the lock, look again, else mount. */
	r = vp_rdv_lock(&rdv);
	if (r < 0) {
		log_error_errno(r, "could not lock '%s'", rdv.dir);
		goto out;
	}
	r = vp_attach_via(&rdv, mnt, true, ret);
	if (vp_attach_nobody(r))
		r = vp_holder_create(opts, &rdv, &conn);
	vp_rdv_unlock(&rdv);
	if (conn)
		r = vp_attach_via(&rdv, conn, false, ret);
out:
	if (r < 0 && r != -EPERM)
		log_error_errno(r, "could not reach the holder of '%s'", opts->mountpoint);
	vp_rdv_close(&rdv);
	return r;
}

int vp_holder_replace(struct vp_opts *opts, int fuse_fd, struct vp_attach *a)
{
	_cleanup_close_ int memfd = -1;
	g_autofree char *conn = vp_rdv_conn_name(a->id.token);
	g_auto(GStrv) base = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
	struct vp_rdv rdv = {.dirfd = -1};
	int target;
	pid_t pid;
	int r;

	if (!a->init)
		return -ENODATA;
	memfd = memfd_create("veneer-procfs-init", MFD_CLOEXEC);
	if (memfd < 0)
		return -errno;
	r = vc_write_all(memfd, &a->id, sizeof(a->id));
	if (r < 0)
		return r;
	r = vc_write_all(memfd, a->init, a->init_len);
	if (r < 0)
		return r;
	/* Fixed numbers above both fds, so the dup2()s in the child cannot collide. */
	target = MAX(fuse_fd, memfd) + 1;
	g_ptr_array_add(argv, g_strdup("veneer-procfs"));
	g_ptr_array_add(argv, g_strdup("--internal-holder"));
	g_ptr_array_add(argv, g_strdup_printf("%d", target));
	g_ptr_array_add(argv, g_strdup_printf("%d", target + 1));
	base = vp_holder_respawn_argv(opts);
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
		/* Our own binary, whatever replaced its path: it speaks our protocol. */
		execv("/proc/self/exe", (char **)argv->pdata);
		_exit(127);
	}
	/* It listens on our connection's name, forks the real holder and exits. */
	(void)waitpid(pid, NULL, 0);
	r = vp_rdv_open(&rdv, false);
	if (r < 0)
		return r;
	if (a->ctl >= 0)
		close(a->ctl);
	a->ctl = -1;
	for (int attempt = 0; attempt < 100; attempt++) {
		r = vp_attach_via(&rdv, conn, false, a);
		if (r >= 0 || !vp_attach_nobody(r))
			break;
		g_usleep(20000);
	}
	vp_rdv_close(&rdv);
	return r;
}

int vp_holder_restart(struct vp_opts *opts)
{
	g_autofree char *mnt = vp_rdv_mnt_name(opts->mountpoint);
	struct vp_rdv rdv = {.dirfd = -1};
	_cleanup_close_ int ctl = -1;
	struct timeval tv = {.tv_sec = VP_RESTART_TIMEOUT_S};
	char buf[VP_MSG_MAX_PAYLOAD];
	int fds[VP_MSG_MAX_FDS];
	enum vp_msg_type type;
	unsigned nfds;
	size_t len;
	int32_t res;
	int r;

	r = vp_rdv_open(&rdv, false);
	if (r >= 0) {
		r = vp_attach_connect(&rdv, mnt, &ctl);
		vp_rdv_close(&rdv);
	}
	if (r == -ENOENT || r == -ECONNREFUSED)
		return log_error_errno(-ESRCH, "no veneer-procfs serves '%s': nothing to restart",
				       opts->mountpoint);
	if (r < 0)
		return log_error_errno(r, "could not reach the holder of '%s'", opts->mountpoint);
	if (setsockopt(ctl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	r = vp_ctl_send(ctl, VP_MSG_RESTART, NULL, 0, NULL, 0);
	if (r < 0)
		return log_error_errno(r, "could not ask the holder of '%s' for a restart",
				       opts->mountpoint);
	r = vp_ctl_recv(ctl, &type, buf, &len, fds, &nfds);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (r <= 0 || type != VP_MSG_RESTARTED || len < sizeof(res))
		return log_error_errno(r < 0 ? r : -EPROTO,
				       "no answer from the holder of '%s' to the restart",
				       opts->mountpoint);
	memcpy(&res, buf, sizeof(res));
	if (res < 0)
		return log_error_errno(res == -EBUSY ? -EBUSY : res,
				       res == -EBUSY ? "a restart of '%s' is already under way"
						     : "the new worker of '%s' did not start",
				       opts->mountpoint);
	printf("worker %d serves '%s'\n", (int)res, opts->mountpoint);
	return 0;
}

int vp_holder_send_init(int ctl, const void *init, size_t len)
{
	return vp_ctl_send(ctl, VP_MSG_INIT, init, len, NULL, 0);
}

int vp_holder_send_journal(int ctl, int memfd)
{
	int32_t pid = (int32_t)getpid(); /* after daemonizing: the worker's own pid */

	return vp_ctl_send(ctl, VP_MSG_JOURNAL, &pid, sizeof(pid), &memfd, 1);
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
