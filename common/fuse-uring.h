/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE over io_uring (Linux >= 6.14 with CONFIG_FUSE_IO_URING, turned on by root
 * in /sys/module/fuse/parameters/enable_uring) for libfuse 3.14, which has no API
 * for it. fuse-io.c calls these around the INIT handshake and routes every reply
 * through vc_uring_reply(); /dev/fuse keeps carrying INIT, FORGET, INTERRUPT and
 * notifications, so the session's usual request loop runs beside the rings.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

enum vc_uring_mode {
	VC_URING_OFF = 0, /* /dev/fuse only */
	VC_URING_AUTO,	  /* rings when the kernel offers them, else /dev/fuse */
	VC_URING_ON,	  /* rings, or the mount fails */
};

/* INIT flag (bit 41, in flags2): requests may come through io_uring. */
#define VC_FUSE_OVER_IO_URING (1ULL << 41)

struct vc_uring;

/* "auto", "on", "off" -> VC_URING_*; -EINVAL otherwise. */
int vc_uring_parse_mode(const char *s);
const char *vc_uring_mode_name(int mode);

/*
 * Before INIT: check that this process can set up a ring with 128-byte SQEs for
 * the session's device. Returns 0 with *ret set (NULL when mode is off), or a
 * negative errno when io_uring is unusable here (*ret is then NULL too).
 */
int vc_uring_new(struct fuse_session *se, int mode, unsigned threads_per_queue,
		 struct vc_uring **ret);

/*
 * The INIT reply is about to be written: ask for io_uring when the kernel offers
 * it (in_flags: the request's 64 flags). Sizes the payload buffers from the reply.
 * Returns true when the reply now asks for it: requests then wait for
 * vc_uring_start() to register the queues.
 */
bool vc_uring_amend_init(struct vc_uring *u, uint64_t in_flags, struct fuse_init_out *out);

/* The kernel offered io_uring in INIT (valid after vc_uring_amend_init). */
bool vc_uring_offered(const struct vc_uring *u);

/*
 * After the INIT reply (and daemonizing): start one thread per queue entry, each
 * with its own ring, and register the entries. On failure the kernel goes back to
 * /dev/fuse and a negative errno is returned (fatal only for mode on).
 */
int vc_uring_start(struct vc_uring *u);

/* Requests come through the rings. */
bool vc_uring_active(const struct vc_uring *u);

/*
 * A reply (iov[0] is the fuse_out_header): when its unique id is a request taken
 * from a ring, it is copied into that entry and committed; returns the bytes
 * taken, or -ENOENT when the reply is not for a ring request.
 */
ssize_t vc_uring_reply(struct vc_uring *u, const struct iovec *iov, int count);

/* Stop and join the ring threads (the kernel ends the entries when the rings close). */
void vc_uring_stop(struct vc_uring *u);
void vc_uring_free(struct vc_uring *u);
