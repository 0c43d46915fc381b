/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Attributes: lookup/forget, getattr/setattr/access/readlink/statfs and the
 * st_ino policy. st_ino is fixed per node: a merged directory reports its top
 * lower's inode, a copied-up file its origin's (origin.c), as kernel overlayfs
 * does when all layers share one filesystem.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "unionfs.h"

static void vu_inode_fixup(struct vu_fs *fs, struct vu_node *node, struct stat *st)
{
	st->st_ino = atomic_load(&node->ino);
	if (S_ISDIR(st->st_mode) && atomic_load(&node->bottom) > atomic_load(&node->top))
		st->st_nlink = 1; /* a merged directory, as the kernel reports it */
	vu_index_fix_nlink(fs, node, st);
	vu_ids_fixup(fs, node, st);
}

int vu_inode_stat(struct vu_fs *fs, struct vu_node *node, struct stat *ret)
{
	struct vu_fdref d = VU_FDREF_INIT;
	int r;

	r = vu_node_fd(fs, node, atomic_load(&node->top), &d);
	if (r < 0)
		return r;
	r = fstat(d.fd, ret) < 0 ? -errno : 0;
	vu_fdref_put(&d);
	if (r < 0)
		return r;
	if (atomic_load(&node->metacopy)) {
		/* Metadata only: the blocks are its data's, as the kernel reports them. */
		struct vu_mcdata md;

		r = vu_mc_node_data(fs, node, &md);
		vc_close_nointr(md.fd);
		if (r == 0)
			ret->st_blocks = md.st.st_blocks;
	}
	vu_inode_fixup(fs, node, ret);
	return 0;
}

void vu_fill_entry(struct vu_fs *fs, struct vu_node *node, const struct stat *st,
		   struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = vu_node_ino(fs, node);
	e->attr = *st;
	vu_inode_fixup(fs, node, &e->attr);
	e->entry_timeout = fs->timeout;
	e->attr_timeout = vu_attr_timeout(fs, node, st);
}

void vu_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct fuse_entry_param e;
	struct vu_node *node;
	struct vu_found f;
	int r;

	r = vu_namei_child(fs, vu_node_of(fs, parent), name, true, &node, &f);
	if (r == -ENOENT) {
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->timeout; /* every change goes through us: cache the miss */
		fuse_reply_entry(req, &e);
		return;
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	vu_fill_entry(fs, node, &f.st, &e);
	fuse_reply_entry(req, &e);
}

void vu_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct vu_fs *fs = vu_fs_of(req);

	vu_node_forget(fs, vu_node_of(fs, ino), nlookup);
	fuse_reply_none(req);
}

void vu_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct vu_fs *fs = vu_fs_of(req);

	for (size_t i = 0; i < count; i++)
		vu_node_forget(fs, vu_node_of(fs, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

void vu_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_node *node = vu_node_of(fs, ino);
	struct stat st;
	int r;

	/* A metacopy file's handle reads its lower data: its metadata is the upper's. */
	if (fi && !S_ISDIR(node->type) && !atomic_load(&node->metacopy)) {
		int fd = vu_file_fd(fs, fi, node);

		r = fstat(fd, &st) < 0 ? -errno : 0;
		if (r == 0)
			vu_inode_fixup(fs, node, &st);
	} else {
		r = vu_inode_stat(fs, node, &st);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fuse_reply_attr(req, &st, vu_attr_timeout(fs, node, &st));
}

static int vu_inode_setattr(struct vu_fs *fs, struct vu_node *node, struct stat *attr, int to_set,
			    struct fuse_file_info *fi)
{
	struct vu_fdref d = VU_FDREF_INIT;
	char p[VC_PROC_FD_PATH_MAX];
	bool trunc0 = (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size == 0 &&
		      !(to_set & ~FUSE_SET_ATTR_SIZE);
	int r;

	if (!fs->has_upper)
		return -EROFS;
	if (to_set & FUSE_SET_ATTR_SIZE)
		r = vu_copy_up(fs, node, !trunc0);
	else
		r = vu_copy_up_meta(fs, node);
	if (r < 0)
		return r;
	r = vu_node_fd(fs, node, 0, &d);
	if (r < 0)
		return r;
	vc_proc_fd_path(d.fd, p);

	if (fs->params.ids.active) {
		/* Through the mapping, squash or xattr_permissions (idmap.c). */
		uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		r = vu_ids_store(fs, &uid, &gid);
		if (r == 0)
			r = vu_ids_set_owner(fs, d.fd, uid, gid,
					     (to_set & FUSE_SET_ATTR_MODE) && !S_ISLNK(node->type),
					     attr->st_mode);
		if (r < 0)
			goto out;
	} else {
		if (to_set & FUSE_SET_ATTR_MODE) {
			if (!S_ISLNK(node->type) && chmod(p, attr->st_mode & 07777) < 0) {
				r = -errno;
				goto out;
			}
		}
		if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
			uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
			gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

			if (fchownat(d.fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
				r = -errno;
				goto out;
			}
		}
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		int fd = fi ? vu_file_fd(fs, fi, node) : -1;
		_cleanup_close_ int own = -1;

		if (fd < 0 || !(fi->flags & (O_WRONLY | O_RDWR))) {
			own = open(p, O_WRONLY | O_CLOEXEC);
			if (own < 0) {
				r = -errno;
				goto out;
			}
			fd = own;
		}
		if (ftruncate(fd, attr->st_size) < 0) {
			r = -errno;
			goto out;
		}
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};

		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			ts[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			ts[1] = attr->st_mtim;
		/* On the O_PATH fd itself: right for symlinks and for unlinked nodes alike. */
		if (utimensat(d.fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			goto out;
		}
	}
	r = 0;
out:
	vu_fdref_put(&d);
	return r;
}

void vu_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_node *node = vu_node_of(fs, ino);
	struct stat st;
	int r;

	r = vu_inode_setattr(fs, node, attr, to_set, fi);
	/* Also after a partial change (chmod done, chown refused). */
	vu_alias_changed(fs, node);
	if (r == 0)
		r = vu_inode_stat(fs, node, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fuse_reply_attr(req, &st, vu_attr_timeout(fs, node, &st));
}

void vu_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_node *node = vu_node_of(fs, ino);
	struct vu_fdref d = VU_FDREF_INIT;
	char buf[PATH_MAX + 1];
	ssize_t n;
	int r;

	r = vu_node_fd(fs, node, atomic_load(&node->top), &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	n = readlinkat(d.fd, "", buf, sizeof(buf) - 1);
	r = n < 0 ? -errno : 0;
	vu_fdref_put(&d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

void vu_op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct vu_fs *fs = vu_fs_of(req);

	/* default_permissions: the kernel checks modes; only read-only-ness is ours. */
	fuse_reply_err(req, (mask & W_OK) && !fs->has_upper ? EROFS : 0);
}

void vu_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct vu_fs *fs = vu_fs_of(req);
	_cleanup_close_ int fd = -1;
	struct statvfs sv;

	/* The upper's numbers (the top lower's on a read-only mount), as the kernel reports. */
	fd = openat(fs->layers[0].fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstatvfs(fd, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_statfs(req, &sv);
}
