/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Extended attribute calls on an fd, -errno on failure, and reads with the
 * ERANGE resize loop. An O_PATH fd (symlinks, devices) is reached through its
 * /proc/self/fd/N magic link.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* The f*xattr calls for any fd: >= 0 or -errno. */
ssize_t vc_fgetxattr(int fd, bool o_path, const char *name, void *buf, size_t len);
ssize_t vc_flistxattr(int fd, bool o_path, char *buf, size_t len);
/* Value of name on fd; *ret is NUL-terminated (not counted in *ret_len). */
int vc_fgetxattr_alloc(int fd, bool o_path, const char *name, char **ret, size_t *ret_len);
/* The NUL-separated name list of fd. */
int vc_flistxattr_alloc(int fd, bool o_path, char **ret, size_t *ret_len);
/* Same forms as the calls they wrap, but -errno. */
int vc_fsetxattr(int fd, bool o_path, const char *name, const void *value, size_t len, int flags);
int vc_fremovexattr(int fd, bool o_path, const char *name);
