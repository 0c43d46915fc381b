/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The kernel's inode-number bookkeeping in the upper layer: overlay.origin, a
 * file handle of the lower object a copy was made from (st_ino stays across
 * copy-up and remount), and overlay.impure on a directory that holds copied-up
 * or moved-in objects with an origin, which tells a listing that its d_ino
 * values need the same mapping as st_ino. Written and read as the kernel does.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "xattr-util.h"
#include "unionfs.h"

/* The kernel's struct ovl_fb: version, magic, len, flags, type, uuid; then the handle. */
#define VU_FB_HDR 21
#define VU_FB_MAGIC 0xfb

static const char *vu_origin_xattr(struct vu_fs *fs)
{
	return fs->can_trusted ? "trusted.overlay.origin" : "user.overlay.origin";
}

static const char *vu_impure_xattr(struct vu_fs *fs)
{
	return fs->can_trusted ? "trusted.overlay.impure" : "user.overlay.impure";
}

/*
 * Where a handle of an origin is opened: on one filesystem, the top lower's root;
 * over several, the root of the lower filesystem the origin's uuid names (xino.c),
 * as the kernel matches it.
 */
static int vu_origin_mount_fd(struct vu_fs *fs, const unsigned char *uuid)
{
	if (fs->samefs)
		return fs->handle_fd;
	for (unsigned j = 0; j < fs->nxfs; j++) {
		const struct vu_xfs *x = &fs->xfs[j];

		if (x->present && x->has_uuid && !x->bad_uuid && memcmp(x->uuid, uuid, 16) == 0)
			return x->fd;
	}
	return -ENODEV;
}

/*
 * The origin's st_ino, as reported (xino.c), from an overlay.origin value of the
 * upper object at upath. A hard-linked origin is used only through the index.
 */
