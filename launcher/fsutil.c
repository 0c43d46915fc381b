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
#include "dir-util.h"
#include "fd-util.h"
#include "fsutil.h"
#include "log.h"

int vr_rm_rf(const char *path)
{
	g_autofree char *parent = g_path_get_dirname(path);
	g_autofree char *name = g_path_get_basename(path);
	_cleanup_close_ int pfd = open(parent, O_DIRECTORY | O_RDONLY | O_CLOEXEC);

	if (pfd < 0)
		return errno == ENOENT ? 0 : -errno;
	return vc_rm_rf_at(pfd, name);
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

	if (vc_opendir_at(dfd, ".", &d) < 0)
		return false;
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
	int r = vc_opendir_at(sfd, ".", &d);

	if (r < 0)
		return r;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = vr_copy_entry(sfd, dfd, de->d_name);
		if (r < 0)
			return log_error_errno(r, "copy-data: failed to copy '%s'", de->d_name);
	}
	return 0;
}
