/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-procfs: main(), the option table and its validation, and the
 * worker's start: attach to (or create) the holder of the mount (holder.c),
 * bring the libfuse session up on the inherited connection, run the loop.
 * common/fuse-util's vc_fuse_run is not used: it mounts and owns the
 * connection itself, while here the holder owns it and the worker needs the
 * journaled loop (loop.c) to survive restarts; the shared option parsing is.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "parse-util.h"
#include "procfs.h"

#define VP_RESPAWN_DELAY_MAX 3600000 /* ms: an hour */

/* The -o values as given: numbers are checked by vp_opts_take (libfuse's %u wraps "-1"). */
struct vp_opt_text {
	char *cgroup_root;
	char *cpu_quota;
	char *threads;
	char *respawn_delay;
};

static const struct fuse_opt vp_opt_table[] = {
	{"cgroup_root=%s", offsetof(struct vp_opt_text, cgroup_root), 0},
	{"cpu_quota=%s", offsetof(struct vp_opt_text, cpu_quota), 0},
	{"threads=%s", offsetof(struct vp_opt_text, threads), 0},
	{"respawn_delay=%s", offsetof(struct vp_opt_text, respawn_delay), 0},
	FUSE_OPT_END,
};

/* Any other -o option is an error that names it; flags go to vc_fuse_parse_cmdline. */
static int vp_opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	if (key == FUSE_OPT_KEY_OPT && arg[0] == '\0')
		return 0; /* "-o a,,b": an empty option, as unionfs takes it */
	if (key == FUSE_OPT_KEY_OPT && arg[0] != '-' && !vc_fuse_is_common_opt(arg)) {
		log_error("unknown option '-o %s' (see --help)", arg);
		return -1;
	}
	return 1;
}

static void vp_opt_text_free(struct vp_opt_text *t)
{
	free(t->cgroup_root);
	free(t->cpu_quota);
	free(t->threads);
	free(t->respawn_delay);
}

