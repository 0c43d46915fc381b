/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The shared libfuse session skeleton (see fuse-util.h). The mount happens
 * before fuse_daemonize(), so when a backgrounded daemon's parent exits the
 * mount is already up: a launcher can simply wait for it. In the foreground a
 * launcher passes --ready-fd and waits for "READY".
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "fd-util.h"
#include "fuse-io.h"
#include "fuse-util.h"
#include "log.h"
#include "mount-diag.h"
#include "mount-watch.h"

enum {
	VC_KEY_DEBUG_LONG,
};

struct vc_fuse_extra {
	int ready_fd;
	unsigned max_threads;
	char *uring;
	unsigned uring_threads;
};

static const struct fuse_opt vc_fuse_extra_opts[] = {
	{"--ready-fd=%d", offsetof(struct vc_fuse_extra, ready_fd), 0},
	{"max_threads=%u", offsetof(struct vc_fuse_extra, max_threads), 0},
	{"uring=%s", offsetof(struct vc_fuse_extra, uring), 0},
	{"uring_threads=%u", offsetof(struct vc_fuse_extra, uring_threads), 0},
	FUSE_OPT_KEY("--debug", VC_KEY_DEBUG_LONG),
	FUSE_OPT_END,
};

static int vc_fuse_extra_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	if (key == VC_KEY_DEBUG_LONG) {
		if (fuse_opt_add_arg(outargs, "-d") < 0)
			return -1;
		return 0;
	}
	return 1;
}

int vc_fuse_parse_cmdline(struct fuse_args *args, struct vc_fuse_cmdline *ret)
{
	struct vc_fuse_extra extra = {.ready_fd = -1, .max_threads = 0, .uring_threads = 2};
	struct fuse_cmdline_opts o;
	int mode = VC_URING_OFF;

	memset(ret, 0, sizeof(*ret));
	ret->ready_fd = -1;
	if (fuse_opt_parse(args, &extra, vc_fuse_extra_opts, vc_fuse_extra_proc) < 0)
		return -EINVAL;
	if (extra.uring) {
		mode = vc_uring_parse_mode(extra.uring);
		if (mode < 0)
			log_error("-o uring=%s: expected auto, on or off", extra.uring);
		free(extra.uring);
		if (mode < 0)
			return -EINVAL;
	}
	if (extra.uring_threads < 1 || extra.uring_threads > 64)
		return log_error_errno(-EINVAL, "-o uring_threads=%u: expected 1 to 64",
				       extra.uring_threads);
	memset(&o, 0, sizeof(o));
	if (fuse_parse_cmdline(args, &o) != 0)
		return -EINVAL;
	ret->mountpoint = o.mountpoint ? g_strdup(o.mountpoint) : NULL;
	free(o.mountpoint);
	ret->foreground = o.foreground;
	ret->debug = o.debug;
	ret->singlethread = o.singlethread;
	ret->show_help = o.show_help;
	ret->show_version = o.show_version;
	ret->clone_fd = o.clone_fd;
	/* libfuse leaves UINT_MAX for "not given"; 0 means the same to us. */
	ret->max_idle_threads = o.max_idle_threads == UINT_MAX ? 0 : o.max_idle_threads;
	ret->max_threads = extra.max_threads;
	ret->uring = mode;
	ret->uring_threads = extra.uring_threads;
	ret->ready_fd = extra.ready_fd;
	if (ret->debug)
		vc_log_set_level(LOG_DEBUG);
	return 0;
}

void vc_fuse_cmdline_done(struct vc_fuse_cmdline *cl)
{
	g_clear_pointer(&cl->mountpoint, g_free);
}

void vc_fuse_print_common_help(void)
{
	printf("Common options:\n"
	       "    -h, --help             print this help and exit\n"
	       "    -V, --version          print the version and exit\n"
	       "    -f                     stay in the foreground (log to stderr)\n"
	       "    -d, --debug            debug logging (implies -f), including every FUSE "
	       "request\n"
	       "    -s                     single-threaded request loop\n"
	       "    --ready-fd=N           write \"READY\\n\" to fd N once the mount is up\n"
	       "    -o clone_fd            one /dev/fuse fd per worker thread\n"
	       "    -o max_idle_threads=N  idle worker threads kept around\n"
	       "    -o max_threads=N       upper bound on worker threads\n"
	       "    -o uring=auto|on|off   requests through FUSE over io_uring (default: off)\n"
	       "    -o uring_threads=N     io_uring threads per CPU (default: 2)\n");
}

