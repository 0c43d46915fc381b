/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The custom io of vc_fuse_run's session (fuse-io.c): the INIT handshake with
 * the daemon's and io_uring's additions to the reply, and the routing of
 * replies between /dev/fuse and the io_uring queues.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include "fuse-uring.h"
#include "fuse-util.h"

struct vc_fuse_io {
	struct fuse_session *se;
	const struct vc_fuse_hooks *hooks;
	void *userdata;
	void (*daemon_init)(void *userdata, struct fuse_conn_info *conn);
	struct fuse_init_in init_in; /* the kernel's INIT request */
	uint64_t init_flags;	     /* its flags and flags2 */
	bool expect_init;	     /* the next reply is INIT's; handshake thread only */
	/* The INIT reply asked for io_uring: replies may belong to ring requests. */
	bool uring_asked;
	struct vc_uring *uring;
};

/* Before fuse_session_new: ops->init is wrapped (the ops are the session's copy). */
void vc_fuse_io_prepare(struct vc_fuse_io *io, struct fuse_lowlevel_ops *ops,
			const struct vc_fuse_hooks *hooks, void *userdata);
/* After the mount: hook the device and answer INIT. */
int vc_fuse_io_handshake(struct vc_fuse_io *io, struct fuse_session *se, int uring_mode,
			 unsigned uring_threads);
/* After daemonizing: start the io_uring queues if INIT asked for them. */
int vc_fuse_io_start(struct vc_fuse_io *io, int uring_mode);
/* After the loop: stop the queues. */
void vc_fuse_io_stop(struct vc_fuse_io *io);
/* After fuse_session_destroy. */
void vc_fuse_io_done(struct vc_fuse_io *io);
