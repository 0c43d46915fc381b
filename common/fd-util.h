/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * File descriptor helpers: errno-preserving close, full reads and writes,
 * whole-file reads, and opens that never follow a symlink out of a directory
 * (openat2 RESOLVE_BENEATH where the kernel has it, an O_NOFOLLOW walk otherwise).
 * All return >= 0 or a negative errno.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

int vc_close_nointr(int fd);
ssize_t vc_read_all(int fd, void *buf, size_t len);
int vc_write_all(int fd, const void *buf, size_t len);
/* All of buf at offset off (pwrite), retrying short writes and EINTR. */
int vc_pwrite_all(int fd, const void *buf, size_t len, off_t off);

/* Read a whole (small) file relative to dirfd into a NUL-terminated buffer. */
int vc_read_file_at(int dirfd, const char *path, char **ret, size_t *ret_len);
/* Write a whole string to an existing file (cgroup and /proc control files). */
int vc_write_file_at(int dirfd, const char *path, const char *content);

/*
 * Open path (relative, may contain '/') beneath dirfd. Symlinks in any
 * component are refused with ELOOP, '..' may not climb out (EXDEV), and the
 * final component is opened with the given flags (O_NOFOLLOW is implied).
 */
int vc_open_beneath(int dirfd, const char *path, int flags, mode_t mode);
/* Same as vc_open_beneath with the kernel's openat2 disabled: for tests. */
int vc_open_beneath_walk(int dirfd, const char *path, int flags, mode_t mode);

/* O_PATH|O_NOFOLLOW|O_CLOEXEC open of one name in dirfd. */
int vc_open_path_at(int dirfd, const char *name);

/* fd -> "/proc/self/fd/N", for the few calls that have no *at() form. */
#define VC_PROC_FD_PATH_MAX (sizeof("/proc/self/fd/") + 11)
void vc_proc_fd_path(int fd, char buf[static VC_PROC_FD_PATH_MAX]);

bool vc_have_openat2(void);
