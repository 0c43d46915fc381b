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
#include "parse-util.h"

enum {
	VC_KEY_DEBUG_LONG,
};

/* Values are taken as text and checked here: libfuse's %u wraps "-1" to 4294967295. */
struct vc_fuse_extra {
	char *ready_fd;
	char *max_threads;
	char *max_idle_threads;
	char *uring;
	char *uring_threads;
	char *mountpoint; /* the first non-option argument, as given */
};

static const struct fuse_opt vc_fuse_extra_opts[] = {
	{"--ready-fd=%s", offsetof(struct vc_fuse_extra, ready_fd), 0},
	{"max_threads=%s", offsetof(struct vc_fuse_extra, max_threads), 0},
	{"max_idle_threads=%s", offsetof(struct vc_fuse_extra, max_idle_threads), 0},
	{"uring=%s", offsetof(struct vc_fuse_extra, uring), 0},
	{"uring_threads=%s", offsetof(struct vc_fuse_extra, uring_threads), 0},
	FUSE_OPT_KEY("--debug", VC_KEY_DEBUG_LONG),
	FUSE_OPT_END,
};

/* The command-line flags fuse_parse_cmdline() takes; any other "-x" is an error. */
static const char *const vc_fuse_flags[] = {"-h", "--help", "-V", "--version", "-f", "-d", "-s"};

static int vc_fuse_extra_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct vc_fuse_extra *e = data;

	switch (key) {
	case VC_KEY_DEBUG_LONG:
		return fuse_opt_add_arg(outargs, "-d") < 0 ? -1 : 0;
	case FUSE_OPT_KEY_NONOPT:
		if (!e->mountpoint) {
			e->mountpoint = g_strdup(arg);
			return 0;
		}
		log_error("unexpected argument '%s': the mount point is '%s'", arg, e->mountpoint);
		return -1;
	case FUSE_OPT_KEY_OPT:
		if (arg[0] != '-')
			return 1; /* an -o option: the daemon's table said it is known */
		for (size_t i = 0; i < G_N_ELEMENTS(vc_fuse_flags); i++)
			if (strcmp(arg, vc_fuse_flags[i]) == 0)
				return 1;
		log_error("unknown option '%s' (see --help)", arg);
		return -1;
	default:
		return 1;
	}
}

bool vc_fuse_is_common_opt(const char *arg)
{
	static const char *const prefixes[] = {
		"max_threads=", "max_idle_threads=", "uring=", "uring_threads="};

	if (strcmp(arg, "clone_fd") == 0)
		return true;
	for (size_t i = 0; i < G_N_ELEMENTS(prefixes); i++)
		if (g_str_has_prefix(arg, prefixes[i]))
			return true;
	return false;
}