static int vu_origin_decode(struct vu_fs *fs, const unsigned char *buf, ssize_t n,
			    const char *upath, ino_t *ret)
{
	struct stat ust;
	union {
		struct file_handle fh;
		unsigned char raw[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} h;
	_cleanup_close_ int fd = -1;
	struct stat st;
	int mfd;

	if (n <= VU_FB_HDR || n > VU_FB_HDR + MAX_HANDLE_SZ || buf[0] != 0 ||
	    buf[1] != VU_FB_MAGIC || buf[2] != n)
		return -EINVAL;
	mfd = vu_origin_mount_fd(fs, buf + 5);
	if (mfd < 0)
		return mfd == -1 ? -EBADF : mfd;
	h.fh.handle_bytes = n - VU_FB_HDR;
	h.fh.handle_type = buf[4];
	memcpy(h.fh.f_handle, buf + VU_FB_HDR, n - VU_FB_HDR);
	fd = open_by_handle_at(mfd, &h.fh, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	/*
	 * A hard-linked origin is not used, as with the kernel without index=on; with it,
	 * only when the object is the index entry named after the origin (index.c).
	 */
	if (st.st_nlink != 1 && (fs->index_fd < 0 || lstat(upath, &ust) < 0 ||
				 !vu_index_holds(fs, buf, (int)n, ust.st_ino)))
		return -EMLINK;
	*ret = vu_xino_map(fs, st.st_dev, st.st_ino);
	return 0;
}

int vu_origin_ino_at(struct vu_fs *fs, int dirfd, const char *name, ino_t *ret)
{
	char p[VC_PROC_FD_PATH_MAX + NAME_MAX + 2];
	char fdp[VC_PROC_FD_PATH_MAX];
	unsigned char buf[VU_FB_HDR + MAX_HANDLE_SZ];
	ssize_t n;

	vc_proc_fd_path(dirfd, fdp);
	snprintf(p, sizeof(p), "%s/%s", fdp, name);
	n = lgetxattr(p, vu_origin_xattr(fs), buf, sizeof(buf));
	if (n < 0)
		return -errno;
	return vu_origin_decode(fs, buf, n, p, ret);
}

/*
 * The kernel's struct ovl_fb for src (of stat st), an O_PATH fd, into fb (at least
 * VU_FB_HDR + MAX_HANDLE_SZ bytes); returns its length. On one filesystem the
 * handle's uuid is null, as the kernel writes it then; over several it is that of
 * the origin's filesystem, and one without a unique uuid gets none (-ENODEV).
 */
int vu_origin_encode(struct vu_fs *fs, int srcfd, const struct stat *st, unsigned char *fb)
{
	union {
		struct file_handle fh;
		unsigned char raw[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} h;
	const struct vu_xfs *x = NULL;
	int mnt;

	if (!fs->samefs) {
		/* Over several filesystems the handle names the origin's by its uuid. */
		int fsid = vu_xino_fsid_of_dev(fs, st->st_dev);

		if (fsid < 0 || !fs->xfs[fsid].has_uuid || fs->xfs[fsid].bad_uuid)
			return -ENODEV;
		x = &fs->xfs[fsid];
	}
	h.fh.handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(srcfd, "", &h.fh, &mnt, AT_EMPTY_PATH) < 0)
		return -errno;
	if (h.fh.handle_bytes + VU_FB_HDR > 255)
		return -EOVERFLOW;
	fb[0] = 0; /* version */
	fb[1] = VU_FB_MAGIC;
	fb[2] = VU_FB_HDR + h.fh.handle_bytes;
	fb[3] = 0; /* little-endian, lower origin */
	fb[4] = h.fh.handle_type;
	if (x)
		memcpy(fb + 5, x->uuid, 16);
	else
		memset(fb + 5, 0, 16); /* null uuid */
	memcpy(fb + VU_FB_HDR, h.fh.f_handle, h.fh.handle_bytes);
	return fb[2];
}

/*
 * Record src (of stat st) as the origin of its copy dst, both O_PATH fds, as the
 * kernel does: for a directory, or a non-directory that is not hard-linked in its
 * layer (a hard-linked one is broken up by copy-up without index=on, so it gets
 * none; with index=on it is the index entry's name). Best effort: only an inode
 * number.
 */
void vu_origin_set(struct vu_fs *fs, int srcfd, int dstfd, const struct stat *st)
{
	unsigned char fb[VU_FB_HDR + MAX_HANDLE_SZ];
	int n;

	if (!S_ISDIR(st->st_mode) && st->st_nlink != 1 && !fs->params.index)
		return;
	n = vu_origin_encode(fs, srcfd, st, fb);
	if (n > 0)
		vc_fsetxattr(dstfd, true, vu_origin_xattr(fs), fb, n, 0);
}

/* Does the upper object (an O_PATH fd) carry an origin? */
bool vu_origin_has(struct vu_fs *fs, int fd)
{
	return vc_fgetxattr(fd, true, vu_origin_xattr(fs), NULL, 0) > 0;
}

/*
 * Mark dir (whose upper directory is dirfd) impure before an object with an origin
 * lands in it: a copy-up into it, or a rename or link from another directory. As
 * the kernel, once; a failure fails the change, which must not leave d_ino wrong.
 */
int vu_origin_mark_impure(struct vu_fs *fs, struct vu_node *dir, int dirfd)
{
	int r;

	if (atomic_load(&dir->impure))
		return 0;
	r = vc_fsetxattr(dirfd, true, vu_impure_xattr(fs), "y", 1, 0);
	/* No xattrs in the upper at all: nothing can record an origin either. */
	if (r == -EOPNOTSUPP)
		return 0;
	if (r < 0)
		return log_debug_errno(r, "could not mark a directory impure");
	atomic_store(&dir->impure, true);
	/*
	 * Its listing's d_ino values may change: the kernel's cached listing goes (its
	 * pages are never locked across a request, so this is safe inside one).
	 */
	if (fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, vu_node_ino(fs, dir), 0, 0);
	return 0;
}

/* Is dir's upper directory (dirfd) impure? Learned once: the mark is never taken away. */
bool vu_origin_dir_impure(struct vu_fs *fs, struct vu_node *dir, int dirfd)
{
	if (atomic_load(&dir->impure))
		return true;
	if (vc_fgetxattr(dirfd, true, vu_impure_xattr(fs), NULL, 0) < 0)
		return false;
	atomic_store(&dir->impure, true);
	return true;
}

/*
 * A merged directory found in the upper without an origin (made there by other
 * means, or by an older veneer) gets the one the kernel gives it at lookup, its top
 * lower directory's, and its parent is marked impure, so listings of the parent
 * map its d_ino. f: what the lookup of name in parent found (bottom: the last layer
 * it may merge). Best effort; true when it did.
 */
bool vu_origin_fix_dir(struct vu_fs *fs, struct vu_node *parent, const char *name,
		       const struct vu_found *f)
{
	struct vu_fdref up = VU_FDREF_INIT;
	_cleanup_close_ int ufd = -1;
	bool fixed = false;
	ssize_t n;

	if (!fs->has_upper || fs->params.ro || !vu_is_upper(fs, f->top) ||
	    !S_ISDIR(f->st.st_mode) || f->bottom <= f->top)
		return false;
	if (vu_node_fd(fs, parent, 0, &up) < 0)
		return false;
	ufd = openat(up.fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	n = ufd < 0 ? -ENOENT : vc_fgetxattr(ufd, true, vu_origin_xattr(fs), NULL, 0);
	for (int l = f->top + 1; n == -ENODATA && l <= f->bottom; l++) {
		struct vu_fdref d = VU_FDREF_INIT;
		_cleanup_close_ int lfd = -1;
		struct stat st;

		if (vu_node_fd(fs, parent, l, &d) < 0)
			continue;
		lfd = openat(d.fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		vu_fdref_put(&d);
		if (lfd < 0 || fstat(lfd, &st) < 0)
			continue;
		if (vu_origin_mark_impure(fs, parent, up.fd) == 0) {
			vu_origin_set(fs, lfd, ufd, &st);
			fixed = true;
		}
		break;
	}
	vu_fdref_put(&up);
	return fixed;
}
