/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The merged listing of a directory: every layer of its range read top down,
 * duplicates and whited-out names dropped, OCI ".wh." files hidden. Each open
 * handle keeps its own snapshot (taken at its first read), so offsets
 * (telldir/seekdir) stay stable while the directory changes; rewinding to 0
 * takes a fresh snapshot. The kernel caches listings across opens.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "fd-util.h"
#include "log.h"
#include "dir-util.h"
#include "unionfs.h"

struct vu_dirent {
	char *name;
	unsigned char type; /* DT_* */
	ino_t ino;
	bool from_upper; /* an upper directory, not opaque, that a lower one may still merge */
	bool merged;	 /* ... and one did */
	bool native;	 /* from an upper directory not marked impure: d_ino is the upper's */
	bool redirected; /* an upper directory with a redirect: its lowers are elsewhere */
};

struct vu_dirh {
	pthread_mutex_t lock; /* the kernel may read one handle from several threads */
	GArray *entries;      /* of vu_dirent; protected by lock */
	bool consumed;	      /* protected by lock: offset 0 again means rewinddir */
};

static void vu_dirent_clear(gpointer p)
{
	struct vu_dirent *e = p;

	g_free(e->name);
}

static void vu_readdir_add(GArray *out, const char *name, unsigned char type, ino_t ino)
{
	struct vu_dirent e = {.name = g_strdup(name), .type = type, .ino = ino};

	g_array_append_val(out, e);
}

/*
 * d_ino as stat() will report st_ino: a merged directory shows its top lower's
 * inode, a copied-up file its origin's (on one filesystem, as the kernel does).
 * For entries of the upper layer only where its directory is marked impure: the
 * kernel maps no other d_ino of the upper either.
 */
static void vu_readdir_fix_ino(struct vu_fs *fs, GArray *out, GHashTable *seen, const char *name,
			       unsigned char type, ino_t ino)
{
	gpointer v;
	struct vu_dirent *e;

	if (!fs->samefs || !g_hash_table_lookup_extended(seen, name, NULL, &v) ||
	    GPOINTER_TO_UINT(v) == 0)
		return;
	e = &g_array_index(out, struct vu_dirent, GPOINTER_TO_UINT(v) - 1);
	/* The first layer below that has the name decides: merged only with a directory. */
	if (e->from_upper && type == DT_DIR) {
		e->merged = true;
		if (!e->native)
			e->ino = ino;
	}
	e->from_upper = false;
}

/* Is the upper directory name (in dirfd) opaque? */
static bool vu_readdir_opaque(struct vu_fs *fs, int dirfd, const char *name)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 || vu_whiteout_dir_opaque(fs, 0, fd, NULL) > 0;
}

/*
 * One layer's entries; names it whites out are collected in wh for the layers below.
 * map_ino: the upper directory is impure and this is a listing: report copied-up
 * files with their origin's inode; else upper entries keep their own d_ino, and an
 * emptiness check reads no origin. track: note which upper directories lower ones
 * merge (a listing of a merged directory).
 */
static int vu_readdir_layer(struct vu_fs *fs, int layer, int pathfd, unsigned flags, bool map_ino,
			    bool track, GHashTable *seen, GHashTable *wh, GArray *out,
			    bool *ret_nowh)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	bool nowh = true;
	int k = vc_opendir_at(pathfd, ".", &d);

	*ret_nowh = false;
	if (k < 0)
		return k;
	/* errno tells the end of the listing from a failed read. */
	for (errno = 0; (de = readdir(d)); errno = 0) {
		const char *name = de->d_name;
		unsigned char type = de->d_type;
		struct stat st;
		ino_t ino;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (vu_whiteout_is_private_name(name)) {
			nowh = false;
			if (strcmp(name, VU_OCI_OPAQUE) != 0)
				g_hash_table_add(wh, g_strdup(name + strlen(VU_OCI_PREFIX)));
			continue;
		}
		if (g_hash_table_contains(seen, name)) {
			vu_readdir_fix_ino(fs, out, seen, name, type, de->d_ino);
			continue;
		}
		if (type == DT_UNKNOWN || type == DT_CHR ||
		    (type == DT_REG && (flags & VU_FD_XWHITEOUTS))) {
			if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			type = IFTODT(st.st_mode);
			if (vu_whiteout_is(fs, layer, dirfd(d), flags, name, &st)) {
				g_hash_table_add(wh, g_strdup(name));
				continue;
			}
		}
		ino = de->d_ino;
		if (map_ino && vu_is_upper(fs, layer) && type != DT_DIR)
			vu_origin_ino_at(fs, dirfd(d), name, &ino);
		vu_readdir_add(out, name, type, ino);
		/* An opaque upper directory merges nothing: its d_ino stays its own. */
		g_array_index(out, struct vu_dirent, out->len - 1).from_upper =
			vu_is_upper(fs, layer) && track && type == DT_DIR &&
			!vu_readdir_opaque(fs, dirfd(d), name);
		g_array_index(out, struct vu_dirent, out->len - 1).native =
			vu_is_upper(fs, layer) && !map_ino;
		/* Redirected: not merged with the name below; its d_ino comes from a lookup. */
		if (map_ino && vu_redirect_follows(fs)) {
			struct vu_dirent *ne = &g_array_index(out, struct vu_dirent, out->len - 1);
			g_autofree char *redirect = NULL;

			/* In an opaque directory too: an absolute redirect still finds lowers. */
			if (vu_is_upper(fs, layer) && type == DT_DIR &&
			    vu_mc_redirect_of(dirfd(d), name, &redirect) == 0 && redirect) {
				ne->from_upper = false;
				ne->redirected = true;
			}
		}
		g_hash_table_insert(seen, g_strdup(name), GUINT_TO_POINTER(out->len));
	}
	/* Read to the end without a ".wh." name: later misses here need no OCI probe. */
	*ret_nowh = nowh && errno == 0;
	return 0;
}

