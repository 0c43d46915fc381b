/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Namespace changes: mknod/mkdir/symlink/link create in the upper (over a
 * whiteout they are built in the workdir and swapped in, directories marked
 * opaque); unlink/rmdir/rename leave whiteouts where a lower still shows the
 * name. Directories that exist in a lower cannot be renamed (EXDEV), as with
 * the kernel without redirect_dir.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "unionfs.h"

/*
 * Owner of a new object made for the caller. in_place: made under its name in the upper
 * parent (not in the workdir).
 */
int vu_dir_owner(fuse_req_t req, struct vu_fs *fs, struct vu_node *parent, bool in_place,
		 uid_t *uid, gid_t *gid, mode_t *mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat pst;

	*uid = ctx->uid;
	*gid = ctx->gid;
	/*
	 * A root daemon making it in place for a root caller: the upper's filesystem applies
	 * the same rules with the same credentials, set-group-ID directory included. Nothing
	 * to fix up, so no stat of the parent.
	 */
	if (in_place && fs->root_creds && ctx->uid == 0 && ctx->gid == 0 && !fs->params.ids.active)
		return 0;
	/* BSD group semantics of a set-group-ID directory, as inode_init_owner() does. */
	if (vu_inode_stat(fs, parent, &pst) == 0 && (pst.st_mode & S_ISGID)) {
		*gid = pst.st_gid;
		if (S_ISDIR(*mode))
			*mode |= S_ISGID;
	}
	/* The ids above are the mount's; the layers store them through the mapping. */
	if (!fs->params.ids.active)
		return 0;
	if (vu_ids_squashed(fs)) {
		/* squash_*: the owner is not shown; an unmapped caller keeps the daemon's. */
		if (vu_ids_store(fs, uid, &(gid_t){(gid_t)-1}) < 0)
			*uid = geteuid();
		if (vu_ids_store(fs, &(uid_t){(uid_t)-1}, gid) < 0)
			*gid = getegid();
		return 0;
	}
	/*
	 * A caller no range covers is the mount's own side, not the container: podman makes
	 * /etc/mtab in the rootfs as root of the mount's user namespace before the container
	 * starts. Its object is stored with the overflow ids, as fuse-overlayfs does (refused,
	 * every `podman run --uidmap` failed); a chown to such an id is still refused (inode.c).
	 */
	vu_ids_store_new(fs, uid, gid);
	return 0;
}

/*
 * Checks and copy-ups before name is made in parent. link: the node linked to, copied up
 * before the parent as the kernel's ovl_link does, so that a failure of that copy-up
 * leaves the parent where it was, as on the kernel.
 */
int vu_dir_prepare_create(struct vu_fs *fs, struct vu_node *parent, const char *name,
			  struct vu_node *link, struct vu_found *ret_found)
{
	int r;

	if (!fs->has_upper)
		return -EROFS;
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	/* Such a name would be read back as an OCI whiteout. */
	if (vu_whiteout_is_private_name(name))
		return -EPERM;
	r = vu_namei_lookup(fs, parent, name, ret_found);
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	if (link) {
		/* A metacopy file's other names find its data by an absolute redirect. */
		r = vu_copy_up_meta(fs, link);
		if (r == 0)
			r = vu_mc_set_redirect(fs, link, false);
		if (r < 0)
			return r;
	}
	return vu_copy_up(fs, parent, true);
}

/* Move tmpname, built in tmpdirfd (in the workdir), to name over a whiteout in the upper. */
int vu_dir_install(struct vu_fs *fs, struct vu_node *parent, const char *name, int tmpdirfd,
		   const char *tmpname, const struct vu_found *found)
{
	struct vu_fdref pd = VU_FDREF_INIT;
	int r;

	r = vu_node_fd(fs, parent, 0, &pd);
	if (r < 0)
		return r;
	if (found->upper_whiteout == VU_WH_CHR || found->upper_whiteout == VU_WH_XATTR) {
		/* Swap the new object with the whiteout, then drop the whiteout. */
		if (renameat2(tmpdirfd, tmpname, pd.fd, name, RENAME_EXCHANGE) < 0) {
			r = -errno;
			goto out;
		}
		if (unlinkat(tmpdirfd, tmpname, 0) < 0)
			log_debug_errno(-errno, "could not remove old whiteout '%s'", tmpname);
	} else {
		if (renameat2(tmpdirfd, tmpname, pd.fd, name, RENAME_NOREPLACE) < 0) {
			r = -errno;
			goto out;
		}
		r = vu_whiteout_remove(fs, pd.fd, name, found->upper_whiteout);
	}
out:
	vu_fdref_put(&pd);
	return r;
}

