/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Directory helpers (see dir-util.h). Removal is fd-relative all the way down
 * with O_NOFOLLOW, and compares st_dev so a mount inside the tree stops it.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "dir-util.h"

#define VC_RM_MAX_DEPTH 4096

int vc_opendir_at(int dirfd, const char *name, DIR **ret)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int r = -errno;

		close(fd);
		return r;
	}
	*ret = d;
	return 0;
}

static int vc_rm_children_dev(int dirfd, dev_t dev, unsigned depth);

static int vc_rm_entry(int parentfd, const char *name, dev_t dev, unsigned depth)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	int r;

	if (fstatat(parentfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parentfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (st.st_dev != dev)
		return -EBUSY; /* a mount point: never descend into another file system */
	if (depth > VC_RM_MAX_DEPTH)
		return -ELOOP;
	fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES && fchmodat(parentfd, name, 0700, 0) == 0)
		/* A directory made unreadable (mode 000, as overlay's work/work can be). */
		fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = vc_rm_children_dev(fd, dev, depth + 1);
	if (r < 0)
		return r;
	if (unlinkat(parentfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int vc_rm_children_dev(int dirfd, dev_t dev, unsigned depth)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r = 0, k;

	k = vc_opendir_at(dirfd, ".", &d);
	if (k < 0)
		return k;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		k = vc_rm_entry(dirfd, de->d_name, dev, depth);
		if (k < 0 && r == 0)
			r = k;
	}
	return r;
}

int vc_rm_children_at(int dirfd)
{
	struct stat st;

	if (fstat(dirfd, &st) < 0)
		return -errno;
	return vc_rm_children_dev(dirfd, st.st_dev, 0);
}

int vc_rm_rf_at(int parentfd, const char *name)
{
	struct stat st;

	if (fstat(parentfd, &st) < 0)
		return -errno;
	return vc_rm_entry(parentfd, name, st.st_dev, 0);
}
