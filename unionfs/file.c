/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Open files: open/create (copy-up on write opens, none of the data with
 * O_TRUNC), read/write through splice-capable buffers, flush/fsync/release,
 * fallocate, lseek (SEEK_DATA/SEEK_HOLE) and copy_file_range. A read-only
 * handle opened before a copy-up follows the file to the upper, as on the kernel.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "unionfs.h"

struct vu_fileh {
	pthread_mutex_t lock; /* protects fd and layer against the reopen after copy-up */
	int fd;
	int old_fd; /* the lower fd replaced after a copy-up; other threads may still use it */
	int layer;
	int flags;
	int pt_mode;	      /* VU_PTM_*: how the open was answered; fixed */
	int backing_id;	      /* with VU_PTM_PASSTHROUGH; fixed */
	struct vu_node *node; /* referenced while open */
};

static int vu_file_open_flags(int flags)
{
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_TRUNC | O_DIRECT);
	return flags | O_CLOEXEC;
}

/* Open node's object in layer with flags, by reopening its O_PATH fd. */
static int vu_file_reopen(struct vu_fs *fs, struct vu_node *node, int layer, int flags)
{
	struct vu_fdref d = VU_FDREF_INIT;
	char p[VC_PROC_FD_PATH_MAX];
	int r, fd;

	r = vu_node_fd(fs, node, layer, &d);
	if (r < 0)
		return r;
	vc_proc_fd_path(d.fd, p);
	fd = open(p, vu_file_open_flags(flags));
	r = fd < 0 ? -errno : fd;
	vu_fdref_put(&d);
	return r;
}

/*
 * Open the file that serves node's data with the open(2) flags given: the object
 * itself, or for a metacopy node the lower file holding its data. *ret_layer says
 * which layer that file is in. Writers never see a metacopy node: they copy up first.
 */
static int vu_file_data_open(struct vu_fs *fs, struct vu_node *node, int flags, int *ret_layer)
{
	char p[VC_PROC_FD_PATH_MAX];
	struct vu_mcdata md;
	int fd, r;

	if (!atomic_load(&node->metacopy)) {
		*ret_layer = atomic_load(&node->top);
		return vu_file_reopen(fs, node, *ret_layer, flags);
	}
	r = vu_mc_node_data(fs, node, &md);
	if (r < 0)
		return r;
	vc_proc_fd_path(md.fd, p);
	fd = open(p, vu_file_open_flags(flags));
	r = fd < 0 ? -errno : fd;
	close(md.fd);
	*ret_layer = md.layer;
	return r;
}

int vu_file_fd(struct vu_fs *fs, struct fuse_file_info *fi, struct vu_node *node)
{
	struct vu_fileh *h = (struct vu_fileh *)(uintptr_t)fi->fh;
	int fd;

	pthread_mutex_lock(&h->lock);
	/* Follow the data to the upper once it is there (not while only metadata is). */
	if (h->layer != 0 && fs->has_upper && atomic_load(&h->node->top) == 0 &&
	    !atomic_load(&h->node->metacopy)) {
		int nfd = vu_file_reopen(fs, h->node, 0, h->flags);

		if (nfd >= 0) {
			off_t pos = lseek(h->fd, 0, SEEK_CUR);

			if (pos > 0)
				lseek(nfd, pos, SEEK_SET);
			h->old_fd = h->fd;
			h->fd = nfd;
			h->layer = 0;
		}
	}
	fd = h->fd;
	pthread_mutex_unlock(&h->lock);
	return fd;
}

/*
 * The file whose data a handle reads and writes, which passthrough hands to the
 * kernel as the backing file: the handle's own fd, opened in the layer that
 * holds the data.
 */
static int vu_file_data_fd(const struct vu_fileh *h)
{
	return h->fd;
}

/* st: of fd when the caller has it, else NULL. */
static void vu_file_attach(struct vu_fs *fs, struct fuse_file_info *fi, struct vu_node *node,
			   int fd, int layer, const struct stat *st)
{
	struct vu_fileh *h = g_new0(struct vu_fileh, 1);
	struct stat fst;

	pthread_mutex_init(&h->lock, NULL);
	h->fd = fd;
	h->old_fd = -1;
	h->layer = layer;
	h->flags = fi->flags;
	h->node = node;
	vu_node_ref(fs, node);
	fi->fh = (uint64_t)(uintptr_t)h;
	/*
	 * Lower files never change, and every upper change passes through the kernel, which
	 * keeps the page cache right -- except for hard links, which are separate inodes to it.
	 */
	if (!st && fstat(fd, &fst) == 0)
		st = &fst;
	fi->keep_cache =
		!(st && S_ISREG(st->st_mode) && st->st_nlink > 1) && !atomic_load(&node->indexed);
	if (fi->flags & O_DIRECT)
		fi->direct_io = 1;
	/*
	 * FLUSH does nothing here (no locks, no writeback cache: every write has already
	 * reached the layer), so close() need not wait for a round trip.
	 */
	fi->noflush = 1;
	h->pt_mode = st ? vu_pt_open(fs, fi, node, layer, vu_file_data_fd(h), st, &h->backing_id)
			: VU_PTM_NONE;
}

