/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * File-tree helpers of the launcher, all fd-relative and never following a
 * symlink: recursive removal of a container's state (upper, work) that stops
 * at mount points, mkdir -p, and the tree copy behind volume copy-data.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "cleanup.h"
#include "fd-util.h"
#include "fsutil.h"
#include "log.h"

static int vr_rm_children(int dfd, dev_t dev);

static int vr_rm_entry(int parentfd, const char *name, dev_t dev)
{
	struct stat st;
	int fd, r;

	if (fstatat(parentfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parentfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (st.st_dev != dev)
		return -EBUSY; /* a mount point: never descend into another file system */
	fd = openat(parentfd, name, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES) {
		/* A directory the container made unreadable (mode 000, overlay's work/work). */
		if (fchmodat(parentfd, name, 0700, 0) == 0)
			fd = openat(parentfd, name,
				    O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return -errno;
	r = vr_rm_children(fd, dev);
	close(fd);
	if (r < 0)
		return r;
	if (unlinkat(parentfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int vr_rm_children(int dfd, dev_t dev)
{
	_cleanup_closedir_ DIR *d = NULL;
	int fd, r = 0;
	struct dirent *de;

	fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	/* A dup shares the offset: start from the top whoever read it before. */
	rewinddir(d);
	while ((de = readdir(d))) {
		int k;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		k = vr_rm_entry(dfd, de->d_name, dev);
		if (k < 0 && r == 0)
			r = k;
	}
	return r;
}

int vr_rm_rf(const char *path)
{
	g_autofree char *parent = g_path_get_dirname(path);
	g_autofree char *name = g_path_get_basename(path);
	_cleanup_close_ int pfd = open(parent, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (pfd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(pfd, &st) < 0)
		return -errno;
	return vr_rm_entry(pfd, name, st.st_dev);
}

int vr_mkdir_p(const char *path, mode_t mode)
{
	g_autofree char *p = g_strdup(path);

	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST)
				return -errno;
			*s = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

bool vr_dir_is_empty(int dfd)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);

	if (fd < 0)
		return false;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	rewinddir(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			return false;
	return true;
}

static int vr_copy_data(int in, int out)
{
	char buf[65536];

	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);

		if (n == 0)
			return 0;
		if (n > 0)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS)
			return -errno;
		break;
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		r = vc_write_all(out, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

/* Owner, mode and times of a copied entry; ownership may fail in a user namespace. */
static void vr_copy_meta(int dfd, const char *name, const struct stat *st)
{
	struct timespec ts[2] = {st->st_atim, st->st_mtim};

	(void)fchownat(dfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW);
	if (!S_ISLNK(st->st_mode))
		(void)fchmodat(dfd, name, st->st_mode & 07777, 0);
	(void)utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

static int vr_copy_entry(int sfd, int dfd, const char *name)
{
	struct stat st;
	int r = 0;

	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode)) {
		_cleanup_close_ int s = -1, d = -1;

		if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
			return -errno;
		s = openat(sfd, name, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		d = openat(dfd, name, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (s < 0 || d < 0)
			return -errno;
		r = vr_copy_tree(s, d);
	} else if (S_ISREG(st.st_mode)) {
		_cleanup_close_ int s = -1, d = -1;

		s = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (s < 0)
			return -errno;
		d = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (d < 0)
			return -errno;
		r = vr_copy_data(s, d);
	} else if (S_ISLNK(st.st_mode)) {
		g_autofree char *target = g_malloc(st.st_size + 1);
		ssize_t n = readlinkat(sfd, name, target, st.st_size + 1);

		if (n < 0)
			return -errno;
		target[MIN((size_t)n, (size_t)st.st_size)] = '\0';
		if (symlinkat(target, dfd, name) < 0)
			return -errno;
	} else {
		if (mknodat(dfd, name, st.st_mode, st.st_rdev) < 0) {
			log_warning_errno(-errno, "copy-data: skipped special file '%s'", name);
			return 0;
		}
	}
	if (r < 0)
		return r;
	vr_copy_meta(dfd, name, &st);
	return 0;
}

int vr_copy_tree(int sfd, int dfd)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int fd = fcntl(sfd, F_DUPFD_CLOEXEC, 3);

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	/* A dup shares the offset: start from the top whoever read it before. */
	rewinddir(d);
	while ((de = readdir(d))) {
		int r;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = vr_copy_entry(sfd, dfd, de->d_name);
		if (r < 0)
			return log_error_errno(r, "copy-data: failed to copy '%s'", de->d_name);
	}
	return 0;
}