/* A directory we just made in the upper is empty: misses in it need no ".wh." probe. */
void vu_dir_mark_new(struct vu_fs *fs, struct vu_node *dir)
{
	struct vu_fdref d = VU_FDREF_INIT;

	/* Opened now rather than at the first use inside it, which usually follows. */
	if (vu_node_fd(fs, dir, 0, &d) == 0)
		vu_fdref_set_flags(&d, 0, VU_FD_NOWH);
	vu_fdref_put(&d);
}

/*
 * As the kernel: an object with an origin that a rename or a link puts into another
 * directory makes that directory impure, so its listing maps the entry's d_ino.
 */
static int vu_dir_impure_for(struct vu_fs *fs, struct vu_node *obj, struct vu_node *dir, int dirfd)
{
	struct vu_fdref o = VU_FDREF_INIT;
	bool has;
	int r;

	if (atomic_load(&dir->impure))
		return 0;
	r = vu_node_fd(fs, obj, 0, &o);
	if (r < 0)
		return r;
	has = vu_origin_has(fs, o.fd);
	vu_fdref_put(&o);
	return has ? vu_origin_mark_impure(fs, dir, dirfd) : 0;
}

struct vu_newobj {
	mode_t mode;
	dev_t rdev;
	const char *target;  /* symlinks */
	struct vu_node *src; /* hard links */
};

static int vu_dir_make(struct vu_fs *fs, int dirfd, const char *name, const struct vu_newobj *o)
{
	struct vu_fdref s = VU_FDREF_INIT;
	int r;

	switch (o->mode & S_IFMT) {
	case S_IFDIR:
		r = mkdirat(dirfd, name, o->mode & 07777);
		break;
	case S_IFLNK:
		r = symlinkat(o->target, dirfd, name);
		break;
	case 0:
		r = vu_node_fd(fs, o->src, 0, &s);
		if (r < 0)
			return r;
		r = linkat(s.fd, "", dirfd, name, AT_EMPTY_PATH);
		vu_fdref_put(&s);
		break;
	default:
		r = mknodat(dirfd, name, o->mode, o->rdev);
		break;
	}
	return r < 0 ? -errno : 0;
}

static int vu_dir_create(fuse_req_t req, struct vu_fs *fs, struct vu_node *parent, const char *name,
			 struct vu_newobj *o, struct fuse_entry_param *e)
{
	struct vu_fdref pd = VU_FDREF_INIT;
	struct vu_mkplace mp = {.acldir_fd = -1};
	struct vu_node *node;
	struct vu_found f;
	uid_t uid = 0;
	gid_t gid = 0;
	int r, dirfd;
	const char *nm;
	bool tmp;

