/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE passthrough (Linux >= 6.9) on libfuse 3.14, which has no API for it: the
 * INIT reply is amended (common/fuse-io.c's hook), backing files are registered with
 * FUSE_DEV_IOC_BACKING_OPEN and open/create replies carry the backing id. Per
 * node it tracks the kernel inode's io mode, which must never mix cached and
 * passthrough opens nor two backing files (the kernel fails such an open with EIO).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fuse-abi.h"
#include "log.h"
#include "macro.h"
#include "unionfs.h"

#define VU_OVERLAYFS_MAGIC 0x794c7630
#define VU_FUSE_MAGIC 0x65735546

/* The kernel inode behind one node, while the node has open files. */
struct vu_pt_node {
	int backing_id; /* > 0 while pt_opens > 0 */
	dev_t dev;	/* the backing file, to tell it from a copy-up's new file */
	ino_t ino;
	int layer;	       /* of the backing file */
	unsigned pt_opens;     /* handles answered with FOPEN_PASSTHROUGH */
	unsigned cached_opens; /* handles answered without it, using the page cache */
};

/*
 * Backing files on a stacked filesystem (overlayfs, or FUSE with passthrough)
 * need a depth of 2; then this mount cannot itself be a layer of a kernel overlay.
 */
static unsigned vu_pt_stack_depth(struct vu_fs *fs)
{
	for (unsigned i = 0; i < fs->nlayers; i++) {
		struct statfs sfs;

		if (fstatfs(fs->layers[i].fd, &sfs) == 0 &&
		    (sfs.f_type == VU_OVERLAYFS_MAGIC || sfs.f_type == VU_FUSE_MAGIC))
			return 2;
	}
	return 1;
}

static int vu_pt_backing_open(struct vu_fs *fs, int fd)
{
	struct vu_fuse_backing_map map = {.fd = fd};
	int id = ioctl(fs->pt.devfd, VU_FUSE_DEV_IOC_BACKING_OPEN, &map);

	return id < 0 ? -errno : id;
}

static void vu_pt_backing_close(struct vu_fs *fs, int id)
{
	uint32_t v = id;

	if (ioctl(fs->pt.devfd, VU_FUSE_DEV_IOC_BACKING_CLOSE, &v) < 0)
		log_debug_errno(-errno, "closing backing id %d", id);
}

static void vu_pt_setup_tables(struct vu_fs *fs)
{
	if (fs->pt.nodes)
		return;
	pthread_mutex_init(&fs->pt.lock, NULL);
	fs->pt.nodes = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	fs->pt.layer_refused = g_new0(atomic_bool, fs->nlayers);
}

/*
 * The INIT reply (common/fuse-io.c calls this before it is written): ask for
 * passthrough when the kernel offers it, and say how deep the backing files may
 * be stacked.
 */
void vu_pt_init_reply(struct vu_fs *fs, const struct fuse_init_in *in, struct fuse_init_out *out)
{
	uint32_t depth;

	if (fs->params.passthrough == VU_PT_OFF)
		return;
	fs->pt.offered = in->major == 7 && (in->flags & FUSE_INIT_EXT) &&
			 (in->flags2 & (uint32_t)(VU_FUSE_PASSTHROUGH >> 32));
	/* The kernel ignores flags2 without FUSE_INIT_EXT, and refuses writeback with it. */
	if (!fs->pt.offered || !(out->flags & FUSE_INIT_EXT) || (out->flags & FUSE_WRITEBACK_CACHE))
		return;
	fs->pt.max_stack_depth = depth = vu_pt_stack_depth(fs);
	out->flags2 |= (uint32_t)(VU_FUSE_PASSTHROUGH >> 32);
	memcpy((char *)out + VU_FUSE_INIT_OUT_MAX_STACK_DEPTH, &depth, sizeof(depth));
	fs->pt.negotiated = true;
}

/*
 * Called right after the mount and the INIT handshake, before readiness:
 * -o passthrough=on can still fail the mount.
 */
int vu_pt_session_setup(struct vu_fs *fs, struct fuse_session *se)
{
	int r;

	if (fs->params.passthrough == VU_PT_OFF)
		return 0;
	vu_pt_setup_tables(fs);
	fs->pt.devfd = fuse_session_fd(se);
	if (fs->pt.negotiated) {
		/* Backing files need CAP_SYS_ADMIN: a directory tells without registering one. */
		r = vu_pt_backing_open(fs, fs->layers[0].fd);
		if (r > 0)
			vu_pt_backing_close(fs, r);
		if (r == -EPERM)
			log_debug(
				"passthrough: the kernel refuses backing files (no CAP_SYS_ADMIN)");
		else
			atomic_store(&fs->pt.enabled, true);
	}
	if (!atomic_load(&fs->pt.enabled) && fs->params.passthrough == VU_PT_ON)
		return log_error_errno(-EOPNOTSUPP,
				       "passthrough=on: the kernel %s FUSE passthrough (it needs "
				       "Linux >= 6.9 with CONFIG_FUSE_PASSTHROUGH and "
				       "CAP_SYS_ADMIN)",
				       fs->pt.offered ? "refuses" : "does not offer");
	log_debug("passthrough %s (max_stack_depth %u)",
		  atomic_load(&fs->pt.enabled) ? "on" : "off", fs->pt.max_stack_depth);
	return 0;
}

void vu_pt_teardown(struct vu_fs *fs)
{
	/* Backing ids die with the connection; only the bookkeeping is freed. */
	if (!fs->pt.nodes)
		return;
	g_clear_pointer(&fs->pt.nodes, g_hash_table_destroy);
	pthread_mutex_destroy(&fs->pt.lock);
	g_clear_pointer(&fs->pt.layer_refused, g_free);
}

/* A backing open failed: remember what cannot change for this layer or this mount. */
static void vu_pt_refused(struct vu_fs *fs, int layer, int r)
{
	switch (r) {
	case -EPERM:
		if (atomic_exchange(&fs->pt.enabled, false))
			log_info_errno(r, "passthrough: the kernel refuses backing files; off");
		break;
	case -ELOOP:
	case -EINVAL:
	case -EOPNOTSUPP:
		if (!atomic_exchange(&fs->pt.layer_refused[layer], true))
			log_info_errno(r, "passthrough: not for files of layer '%s'",
				       fs->layers[layer].path);
		break;
	default:
		log_debug_errno(r, "passthrough: backing open failed");
	}
}

/*
 * Decide how a new handle of node (its data file open as fd, with stat st, in
 * layer) is answered, set fi's cache flags to match and count it. Returns a
 * VU_PTM_* mode for vu_pt_release(); with VU_PTM_PASSTHROUGH and VU_PTM_DIRECT,
 * *ret_backing_id goes into the reply. The rules are the kernel's (fs/fuse/iomode.c): an inode
 * is in cached or in passthrough io mode, and all its passthrough opens share
 * one backing file, which every later open must name too, opened by the kernel
 * with that open's flags. So a node whose data moved away from the backing file
 * its open files hold (a copy-up while a lower file is open) must never name
 * it again for an open with write access -- a writable shared mmap would write
 * the lower layer: VU_PTM_STALE (nothing counted) tells the caller to take the
 * node off its name and fail the open with ESTALE, which makes the kernel walk
 * the path again and open a new node (vu_file_stale()). A read-only open of a
 * node already taken off its name (only a /proc/PID/fd reopen or a stale
 * dentry still reaches it) gets VU_PTM_DIRECT handles on the old backing.
 */
int vu_pt_open(struct vu_fs *fs, struct fuse_file_info *fi, struct vu_node *node, int layer, int fd,
	       const struct stat *st, int *ret_backing_id)
{
	bool write = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct vu_pt_node *pn;
	int mode, r;

	if (!atomic_load(&fs->pt.enabled))
		return VU_PTM_NONE;
	pthread_mutex_lock(&fs->pt.lock);
	if (!atomic_load(&fs->pt.enabled)) {
		pthread_mutex_unlock(&fs->pt.lock);
		return VU_PTM_NONE;
	}
	pn = g_hash_table_lookup(fs->pt.nodes, node);
	if (pn && pn->pt_opens > 0) {
		bool same = pn->dev == st->st_dev && pn->ino == st->st_ino;

		/*
		 * A writer never gets a lower backing file, nor any backing file other than
		 * its own data file (whatever layer that is said to be in); a read-only
		 * opener of a still-named node whose data moved gets the new file too.
		 */
		if ((write && (!same || !vu_is_upper(fs, pn->layer))) ||
		    (!same && vu_node_hashed(fs, node))) {
			pthread_mutex_unlock(&fs->pt.lock);
			return VU_PTM_STALE;
		}
	}
	if (!pn) {
		pn = g_new0(struct vu_pt_node, 1);
		g_hash_table_insert(fs->pt.nodes, node, pn);
	}
	if (pn->pt_opens > 0) {
		mode = pn->dev == st->st_dev && pn->ino == st->st_ino ? VU_PTM_PASSTHROUGH
								      : VU_PTM_DIRECT;
		pn->pt_opens++;
	} else if (pn->cached_opens > 0 || atomic_load(&fs->pt.layer_refused[layer]) ||
		   (write && !vu_is_upper(fs, layer))) {
		/* A writer's data file is always upper; should it not be, no lower goes to the
		 * kernel. */
		mode = VU_PTM_CACHED;
	} else {
		r = vu_pt_backing_open(fs, fd);
		if (r > 0) {
			pn->backing_id = r;
			pn->dev = st->st_dev;
			pn->ino = st->st_ino;
			pn->layer = layer;
			pn->pt_opens = 1;
			mode = VU_PTM_PASSTHROUGH;
		} else {
			vu_pt_refused(fs, layer, r);
			mode = VU_PTM_CACHED;
		}
	}
	if (mode == VU_PTM_CACHED)
		pn->cached_opens++;
	*ret_backing_id = pn->backing_id;
	pthread_mutex_unlock(&fs->pt.lock);

	switch (mode) {
	case VU_PTM_PASSTHROUGH:
		/* The kernel refuses FOPEN_KEEP_CACHE with passthrough, and DIRECT_IO wins. */
		fi->keep_cache = 0;
		fi->direct_io = 0;
		break;
	case VU_PTM_DIRECT:
		/*
		 * Read-only, on a node off its name whose backing file is the old one a
		 * reader still has open: with FOPEN_DIRECT_IO, reads come to the daemon
		 * (the new file) and only a read-only mmap sees the backing file.
		 */
		fi->keep_cache = 0;
		fi->direct_io = 1;
		break;
	default:
		/* Passthrough writes on this layer may have bypassed the kernel's page cache. */
		if (!atomic_load(&fs->pt.layer_refused[layer]))
			fi->keep_cache = 0;
	}
	return mode;
}

void vu_pt_release(struct vu_fs *fs, struct vu_node *node, int mode)
{
	struct vu_pt_node *pn;

	if (mode == VU_PTM_NONE || mode == VU_PTM_STALE)
		return;
	pthread_mutex_lock(&fs->pt.lock);
	pn = g_hash_table_lookup(fs->pt.nodes, node);
	if (pn && mode != VU_PTM_CACHED && pn->pt_opens > 0) {
		/*
		 * RELEASE comes after the kernel dropped the file's io mode, so with the
		 * last one the inode no longer refers to this backing id.
		 */
		if (--pn->pt_opens == 0) {
			vu_pt_backing_close(fs, pn->backing_id);
			pn->backing_id = 0;
		}
	} else if (pn && mode == VU_PTM_CACHED && pn->cached_opens > 0) {
		pn->cached_opens--;
	}
	if (pn && pn->pt_opens == 0 && pn->cached_opens == 0)
		g_hash_table_remove(fs->pt.nodes, node);
	pthread_mutex_unlock(&fs->pt.lock);
}

static uint32_t vu_pt_open_flags(const struct fuse_file_info *fi)
{
	return VU_FOPEN_PASSTHROUGH | (fi->noflush ? FOPEN_NOFLUSH : 0) |
	       (fi->direct_io ? FOPEN_DIRECT_IO : 0);
}

/* libfuse 3.14's fuse_reply_open() cannot carry a backing id: the same reply, built here. */
int vu_pt_reply_open(fuse_req_t req, const struct fuse_file_info *fi, int backing_id)
{
	struct vu_fuse_open_out o = {
		.fh = fi->fh,
		.open_flags = vu_pt_open_flags(fi),
		.backing_id = backing_id,
	};
	struct iovec iov = {.iov_base = &o, .iov_len = sizeof(o)};

	return fuse_reply_iov(req, &iov, 1);
}

static void vu_pt_timeout(double t, uint64_t *sec, uint32_t *nsec)
{
	if (t <= 0) {
		*sec = 0;
		*nsec = 0;
		return;
	}
	*sec = (uint64_t)t;
	*nsec = (uint32_t)((t - (double)*sec) * 1e9);
	if (*nsec > 999999999)
		*nsec = 999999999;
}

/* fuse_reply_create() with a backing id: fuse_entry_out as libfuse fills it, then the open. */
int vu_pt_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
		       const struct fuse_file_info *fi, int backing_id)
{
	struct {
		struct fuse_entry_out entry;
		struct vu_fuse_open_out open;
	} out;
	struct fuse_attr *a = &out.entry.attr;
	const struct stat *st = &e->attr;
	struct iovec iov = {.iov_base = &out, .iov_len = sizeof(out)};

	memset(&out, 0, sizeof(out));
	out.entry.nodeid = e->ino;
	out.entry.generation = e->generation;
	vu_pt_timeout(e->entry_timeout, &out.entry.entry_valid, &out.entry.entry_valid_nsec);
	vu_pt_timeout(e->attr_timeout, &out.entry.attr_valid, &out.entry.attr_valid_nsec);
	a->ino = st->st_ino;
	a->mode = st->st_mode;
	a->nlink = st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = st->st_rdev;
	a->size = st->st_size;
	a->blksize = st->st_blksize;
	a->blocks = st->st_blocks;
	a->atime = st->st_atim.tv_sec;
	a->mtime = st->st_mtim.tv_sec;
	a->ctime = st->st_ctim.tv_sec;
	a->atimensec = st->st_atim.tv_nsec;
	a->mtimensec = st->st_mtim.tv_nsec;
	a->ctimensec = st->st_ctim.tv_nsec;
	out.open.fh = fi->fh;
	out.open.open_flags = vu_pt_open_flags(fi);
	out.open.backing_id = backing_id;
	return fuse_reply_iov(req, &iov, 1);
}
