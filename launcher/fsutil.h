/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Launcher-private file-tree helpers (fsutil.c): removal that stops at mount
 * points, mkdir -p, emptiness check, and the copy behind volume copy-data.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

int vr_rm_rf(const char *path);
int vr_mkdir_p(const char *path, mode_t mode);
bool vr_dir_is_empty(int dfd);
/* Copy the content of directory sfd into directory dfd (owner, mode, times; no xattrs). */
int vr_copy_tree(int sfd, int dfd);