	r = vu_dir_prepare_create(fs, parent, name, o->src, &f);
	if (r < 0)
		return r;
	r = vu_node_fd(fs, parent, 0, &pd);
	if (r < 0)
		return r;
	if (o->src) {
		r = vu_dir_impure_for(fs, o->src, parent, pd.fd);
		if (r < 0)
			goto out;
	}
	tmp = f.upper_whiteout != VU_WH_NONE;
	if (!o->src) {
		r = vu_dir_owner(req, fs, parent, !tmp, &uid, &gid, &o->mode);
		if (r < 0)
			goto out;
	}
	/* A hard link has its mode and ACL already: only its place is wanted. */
	r = vu_mkplace_begin(req, fs, pd.fd, name, tmp, o->src ? &(mode_t){S_IFLNK} : &o->mode,
			     &mp);
	if (r < 0)
		goto out;
	dirfd = mp.dirfd;
	nm = mp.name;
	r = vu_dir_make(fs, dirfd, nm, o);
	if (r < 0)
		goto out;
	if (!o->src) {
		if (fs->params.ids.active) {
			r = vu_ids_chown_new(fs, dirfd, nm, uid, gid, o->mode);
			if (r < 0)
				goto out_unlink;
		} else if ((uid != 0 || gid != 0) &&
			   fchownat(dirfd, nm, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			goto out_unlink;
		}
		/* An inherited set-group-ID bit: mkdir in the workdir and chown drop it. */
		if (S_ISDIR(o->mode) && (o->mode & S_ISGID)) {
			r = vu_mkplace_fix_mode(dirfd, nm, o->mode);
			if (r < 0)
				goto out_unlink;
		}
	}
	/*
	 * A directory made where a whiteout was hides what the lowers have there. With
	 * redirect_dir=on (metacopy=on turns it on) or index=on every new directory in a
	 * merged one is marked opaque too, as the kernel does.
	 */
	if (S_ISDIR(o->mode) &&
	    (tmp || ((fs->params.redirect_dir == VU_REDIRECT_ON || fs->index_fd >= 0) &&
		     atomic_load(&parent->bottom) > 0))) {
		_cleanup_close_ int fd = vc_open_path_at(dirfd, nm);

		r = fd < 0 ? fd : vu_whiteout_set_opaque(fs, fd);
		if (r < 0)
			goto out_unlink;
	}
	if (tmp) {
		r = vu_dir_install(fs, parent, name, dirfd, nm, &f);
		if (r < 0)
			goto out_unlink;
	}
	vu_mkplace_done(fs, &mp);
	if (!o->src) {
		/*
		 * What a lookup would find, without searching the layers again: the new
		 * object alone in the upper (a lower one would have made the name exist,
		 * a whited-out one is hidden by the opaque directory made above).
		 */
		struct vu_found nf = {.top = 0, .bottom = 0};

		if (fstatat(pd.fd, name, &nf.st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			goto out;
		}
		vu_fdref_put(&pd);
		nf.ino = vu_xino_map(fs, nf.st.st_dev, nf.st.st_ino);
		node = vu_node_get(fs, parent, name, &nf, true);
		if (S_ISDIR(nf.st.st_mode))
			vu_dir_mark_new(fs, node);
		vu_fill_entry(fs, node, &nf.st, e);
		return 0;
	}
	vu_fdref_put(&pd);
	{
		/* A hard link is the same inode to the kernel: answer with the source node. */
		struct stat st;

		struct vu_fdref sd = VU_FDREF_INIT;

		r = vu_node_fd(fs, o->src, 0, &sd);
		if (r == 0 && fstat(sd.fd, &st) < 0)
			r = -errno;
		vu_fdref_put(&sd);
		if (r < 0)
			return r;
		/* Later lookups of either name find this node: one inode to the kernel. */
		vu_node_add_link(fs, o->src, st.st_ino);
		r = vu_inode_stat(fs, o->src, &st);
		if (r < 0)
			return r;
		vu_node_lookup_inc(fs, o->src);
		vu_fill_entry(fs, o->src, &st, e);
		return 0;
	}

out_unlink:
	unlinkat(dirfd, nm, S_ISDIR(o->mode) ? AT_REMOVEDIR : 0);
out:
	vu_mkplace_done(fs, &mp);
	vu_fdref_put(&pd);
	return r;
}

static void vu_dir_reply_create(fuse_req_t req, fuse_ino_t parent, const char *name,
				struct vu_newobj *o)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct fuse_entry_param e;
	int r = vu_dir_create(req, fs, vu_node_of(fs, parent), name, o, &e);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_entry(req, &e);
}

void vu_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct vu_newobj o = {.mode = mode, .rdev = rdev};

	/* A 0/0 character device is how a whiteout looks: refused, as the kernel does. */
	if (S_ISCHR(mode) && rdev == makedev(0, 0)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	vu_dir_reply_create(req, parent, name, &o);
}

void vu_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct vu_newobj o = {.mode = S_IFDIR | (mode & 07777)};

	vu_dir_reply_create(req, parent, name, &o);
}

void vu_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct vu_newobj o = {.mode = S_IFLNK | 0777, .target = link};

	vu_dir_reply_create(req, parent, name, &o);
}

void vu_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_newobj o = {.mode = 0, .src = vu_node_of(fs, ino)};

	vu_dir_reply_create(req, newparent, newname, &o);
}

/*
 * Keep an unlinked node reachable for the kernel, which may still hold it open.
 * updirfd: the upper parent's fd, where an upper node is opened by name (the kernel
 * holds the parent and the node locked, so the name is the node's object).
 */
