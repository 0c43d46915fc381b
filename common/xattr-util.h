/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Extended attribute reads with the ERANGE resize loop, on an fd. For an
 * O_PATH fd (symlinks, devices) the l*xattr calls go through /proc/self/fd.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Value of name on fd; *ret is NUL-terminated (not counted in *ret_len). */
int vc_fgetxattr_alloc(int fd, bool o_path, const char *name, char **ret, size_t *ret_len);
/* The NUL-separated name list of fd. */
int vc_flistxattr_alloc(int fd, bool o_path, char **ret, size_t *ret_len);
/* Same forms as the calls they wrap, but -errno. */
int vc_fsetxattr(int fd, bool o_path, const char *name, const void *value, size_t len, int flags);
int vc_fremovexattr(int fd, bool o_path, const char *name);
