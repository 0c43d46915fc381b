/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Lookup of one name in a merged directory: the layers of the parent are
 * searched top down; the first layer holding the name wins; a whiteout or a
 * non-directory stops the search, and so does an opaque directory; directories
 * found further down are merged into the result's layer range [top, bottom].
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "unionfs.h"

/* Is the directory name (a child of dirfd in layer) opaque? */
static bool vu_namei_opaque(struct vu_fs *fs, int layer, int dirfd, const char *name)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return true; /* vanished or unreadable: do not merge what is below */
	return vu_whiteout_dir_opaque(fs, layer, fd, NULL) > 0;
}

/*
 * The st_ino to report (vu_found.ino), as the kernel: a copied-up object shows its
 * origin's, a merged directory its top lower's on one filesystem or with xino over
 * several; with xino the number carries the index of its filesystem (xino.c).
 */
static void vu_namei_ino(struct vu_fs *fs, struct vu_node *parent, const char *name,
			 struct vu_found *f, const struct stat *lower_st)
{
	if (f->via_index)
		return; /* its lower's, set by vu_index_probe() */
	f->ino = vu_xino_map(fs, f->st.st_dev, f->st.st_ino);
	if (S_ISDIR(f->st.st_mode)) {
		/* Merged directories report the inode of the top lower, as the kernel does. */
		if (lower_st && vu_xino_same_dev(fs))
			f->ino = vu_xino_map(fs, lower_st->st_dev, lower_st->st_ino);
		return;
	}
	if (vu_is_upper(fs, f->top)) {
		struct vu_fdref d = VU_FDREF_INIT;
		ino_t ino;
		int r;

		if (vu_node_fd(fs, parent, f->top, &d) < 0)
			return;
		r = vu_origin_ino_at(fs, d.fd, name, &ino);
		vu_fdref_put(&d);
		if (r == 0)
			f->ino = ino;
		else if (r != -ENODATA && r != -ENOENT)
			log_debug_errno(r, "origin of '%s' not used", name);
	}
}

/* The search itself; ret->ino is left for vu_namei_ino (lower_st: the top lower directory). */
static int vu_namei_search(struct vu_fs *fs, struct vu_node *parent, const char *name,
			   struct vu_found *ret, struct stat *lower_st, bool *have_lower)
{
	int ptop = atomic_load(&parent->top), pbot = atomic_load(&parent->bottom), lfirst;
	g_autofree char *path = NULL, *cur = NULL; /* where redirects lead (vu_mc_follow) */
	bool have_lower_st = false, redirected = false;
	const struct vu_nameidx *idx;
	const GArray *hits;
	guint hi = 0;

	memset(ret, 0, sizeof(*ret));
	ret->top = -1;
	ret->bottom = -1;
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	if (!S_ISDIR(parent->type))
		return -ENOTDIR;
	/* OCI whiteout files are format, not content. */
	if (vu_whiteout_is_private_name(name))
		return -ENOENT;