static void vu_dir_pin(struct vu_fs *fs, struct vu_node *node, int updirfd, const char *name)
{
	struct vu_fdref d = VU_FDREF_INIT;
	int fd;

	if (atomic_load(&node->top) == 0) {
		fd = openat(updirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	} else {
		if (vu_node_fd(fs, node, atomic_load(&node->top), &d) < 0)
			return;
		fd = fcntl(d.fd, F_DUPFD_CLOEXEC, 3);
		vu_fdref_put(&d);
	}
	pthread_mutex_lock(&fs->nodes_lock);
	if (node->pinned_fd < 0 && fd >= 0) {
		node->pinned_fd = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&fs->nodes_lock);
	vc_close_nointr(fd);
}

/* Remove node (name in parent) from the merged view. */
static int vu_dir_remove(struct vu_fs *fs, struct vu_node *parent, const char *name,
			 struct vu_node *node, bool is_dir)
{
	struct vu_fdref pd = VU_FDREF_INIT, cd = VU_FDREF_INIT;
	g_autofree char *idx = NULL;
	bool lower, at;
	int r;

	/*
	 * -o index=on: a name of an indexed file is linked in before it goes, so that
	 * the upper's link count and the merged one drop together (index.c).
	 */
	if (!is_dir && vu_index_node_wanted(fs, node)) {
		r = vu_copy_up_meta(fs, node);
		if (r < 0)
			return r;
		(void)vu_index_name_of(fs, node, &idx);
	}
	r = vu_copy_up(fs, parent, true);
	if (r < 0)
		return r;
	r = vu_node_fd(fs, parent, 0, &pd);
	if (r < 0)
		return r;
	/* Serialised with a copy-up of the node: it lands either before or unnamed after. */
	vu_node_lock(fs, node);
	lower = atomic_load(&node->top) != 0 || vu_namei_lower_visible(fs, parent, name);
	/*
	 * Pinned and unhashed before the name changes on disk: a racing open of this node
	 * must reach the object the kernel resolved, never the whiteout replacing it.
	 */
	/* Only the name's own node goes; another hard link's node keeps its name. */
	at = vu_node_is_at(fs, node, parent, name);
	if (at) {
		vu_dir_pin(fs, node, pd.fd, name);
		vu_node_unhash(fs, node);
	}
	if (atomic_load(&node->top) != 0) {
		r = vu_whiteout_make(fs, parent, pd.fd, name, VU_WH_NOREPLACE);
	} else if (is_dir) {
		r = vu_node_fd(fs, node, 0, &cd);
		if (r == 0)
			r = vu_whiteout_clear_upper_dir(fs, cd.fd);
		vu_fdref_put(&cd);
		if (r == 0 && lower)
			r = vu_whiteout_make(fs, parent, pd.fd, name, VU_WH_REPLACE_DIR);
		else if (r == 0 && unlinkat(pd.fd, name, AT_REMOVEDIR) < 0)
			r = -errno;
	} else if (lower) {
		r = vu_whiteout_make(fs, parent, pd.fd, name, VU_WH_REPLACE);
	} else if (unlinkat(pd.fd, name, 0) < 0) {
		r = -errno;
	}
	if (r < 0 && at)
		vu_node_rehash(fs, node);
	vu_node_unlock(fs, node);
	vu_fdref_put(&pd);
	if (r == 0)
		vu_index_removed(fs, idx);
	return r;
}

static void vu_dir_unlink_common(fuse_req_t req, fuse_ino_t parent, const char *name, bool is_dir)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_node *pnode = vu_node_of(fs, parent);
	struct vu_node *node = NULL;
	int r;

	if (!fs->has_upper) {
		fuse_reply_err(req, EROFS);
		return;
	}
	r = vu_namei_child(fs, pnode, name, false, &node, NULL);
	if (r < 0)
		goto out;
	if (is_dir && !S_ISDIR(node->type)) {
		r = -ENOTDIR;
	} else if (!is_dir && S_ISDIR(node->type)) {
		r = -EISDIR;
	} else if (is_dir && (r = vu_dir_is_empty(fs, node)) <= 0) {
		r = r < 0 ? r : -ENOTEMPTY;
	} else {
		r = vu_dir_remove(fs, pnode, name, node, is_dir);
	}
out:
	vu_node_unref(fs, node);
	fuse_reply_err(req, -r);
}

void vu_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	vu_dir_unlink_common(req, parent, name, false);
}

void vu_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	vu_dir_unlink_common(req, parent, name, true);
}