static void vu_file_detach(struct vu_fs *fs, struct fuse_file_info *fi)
{
	struct vu_fileh *h = (struct vu_fileh *)(uintptr_t)fi->fh;

	vu_pt_release(fs, h->node, h->pt_mode);
	close(h->fd);
	vc_close_nointr(h->old_fd);
	vu_node_unref(fs, h->node);
	pthread_mutex_destroy(&h->lock);
	g_free(h);
}

/*
 * The open was answered VU_PTM_STALE: the node's open files hold a lower file as
 * the kernel inode's backing file, which this open must not get. The node leaves
 * its name (it lives on for those files) and the open fails with ESTALE: the VFS
 * walks the path again with LOOKUP_REVAL, FUSE revalidates the name with a
 * LOOKUP that now answers a new node, and the open lands on that new inode,
 * whose backing file is the upper one. An open that comes through no path walk
 * (a /proc/PID/fd link, open_by_handle_at) gets the same node again and fails.
 */
static void vu_file_stale(fuse_req_t req, struct vu_fs *fs, struct fuse_file_info *fi,
			  struct vu_node *node)
{
	int r;

	r = vu_node_detach(fs, node);
	if (r < 0)
		log_debug_errno(r, "could not take a node off its name");
	vu_file_detach(fs, fi);
	fuse_reply_err(req, ESTALE);
}

static int vu_file_reply_open(fuse_req_t req, struct fuse_file_info *fi)
{
	struct vu_fileh *h = (struct vu_fileh *)(uintptr_t)fi->fh;

	if (h->pt_mode == VU_PTM_PASSTHROUGH || h->pt_mode == VU_PTM_DIRECT)
		return vu_pt_reply_open(req, fi, h->backing_id);
	return fuse_reply_open(req, fi);
}

static int vu_file_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
				struct fuse_file_info *fi)
{
	struct vu_fileh *h = (struct vu_fileh *)(uintptr_t)fi->fh;

	if (h->pt_mode == VU_PTM_PASSTHROUGH || h->pt_mode == VU_PTM_DIRECT)
		return vu_pt_reply_create(req, e, fi, h->backing_id);
	return fuse_reply_create(req, e, fi);
}

/*
 * open(O_TRUNC): the kernel checked for write permission, whatever the access mode, so
 * O_RDONLY|O_TRUNC truncates too. The copy-up has made the upper file the data file.
 * The truncation is the caller's: as do_truncate() on the kernel's overlay, it drops
 * set-user-ID, and set-group-ID with group execute or when the caller is not in the
 * file's group (setattr_should_drop_sgid()), unless the caller is root (the
 * kernel asks for CAP_FSETID; with libfuse's default FUSE_HANDLE_KILLPRIV it leaves this
 * to us, and our own ftruncate runs as root).
 */
static int vu_file_truncate0(fuse_req_t req, struct vu_fs *fs, struct vu_node *node, int fd,
			     int flags)
{
	_cleanup_close_ int wfd = -1;
	struct stat st;
	mode_t kill;

	if ((flags & O_ACCMODE) == O_RDONLY) {
		wfd = vu_file_reopen(fs, node, 0, O_WRONLY);
		if (wfd < 0)
			return wfd;
		fd = wfd;
	}
	if (ftruncate(fd, 0) < 0)
		return -errno;
	if (fuse_req_ctx(req)->uid == 0 || fstat(fd, &st) < 0)
		return 0;
	kill = st.st_mode & S_ISUID;
	if ((st.st_mode & S_ISGID) && ((st.st_mode & S_IXGRP) || !vu_acl_in_group(req, st.st_gid)))
		kill |= S_ISGID;
	if (kill && fchmod(fd, st.st_mode & 07777 & ~kill) < 0)
		return -errno;
	return 0;
}

void vu_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_node *node = vu_node_of(fs, ino);
	bool write = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	int fd, r, layer;

	if (write) {
		if (!fs->has_upper) {
			fuse_reply_err(req, EROFS);
			return;
		}
		r = vu_copy_up(fs, node, !(fi->flags & O_TRUNC));
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	fd = vu_file_data_open(fs, node, fi->flags, &layer);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	if (fi->flags & O_TRUNC) {
		r = vu_file_truncate0(req, fs, node, fd, fi->flags);
		if (r < 0) {
			close(fd);
			fuse_reply_err(req, -r);
			return;
		}
	}
	vu_file_attach(fs, fi, node, fd, layer, NULL);
	if (((struct vu_fileh *)(uintptr_t)fi->fh)->pt_mode == VU_PTM_STALE) {
		vu_file_stale(req, fs, fi, node);
		return;
	}
	if (vu_file_reply_open(req, fi) == -ENOENT)
		vu_file_detach(fs, fi);
}