	lfirst = vu_is_upper(fs, ptop) ? ptop + 1 : ptop;
	/* Built over every lower (ptop falls to the upper on copy-up): hits above lfirst skipped.
	 */
	idx = vu_nameidx_get(fs, parent, fs->has_upper ? 1 : 0, pbot);
	hits = idx ? vu_nameidx_layers(idx, name) : NULL;
	while (hits && hi < hits->len && g_array_index(hits, int, hi) < lfirst)
		hi++;
	for (int l = ptop; l < (int)fs->nlayers; l++) {
		struct vu_fdref d = VU_FDREF_INIT;
		_cleanup_close_ int owned = -1;
		const char *base = cur ? cur : name;
		struct stat st;
		bool stop = false;
		int r, dfd;
		unsigned dflags;

		/*
		 * With an index, only the lowers that hold the name or its .wh. are asked --
		 * until a redirect is met: below it the name looked up is another one.
		 */
		if (idx && l >= lfirst && !path && !cur) {
			if (!hits || hi >= hits->len)
				break;
			l = g_array_index(hits, int, hi++);
		}
		atomic_fetch_add_explicit(&fs->layer_probes, 1, memory_order_relaxed);
		if (path) {
			/* An absolute redirect: looked up from each layer's root. */
			dfd = vu_mc_open_dir(fs, l, path, &base, &owned);
			if (dfd == -ENOENT || dfd == -ENOTDIR)
				continue;
			if (dfd < 0)
				return dfd;
			dflags = atomic_load(&fs->layers[l].root_flags);
			if (owned >= 0 && vu_whiteout_dir_opaque(fs, l, dfd, &dflags) < 0)
				dflags = 0;
		} else {
			if (l > pbot)
				break;
			r = vu_node_fd(fs, parent, l, &d);
			if (r == -ENOENT || r == -ENOTDIR)
				continue;
			if (r < 0)
				return r;
			dfd = d.fd;
			dflags = d.flags;
		}
		/* The kernel's refusal: with nofollow a redirect leads nowhere. */
		if (redirected && !vu_redirect_follows(fs)) {
			vu_fdref_put(&d);
			return log_debug_errno(-EPERM, "refusing to follow the redirect of '%s'",
					       name);
		}
		if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			if (r == -ENOENT && !(dflags & VU_FD_NOWH) &&
			    vu_whiteout_oci_exists(dfd, base)) {
				if (ret->top < 0 && vu_is_upper(fs, l))
					ret->upper_whiteout = VU_WH_OCI;
				stop = true;
			}
			vu_fdref_put(&d);
			if (stop)
				break;
			if (r == -ENOENT || r == -ENOTDIR)
				continue;
			return r;
		}
		if (vu_whiteout_is(fs, l, dfd, dflags, base, &st)) {
			if (ret->top < 0 && vu_is_upper(fs, l))
				ret->upper_whiteout = S_ISCHR(st.st_mode) ? VU_WH_CHR : VU_WH_XATTR;
			vu_fdref_put(&d);
			break;
		}
		if (ret->top < 0) {
			ret->top = ret->bottom = l;
			ret->st = st;
			/* Metadata only? Lowers are asked only with metacopy=on. */
			if (S_ISREG(st.st_mode) && (vu_is_upper(fs, l) || fs->params.metacopy)) {
				r = vu_mc_check(fs, dfd, base, &st);
				if (r < 0) {
					vu_fdref_put(&d);
					return r;
				}
				ret->metacopy = r > 0;
			}
			if (!S_ISDIR(st.st_mode))
				stop = true;
			else if (vu_namei_opaque(fs, l, dfd, base))
				stop = true;
			if (!vu_is_upper(fs, l) && S_ISDIR(st.st_mode)) {
				*lower_st = st;
				have_lower_st = true;
			}
		} else if (!S_ISDIR(st.st_mode)) {
			stop = true;
		} else {
			ret->bottom = l;
			if (!have_lower_st) {
				*lower_st = st;
				have_lower_st = true;
			}
			if (vu_namei_opaque(fs, l, dfd, base))
				stop = true;
		}
		/* A directory's redirect says where the layers below hold it. */
		if (!stop && S_ISDIR(st.st_mode) && l + 1 < (int)fs->nlayers) {
			char *redirect = NULL;

			r = vu_mc_redirect_of(dfd, base, &redirect);
			if (r < 0) {
				vu_fdref_put(&d);
				return r;
			}
			if (redirect)
				redirected = true;
			vu_mc_follow(&path, &cur, redirect);
		}
		vu_fdref_put(&d);
		if (stop)
			break;
	}
	_cleanup_close_ int entry = -1; /* -o index=on: the index entry the name shows */

	*have_lower = have_lower_st;
	if (ret->top < 0)
		return -ENOENT;
	if (fs->index_fd >= 0 && !S_ISDIR(ret->st.st_mode) && !path && !cur) {
		/* -o index=on: a hard-linked lower the index holds shows the entry (index.c). */
		struct vu_fdref d = VU_FDREF_INIT;
		int r = vu_node_fd(fs, parent, ret->top, &d);

		if (r == 0 && vu_is_upper(fs, ret->top) && ret->st.st_nlink > 1) {
			_cleanup_close_ int fd =
				openat(d.fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

			ret->indexed = fd >= 0 && vu_index_is_entry(fs, fd, &ret->st);
		} else if (r == 0 && vu_index_wanted(fs, &ret->st)) {
			r = vu_index_probe(fs, d.fd, name, ret, &entry);
		}
		vu_fdref_put(&d);
		if (r < 0)
			return r;
	}
	if (ret->metacopy) {
		/* Its data must be there (else EIO, as the kernel); stat shows its blocks. */
		struct vu_mcdata md;
		int r = vu_mc_resolve(fs, parent, name, ret->top, entry, &md);

		vc_close_nointr(md.fd);
		if (r < 0)
			return log_debug_errno(r, "metacopy file '%s' without its data", name);
		ret->st.st_blocks = md.st.st_blocks;
	}
	return 0;
}

