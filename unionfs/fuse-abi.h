/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The few parts of the kernel's FUSE protocol that passthrough (7.40, Linux >= 6.9)
 * and the node budget's prune notification (7.45, Linux 6.18) need and that Debian
 * 12's <linux/fuse.h> (7.37) and libfuse 3.14 lack. Everything else comes from
 * <linux/fuse.h>.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <linux/fuse.h>

/* INIT flag (in flags2): the server may answer opens with a backing file. */
#define VU_FUSE_PASSTHROUGH (1ULL << 37)

/* open_flags: read/write/mmap of this open file go to the registered backing file. */
#define VU_FOPEN_PASSTHROUGH (1U << 7)

/* fuse_open_out as of 7.40: the old padding carries the backing id. */
struct vu_fuse_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};

/* Argument of FUSE_DEV_IOC_BACKING_OPEN. */
struct vu_fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};

#define VU_FUSE_DEV_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct vu_fuse_backing_map)
#define VU_FUSE_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)

/* fuse_init_out.max_stack_depth (7.40) is the first word of the 7.37 header's unused[]. */
#define VU_FUSE_INIT_OUT_MAX_STACK_DEPTH offsetof(struct fuse_init_out, unused)

/*
 * FUSE_NOTIFY_PRUNE: a list of node ids whose unused dentries the kernel drops.
 * libfuse 3.14 has no wrapper, so evict.c writes the message to the session fd as
 * libfuse writes its own notifications.
 */
#define VU_NOTIFY_PRUNE 9

struct vu_prune_out {
	uint32_t count;
	uint32_t padding;
	uint64_t spare;
};

_Static_assert(sizeof(struct vu_fuse_open_out) == sizeof(struct fuse_open_out),
	       "fuse_open_out layout");
_Static_assert(sizeof(struct fuse_init_out) == 64, "fuse_init_out layout");
_Static_assert(offsetof(struct fuse_init_out, unused) == 36, "max_stack_depth offset");