static int vu_readdir_merged(struct vu_fs *fs, struct vu_node *dir, bool want_ino, GArray **ret)
{
	g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_autoptr(GArray) out = g_array_new(false, false, sizeof(struct vu_dirent));
	int top = atomic_load(&dir->top), bottom = atomic_load(&dir->bottom);
	int r;

	g_array_set_clear_func(out, vu_dirent_clear);
	for (int l = top; l <= bottom; l++) {
		g_autoptr(GHashTable) wh = NULL;
		struct vu_fdref d = VU_FDREF_INIT;
		GHashTableIter it;
		bool nowh, map;
		gpointer k;

		r = vu_node_fd(fs, dir, l, &d);
		if (r == -ENOENT || r == -ENOTDIR)
			continue;
		if (r < 0)
			return r;
		wh = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		map = want_ino && fs->samefs && vu_is_upper(fs, l);
		r = vu_readdir_layer(fs, l, d.fd, d.flags,
				     map && vu_origin_dir_impure(fs, dir, d.fd),
				     map && bottom > top, seen, wh, out, &nowh);
		if (r == 0 && nowh && !(d.flags & VU_FD_NOWH))
			vu_fdref_set_flags(&d, l, VU_FD_NOWH);
		vu_fdref_put(&d);
		if (r < 0)
			return r;
		/* Whiteouts hide names of the layers below only. */
		g_hash_table_iter_init(&it, wh);
		while (g_hash_table_iter_next(&it, &k, NULL)) {
			g_hash_table_iter_steal(&it);
			if (!g_hash_table_contains(seen, k))
				g_hash_table_insert(seen, k, GUINT_TO_POINTER(0));
			else
				g_free(k);
		}
	}
	*ret = g_steal_pointer(&out);
	return 0;
}

int vu_dir_is_empty(struct vu_fs *fs, struct vu_node *dir)
{
	g_autoptr(GArray) list = NULL;
	int r = vu_readdir_merged(fs, dir, false, &list);

	if (r < 0)
		return r;
	return list->len == 0;
}

/*
 * Merged subdirectories of a directory not marked impure that have no origin yet
 * (an upper of an older veneer): give them the one the kernel's lookup gives them,
 * which marks this directory impure. True when it did: the listing is then mapped.
 */
static bool vu_readdir_fix_dirs(struct vu_fs *fs, struct vu_node *node, GArray *list)
{
	struct vu_found f = {.top = 0, .bottom = atomic_load(&node->bottom)};
	bool fixed = false;

	f.st.st_mode = S_IFDIR;
	for (guint i = 0; i < list->len; i++) {
		struct vu_dirent *e = &g_array_index(list, struct vu_dirent, i);

		if (e->merged && e->native)
			fixed |= vu_origin_fix_dir(fs, node, e->name, &f);
	}
	return fixed;
}

static int vu_dirh_fill(struct vu_fs *fs, struct vu_node *node, struct vu_dirh *h)
{
	g_autoptr(GArray) list = NULL;
	GArray *all;
	int r;

	r = vu_readdir_merged(fs, node, true, &list);
	if (r == 0 && vu_readdir_fix_dirs(fs, node, list)) {
		g_clear_pointer(&list, g_array_unref);
		r = vu_readdir_merged(fs, node, true, &list);
	}
	if (r < 0)
		return r;
	all = g_array_sized_new(false, false, sizeof(struct vu_dirent), list->len + 2);
	g_array_set_clear_func(all, vu_dirent_clear);
	vu_readdir_add(all, ".", DT_DIR, atomic_load(&node->ino));
	{
		struct vu_node *parent = vu_node_parent(fs, node, NULL);

		vu_readdir_add(all, "..", DT_DIR, atomic_load(parent ? &parent->ino : &node->ino));
		vu_node_unref(fs, parent);
	}
	/* Known nodes report their fixed st_ino (origin inodes after copy-up). */
	for (guint i = 0; i < list->len; i++) {
		struct vu_dirent *e = &g_array_index(list, struct vu_dirent, i);
		struct vu_node *n = e->native ? NULL : vu_node_find(fs, node, e->name);

		if (n) {
			e->ino = atomic_load(&n->ino);
			vu_node_unref(fs, n);
		} else if (e->redirected) {
			struct vu_found f;

			if (vu_namei_lookup(fs, node, e->name, &f) == 0)
				e->ino = f.ino;
		}
		g_array_append_val(all, *e);
		e->name = NULL;
	}
	if (h->entries)
		g_array_unref(h->entries);
	h->entries = all;
	h->consumed = false;
	return 0;
}

