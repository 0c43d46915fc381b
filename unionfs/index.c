/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * -o index=on, the kernel's inode index: a lower file with several hard links is
 * copied up once, into <workdir>/index under the hex of its origin's file handle
 * (the bytes of its overlay.origin), and each of its names that is changed, removed
 * or renamed becomes a hard link of that entry in the upper ("link-up"), so the
 * names stay one file. A name not linked up yet is served from the entry. The
 * merged link count is kept relative to the upper inode's in overlay.nlink ("U+N",
 * as the kernel writes it); the entry goes when that count drops to 0. At mount
 * the upper root's overlay.origin (the top lower root) and the index directory's
 * overlay.upper (the upper root) bind the upper to its lowers; orphaned entries,
 * whiteouts and leftovers in the index are swept, as the kernel does.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "dir-util.h"
#include "fd-util.h"
#include "log.h"
#include "xattr-util.h"
#include "unionfs.h"

#define VU_FB_MAX (21 + MAX_HANDLE_SZ)
#define VU_FH_FLAG_PATH_UPPER 4 /* the kernel's OVL_FH_FLAG_PATH_UPPER */
#define VU_INDEX_NAME_MAX (2 * VU_FB_MAX + 1)

static void vu_index_hex(const unsigned char *fb, int n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < n; i++) {
		out[2 * i] = digits[fb[i] >> 4];
		out[2 * i + 1] = digits[fb[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The index entry name of the lower object fd (of stat st). */
static int vu_index_name_at(struct vu_fs *fs, int fd, const struct stat *st, char *out)
{
	unsigned char fb[VU_FB_MAX];
	int n = vu_origin_encode(fs, fd, st, fb);

	if (n < 0)
		return n;
	vu_index_hex(fb, n, out);
	return 0;
}

bool vu_index_wanted(const struct vu_fs *fs, const struct stat *lower_st)
{
	return fs->index_fd >= 0 && !S_ISDIR(lower_st->st_mode) && lower_st->st_nlink > 1;
}

static bool vu_index_is_whiteout(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

/*
 * overlay.nlink of the upper object fd: the merged link count; 0 without one (the
 * kernel's fallback for an orphan), -1 when it cannot be told: the "L" form counts
 * from the lower's links and is left only by a crash inside a kernel link-up.
 */
static long vu_index_nlink_of(int fd, const struct stat *st)
{
	char buf[16];
	char *end;
	long diff;
	ssize_t n = vc_fgetxattr(fd, true, VU_NLINK_XATTR, buf, sizeof(buf) - 1);

	if (n == -ENODATA)
		return 0;
	if (n < 2 || buf[0] != 'U')
		return -1;
	buf[n] = '\0';
	diff = strtol(buf + 1, &end, 10);
	if (*end != '\0')
		return -1;
	/* As the kernel: a count that is not positive is none. */
	return MAX((long)st->st_nlink + diff, 0L);
}

static int vu_index_set_nlink(int fd, long merged, nlink_t upper)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "U%+ld", merged - (long)upper);

	return vc_fsetxattr(fd, true, VU_NLINK_XATTR, buf, n, 0);
}

/* Is the upper object fd (of stat st) an index entry? It has the merged link count. */
bool vu_index_is_entry(struct vu_fs *fs, int fd, const struct stat *st)
{
	if (fs->index_fd < 0 || S_ISDIR(st->st_mode))
		return false;
	return vc_fgetxattr(fd, true, VU_NLINK_XATTR, NULL, 0) > 0;
}

/*
 * A lookup found a hard-linked lower file (f, name in dirfd of layer f->top): when
 * the index holds it, the name shows the entry, as the kernel's lookup does;
 * *ret_fd is then an O_PATH fd of the entry (else -1).
 */
int vu_index_probe(struct vu_fs *fs, int dirfd, const char *name, struct vu_found *f, int *ret_fd)
{
	char idx[VU_INDEX_NAME_MAX];
	_cleanup_close_ int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat ist;
	int r;

	*ret_fd = -1;
	if (fd < 0)
		return -errno;
	if (vu_index_name_at(fs, fd, &f->st, idx) < 0)
		return 0; /* no handle: copied up without the index */
	if (fstatat(fs->index_fd, idx, &ist, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (vu_index_is_whiteout(&ist) || (ist.st_mode & S_IFMT) != (f->st.st_mode & S_IFMT))
		return 0;
	f->ino = vu_xino_map(fs, f->st.st_dev, f->st.st_ino);
	f->bottom = f->top;
	f->top = 0;
	f->st = ist;
	f->indexed = true;
	f->via_index = true;
	f->lower_exists = true;
	if (S_ISREG(ist.st_mode)) {
		r = vu_mc_check(fs, fs->index_fd, idx, &ist);
		if (r < 0)
			return r;
		f->metacopy = r > 0;
	}
	*ret_fd = openat(fs->index_fd, idx, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	return *ret_fd < 0 ? -errno : 0;
}

/* Is upper_ino the index entry of the origin fb (n bytes)? */
bool vu_index_holds(struct vu_fs *fs, const unsigned char *fb, int n, ino_t upper_ino)
{
	char idx[VU_INDEX_NAME_MAX];
	struct stat st;

	if (fs->index_fd < 0 || n <= 0 || n > VU_FB_MAX)
		return false;
	vu_index_hex(fb, n, idx);
	return fstatat(fs->index_fd, idx, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == upper_ino;
}

/* The index entry name of node's file, from its lower (node->bottom when via the index). */
int vu_index_name_of(struct vu_fs *fs, struct vu_node *node, char **ret)
{
	struct vu_fdref d = VU_FDREF_INIT;
	char idx[VU_INDEX_NAME_MAX];
	unsigned char fb[VU_FB_MAX];
	int top = atomic_load(&node->top), r;
	struct stat st;
	ssize_t n;

	*ret = NULL;
	if (top != 0 || atomic_load(&node->via_index)) {
		r = vu_node_fd(fs, node, top != 0 ? top : atomic_load(&node->bottom), &d);
		if (r < 0)
			return r;
		r = fstat(d.fd, &st) < 0 ? -errno : vu_index_name_at(fs, d.fd, &st, idx);
		vu_fdref_put(&d);
		if (r < 0)
			return r;
		*ret = g_strdup(idx);
		return 0;
	}
	/* Linked up: the entry's name is its overlay.origin. */
	r = vu_node_fd(fs, node, 0, &d);
	if (r < 0)
		return r;
	n = vc_fgetxattr(d.fd, true, "trusted.overlay.origin", fb, sizeof(fb));
	vu_fdref_put(&d);
	if (n < 0)
		return (int)n;
	vu_index_hex(fb, (int)n, idx);
	*ret = g_strdup(idx);
	return 0;
}

/* The O_PATH fd of the index entry of a node not linked up yet (vu_node_fd, layer 0). */
int vu_index_open(struct vu_fs *fs, struct vu_node *node, int *ret_fd)
{
	g_autofree char *idx = NULL;
	int r = vu_index_name_of(fs, node, &idx);

	if (r < 0)
		return r;
	*ret_fd = openat(fs->index_fd, idx, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	return *ret_fd < 0 ? -errno : 0;
}

/* The merged link count of an index entry, as the kernel shows it. */
void vu_index_fix_nlink(struct vu_fs *fs, struct vu_node *node, struct stat *st)
{
	struct vu_fdref d = VU_FDREF_INIT;
	long n;

	if (!atomic_load(&node->indexed) || S_ISDIR(st->st_mode) || atomic_load(&node->top) != 0)
		return;
	if (vu_node_fd(fs, node, 0, &d) < 0)
		return;
	n = vu_index_nlink_of(d.fd, st);
	vu_fdref_put(&d);
	if (n > 0)
		st->st_nlink = (nlink_t)n;
}

/*
 * Link the entry idx in as name in pd (the parent's upper fd); the merged count stays.
 * ret_meta: the entry is metadata only (its data still in the lower).
 */
static int vu_index_link_in(struct vu_fs *fs, const char *idx, struct vu_node *parent, int pd,
			    const char *name, bool *ret_meta)
{
	_cleanup_close_ int fd = -1;
	struct stat st, pst;
	long merged;
	int r;

	r = vu_origin_mark_impure(fs, parent, pd);
	if (r < 0)
		return r;
	if (fstat(pd, &pst) < 0)
		return -errno;
	fd = openat(fs->index_fd, idx, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	merged = vu_index_nlink_of(fd, &st);
	if (merged <= 0)
		merged = (long)st.st_nlink;
	if (ret_meta)
		*ret_meta =
			S_ISREG(st.st_mode) && vc_fgetxattr(fd, true, VU_MC_XATTR, NULL, 0) >= 0;
	if (linkat(fs->index_fd, idx, pd, name, 0) < 0)
		return -errno;
	if (fstat(fd, &st) == 0)
		(void)vu_index_set_nlink(fd, merged, st.st_nlink);
	/* No change of the parent to the merged view: its times stay, as with the kernel. */
	{
		struct timespec ts[2] = {pst.st_atim, pst.st_mtim};
		char pp[VC_PROC_FD_PATH_MAX];

		vc_proc_fd_path(pd, pp);
		(void)utimensat(AT_FDCWD, pp, ts, 0);
	}
	return 0;
}

enum {
	VU_INDEX_NOW_META, /* copied up into the index, metadata only */
	VU_INDEX_NOW_FULL, /* copied up into the index with its data */
	VU_INDEX_DATA,	   /* the entry got its data (metacopy.c's data copy-up) */
};

/*
 * The other nodes of node's file (its other names) follow a change of where the
 * file lives: served from the index from now on, or with its data there.
 */
static void vu_index_others(struct vu_fs *fs, struct vu_node *node, int what)
{
	g_autoptr(GPtrArray) others = g_ptr_array_new();
	gpointer key = GSIZE_TO_POINTER(atomic_load(&node->ino));

	pthread_mutex_lock(&fs->nodes_lock);
	for (GSList *l = g_hash_table_lookup(fs->ilower, key); l; l = l->next) {
		struct vu_node *n = l->data;

		if (n == node)
			continue;
		if (what == VU_INDEX_DATA) {
			atomic_store(&n->metacopy, false);
		} else if (atomic_load(&n->top) != 0) {
			atomic_store(&n->bottom, atomic_load(&n->top));
			atomic_store(&n->indexed, true);
			atomic_store(&n->via_index, true);
			atomic_store(&n->metacopy, what == VU_INDEX_NOW_META);
			atomic_store(&n->top, 0);
		} else {
			continue;
		}
		n->refs++;
		g_ptr_array_add(others, n);
	}
	pthread_mutex_unlock(&fs->nodes_lock);
	for (guint i = 0; i < others->len; i++) {
		struct vu_node *n = others->pdata[i];

		if (fs->se)
			fuse_lowlevel_notify_inval_inode(fs->se, vu_node_ino(fs, n), 0, 0);
		vu_node_unref(fs, n);
	}
}

/* node's file, an index entry, got its data: no other name reads its lower any more. */
void vu_index_data_copied(struct vu_fs *fs, struct vu_node *node)
{
	if (fs->index_fd >= 0 && atomic_load(&node->indexed))
		vu_index_others(fs, node, VU_INDEX_DATA);
}

/*
 * Copy-up of a hard-linked lower: the copy built as tmp in the workdir (dst, its
 * O_PATH fd; srcfd/st the lower) becomes the index entry, unless a copy-up of
 * another of its names made one already, and is linked in as name. Node lock held.
 */
int vu_index_copy_up(struct vu_fs *fs, struct vu_node *node, struct vu_node *parent,
		     const char *name, int srcfd, const struct stat *st, int dst, const char *tmp,
		     bool *ret_meta)
{
	struct vu_fdref pd = VU_FDREF_INIT;
	char idx[VU_INDEX_NAME_MAX];
	bool meta = false;
	int r;

	/* No handle: copied up as without the index (-ENODATA tells the caller). */
	if (vu_index_name_at(fs, srcfd, st, idx) < 0)
		return -ENODATA;
	if (dst >= 0) {
		/* Its merged count before any name is linked in: all of the lower's. */
		r = vu_index_set_nlink(dst, (long)st->st_nlink, 1);
		if (r < 0)
			return r;
		if (renameat2(fs->work_fd, tmp, fs->index_fd, idx, RENAME_NOREPLACE) < 0) {
			if (errno != EEXIST)
				return -errno;
			unlinkat(fs->work_fd, tmp, 0);
		}
	}
	r = vu_node_fd(fs, parent, 0, &pd);
	if (r < 0)
		return r;
	r = vu_index_link_in(fs, idx, parent, pd.fd, name, &meta);
	vu_fdref_put(&pd);
	if (r < 0)
		return r;
	*ret_meta = meta;
	atomic_store(&node->indexed, true);
	atomic_store(&node->via_index, false);
	/* The file's other names now show the entry: their nodes follow. */
	vu_index_others(fs, node, meta ? VU_INDEX_NOW_META : VU_INDEX_NOW_FULL);
	return 0;
}

/* Is node a file the index keeps, or one it will keep once copied up? */
bool vu_index_node_wanted(struct vu_fs *fs, struct vu_node *node)
{
	struct vu_fdref d = VU_FDREF_INIT;
	int top = atomic_load(&node->top);
	struct stat st;
	bool wanted;

	if (fs->index_fd < 0 || S_ISDIR(node->type))
		return false;
	if (atomic_load(&node->indexed))
		return true;
	if (top == 0 || vu_node_fd(fs, node, top, &d) < 0)
		return false;
	wanted = fstat(d.fd, &st) == 0 && vu_index_wanted(fs, &st);
	vu_fdref_put(&d);
	return wanted;
}

/* Link node's own name in: a change through a name served from the index. Node lock held. */
int vu_index_link_up(struct vu_fs *fs, struct vu_node *node, struct vu_node *parent,
		     const char *name)
{
	struct vu_fdref pd = VU_FDREF_INIT;
	g_autofree char *idx = NULL;
	int r;

	r = vu_index_name_of(fs, node, &idx);
	if (r < 0)
		return r;
	r = vu_node_fd(fs, parent, 0, &pd);
	if (r < 0)
		return r;
	r = vu_index_link_in(fs, idx, parent, pd.fd, name, NULL);
	vu_fdref_put(&pd);
	if (r < 0)
		return r;
	atomic_store(&node->via_index, false);
	/* The node's upper fd is its name's now (the same inode). */
	vu_node_fd_forget(fs, node, 0);
	return 0;
}

/* A name of entry idx went: with the last one (merged count 0) the entry goes too. */
void vu_index_removed(struct vu_fs *fs, const char *idx)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	long merged;

	if (!idx || fs->index_fd < 0)
		return;
	fd = openat(fs->index_fd, idx, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return;
	merged = vu_index_nlink_of(fd, &st);
	if (merged != 0)
		return; /* names left, or a count that cannot be told: kept */
	if (st.st_nlink != 1) {
		/* A lower link added behind the mount's back, as the kernel warns: keep it. */
		log_warning("index entry '%s' has %ju links at a merged count of %ld", idx,
			    (uintmax_t)st.st_nlink, merged);
		(void)vu_index_set_nlink(fd, (long)st.st_nlink - 1, st.st_nlink);
		return;
	}
	if (unlinkat(fs->index_fd, idx, 0) < 0)
		log_debug_errno(-errno, "could not remove index entry '%s'", idx);
}

void vu_index_node_added_locked(struct vu_fs *fs, struct vu_node *node, const struct stat *st)
{
	if (fs->index_fd < 0 || S_ISDIR(st->st_mode) ||
	    (!atomic_load(&node->indexed) &&
	     (atomic_load(&node->top) == 0 || !vu_index_wanted(fs, st))))
		return;
	vu_nodelist_add(fs->ilower, GSIZE_TO_POINTER(atomic_load(&node->ino)), node);
	node->in_ilower = true;
}

void vu_index_node_freed_locked(struct vu_fs *fs, struct vu_node *node)
{
	if (!node->in_ilower)
		return;
	vu_nodelist_remove(fs->ilower, GSIZE_TO_POINTER(atomic_load(&node->ino)), node);
	node->in_ilower = false;
}

/*
 * The handle xattr name of fd: set to want when absent, else compared with it (a
 * mismatch is -ESTALE), as the kernel's ovl_verify_set_fh().
 */
static int vu_index_verify(int fd, const char *xname, const unsigned char *want, int n)
{
	unsigned char have[VU_FB_MAX];
	ssize_t got = vc_fgetxattr(fd, true, xname, have, sizeof(have));

	if (got == -ENODATA)
		return vc_fsetxattr(fd, true, xname, want, n, 0);
	if (got < 0)
		return (int)got;
	return got == n && memcmp(have, want, n) == 0 ? 0 : -ESTALE;
}

/* Orphans (no name left), whiteouts and leftovers go, as at the kernel's mount. */
static int vu_index_sweep(struct vu_fs *fs)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r;

	r = vc_opendir_at(fs->index_fd, ".", &d);
	if (r < 0)
		return r;
	while ((de = readdir(d))) {
		_cleanup_close_ int fd = -1;
		struct stat st;
		bool drop;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		fd = openat(dirfd(d), de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 || S_ISDIR(st.st_mode))
			continue;
		drop = de->d_name[0] == '#' || vu_index_is_whiteout(&st) ||
		       (st.st_nlink == 1 && vu_index_nlink_of(fd, &st) == 0);
		if (!drop)
			continue;
		log_debug("removing '%s' from the index", de->d_name);
		if (unlinkat(dirfd(d), de->d_name, 0) < 0)
			return -errno;
	}
	return 0;
}

/*
 * <workdir>/index, made and checked before the mount: the upper root records the
 * top lower root as its origin and the index the upper root as its "upper", so an
 * upper is never used with other lowers, nor an index with another upper.
 */
int vu_index_setup(struct vu_fs *fs, int wfd)
{
	struct vu_params *p = &fs->params;
	unsigned char fb[VU_FB_MAX];
	struct stat st;
	int lower0, n, r;

	fs->index_fd = -1;
	if (!p->index || !fs->has_upper)
		return 0; /* without an upper the kernel has no index either */
	if (!fs->can_trusted)
		return log_error_errno(-EINVAL, "index=on needs trusted.* xattrs in upperdir '%s'",
				       p->upper);
	lower0 = 1;
	if (fstat(fs->layers[lower0].fd, &st) < 0)
		return log_error_errno(-errno, "could not stat lowerdir '%s'",
				       fs->layers[lower0].path);
	n = vu_origin_encode(fs, fs->layers[lower0].fd, &st, fb);
	if (n < 0) {
		/* As the kernel: a lower without file handles means no index. */
		log_warning("lowerdir '%s' has no file handles: index=off",
			    fs->layers[lower0].path);
		return 0;
	}
	r = vu_index_verify(fs->layers[0].fd, "trusted.overlay.origin", fb, n);
	if (r == -ESTALE)
		return log_error_errno(r,
				       "upperdir '%s' was used with another lowerdir (the origin "
				       "of its root is not '%s'): index=on refuses it (mount "
				       "with -o index=off)",
				       p->upper, fs->layers[lower0].path);
	if (r < 0)
		return log_error_errno(r, "could not record the origin of upperdir '%s'", p->upper);
	if (mkdirat(wfd, "index", 0) < 0 && errno != EEXIST)
		return log_error_errno(-errno, "could not create '%s/index'", p->work);
	fs->index_fd = openat(wfd, "index", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fs->index_fd < 0)
		return log_error_errno(-errno, "could not open '%s/index'", p->work);
	if (fstat(fs->layers[0].fd, &st) < 0)
		return log_error_errno(-errno, "could not stat upperdir '%s'", p->upper);
	n = vu_origin_encode(fs, fs->layers[0].fd, &st, fb);
	if (n < 0)
		return log_error_errno(n, "upperdir '%s' has no file handles", p->upper);
	fb[3] |= VU_FH_FLAG_PATH_UPPER;
	r = vu_index_verify(fs->index_fd, "trusted.overlay.upper", fb, n);
	if (r == -ESTALE)
		return log_error_errno(r,
				       "'%s/index' belongs to another upperdir than '%s': "
				       "index=on refuses it (remove it or mount with -o "
				       "index=off)",
				       p->work, p->upper);
	if (r < 0)
		return log_error_errno(r, "could not record the upper of '%s/index'", p->work);
	r = vu_index_sweep(fs);
	if (r < 0)
		return log_error_errno(r, "could not clean '%s/index'", p->work);
	fs->ilower = g_hash_table_new(g_direct_hash, g_direct_equal);
	return 0;
}
