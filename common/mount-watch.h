/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A FUSE session that ends when its mount is gone from the daemon's mount
 * namespace, even while copies in other namespaces keep the superblock (see
 * mount-watch.c), and the mountinfo parsing it needs.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>
#include <fuse_lowlevel.h>

struct vc_mount_watch {
	dev_t dev;		 /* the superblock; fixed */
	int mifd;		 /* /proc/self/mountinfo, polled */
	int stopfd;		 /* eventfd: the loop is over */
	struct fuse_session *se; /* fixed */
	pthread_t loop_thread;	 /* signalled when the mount is gone */
	pthread_t thread;
	bool running;	  /* owner thread only */
	atomic_bool gone; /* the mount left this namespace: nothing to unmount here */
};

/* The device of the fuse mount on top at mountpoint (canonical path) in mountinfo text. */
int vc_mountinfo_fuse_dev(const char *mountinfo, const char *mountpoint, dev_t *ret);
/* Does a mount of superblock dev show in mountinfo text? */
bool vc_mountinfo_has_dev(const char *mountinfo, dev_t dev);

/*
 * Watch the mount at mountpoint from the thread that runs the loop, after the mount and any
 * fork. Where the mount is not found, nothing is watched (returns 0 all the same).
 */
int vc_mount_watch_start(struct vc_mount_watch *w, struct fuse_session *se, const char *mountpoint);
void vc_mount_watch_stop(struct vc_mount_watch *w);
