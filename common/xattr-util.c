/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Extended attribute helpers (see xattr-util.h). A value may change size
 * between the size query and the read, so both loops retry on ERANGE.
 */
#include <errno.h>
#include <sys/xattr.h>
#include <glib.h>

#include "fd-util.h"
#include "xattr-util.h"

/*
 * An O_PATH fd has no f*xattr calls; its /proc/self/fd/N magic link, followed,
 * is the object itself (a symlink or device included). The l*xattr calls would
 * act on the magic link instead, so the following forms are the right ones.
 */
ssize_t vc_fgetxattr(int fd, bool o_path, const char *name, void *buf, size_t len)
{
	char p[VC_PROC_FD_PATH_MAX];
	ssize_t n;

	if (!o_path) {
		n = fgetxattr(fd, name, buf, len);
	} else {
		vc_proc_fd_path(fd, p);
		n = getxattr(p, name, buf, len);
	}
	return n < 0 ? -errno : n;
}

ssize_t vc_flistxattr(int fd, bool o_path, char *buf, size_t len)
{
	char p[VC_PROC_FD_PATH_MAX];
	ssize_t n;

	if (!o_path) {
		n = flistxattr(fd, buf, len);
	} else {
		vc_proc_fd_path(fd, p);
		n = listxattr(p, buf, len);
	}
	return n < 0 ? -errno : n;
}

/* Most values and name lists are short: one call into a buffer of this size, else probe. */
#define VC_XATTR_GUESS 1024

static int vc_xattr_take(char *buf, ssize_t n, char **ret, size_t *ret_len)
{
	buf[n] = '\0';
	if (ret_len)
		*ret_len = n;
	*ret = buf;
	return 0;
}

/* name: the attribute to read, or NULL for the list of names. */
static ssize_t vc_xattr_read(int fd, bool o_path, const char *name, char *buf, size_t len)
{
	return name ? vc_fgetxattr(fd, o_path, name, buf, len)
		    : vc_flistxattr(fd, o_path, buf, len);
}

static int vc_xattr_alloc(int fd, bool o_path, const char *name, char **ret, size_t *ret_len)
{
	g_autofree char *first = g_malloc(VC_XATTR_GUESS + 1);
	ssize_t k = vc_xattr_read(fd, o_path, name, first, VC_XATTR_GUESS);

	if (k >= 0)
		return vc_xattr_take(g_steal_pointer(&first), k, ret, ret_len);
	if (k != -ERANGE)
		return k;
	for (int tries = 0; tries < 8; tries++) {
		g_autofree char *buf = NULL;
		ssize_t n = vc_xattr_read(fd, o_path, name, NULL, 0);

		if (n < 0)
			return n;
		buf = g_malloc(n + 1);
		n = vc_xattr_read(fd, o_path, name, buf, n);
		if (n == -ERANGE)
			continue;
		if (n < 0)
			return n;
		return vc_xattr_take(g_steal_pointer(&buf), n, ret, ret_len);
	}
	return -ERANGE;
}

int vc_fgetxattr_alloc(int fd, bool o_path, const char *name, char **ret, size_t *ret_len)
{
	return vc_xattr_alloc(fd, o_path, name, ret, ret_len);
}

int vc_flistxattr_alloc(int fd, bool o_path, char **ret, size_t *ret_len)
{
	return vc_xattr_alloc(fd, o_path, NULL, ret, ret_len);
}

int vc_fsetxattr(int fd, bool o_path, const char *name, const void *value, size_t len, int flags)
{
	char p[VC_PROC_FD_PATH_MAX];
	int r;

	if (!o_path) {
		r = fsetxattr(fd, name, value, len, flags);
	} else {
		vc_proc_fd_path(fd, p);
		r = setxattr(p, name, value, len, flags);
	}
	return r < 0 ? -errno : 0;
}

int vc_fremovexattr(int fd, bool o_path, const char *name)
{
	char p[VC_PROC_FD_PATH_MAX];
	int r;

	if (!o_path) {
		r = fremovexattr(fd, name);
	} else {
		vc_proc_fd_path(fd, p);
		r = removexattr(p, name);
	}
	return r < 0 ? -errno : 0;
}