/* "-o NAME=TEXT" as a number from min to max; the message names the option and its value. */
static int vc_fuse_opt_uint(const char *name, const char *text, unsigned min, unsigned max,
			    unsigned *ret)
{
	unsigned v;

	if (vc_parse_uint(text, &v) < 0 || v < min || v > max) {
		log_error("%s=%s: expected a number from %u to %u", name, text, min, max);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int vc_fuse_check_extra(struct vc_fuse_extra *e, struct vc_fuse_cmdline *ret)
{
	int r;

	if (e->ready_fd) {
		unsigned fd;

		r = vc_fuse_opt_uint("--ready-fd", e->ready_fd, 0, INT_MAX, &fd);
		if (r < 0)
			return r;
		ret->ready_fd = (int)fd;
	}
	if (e->max_threads) {
		r = vc_fuse_opt_uint("-o max_threads", e->max_threads, 1, VC_FUSE_THREADS_MAX,
				     &ret->max_threads);
		if (r < 0)
			return r;
	}
	if (e->max_idle_threads) {
		r = vc_fuse_opt_uint("-o max_idle_threads", e->max_idle_threads, 1,
				     VC_FUSE_THREADS_MAX, &ret->max_idle_threads);
		if (r < 0)
			return r;
	}
	if (e->uring) {
		ret->uring = vc_uring_parse_mode(e->uring);
		if (ret->uring < 0) {
			log_error("-o uring=%s: expected auto, on or off", e->uring);
			return -EINVAL;
		}
	}
	if (e->uring_threads) {
		r = vc_fuse_opt_uint("-o uring_threads", e->uring_threads, 1, 64,
				     &ret->uring_threads);
		if (r < 0)
			return r;
	}
	return 0;
}

/* libfuse's rule: an existing path, made absolute; "/dev/fd/N" is a mounted connection. */
static int vc_fuse_resolve_mountpoint(const char *mp, char **ret)
{
	unsigned fd;
	char *real;

	if (g_str_has_prefix(mp, "/dev/fd/") && vc_parse_uint(mp + strlen("/dev/fd/"), &fd) == 0) {
		*ret = g_strdup(mp);
		return 0;
	}
	real = realpath(mp, NULL);
	if (!real)
		return log_error_errno(-errno, "mount point '%s'", mp);
	*ret = g_strdup(real);
	free(real);
	return 0;
}

static void vc_fuse_extra_free(struct vc_fuse_extra *e)
{
	free(e->ready_fd);
	free(e->max_threads);
	free(e->max_idle_threads);
	free(e->uring);
	free(e->uring_threads);
	g_free(e->mountpoint);
}

int vc_fuse_parse_cmdline(struct fuse_args *args, int uring_default, struct vc_fuse_cmdline *ret)
{
	struct vc_fuse_extra extra = {0};
	struct fuse_cmdline_opts o;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->ready_fd = -1;
	ret->uring = uring_default;
	ret->uring_threads = 2;
	if (fuse_opt_parse(args, &extra, vc_fuse_extra_opts, vc_fuse_extra_proc) < 0) {
		r = -EINVAL;
		goto out;
	}
	r = vc_fuse_check_extra(&extra, ret);
	if (r < 0)
		goto out;
	memset(&o, 0, sizeof(o));
	/* Only flags are left (the mount point was taken above): this logs nothing. */
	if (fuse_parse_cmdline(args, &o) != 0) {
		r = log_error_errno(-EINVAL, "bad command line (see --help)");
		goto out;
	}
	free(o.mountpoint);
	ret->foreground = o.foreground;
	ret->debug = o.debug;
	ret->singlethread = o.singlethread;
	ret->show_help = o.show_help;
	ret->show_version = o.show_version;
	ret->clone_fd = o.clone_fd;
	if (extra.mountpoint && !ret->show_help && !ret->show_version) {
		r = vc_fuse_resolve_mountpoint(extra.mountpoint, &ret->mountpoint);
		if (r < 0)
			goto out;
	}
	if (ret->debug)
		vc_log_set_level(LOG_DEBUG);
	r = 0;
out:
	vc_fuse_extra_free(&extra);
	if (r < 0)
		g_clear_pointer(&ret->mountpoint, g_free);
	return r;
}

int vc_fuse_check_session_args(const struct fuse_args *args)
{
	static const struct fuse_lowlevel_ops none;
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	int r = 0;

	/* Without -d: the real session says its "FUSE library version" line once. */
	for (int i = 0; i < args->argc; i++)
		if (strcmp(args->argv[i], "-d") != 0 &&
		    fuse_opt_add_arg(&copy, args->argv[i]) < 0) {
			fuse_opt_free_args(&copy);
			return log_error_errno(-ENOMEM, "out of memory");
		}
	se = fuse_session_new(&copy, &none, sizeof(none), NULL);
	if (se)
		fuse_session_destroy(se);
	else
		r = -EINVAL; /* libfuse said why, in one line (log.c joins its pieces) */
	fuse_opt_free_args(&copy);
	return r;
}

void vc_fuse_cmdline_done(struct vc_fuse_cmdline *cl)
{
	g_clear_pointer(&cl->mountpoint, g_free);
}

void vc_fuse_print_common_help(int uring_default)
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
	       "    -o max_idle_threads=N  idle worker threads kept around (1 to 100000)\n"
	       "    -o max_threads=N       upper bound on worker threads (1 to 100000)\n"
	       "    -o uring=auto|on|off   requests through FUSE over io_uring (default: %s)\n"
	       "    -o uring_threads=N     io_uring threads per CPU, 1 to 64 (default: 2)\n",
	       vc_uring_mode_name(uring_default));
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