void vu_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		  struct fuse_file_info *fi)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_node *pnode = vu_node_of(fs, parent);
	struct vu_fdref pd = VU_FDREF_INIT;
	struct vu_mkplace mp = {.acldir_fd = -1};
	struct fuse_entry_param e;
	struct vu_found f;
	struct vu_node *node;
	uid_t uid;
	gid_t gid;
	int fd = -1, r, cflags;

	r = vu_dir_prepare_create(fs, pnode, name, NULL, &f);
	if (r < 0)
		goto fail;
	r = vu_node_fd(fs, pnode, 0, &pd);
	if (r < 0)
		goto fail;
	r = vu_dir_owner(req, fs, pnode, f.upper_whiteout == VU_WH_NONE, &uid, &gid, &mode);
	if (r < 0)
		goto fail;
	/* Over a whiteout the file is built in the workdir and renamed over it. */
	mode = S_IFREG | (mode & 07777);
	r = vu_mkplace_begin(req, fs, pd.fd, name, f.upper_whiteout != VU_WH_NONE, &mode, &mp);
	if (r < 0)
		goto fail;
	cflags = vu_file_open_flags(fi->flags) | O_CREAT | O_EXCL | O_NOFOLLOW;
	if ((cflags & O_ACCMODE) == O_RDONLY)
		cflags = (cflags & ~O_ACCMODE) | O_RDWR;
	fd = openat(mp.dirfd, mp.name, cflags, mode & 07777);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	if (fs->params.ids.active) {
		r = vu_ids_chown_new(fs, fd, "", uid, gid, mode);
		if (r < 0)
			goto fail_unlink;
	} else if ((uid != 0 || gid != 0) && fchown(fd, uid, gid) < 0) {
		r = -errno;
		goto fail_unlink;
	}
	/* The chown dropped set-ID bits that a root caller's new file keeps on the kernel. */
	if (uid == 0 && gid != 0 && (mode & (S_ISUID | S_ISGID))) {
		r = vu_mkplace_fix_mode(mp.dirfd, mp.name, mode);
		if (r < 0)
			goto fail_unlink;
	}
	if (mp.tmp) {
		r = vu_dir_install(fs, pnode, name, mp.dirfd, mp.tmp, &f);
		if (r < 0)
			goto fail_unlink;
	}
	vu_mkplace_done(fs, &mp);
	memset(&f, 0, sizeof(f));
	if (fstat(fd, &f.st) < 0) {
		r = -errno;
		goto fail;
	}
	f.ino = vu_xino_map(fs, f.st.st_dev, f.st.st_ino);
	node = vu_node_get(fs, pnode, name, &f, true);
	vu_fdref_put(&pd);
	vu_fill_entry(fs, node, &f.st, &e);
	vu_file_attach(fs, fi, node, fd, 0, &f.st);
	if (((struct vu_fileh *)(uintptr_t)fi->fh)->pt_mode == VU_PTM_STALE) {
		vu_file_stale(req, fs, fi, node);
		vu_node_forget(fs, node, 1);
		return;
	}
	if (vu_file_reply_create(req, &e, fi) == -ENOENT) {
		vu_file_detach(fs, fi);
		vu_node_forget(fs, node, 1);
	}
	return;

fail_unlink:
	unlinkat(mp.dirfd, mp.name, 0);
fail:
	if (fd >= 0)
		close(fd);
	vu_mkplace_done(fs, &mp);
	vu_fdref_put(&pd);
	fuse_reply_err(req, -r);
}

void vu_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = vu_file_fd(fs, fi, vu_node_of(fs, ino));
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void vu_op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
		     struct fuse_file_info *fi)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(bufv));
	ssize_t n;

	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = vu_file_fd(fs, fi, vu_node_of(fs, ino));
	out.buf[0].pos = off;
	n = fuse_buf_copy(&out, bufv, 0);
	if (n < 0)
		fuse_reply_err(req, -n);
	else
		fuse_reply_write(req, n);
}

void vu_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

void vu_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	vu_file_detach(vu_fs_of(req), fi);
	fuse_reply_err(req, 0);
}

void vu_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct vu_fs *fs = vu_fs_of(req);
	int fd, r;

	if (fs->params.no_fsync || fs->params.volatile_mode) {
		fuse_reply_err(req, 0);
		return;
	}
	fd = vu_file_fd(fs, fi, vu_node_of(fs, ino));
	r = (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0;
	fuse_reply_err(req, r);
}

void vu_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		     struct fuse_file_info *fi)
{
	struct vu_fs *fs = vu_fs_of(req);
	int fd = vu_file_fd(fs, fi, vu_node_of(fs, ino));

	fuse_reply_err(req, fallocate(fd, mode, offset, length) < 0 ? errno : 0);
}

void vu_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	struct vu_fs *fs = vu_fs_of(req);
	int fd = vu_file_fd(fs, fi, vu_node_of(fs, ino));
	off_t r = lseek(fd, off, whence);

	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

void vu_op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			   struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			   struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct vu_fs *fs = vu_fs_of(req);
	int in = vu_file_fd(fs, fi_in, vu_node_of(fs, ino_in));
	int out = vu_file_fd(fs, fi_out, vu_node_of(fs, ino_out));
	ssize_t n = copy_file_range(in, &off_in, out, &off_out, len, flags);

	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, n);
}