int vu_namei_lookup(struct vu_fs *fs, struct vu_node *parent, const char *name,
		    struct vu_found *ret)
{
	struct stat lower_st;
	bool have_lower = false;
	int r = vu_namei_search(fs, parent, name, ret, &lower_st, &have_lower);

	if (r < 0)
		return r;
	vu_namei_ino(fs, parent, name, ret, have_lower ? &lower_st : NULL);
	return 0;
}

int vu_namei_child(struct vu_fs *fs, struct vu_node *parent, const char *name, bool count,
		   struct vu_node **ret_node, struct vu_found *ret_found)
{
	struct vu_node *known;
	struct vu_found f;
	struct stat lower_st;
	bool have_lower = false;
	int r;

	r = vu_namei_search(fs, parent, name, &f, &lower_st, &have_lower);
	if (r == 0) {
		/* A node already known keeps its st_ino: no origin probes for it. */
		known = vu_node_find(fs, parent, name);
		if (known && known->type == (f.st.st_mode & S_IFMT)) {
			f.ino = atomic_load(&known->ino);
		} else {
			vu_namei_ino(fs, parent, name, &f, have_lower ? &lower_st : NULL);
			vu_origin_fix_dir(fs, parent, name, &f);
		}
		vu_node_unref(fs, known);
	}
	if (ret_found)
		*ret_found = f;
	if (r < 0)
		return r;
	*ret_node = vu_node_get(fs, parent, name, &f, count);
	return 0;
}

/* Does a layer below the upper show name in parent? Then removing it needs a whiteout. */
bool vu_namei_lower_visible(struct vu_fs *fs, struct vu_node *parent, const char *name)
{
	int ptop = atomic_load(&parent->top), pbot = atomic_load(&parent->bottom);

	const struct vu_nameidx *idx;
	const GArray *hits = NULL;
	guint hi = 0;

	if (ptop < 1)
		ptop = fs->has_upper ? 1 : 0;
	idx = vu_nameidx_get(fs, parent, fs->has_upper ? 1 : 0, pbot);
	if (idx)
		hits = vu_nameidx_layers(idx, name);
	while (hits && hi < hits->len && g_array_index(hits, int, hi) < ptop)
		hi++;
	for (int l = ptop; l <= pbot; l++) {
		struct vu_fdref d = VU_FDREF_INIT;
		struct stat st;
		bool found = false, stop = false;

		if (idx) {
			if (!hits || hi >= hits->len)
				break;
			l = g_array_index(hits, int, hi++);
		}
		if (vu_node_fd(fs, parent, l, &d) < 0)
			continue;
		if (fstatat(d.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			stop = true;
			found = !vu_whiteout_is(fs, l, d.fd, d.flags, name, &st);
		} else if (!(d.flags & VU_FD_NOWH) && vu_whiteout_oci_exists(d.fd, name)) {
			stop = true;
		}
		vu_fdref_put(&d);
		if (stop)
			return found;
	}
	return false;
}
