/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pidcache.c: the pid namespace of a calling process, kept while the process
 * lives (checked with a pidfd), so a process that reads again costs one poll
 * instead of a walk of /proc/PID/ns/pid.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

struct vp_pidcache;

/* At most max processes (one pidfd each); all forgotten when full. */
struct vp_pidcache *vp_pidcache_new(unsigned max);
void vp_pidcache_free(struct vp_pidcache *c);
/* The inode number of pid's pid namespace; -ESRCH when there is no such process. */
int vp_pidcache_ns(struct vp_pidcache *c, int procfd, pid_t pid, uint64_t *ret_ns);
unsigned vp_pidcache_size(struct vp_pidcache *c);
/* Close the pidfds of callers that have exited; returns how many. */
unsigned vp_pidcache_sweep(struct vp_pidcache *c);
