/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * File descriptor helpers (see fd-util.h). The beneath-open prefers
 * openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS) and falls
 * back to walking component by component with O_NOFOLLOW; both refuse every
 * symlink on the way and never climb above the starting directory.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <glib.h>
#if HAVE_OPENAT2_H
#include <linux/openat2.h>
#endif

#include "cleanup.h"
#include "fd-util.h"
#include "path-util.h"

int vc_close_nointr(int fd)
{
	if (fd < 0)
		return 0;
	if (close(fd) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

ssize_t vc_read_all(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

int vc_write_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += n;
	}
	return 0;
}

int vc_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += n;
	}
	return 0;
}

int vc_read_file_at(int dirfd, const char *path, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	g_autofree char *buf = NULL;
	size_t len = 0, cap = 4096;

	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	buf = g_malloc(cap);
	for (;;) {
		ssize_t n;

		if (cap - len < 2) {
			if (cap >= 64 * 1024 * 1024)
				return -EFBIG;
			cap *= 2;
			buf = g_realloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	*ret = g_steal_pointer(&buf);
	return 0;
}

int vc_write_file_at(int dirfd, const char *path, const char *content)
{
	_cleanup_close_ int fd = -1;
	ssize_t n;
	size_t len = strlen(content);

	fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	/* Control files want the whole value in one write(2). */
	n = write(fd, content, len);
	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EIO;
	return 0;
}

int vc_open_path_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

void vc_proc_fd_path(int fd, char buf[static VC_PROC_FD_PATH_MAX])
{
	snprintf(buf, VC_PROC_FD_PATH_MAX, "/proc/self/fd/%d", fd);
}

/* -1 unknown, 0 no, 1 yes; probed once, racing probes agree. */
static atomic_int vc_openat2_state = -1;

bool vc_have_openat2(void)
{
	return atomic_load(&vc_openat2_state) == 1;
}

/* An intermediate component that is not a directory: ELOOP for a symlink, as openat2 says. */
static int vc_walk_error(int dirfd, const char *name)
{
	struct stat st;
	int saved = errno;

	if (saved == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		return -ELOOP;
	return -saved;
}

int vc_open_beneath_walk(int dirfd, const char *path, int flags, mode_t mode)
{
	g_auto(GStrv) parts = NULL;
	g_autoptr(GPtrArray) comps = g_ptr_array_new();
	_cleanup_close_ int cur = -1;
	guint i, depth = 0;
	int fd;

	if (!path || path[0] == '/')
		return -EXDEV;
	parts = g_strsplit(path, "/", -1);
	/* Drop empty and "." components; track depth so ".." never climbs out. */
	for (i = 0; parts[i]; i++) {
		if (parts[i][0] == '\0' || strcmp(parts[i], ".") == 0)
			continue;
		if (strcmp(parts[i], "..") == 0) {
			if (depth == 0)
				return -EXDEV;
			depth--;
		} else {
			depth++;
		}
		g_ptr_array_add(comps, parts[i]);
	}
	if (comps->len == 0)
		g_ptr_array_add(comps, ".");

	cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return -errno;
	for (i = 0; i + 1 < comps->len; i++) {
		/* ".." is safe here: depth accounting above kept it beneath dirfd. */
		int next =
			openat(cur, comps->pdata[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (next < 0)
			return vc_walk_error(cur, comps->pdata[i]);
		close(cur);
		cur = next;
	}
	fd = openat(cur, comps->pdata[comps->len - 1], flags | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return errno == ENOTDIR ? vc_walk_error(cur, comps->pdata[comps->len - 1]) : -errno;
	return fd;
}

int vc_open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
#if HAVE_OPENAT2_H
	if (atomic_load(&vc_openat2_state) != 0) {
		struct open_how how = {
			.flags = (unsigned)(flags | O_NOFOLLOW | O_CLOEXEC),
			.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

		if (fd >= 0) {
			atomic_store(&vc_openat2_state, 1);
			return (int)fd;
		}
		if (errno != ENOSYS && errno != EPERM)
			return -errno;
		/* ENOSYS: old kernel; EPERM: a seccomp filter refusing it. */
		atomic_store(&vc_openat2_state, 0);
	}
#endif
	return vc_open_beneath_walk(dirfd, path, flags, mode);
}
