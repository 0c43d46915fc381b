/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Copy-up: the first modification of a lower object brings it into the upper.
 * Parents go first; the copy is built in <workdir>/work under a temporary name
 * (data, then owner, xattrs, mode, times) and renamed into place, so a crash
 * never leaves a partial file visible. Data moves by FICLONE, else
 * copy_file_range extent by extent (holes stay holes), else read/write.
 * With -o metacopy=on a metadata change copies no data: the copy is marked
 * metadata only (metacopy.c) and gets its data on the first write open.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "xattr-util.h"
#include "unionfs.h"

static int vu_copy_rw(int in, int out, off_t from, off_t to)
{
	char buf[128 * 1024];
	int r;

	while (from < to) {
		size_t want = MIN((off_t)sizeof(buf), to - from);
		ssize_t n = pread(in, buf, want, from);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		r = vc_pwrite_all(out, buf, n, from);
		if (r < 0)
			return r;
		from += n;
	}
	return 0;
}

static int vu_copy_range(int in, int out, off_t from, off_t to)
{
	loff_t ioff = from, ooff = from;

	while (ioff < to) {
		ssize_t n = copy_file_range(in, &ioff, out, &ooff, to - ioff, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
			    errno == EOPNOTSUPP)
				return vu_copy_rw(in, out, ioff, to);
			return -errno;
		}
		if (n == 0)
			break;
	}
	return 0;
}

static int vu_copy_data(int in, int out, off_t size)
{
	off_t pos = 0;
	int r;

	if (size == 0)
		return 0;
	if (ioctl(out, FICLONE, in) == 0)
		return 0;
	/* Extent by extent: the holes of a sparse file stay holes in the copy. */
	while (pos < size) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO)
				break;
			data = pos;
			hole = size;
		} else {
			hole = lseek(in, data, SEEK_HOLE);
			if (hole < 0 || hole > size)
				hole = size;
		}
		r = vu_copy_range(in, out, data, hole);
		if (r < 0)
			return r;
		pos = hole;
	}
	return ftruncate(out, size) < 0 ? -errno : 0;
}