/* The kernel ended the connection (the superblock is gone): the device fd polls POLLERR. */
static bool vc_fuse_conn_aborted(struct fuse_session *se)
{
	struct pollfd p = {.fd = fuse_session_fd(se), .events = 0};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

static int vc_fuse_signal_ready(int fd)
{
	int r;

	if (fd < 0)
		return 0;
	r = vc_write_all(fd, "READY\n", 6);
	close(fd);
	return r;
}

int vc_fuse_run(struct fuse_args *args, const struct fuse_lowlevel_ops *ops, size_t op_size,
		void *userdata, const struct vc_fuse_cmdline *cl, const struct vc_fuse_hooks *hooks)
{
	struct vc_mount_watch watch = {.mifd = -1, .stopfd = -1};
	struct fuse_lowlevel_ops sops = {0};
	struct fuse_session *se;
	struct fuse_loop_config *lc = NULL;
	struct vc_fuse_io io;
	int r = 0;

	/* The session's copy of the ops: fuse-io wraps init. */
	memcpy(&sops, ops, MIN(op_size, sizeof(sops)));
	vc_fuse_io_prepare(&io, &sops, hooks, userdata);
	se = fuse_session_new(args, &sops, sizeof(sops), userdata);
	if (!se) {
		vc_fuse_io_done(&io);
		return log_error_errno(-EINVAL, "could not create the FUSE session");
	}
	if (fuse_set_signal_handlers(se) != 0) {
		r = log_error_errno(-errno ?: -EIO, "could not install signal handlers");
		goto out_destroy;
	}
	if (fuse_session_mount(se, cl->mountpoint) != 0) {
		r = vc_fuse_mount_diagnose(cl->mountpoint);
		goto out_signals;
	}
	r = vc_fuse_io_handshake(&io, se, cl->uring, cl->uring_threads);
	if (r < 0)
		goto out_unmount;
	if (hooks && hooks->after_mount) {
		r = hooks->after_mount(se, userdata);
		if (r < 0)
			goto out_unmount;
	}
	if (!cl->foreground) {
		if (fuse_daemonize(0) != 0) {
			r = log_error_errno(-EIO, "could not daemonize");
			goto out_unmount;
		}
		vc_log_set_target(VC_LOG_SYSLOG);
	}
	/* Threads start here, after fuse_daemonize's fork. */
	r = vc_fuse_io_start(&io, cl->uring);
	if (r < 0)
		goto out_unmount;
	if (hooks && hooks->before_loop) {
		r = hooks->before_loop(se, userdata);
		if (r < 0)
			goto out_unmount;
	}
	if (hooks && hooks->end_when_unmounted)
		vc_mount_watch_start(&watch, se, cl->mountpoint);
	r = vc_fuse_signal_ready(cl->ready_fd);
	/* EPIPE: whoever waited is gone (a killed veneer-run); nothing wrong here. */
	if (r == -EPIPE)
		log_debug("nobody reads readiness fd %d any more", cl->ready_fd);
	else if (r < 0)
		log_warning_errno(r, "could not signal readiness on fd %d", cl->ready_fd);

	if (cl->singlethread) {
		r = fuse_session_loop(se);
	} else {
		lc = fuse_loop_cfg_create();
		if (!lc) {
			r = log_error_errno(-ENOMEM, "could not create the loop configuration");
			goto out_unmount;
		}
		fuse_loop_cfg_set_clone_fd(lc, cl->clone_fd);
		fuse_loop_cfg_set_idle_threads(lc,
					       cl->max_idle_threads ? cl->max_idle_threads : 10);
		if (cl->max_threads)
			fuse_loop_cfg_set_max_threads(lc, cl->max_threads);
		r = fuse_session_loop_mt(se, lc);
	}
	/* The loop returns a positive signal number or a negative errno; both end the mount
	 * cleanly. */
	if (r > 0) {
		/* Detached, nobody else would know why the mount went away. */
		if (!cl->foreground)
			log_notice("'%s': ending on signal %d (%s)", cl->mountpoint, r,
				   strsignal(r));
		r = 0;
	}
	if (r < 0)
		log_error_errno(r, "request loop failed");

out_unmount:
	vc_mount_watch_stop(&watch);
	/*
	 * Unmounted here while namespaces elsewhere keep the superblock: the path is not
	 * ours any more, and libfuse's lazy umount of it could detach whatever is mounted
	 * there now. (It then keeps the mount point string it frees only here: see
	 * tests/lsan.supp.) An ordinary unmount aborts the connection, which libfuse sees
	 * and so unmounts nothing.
	 */
	if (!atomic_load(&watch.gone) || vc_fuse_conn_aborted(se))
		fuse_session_unmount(se);
	vc_fuse_io_stop(&io);
	if (hooks && hooks->after_loop)
		hooks->after_loop(userdata);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
	vc_fuse_io_done(&io);
	if (lc)
		fuse_loop_cfg_destroy(lc);
	return r;
}
