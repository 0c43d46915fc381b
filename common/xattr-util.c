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

static ssize_t vc_xattr_get(int fd, bool o_path, const char *name, void *buf, size_t len)
{
	char p[VC_PROC_FD_PATH_MAX];

	if (!o_path)
		return fgetxattr(fd, name, buf, len);
	vc_proc_fd_path(fd, p);
	return lgetxattr(p, name, buf, len);
}

static ssize_t vc_xattr_list(int fd, bool o_path, char *buf, size_t len)
{
	char p[VC_PROC_FD_PATH_MAX];

	if (!o_path)
		return flistxattr(fd, buf, len);
	vc_proc_fd_path(fd, p);
	return llistxattr(p, buf, len);
}

int vc_fgetxattr_alloc(int fd, bool o_path, const char *name, char **ret, size_t *ret_len)
{
	for (int tries = 0; tries < 8; tries++) {
		g_autofree char *buf = NULL;
		ssize_t n = vc_xattr_get(fd, o_path, name, NULL, 0);

		if (n < 0)
			return -errno;
		buf = g_malloc(n + 1);
		n = vc_xattr_get(fd, o_path, name, buf, n);
		if (n < 0) {
			if (errno == ERANGE)
				continue;
			return -errno;
		}
		buf[n] = '\0';
		if (ret_len)
			*ret_len = n;
		*ret = g_steal_pointer(&buf);
		return 0;
	}
	return -ERANGE;
}

int vc_flistxattr_alloc(int fd, bool o_path, char **ret, size_t *ret_len)
{
	for (int tries = 0; tries < 8; tries++) {
		g_autofree char *buf = NULL;
		ssize_t n = vc_xattr_list(fd, o_path, NULL, 0);

		if (n < 0)
			return -errno;
		buf = g_malloc(n + 1);
		n = vc_xattr_list(fd, o_path, buf, n);
		if (n < 0) {
			if (errno == ERANGE)
				continue;
			return -errno;
		}
		buf[n] = '\0';
		if (ret_len)
			*ret_len = n;
		*ret = g_steal_pointer(&buf);
		return 0;
	}
	return -ERANGE;
}

int vc_fsetxattr(int fd, bool o_path, const char *name, const void *value, size_t len, int flags)
{
	char p[VC_PROC_FD_PATH_MAX];
	int r;

	if (!o_path) {
		r = fsetxattr(fd, name, value, len, flags);
	} else {
		vc_proc_fd_path(fd, p);
		r = lsetxattr(p, name, value, len, flags);
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
		r = lremovexattr(p, name);
	}
	return r < 0 ? -errno : 0;
}