static int vu_copy_meta(struct vu_fs *fs, int srcfd, int dstfd, const struct stat *st,
			const char *tmp)
{
	char p[VC_PROC_FD_PATH_MAX];
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	int r, chown_r = 0;

	/* Owner first: a chown would strip set-id bits and file capabilities set before it. */
	if (fchownat(dstfd, "", st->st_uid, st->st_gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		chown_r = -errno;
	/* xattr_permissions or squash_*: a daemon that may not chown keeps the copy (idmap.c) */
	if (chown_r < 0 &&
	    (chown_r != -EPERM || !(fs->params.ids.xattr_perms || vu_ids_squashed(fs))))
		return chown_r;
	r = vu_xattr_copy(srcfd, dstfd);
	if (r < 0)
		return r;
	/* Always, as fuse-overlayfs wants one on every file and directory of its upper. */
	if (fs->params.ids.xattr_perms) {
		r = vu_ids_keep_owner(fs, dstfd, st);
		if (r < 0)
			return r;
	}
	vu_origin_set(fs, srcfd, dstfd, st);
	vc_proc_fd_path(dstfd, p);
	if (!S_ISLNK(st->st_mode) && chmod(p, st->st_mode & 07777) < 0)
		return -errno;
	if (S_ISLNK(st->st_mode))
		r = utimensat(fs->work_fd, tmp, ts, AT_SYMLINK_NOFOLLOW);
	else
		r = utimensat(AT_FDCWD, p, ts, 0);
	return r < 0 ? -errno : 0;
}

enum vu_copy_mode {
	VU_COPY_DATA,  /* the data is needed (write open, truncate) */
	VU_COPY_TRUNC, /* the data is about to be thrown away (O_TRUNC) */
	VU_COPY_META,  /* a metadata change: metadata only where the mount allows it */
};

/*
 * Build a copy of src under tmp in the workdir; returns an O_PATH fd of it. The data
 * comes from datafd (src itself, or the data of a metacopy src); with meta none is
 * copied: the copy gets the size and the kernel's metacopy marker.
 */
static int vu_copy_build(struct vu_fs *fs, int srcfd, int datafd, const struct stat *st,
			 const char *tmp, bool with_data, bool meta)
{
	char p[VC_PROC_FD_PATH_MAX];
	_cleanup_close_ int in = -1, out = -1;
	char target[PATH_MAX + 1];
	ssize_t n;
	int r;

	switch (st->st_mode & S_IFMT) {
	case S_IFDIR:
		if (mkdirat(fs->work_fd, tmp, 0700) < 0)
			return -errno;
		break;
	case S_IFREG:
		out = openat(fs->work_fd, tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (out < 0)
			return -errno;
		if (meta &&
		    (ftruncate(out, st->st_size) < 0 || fsetxattr(out, VU_MC_XATTR, "", 0, 0) < 0))
			return -errno;
		if (with_data) {
			vc_proc_fd_path(datafd, p);
			in = open(p, O_RDONLY | O_CLOEXEC);
			if (in < 0)
				return -errno;
			r = vu_copy_data(in, out, st->st_size);
			if (r < 0)
				return r;
		}
		break;
	case S_IFLNK:
		n = readlinkat(srcfd, "", target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = '\0';
		if (symlinkat(target, fs->work_fd, tmp) < 0)
			return -errno;
		break;
	default:
		if (mknodat(fs->work_fd, tmp, (st->st_mode & S_IFMT) | 0600, st->st_rdev) < 0)
			return -errno;
		break;
	}
	r = vc_open_path_at(fs->work_fd, tmp);
	return r;
}

/*
 * The copy-up of a node no longer at its name (unlinked, renamed over, its directory
 * removed) but still reached through an open file fails, as the kernel's, which
 * links the copy in under the name the file had: EEXIST where that name is taken
 * (by the whiteout, or what replaced the file), ENOENT where its directory is gone.
 */
static int vu_copy_up_gone(struct vu_fs *fs, struct vu_node *parent, const char *name)
{
	struct vu_fdref pd = VU_FDREF_INIT;
	struct stat st;
	int r;

	r = vu_node_fd(fs, parent, 0, &pd);
	if (r < 0)
		return r == -ENOTDIR ? -ENOENT : r;
	if (fstatat(pd.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		r = -EEXIST;
	else
		r = errno == ENOTDIR ? -ENOENT : -errno;
	vu_fdref_put(&pd);
	return r;
}

static int vu_copy_up_one(struct vu_fs *fs, struct vu_node *node, struct vu_node *parent,
			  const char *name, enum vu_copy_mode mode)
{
	struct vu_fdref src = VU_FDREF_INIT, pd = VU_FDREF_INIT;
	g_autofree char *tmp = vu_tmpname(fs);
	_cleanup_close_ int dst = -1;
	struct vu_mcdata md = {.fd = -1};
	struct stat st, pst;
	bool new_ino = false, meta, with_data, indexed;
	int r;

	/* Serialised with its removal by the node lock: this holds until the rename. */
	if (!vu_node_hashed(fs, node))
		return vu_copy_up_gone(fs, parent, name);
	r = vu_node_fd(fs, node, atomic_load(&node->top), &src);
	if (r < 0)
		return r;
	r = vu_node_fd(fs, parent, 0, &pd);
	if (r < 0)
		goto out;
	if (fstat(src.fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	/*
	 * Metadata only, as the kernel decides it: any regular file, a hard-linked one too
	 * (its copy gets no origin and is found by name, or by the absolute redirect a
	 * rename or link gives it).
	 */
	meta = mode == VU_COPY_META && fs->params.metacopy && S_ISREG(st.st_mode);
	with_data = !meta && mode != VU_COPY_TRUNC;
	/* -o index=on: a hard-linked lower goes to the index, once for all its names. */
	indexed = vu_index_wanted(fs, &st);
	if (indexed) {
		/* Another name made the entry: it is as that copy-up left it. */
		r = vu_index_copy_up(fs, node, parent, name, src.fd, &st, -1, NULL, &meta);
		if (r == 0)
			goto done;
		if (r == -ENODATA)
			indexed = false;
		else if (r != -ENOENT)
			goto out;
	}
	if (with_data && atomic_load(&node->metacopy)) {
		/* A metacopy lower: its data is further down. */
		r = vu_mc_node_data(fs, node, &md);
		if (r < 0)
			goto out;
	}
	dst = vu_copy_build(fs, src.fd, md.fd >= 0 ? md.fd : src.fd, &st, tmp, with_data, meta);
	if (dst < 0) {
		r = dst;
		goto out_clean;
	}
	r = vu_copy_meta(fs, src.fd, dst, &st, tmp);
	if (r < 0)
		goto out_clean;
	if (fstat(pd.fd, &pst) < 0) {
		r = -errno;
		goto out_clean;
	}
	/* As the kernel, before the copy shows: its parent may now hold a non-pure entry. */
	r = vu_origin_mark_impure(fs, parent, pd.fd);
	if (r < 0)
		goto out_clean;
	if (indexed) {
		r = vu_index_copy_up(fs, node, parent, name, src.fd, &st, dst, tmp, &meta);
		if (r < 0)
			goto out_clean;
	} else if (renameat2(fs->work_fd, tmp, pd.fd, name, RENAME_NOREPLACE) < 0) {
		r = -errno;
		goto out_clean;
	}
	/* A copy-up is no change of the parent: its times stay, as with the kernel. */
	{
		struct timespec ts[2] = {pst.st_atim, pst.st_mtim};
		char pp[VC_PROC_FD_PATH_MAX];

		vc_proc_fd_path(pd.fd, pp);
		if (utimensat(AT_FDCWD, pp, ts, 0) < 0)
			log_debug_errno(-errno, "could not restore the times of the parent of '%s'",
					name);
	}
	/* A hard-linked origin is not used for st_ino (no index): the copy shows its own. */
	if (!indexed && !S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		struct stat ust;

		if (fstat(dst, &ust) == 0 &&
		    vu_xino_map(fs, ust.st_dev, ust.st_ino) != atomic_load(&node->ino)) {
			atomic_store(&node->ino, vu_xino_map(fs, ust.st_dev, ust.st_ino));
			new_ino = true;
		}
	}
done:
	atomic_store(&node->metacopy, meta);
	atomic_store(&node->top, 0);
	if (S_ISDIR(st.st_mode))
		vu_dir_mark_new(fs, node);
	/*
	 * The copy has its own ctime (and the parent a new one): drop what the kernel
	 * cached from the lower, or a stat before and an fstat after disagree (tar -c).
	 * Attributes only (offset -1), and the parent's pages when a d_ino changed: no
	 * inode lock is taken, so this is safe inside a request.
	 */
	if (fs->se) {
		fuse_lowlevel_notify_inval_inode(fs->se, vu_node_ino(fs, node), -1, 0);
		/* A new st_ino is a new d_ino: the kernel's cached listing of the parent goes too.
		 */
		fuse_lowlevel_notify_inval_inode(fs->se, vu_node_ino(fs, parent), new_ino ? 0 : -1,
						 0);
	}
	r = 0;
	goto out;
out_clean:
	log_debug_errno(r, "copy-up of '%s' failed", name);
	if (unlinkat(fs->work_fd, tmp, 0) < 0 && errno == EISDIR)
		unlinkat(fs->work_fd, tmp, AT_REMOVEDIR);
out:
	vc_close_nointr(md.fd);
	vu_fdref_put(&pd);
	vu_fdref_put(&src);
	return r;
}

/*
 * Give a metacopy upper its data: copied into the upper file in place, synced, and
 * only then the marker removed, so a crash at any point leaves a file that is still
 * read from its lower until the marker is gone. Without with_data (O_TRUNC) the file
 * is emptied instead. Node lock held.
 */
static int vu_copy_up_data(struct vu_fs *fs, struct vu_node *node, bool with_data)
{
	struct vu_fdref u = VU_FDREF_INIT;
	struct vu_mcdata md = {.fd = -1};
	_cleanup_close_ int in = -1, out = -1;
	g_autofree char *cap = NULL;
	char p[VC_PROC_FD_PATH_MAX];
	size_t caplen = 0;
	struct stat ust;
	int r;

	r = vu_node_fd(fs, node, 0, &u);
	if (r < 0)
		return r;
	vc_proc_fd_path(u.fd, p);
	out = open(p, O_WRONLY | O_CLOEXEC);
	vu_fdref_put(&u);
	if (out < 0 || fstat(out, &ust) < 0)
		return -errno;
	if (with_data) {
		r = vu_mc_node_data(fs, node, &md);
		if (r < 0)
			return r;
		vc_proc_fd_path(md.fd, p);
		in = open(p, O_RDONLY | O_CLOEXEC);
		vc_close_nointr(md.fd);
		if (in < 0)
			return -errno;
		/* Writing drops file capabilities: keep them, as the kernel does. */
		if (vc_fgetxattr_alloc(out, false, "security.capability", &cap, &caplen) < 0)
			g_clear_pointer(&cap, g_free);
		r = vu_copy_data(in, out, ust.st_size);
		if (r < 0)
			return r;
		if (cap && vc_fsetxattr(out, false, "security.capability", cap, caplen, 0) < 0)
			log_debug("could not restore the capabilities of a metacopy file");
		if (!fs->params.no_fsync && !fs->params.volatile_mode && fdatasync(out) < 0)
			return -errno;
	} else if (ftruncate(out, 0) < 0) {
		return -errno;
	}
	/* The times are left as the copy made them: the kernel does not restore them either. */
	r = vc_fremovexattr(out, false, VU_MC_XATTR);
	if (r < 0 && r != -ENODATA)
		return r;
	atomic_store(&node->metacopy, false);
	if (fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, vu_node_ino(fs, node), -1, 0);
	vu_index_data_copied(fs, node);
	return 0;
}

static int vu_copy_up_mode(struct vu_fs *fs, struct vu_node *node, enum vu_copy_mode mode)
{
	g_autofree char *name = NULL;
	struct vu_node *parent;
	int r = 0;

	if (!fs->has_upper)
		return -EROFS;
	if (atomic_load(&node->top) == 0 && !atomic_load(&node->via_index)) {
		if (mode == VU_COPY_META || !atomic_load(&node->metacopy))
			return 0;
		vu_node_lock(fs, node);
		if (atomic_load(&node->metacopy))
			r = vu_copy_up_data(fs, node, mode == VU_COPY_DATA);
		vu_node_unlock(fs, node);
		return r;
	}
	parent = vu_node_parent(fs, node, &name);
	if (!parent)
		return -ENOENT;
	r = vu_copy_up(fs, parent, true);
	if (r == 0) {
		vu_node_lock(fs, node);
		/* -o index=on: a name served from the index is linked in (index.c). */
		if (atomic_load(&node->via_index))
			r = vu_node_hashed(fs, node) ? vu_index_link_up(fs, node, parent, name)
						     : vu_copy_up_gone(fs, parent, name);
		else if (atomic_load(&node->top) != 0)
			r = vu_copy_up_one(fs, node, parent, name, mode);
		/* A racing metadata copy-up got there first. */
		if (r == 0 && mode != VU_COPY_META && atomic_load(&node->metacopy))
			r = vu_copy_up_data(fs, node, mode == VU_COPY_DATA);
		vu_node_unlock(fs, node);
	}
	vu_node_unref(fs, parent);
	return r;
}

int vu_copy_up(struct vu_fs *fs, struct vu_node *node, bool with_data)
{
	return vu_copy_up_mode(fs, node, with_data ? VU_COPY_DATA : VU_COPY_TRUNC);
}

/* For a change of metadata only: chmod, chown, utimes, xattrs, link, rename. */
int vu_copy_up_meta(struct vu_fs *fs, struct vu_node *node)
{
	return vu_copy_up_mode(fs, node, VU_COPY_META);
}