/* A directory only in the upper that moves into a merged parent must not merge there. */
static int vu_dir_keep_opaque(struct vu_fs *fs, struct vu_node *dir, struct vu_node *newparent)
{
	struct vu_fdref d = VU_FDREF_INIT;
	int r;

	if (!S_ISDIR(dir->type) || atomic_load(&newparent->bottom) == 0 ||
	    atomic_load(&dir->bottom) != 0)
		return 0;
	r = vu_node_fd(fs, dir, 0, &d);
	if (r < 0)
		return r;
	if (vu_whiteout_dir_opaque(fs, 0, d.fd, NULL) == 0)
		r = vu_whiteout_set_opaque(fs, d.fd);
	vu_fdref_put(&d);
	return r;
}

static bool vu_dir_in_lower(struct vu_node *n)
{
	return atomic_load(&n->top) != 0 || atomic_load(&n->bottom) != 0;
}

static int vu_dir_rename(struct vu_fs *fs, struct vu_node *op, const char *name, struct vu_node *np,
			 const char *newname, unsigned flags)
{
	struct vu_fdref od = VU_FDREF_INIT, nd = VU_FDREF_INIT, sd = VU_FDREF_INIT;
	struct vu_node *src = NULL, *dst = NULL;
	g_autofree char *dst_idx = NULL; /* -o index=on: the entry of a file renamed over */
	struct vu_found df;
	bool src_lower, locked = false, src_at = false, dst_at = false;
	int r;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if (!fs->has_upper)
		return -EROFS;
	if (strlen(newname) > NAME_MAX)
		return -ENAMETOOLONG;
	if (vu_whiteout_is_private_name(newname))
		return -EPERM;
	r = vu_namei_child(fs, op, name, false, &src, NULL);
	if (r < 0)
		return r;
	r = vu_namei_lookup(fs, np, newname, &df);
	if (r == 0)
		dst = vu_node_get(fs, np, newname, &df, false);
	else if (r != -ENOENT)
		goto out;
	r = 0;
	if (dst == src)
		goto out;
	if ((flags & RENAME_NOREPLACE) && dst) {
		r = -EEXIST;
		goto out;
	}
	if ((flags & RENAME_EXCHANGE) && !dst) {
		r = -ENOENT;
		goto out;
	}
	/*
	 * -o index=on: two names of one hard-linked file are one inode to the kernel, whose
	 * rename of one over the other then does nothing (index.c).
	 */
	if (dst && !S_ISDIR(src->type) && src->type == dst->type && fs->index_fd >= 0 &&
	    atomic_load(&src->ino) == atomic_load(&dst->ino) && vu_index_node_wanted(fs, src))
		goto out;
	/* Without redirect_dir=on a directory tree from a lower is not moved: EXDEV. */
	if (fs->params.redirect_dir != VU_REDIRECT_ON &&
	    ((S_ISDIR(src->type) && vu_dir_in_lower(src)) ||
	     ((flags & RENAME_EXCHANGE) && S_ISDIR(dst->type) && vu_dir_in_lower(dst)))) {
		r = -EXDEV;
		goto out;
	}
	if (dst && !(flags & RENAME_EXCHANGE) && S_ISDIR(dst->type)) {
		r = vu_dir_is_empty(fs, dst);
		if (r <= 0) {
			r = r < 0 ? r : -ENOTEMPTY;
			goto out;
		}
	}
	r = vu_copy_up_meta(fs, src);
	/* A name of an indexed file renamed over is linked in first, as for unlink. */
	if (r == 0 && dst && !(flags & RENAME_EXCHANGE) && vu_index_node_wanted(fs, dst)) {
		r = vu_copy_up_meta(fs, dst);
		if (r == 0)
			(void)vu_index_name_of(fs, dst, &dst_idx);
	}
	if (r == 0)
		r = vu_copy_up(fs, np, true);
	if (r == 0 && (flags & RENAME_EXCHANGE))
		r = vu_copy_up_meta(fs, dst);
	/* A metacopy file that moves keeps finding its data: a redirect, as the kernel. */
	if (r == 0)
		r = vu_mc_set_redirect(fs, src, op == np);
	if (r == 0 && (flags & RENAME_EXCHANGE))
		r = vu_mc_set_redirect(fs, dst, op == np);
	/* A directory with lowers that moves keeps them: a redirect (redirect.c). */
	if (r == 0)
		r = vu_redirect_set(fs, src, op == np);
	if (r == 0 && (flags & RENAME_EXCHANGE))
		r = vu_redirect_set(fs, dst, op == np);
	if (r < 0)
		goto out;
	src_lower = vu_namei_lower_visible(fs, op, name);
	r = vu_node_fd(fs, op, 0, &od);
	if (r == 0)
		r = vu_node_fd(fs, np, 0, &nd);
	if (r == 0 && op != np)
		r = vu_dir_impure_for(fs, src, np, nd.fd);
	if (r == 0 && op != np && (flags & RENAME_EXCHANGE))
		r = vu_dir_impure_for(fs, dst, op, od.fd);
	if (r < 0)
		goto out;

	/* Renames are serialised by the kernel; copy-ups of these two wait for this one. */
	vu_node_lock2(fs, src, dst);
	locked = true;
	if (flags & RENAME_EXCHANGE) {
		struct vu_fdref xd = VU_FDREF_INIT;

		r = vu_dir_keep_opaque(fs, src, np);
		if (r == 0)
			r = vu_dir_keep_opaque(fs, dst, op);
		/* Both held across the exchange, so racing opens find them by fd. */
		if (r == 0)
			r = vu_node_fd(fs, src, 0, &sd);
		if (r == 0)
			r = vu_node_fd(fs, dst, 0, &xd);
		src_at = vu_node_is_at(fs, src, op, name);
		dst_at = vu_node_is_at(fs, dst, np, newname);
		if (r == 0 && renameat2(od.fd, name, nd.fd, newname, RENAME_EXCHANGE) < 0)
			r = -errno;
		if (r == 0 && src_at && dst_at) {
			vu_node_exchange(fs, src, dst);
		} else if (r == 0) {
			/* A hard link's node keeps its own name; the other follows its object. */
			if (src_at)
				vu_node_move(fs, src, np, newname);
			if (dst_at)
				vu_node_move(fs, dst, op, name);
		}
		vu_fdref_put(&xd);
		goto out;
	}

	/* What the upper holds at the target: a whiteout goes, an empty directory is emptied. */
	if (df.upper_whiteout == VU_WH_CHR || df.upper_whiteout == VU_WH_XATTR) {
		if (unlinkat(nd.fd, newname, 0) < 0) {
			r = -errno;
			goto out;
		}
	} else if (df.upper_whiteout == VU_WH_OCI) {
		r = vu_whiteout_remove(fs, nd.fd, newname, VU_WH_OCI);
	} else if (dst && S_ISDIR(dst->type) && atomic_load(&dst->top) == 0) {
		struct vu_fdref dd = VU_FDREF_INIT;

		r = vu_node_fd(fs, dst, 0, &dd);
		if (r == 0)
			r = vu_whiteout_clear_upper_dir(fs, dd.fd);
		vu_fdref_put(&dd);
	}
	if (r == 0)
		r = vu_dir_keep_opaque(fs, src, np);
	if (r < 0)
		goto out;
	src_at = vu_node_is_at(fs, src, op, name);
	dst_at = dst && vu_node_is_at(fs, dst, np, newname);
	if (dst_at) {
		vu_dir_pin(fs, dst, nd.fd, newname);
		vu_node_unhash(fs, dst);
	}
	/* Held across the rename: the old name turns into a whiteout under racing opens. */
	r = vu_node_fd(fs, src, 0, &sd);
	if (r < 0)
		goto out_rehash;
	if (src_lower && fs->can_mknod) {
		/* The kernel's own trick: the source becomes a whiteout in the same step. */
		if (renameat2(od.fd, name, nd.fd, newname, RENAME_WHITEOUT) < 0)
			r = -errno;
	} else if (renameat2(od.fd, name, nd.fd, newname, 0) < 0) {
		r = -errno;
	}
	if (r < 0)
		goto out_rehash;
	if (src_at)
		vu_node_move(fs, src, np, newname);
	if (src_lower && !fs->can_mknod)
		r = vu_whiteout_make(fs, op, od.fd, name, VU_WH_NOREPLACE);
	vu_index_removed(fs, dst_idx);
	goto out;
out_rehash:
	if (dst_at)
		vu_node_rehash(fs, dst);
out:
	if (locked) {
		vu_node_unlock2(fs, src, dst);
	}
	vu_fdref_put(&sd);
	vu_fdref_put(&od);
	vu_fdref_put(&nd);
	vu_node_unref(fs, src);
	vu_node_unref(fs, dst);
	return r;
}

void vu_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		  const char *newname, unsigned int flags)
{
	struct vu_fs *fs = vu_fs_of(req);

	fuse_reply_err(req, -vu_dir_rename(fs, vu_node_of(fs, parent), name,
					   vu_node_of(fs, newparent), newname, flags));
}