void vu_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vu_dirh *h = g_new0(struct vu_dirh, 1);

	pthread_mutex_init(&h->lock, NULL);
	fi->fh = (uint64_t)(uintptr_t)h;
	/*
	 * The kernel keeps the listing across opens: every change of a directory made
	 * through the mount is a FUSE directory operation, after which the kernel drops
	 * its cache itself; a copy-up that changes a d_ino invalidates it (copy_up.c).
	 * The snapshot is taken at the first READDIR, which a cached listing never sends.
	 */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		pthread_mutex_destroy(&h->lock);
		g_free(h);
	}
}

static void vu_readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			      struct fuse_file_info *fi, bool plus)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_node *node = vu_node_of(fs, ino);
	struct vu_dirh *h = (struct vu_dirh *)(uintptr_t)fi->fh;
	g_autofree char *buf = g_malloc(size);
	size_t pos = 0;
	int r = 0;

	pthread_mutex_lock(&h->lock);
	if (!h->entries || (off == 0 && h->consumed))
		r = vu_dirh_fill(fs, node, h);
	if (r < 0)
		goto out;
	h->consumed = true;
	for (guint i = off; i < h->entries->len; i++) {
		struct vu_dirent *e = &g_array_index(h->entries, struct vu_dirent, i);
		size_t n;

		if (!plus) {
			struct stat st = {.st_ino = e->ino, .st_mode = DTTOIF(e->type)};

			n = fuse_add_direntry(req, buf + pos, size - pos, e->name, &st, i + 1);
		} else if (i < 2) {
			struct fuse_entry_param fe = {.attr.st_ino = e->ino,
						      .attr.st_mode = DTTOIF(e->type)};

			n = fuse_add_direntry_plus(req, buf + pos, size - pos, e->name, &fe, i + 1);
		} else {
			struct fuse_entry_param fe;
			struct vu_node *child;
			struct vu_found f;

			if (vu_namei_child(fs, node, e->name, true, &child, &f) < 0) {
				/* Gone since the snapshot: still listed, as the kernel's cache
				 * does, but without an entry for the kernel to keep (nodeid 0). */
				memset(&fe, 0, sizeof(fe));
				fe.attr.st_ino = e->ino;
				fe.attr.st_mode = DTTOIF(e->type);
				child = NULL;
			} else {
				vu_fill_entry(fs, child, &f.st, &fe);
			}
			n = fuse_add_direntry_plus(req, buf + pos, size - pos, e->name, &fe, i + 1);
			if (n > size - pos && child)
				vu_node_forget(fs, child, 1);
			/*
			 * libfuse gives the entry st_ino as its d_ino too; the listing's own
			 * (the upper's in a directory not marked impure) goes there instead.
			 */
			if (n <= size - pos)
				((struct fuse_direntplus *)(buf + pos))->dirent.ino = e->ino;
		}
		if (n > size - pos)
			break;
		pos += n;
	}
out:
	pthread_mutex_unlock(&h->lock);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, pos);
}

void vu_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	vu_readdir_common(req, ino, size, off, fi, false);
}

void vu_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	vu_readdir_common(req, ino, size, off, fi, true);
}

void vu_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vu_dirh *h = (struct vu_dirh *)(uintptr_t)fi->fh;

	if (h->entries)
		g_array_unref(h->entries);
	pthread_mutex_destroy(&h->lock);
	g_free(h);
	fuse_reply_err(req, 0);
}

void vu_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_node *node = vu_node_of(fs, ino);
	struct vu_fdref d = VU_FDREF_INIT;
	_cleanup_close_ int fd = -1;
	int r = 0;

	if (fs->params.no_fsync || fs->params.volatile_mode || !fs->has_upper ||
	    atomic_load(&node->top) != 0) {
		fuse_reply_err(req, 0);
		return;
	}
	r = vu_node_fd(fs, node, 0, &d);
	if (r == 0) {
		fd = openat(d.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || (datasync ? fdatasync(fd) : fsync(fd)) < 0)
			r = -errno;
	}
	vu_fdref_put(&d);
	fuse_reply_err(req, -r);
}
