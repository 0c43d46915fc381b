/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The only file that knows the on-disk format of deletions. Read: a char
 * device 0/0; a zero-size file with trusted.overlay.whiteout (or user.*) in a
 * directory whose overlay.opaque is "x"; OCI/AUFS ".wh.NAME" and ".wh..wh..opq".
 * Written: 0/0 devices and trusted.overlay.opaque=y as the kernel does, with
 * ".wh.NAME" and user.overlay.opaque=y where mknod or trusted.* is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "xattr-util.h"
#include "dir-util.h"
#include "unionfs.h"

static const char *const vu_opaque_xattrs[] = {"trusted.overlay.opaque", "user.overlay.opaque"};
static const char *const vu_whiteout_xattrs[] = {"trusted.overlay.whiteout",
						 "user.overlay.whiteout"};

bool vu_whiteout_is_private_name(const char *name)
{
	return strncmp(name, VU_OCI_PREFIX, strlen(VU_OCI_PREFIX)) == 0;
}

static bool vu_whiteout_oci_name(const char *name, char buf[static NAME_MAX + 1])
{
	if (strlen(name) + strlen(VU_OCI_PREFIX) > NAME_MAX)
		return false;
	snprintf(buf, NAME_MAX + 1, "%s%s", VU_OCI_PREFIX, name);
	return true;
}

bool vu_whiteout_oci_exists(int dirfd, const char *name)
{
	char wh[NAME_MAX + 1];
	struct stat st;

	if (!vu_whiteout_oci_name(name, wh))
		return false;
	return fstatat(dirfd, wh, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/*
 * 1 when the directory (an O_PATH fd) holds no ".wh." entries among at most max_entries,
 * 0 when it holds one or is larger, -errno when it cannot be read.
 */
int vu_whiteout_dir_scan(int pathfd, size_t max_entries)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	size_t n = 0;
	int r = vc_opendir_at(pathfd, ".", &d);

	if (r < 0)
		return r;
	errno = 0;
	while ((de = readdir(d))) {
		if (++n > max_entries + 2 || vu_whiteout_is_private_name(de->d_name))
			return 0;
	}
	return errno ? -errno : 1;
}

bool vu_whiteout_is(struct vu_fs *fs, int layer, int dirfd, unsigned dirflags, const char *name,
		    const struct stat *st)
{
	char p[VC_PROC_FD_PATH_MAX + NAME_MAX + 2];
	char fdp[VC_PROC_FD_PATH_MAX];

	if (S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0))
		return true;
	if (!S_ISREG(st->st_mode) || st->st_size != 0 || !(dirflags & VU_FD_XWHITEOUTS))
		return false;
	vc_proc_fd_path(dirfd, fdp);
	snprintf(p, sizeof(p), "%s/%s", fdp, name);
	for (size_t i = 0; i < G_N_ELEMENTS(vu_whiteout_xattrs); i++)
		if (lgetxattr(p, vu_whiteout_xattrs[i], NULL, 0) >= 0)
			return true;
	return false;
}

int vu_whiteout_dir_opaque(struct vu_fs *fs, int layer, int dirfd, unsigned *ret_flags)
{
	char p[VC_PROC_FD_PATH_MAX];
	struct stat st;
	bool opaque = false;

	vc_proc_fd_path(dirfd, p);
	for (size_t i = 0; i < G_N_ELEMENTS(vu_opaque_xattrs); i++) {
		char v[4];
		ssize_t n = getxattr(p, vu_opaque_xattrs[i], v, sizeof(v));

		if (n == 1 && v[0] == 'y')
			opaque = true;
		else if (n == 1 && v[0] == 'x' && ret_flags && !vu_is_upper(fs, layer))
			*ret_flags |= VU_FD_XWHITEOUTS;
	}
	if (!opaque && fstatat(dirfd, VU_OCI_OPAQUE, &st, AT_SYMLINK_NOFOLLOW) == 0)
		opaque = true;
	return opaque;
}

int vu_whiteout_make(struct vu_fs *fs, struct vu_node *dir, int dirfd, const char *name, int how)
{
	g_autofree char *tmp = NULL;
	char wh[NAME_MAX + 1];
	int fd, r;

	if (fs->can_mknod) {
		unsigned flags = how == VU_WH_NOREPLACE	    ? RENAME_NOREPLACE
				 : how == VU_WH_REPLACE_DIR ? RENAME_EXCHANGE
							    : 0;

		tmp = vu_tmpname(fs);
		if (mknodat(fs->work_fd, tmp, S_IFCHR | 0, makedev(0, 0)) < 0)
			return -errno;
		/* Built aside and renamed in: the name never disappears for a moment. */
		if (renameat2(fs->work_fd, tmp, dirfd, name, flags) < 0) {
			r = -errno;
			unlinkat(fs->work_fd, tmp, 0);
			return r;
		}
		/* After an exchange the emptied directory sits in the workdir. */
		if (how == VU_WH_REPLACE_DIR && unlinkat(fs->work_fd, tmp, AT_REMOVEDIR) < 0)
			log_debug_errno(-errno, "could not remove '%s' from the workdir", tmp);
		return 0;
	}
	/* Unprivileged: the OCI form, which containers/storage reads. */
	if (!vu_whiteout_oci_name(name, wh))
		return -ENAMETOOLONG;
	/* Before the file exists: from now on a miss in dir probes for it again. */
	vu_node_fd_clear_flags(fs, dir, 0, VU_FD_NOWH);
	if (how != VU_WH_NOREPLACE &&
	    unlinkat(dirfd, name, how == VU_WH_REPLACE_DIR ? AT_REMOVEDIR : 0) < 0 &&
	    errno != ENOENT)
		return -errno;
	fd = openat(dirfd, wh, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0000);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

int vu_whiteout_remove(struct vu_fs *fs, int dirfd, const char *name, int kind)
{
	char wh[NAME_MAX + 1];

	if (kind == VU_WH_OCI) {
		if (!vu_whiteout_oci_name(name, wh))
			return -ENAMETOOLONG;
		name = wh;
	}
	if (kind != VU_WH_NONE && unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int vu_whiteout_set_opaque(struct vu_fs *fs, int fd)
{
	int r;

	if (fs->can_trusted) {
		r = vc_fsetxattr(fd, true, "trusted.overlay.opaque", "y", 1, 0);
		if (r >= 0)
			return 0;
	}
	return vc_fsetxattr(fd, true, "user.overlay.opaque", "y", 1, 0);
}

/* Remove the whiteouts of an upper directory that holds nothing else (rmdir of a merged dir). */
int vu_whiteout_clear_upper_dir(struct vu_fs *fs, int pathfd)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r = vc_opendir_at(pathfd, ".", &d);

	if (r < 0)
		return r;
	while ((de = readdir(d))) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			break;
		}
		if (!(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) &&
		    !vu_whiteout_is_private_name(de->d_name)) {
			r = -ENOTEMPTY;
			break;
		}
		if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
			r = -errno;
			break;
		}
	}
	return r;
}