/* The numbers of t into o, each from min to max; the message names option and value. */
static int vp_opt_number(const char *name, const char *text, unsigned min, unsigned max,
			 const char *what, unsigned *ret)
{
	unsigned v;

	if (!text)
		return 0;
	if (vc_parse_uint(text, &v) < 0 || v < min || v > max) {
		log_error("-o %s=%s: expected %s", name, text, what);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int vp_opts_take(struct vp_opt_text *t, struct vp_opts *o)
{
	unsigned quota = (unsigned)o->cpu_quota;

	if (vp_opt_number("cpu_quota", t->cpu_quota, 0, 1, "0 or 1", &quota) < 0 ||
	    vp_opt_number("threads", t->threads, 1, 64, "a number from 1 to 64", &o->threads) < 0 ||
	    vp_opt_number("respawn_delay", t->respawn_delay, 0, VP_RESPAWN_DELAY_MAX,
			  "milliseconds from 0 (never) to 3600000", &o->respawn_delay_ms) < 0)
		return -EINVAL;
	o->cpu_quota = (int)quota;
	o->cgroup_root = g_steal_pointer(&t->cgroup_root);
	return 0;
}

static void vp_usage(void)
{
	printf("usage: veneer-procfs [options] [mountpoint]\n"
	       "       veneer-procfs --restart [mountpoint]\n"
	       "\n"
	       "Serves /proc files that show each container its own cgroup limits. The default\n"
	       "mount point is " VP_DEFAULT_MOUNTPOINT ". Run again with the same mount point to\n"
	       "restart or upgrade the worker: the mount and the containers' bind mounts stay.\n"
	       "--restart has the holder start a new worker from the binary's path, waits until\n"
	       "it serves (the older one retires) and prints its pid.\n"
	       "\n"
	       "veneer-procfs options:\n"
	       "    -o cgroup_root=DIR     cgroup hierarchies are mounted below DIR "
	       "(default " VP_DEFAULT_CGROUP_ROOT ")\n"
	       "    -o cpu_quota=0|1       CPU count also limited by ceil(quota/period) (default "
	       "1)\n"
	       "    -o threads=N           request threads, 1 to 64 (default 4)\n"
	       "    -o respawn_delay=MS    the holder starts a new worker after MS ms without "
	       "one,\n"
	       "                           0 to 3600000 (default 1000; 0: never)\n"
	       "\n");
	vc_fuse_print_common_help(VC_URING_OFF);
}

static int vp_opts_validate(struct vp_opts *o)
{
	g_autofree char *mp = NULL;
	struct stat st;

	if (!o->cgroup_root || o->cgroup_root[0] != '/') {
		log_error("-o cgroup_root=%s: expected an absolute path",
			  o->cgroup_root ? o->cgroup_root : "");
		return -EINVAL;
	}
	if (stat(o->cgroup_root, &st) < 0)
		return log_error_errno(-errno, "-o cgroup_root=%s", o->cgroup_root);
	if (!S_ISDIR(st.st_mode))
		return log_error_errno(-ENOTDIR, "-o cgroup_root=%s", o->cgroup_root);
	{
		_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = NULL;
		int r = vc_cgroup_layout_load(o->cgroup_root, &l);

		if (r < 0) {
			log_error("-o cgroup_root=%s: no cgroup hierarchy is mounted below it",
				  o->cgroup_root);
			return r;
		}
	}
	mp = g_strdup(o->cl.mountpoint ? o->cl.mountpoint : VP_DEFAULT_MOUNTPOINT);
	if (!o->cl.mountpoint && g_mkdir_with_parents(mp, 0755) < 0)
		return log_error_errno(-errno, "could not create the mount point '%s'", mp);
	/*
	 * Canonicalise the parent only: the mount point itself may be our own mount
	 * with no worker answering yet (a restart), and touching it would wait for us.
	 */
	{
		g_autofree char *full = g_canonicalize_filename(mp, NULL);
		g_autofree char *dir = g_path_get_dirname(full);
		g_autofree char *base = g_path_get_basename(full);
		g_autofree char *rdir = realpath(dir, NULL);

		if (!rdir)
			return log_error_errno(-errno, "mount point '%s'", mp);
		if (strcmp(base, "/") == 0)
			return log_error_errno(-EINVAL, "mount point '%s': not on /", mp);
		o->mountpoint = g_build_filename(rdir, base, NULL);
	}
	/*
	 * A file is bad input (exit 2). The attributes the kernel has cached do: asking
	 * our own mount's root afresh would wait for a worker, which may be us.
	 */
	{
		struct statx stx;

		if (statx(AT_FDCWD, o->mountpoint, AT_STATX_DONT_SYNC, STATX_TYPE, &stx) < 0)
			return log_error_errno(-errno, "mount point '%s'", mp);
		if (!S_ISDIR(stx.stx_mode))
			return log_error_errno(-ENOTDIR, "mount point '%s'", mp);
	}
	if (geteuid() != 0)
		return log_error_errno(-EPERM,
				       "veneer-procfs mounts with mount(2): run it as root");
	return 0;
}

/* Make the fresh libfuse session answer the connection's FUSE_INIT (live or replayed). */
static int vp_session_init(struct fuse_session *se, struct vp_attach *a)
{
	struct fuse_buf buf = {.mem = NULL};
	size_t len;
	int r;

	if (a->init) {
		/* Replay: our session negotiates; the kernel drops the duplicate reply. */
		fuse_session_process_buf(se,
					 &(struct fuse_buf){.mem = a->init, .size = a->init_len});
		return 0;
	}
	do
		r = fuse_session_receive_buf(se, &buf);
	while (r == -EINTR);
	if (r <= 0) {
		free(buf.mem);
		return log_error_errno(r < 0 ? r : -ENODEV, "no FUSE_INIT from the kernel");
	}
	if ((size_t)r < sizeof(struct fuse_in_header) ||
	    ((struct fuse_in_header *)buf.mem)->opcode != FUSE_INIT ||
	    (size_t)r > VP_MSG_MAX_PAYLOAD) {
		free(buf.mem);
		return log_error_errno(-EPROTO, "the first request was not a usable FUSE_INIT");
	}
	len = (size_t)r;
	a->init = g_memdup2(buf.mem, len); /* kept: we may have to start a new holder */
	a->init_len = len;
	r = vp_holder_send_init(a->ctl, buf.mem, len);
	if (r < 0)
		log_warning_errno(r, "could not hand FUSE_INIT to the holder");
	fuse_session_process_buf(se, &(struct fuse_buf){.mem = buf.mem, .size = len});
	free(buf.mem);
	return 0;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct vp_opts opts = {.cpu_quota = 1, .threads = 4, .respawn_delay_ms = 1000};
	struct vp_opt_text text = {0};
	struct vp_attach att = {.ctl = -1, .fuse_fd = -1};
	struct fuse_session *se = NULL;
	struct vp_fs fs;
	unsigned holder_fd = 0, holder_init = 0;
	bool fs_up = false, holder_mode = false, restart_mode = false;
	char fdpath[32];
	int r, ret = VC_EXIT_FAILURE;

	vc_log_init("veneer-procfs");
	vc_log_route_fuse();
	/*
	 * Every open allocates and frees a few KiB per request thread: glibc's default
	 * trims a thread arena's top as soon as 128 KiB are free and the next requests
	 * fault the pages back in (5 % of the worker's CPU at 100 containers). Keep up
	 * to 4 MiB per arena instead.
	 */
	mallopt(M_TRIM_THRESHOLD, 4 << 20);
	/* "--internal-holder FUSEFD INITFD ...": started by a worker whose holder died. */
	if (argc >= 4 && strcmp(argv[1], "--internal-holder") == 0) {
		if (vc_parse_uint(argv[2], &holder_fd) < 0 ||
		    vc_parse_uint(argv[3], &holder_init) < 0) {
			fprintf(stderr, "veneer-procfs: bad --internal-holder arguments\n");
			return VC_EXIT_USAGE;
		}
		holder_mode = true;
		for (int i = 1; i + 3 <= argc; i++)
			argv[i] = argv[i + 3];
		argc -= 3;
		args.argc = argc;
	}
	/* "--restart [MNT]": ask the holder of MNT for a new worker. */
	if (argc >= 2 && strcmp(argv[1], "--restart") == 0) {
		restart_mode = true;
		for (int i = 1; i + 1 <= argc; i++)
			argv[i] = argv[i + 1];
		argc -= 1;
		args.argc = argc;
	}
	/* Each step logs its one line on bad input. */
	if (fuse_opt_parse(&args, &text, vp_opt_table, vp_opt_proc) < 0 ||
	    vc_fuse_parse_cmdline(&args, VC_URING_OFF, &opts.cl) < 0) {
		ret = VC_EXIT_USAGE;
		goto out_args;
	}
	if (opts.cl.show_help) {
		vp_usage();
		ret = VC_EXIT_OK;
		goto out_args;
	}
	if (opts.cl.show_version) {
		printf("veneer-procfs %s\n", VENEER_VERSION);
		ret = VC_EXIT_OK;
		goto out_args;
	}
	for (int i = 1; i < args.argc; i++) {
		if (args.argv[i][0] != '-') {
			log_error("unexpected argument '%s'", args.argv[i]);
			ret = VC_EXIT_USAGE;
			goto out_args;
		}
	}
	if (vp_opts_take(&text, &opts) < 0) {
		ret = VC_EXIT_USAGE;
		goto out_args;
	}
	if (!opts.cgroup_root)
		opts.cgroup_root = strdup(VP_DEFAULT_CGROUP_ROOT);
	if (vp_opts_validate(&opts) < 0) {
		ret = VC_EXIT_USAGE;
		goto out_args;
	}
	if (restart_mode) {
		ret = vp_holder_restart(&opts) < 0 ? VC_EXIT_FAILURE : VC_EXIT_OK;
		goto out_args;
	}
	if (holder_mode) {
		vp_holder_adopt(&opts, (int)holder_fd, (int)holder_init); /* returns on error */
		goto out_args;
	}
	/* The session is created (and its options checked) before anything is mounted. */
	if (opts.cl.debug)
		fuse_opt_add_arg(&args, "-d");
	se = fuse_session_new(&args, &vp_ops, sizeof(vp_ops), &fs);
	if (!se) {
		/* libfuse said why, in one line (log.c joins its pieces) */
		ret = VC_EXIT_USAGE;
		goto out_args;
	}
	/* Before any thread exists: this may fork the holder. */
	r = vp_holder_attach(&opts, &att);
	if (r < 0)
		goto out_session;
	if (!opts.cl.foreground) {
		if (fuse_daemonize(0) != 0) {
			log_error("could not daemonize");
			goto out_session;
		}
		vc_log_set_target(VC_LOG_SYSLOG);
	}
	if (vp_fs_init(&fs, &opts) < 0)
		goto out_fs;
	fs_up = true;
	/* libfuse takes a "/dev/fd/N" mount point as an already mounted connection. */
	snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", att.fuse_fd);
	if (fuse_session_mount(se, fdpath) != 0) {
		log_error("could not use the FUSE connection fd %d", att.fuse_fd);
		goto out_fs;
	}
	att.fuse_fd = -1; /* the session closes it */
	if (vp_session_init(se, &att) < 0)
		goto out_fs;
	r = vp_loop_run(se, &att, &opts);
	ret = r < 0 ? VC_EXIT_FAILURE : VC_EXIT_OK;
out_fs:
	if (fs_up)
		vp_fs_done(&fs);
out_session:
	/* Also closes the connection fd: our copy only, the holder keeps its own. */
	fuse_session_destroy(se);
	vp_attach_clear(&att);
out_args:
	vp_opt_text_free(&text);
	vc_fuse_cmdline_done(&opts.cl);
	free(opts.cgroup_root);
	g_free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}
