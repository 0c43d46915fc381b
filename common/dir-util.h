/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Directory helpers shared by the daemons and the launcher: a DIR* opened
 * from a directory fd, and recursive removal that never follows a symlink and
 * never descends into another file system.
 */
#pragma once

#include <dirent.h>

/*
 * A DIR* for name below dirfd (name "." for dirfd itself; then a fresh open,
 * so the stream's offset is its own). Returns 0 or -errno.
 */
int vc_opendir_at(int dirfd, const char *name, DIR **ret);

/*
 * Remove name below parentfd: a file, or a whole tree. A directory on another
 * device (a mount point) is refused with -EBUSY and everything outside it is
 * still removed; an unreadable directory is made readable first. ENOENT is
 * success. Returns 0 or the first -errno met.
 */
int vc_rm_rf_at(int parentfd, const char *name);
/* Remove what directory dirfd holds, but not the directory itself. */
int vc_rm_children_at(int dirfd);
