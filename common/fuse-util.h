/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The session skeleton both FUSE daemons share: command line -> session ->
 * signal handlers -> mount -> daemonize -> readiness -> multithreaded loop ->
 * unwind. Daemons parse their own -o options first (fuse_opt_parse with their
 * table), then hand what is left to vc_fuse_parse_cmdline().
 */
#pragma once

#include <stdbool.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include "fuse-uring.h"

/* Exit codes shared by the daemons. */
enum {
	VC_EXIT_OK = 0,
	VC_EXIT_FAILURE = 1, /* runtime failure: mount refused, daemon error */
	VC_EXIT_USAGE = 2,   /* bad command line or bad input; nothing was changed */
};

struct vc_fuse_cmdline {
	char *mountpoint; /* g_free'd by vc_fuse_cmdline_done */
	bool foreground;
	bool debug;
	bool singlethread;
	bool show_help;
	bool show_version;
	int clone_fd;
	unsigned max_idle_threads;
	unsigned max_threads;
	int uring;		/* VC_URING_* (fuse-uring.h) */
	unsigned uring_threads; /* ring threads per CPU queue */
	int ready_fd;		/* -1, or an fd to write "READY\n" to once the mount is up */
};

/*
 * Parse -f, -d/--debug, -s, -h/--help, -V/--version, --ready-fd=N,
 * -o clone_fd, -o max_idle_threads=N, -o max_threads=N, -o uring=auto|on|off,
 * -o uring_threads=N and the mount point. uring_default (VC_URING_*) is the
 * daemon's -o uring when none is given.
 * They are removed from args; what remains goes to fuse_session_new().
 */
int vc_fuse_parse_cmdline(struct fuse_args *args, int uring_default, struct vc_fuse_cmdline *ret);
/*
 * Each error above is one line naming the option and its value; an unknown flag
 * ("--frob") and a second non-option argument are errors. A daemon's option
 * callback keeps (returns 1 for) the -o options this takes, which this tells.
 */
bool vc_fuse_is_common_opt(const char *arg);
/* Upper bound of -o max_threads and -o max_idle_threads (libfuse's own). */
#define VC_FUSE_THREADS_MAX 100000
/*
 * Whether fuse_session_new() takes what is left of args, tried on a copy before
 * anything is created: -EINVAL (libfuse logged why) or 0.
 */
int vc_fuse_check_session_args(const struct fuse_args *args);
void vc_fuse_cmdline_done(struct vc_fuse_cmdline *cl);

/* Print the options every daemon shares, for --help. */
void vc_fuse_print_common_help(int uring_default);

struct vc_fuse_hooks {
	/*
	 * Called with the kernel's INIT request and the reply libfuse built, before
	 * it is written: may ask for what libfuse 3.14 does not know (flags2, ...).
	 * May be NULL.
	 */
	void (*init_reply)(void *userdata, const struct fuse_init_in *in,
			   struct fuse_init_out *out);
	/*
	 * Called right after the mount and the INIT handshake, before daemonizing and
	 * readiness; an error unmounts and fails the run. May be NULL.
	 */
	int (*after_mount)(struct fuse_session *se, void *userdata);
	/* Called after the mount and daemonize, before the loop (e.g. start background threads). */
	int (*before_loop)(struct fuse_session *se, void *userdata);
	/* Called after the loop ends and the filesystem is unmounted. */
	void (*after_loop)(void *userdata);
	/*
	 * End the session once the file system is no longer mounted anywhere in the
	 * daemon's mount namespace, even while other namespaces hold copies of the mount
	 * (those then fail with ENOTCONN); see mount-watch.c.
	 */
	bool end_when_unmounted;
};

/*
 * Create the session, mount, daemonize unless -f, signal readiness, run the
 * loop until unmounted (here, with end_when_unmounted) or SIGTERM/SIGINT/SIGHUP,
 * then unmount and tear down.
 * Returns 0 or a negative errno (already logged).
 */
int vc_fuse_run(struct fuse_args *args, const struct fuse_lowlevel_ops *ops, size_t op_size,
		void *userdata, const struct vc_fuse_cmdline *cl,
		const struct vc_fuse_hooks *hooks);
