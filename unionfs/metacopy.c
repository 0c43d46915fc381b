/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Metadata-only copy-up (-o metacopy=on) in the kernel's on-disk format: a
 * regular file marked trusted.overlay.metacopy holds metadata only; its data is
 * the file found by continuing the lookup in the layers below, under the name
 * its trusted.overlay.redirect gives (a name in the same directory, or a path
 * from the layer root when it starts with '/'). Also: which file serves data.
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
#include "xattr-util.h"
#include "log.h"
#include "unionfs.h"

/* The kernel's struct ovl_metacopy: version, len, flags, pad, then a digest. */
#define VU_MC_MIN_SIZE 4
#define VU_MC_MAX_SIZE (4 + 64)
/* The kernel's default redirect_max: a longer redirect makes rename fall back (EXDEV). */
#define VU_REDIRECT_MAX 256

static void vu_mc_at_path(int dirfd, const char *name, char *buf, size_t len)
{
	char fdp[VC_PROC_FD_PATH_MAX];

	vc_proc_fd_path(dirfd, fdp);
	snprintf(buf, len, "%s/%s", fdp, name);
}

/* Is name (in dirfd, of stat st) metadata only? 1 yes, 0 no, -EIO for a bad marker. */
int vu_mc_check(struct vu_fs *fs, int dirfd, const char *name, const struct stat *st)
{
	char p[VC_PROC_FD_PATH_MAX + NAME_MAX + 2];
	unsigned char buf[VU_MC_MAX_SIZE];
	ssize_t n;

	(void)fs;
	if (!S_ISREG(st->st_mode))
		return 0;
	vu_mc_at_path(dirfd, name, p, sizeof(p));
	n = lgetxattr(p, VU_MC_XATTR, buf, sizeof(buf));
	if (n < 0) {
		if (errno == ENODATA || errno == EOPNOTSUPP)
			return 0;
		return errno == ERANGE ? -EIO : -errno;
	}
	/* Empty: no digest (what the kernel writes without verity). */
	if (n == 0)
		return 1;
	if (n < VU_MC_MIN_SIZE || buf[0] != 0 || buf[1] != n)
		return log_debug_errno(-EIO, "'%s' has a malformed metacopy marker", name);
	return 1;
}

/* Check a redirect value read (n bytes or -errno) and hand it out. */
static int vu_mc_redirect_take(char *buf, ssize_t n, char **ret)
{
	*ret = NULL;
	if (n < 0)
		return n == -ENODATA || n == -EOPNOTSUPP ? 0 : (int)n;
	buf[n] = '\0';
	/* A relative redirect is one name; an absolute one a path from the layer root. */
	if (n == 0 || strlen(buf) != (size_t)n || (buf[0] != '/' && strchr(buf, '/')))
		return log_debug_errno(-EIO, "invalid redirect '%s'", buf);
	*ret = g_strdup(buf);
	return 0;
}

/* trusted.overlay.redirect of name in dirfd; *ret NULL when there is none. */
int vu_mc_redirect_of(int dirfd, const char *name, char **ret)
{
	char p[VC_PROC_FD_PATH_MAX + NAME_MAX + 2];
	char buf[PATH_MAX];
	ssize_t n;

	vu_mc_at_path(dirfd, name, p, sizeof(p));
	n = lgetxattr(p, VU_REDIRECT_XATTR, buf, sizeof(buf) - 1);
	return vu_mc_redirect_take(buf, n < 0 ? -errno : n, ret);
}

/* The same for an object held by an O_PATH fd. */
int vu_mc_redirect_of_fd(int fd, char **ret)
{
	char buf[PATH_MAX];

	return vu_mc_redirect_take(
		buf, vc_fgetxattr(fd, true, VU_REDIRECT_XATTR, buf, sizeof(buf) - 1), ret);
}

/*
 * Apply a redirect to the lookup state: *path is NULL while the lookup is relative
 * (name *cur in the parent's layers), else the path from the layer root.
 */
void vu_mc_follow(char **path, char **cur, char *redirect)
{
	if (!redirect)
		return;
	if (redirect[0] == '/') {
		g_free(*path);
		*path = redirect;
	} else if (*path) {
		char *slash = strrchr(*path, '/');
		char *n = g_strdup_printf("%.*s/%s", (int)(slash - *path), *path, redirect);

		g_free(*path);
		*path = n;
		g_free(redirect);
	} else {
		g_free(*cur);
		*cur = redirect;
	}
}

/* The directory of an absolute lookup path in layer l, and the last name in it. */
int vu_mc_open_dir(struct vu_fs *fs, int l, const char *path, const char **ret_base, int *ret_owned)
{
	const char *slash = strrchr(path, '/');
	g_autofree char *dir = NULL;
	int fd;

	*ret_base = slash + 1;
	*ret_owned = -1;
	if (slash == path)
		return fs->layers[l].fd;
	dir = g_strndup(path + 1, slash - path - 1);
	fd = vc_open_beneath(fs->layers[l].fd, dir, O_PATH | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	*ret_owned = fd;
	return fd;
}

/*
 * The data of the metacopy object name, found in layer top of parent: the kernel's
 * path-based lookup continued below top, following the redirect of every metacopy
 * object met on the way. -EIO when no data file is found (a whiteout, another type,
 * or nothing); -EPERM when the mount has metacopy=off, as the kernel.
 */
int vu_mc_resolve(struct vu_fs *fs, struct vu_node *parent, const char *name, int top, int objfd,
		  struct vu_mcdata *ret)
{
	int ptop = parent ? atomic_load(&parent->top) : 0;
	int pbot = parent ? atomic_load(&parent->bottom) : -1;
	g_autofree char *cur = g_strdup(name), *path = NULL;
	struct vu_fdref d = VU_FDREF_INIT;
	bool first = true;
	char *redirect;
	int r;

	ret->fd = -1;
	/* Not followed at all with metacopy=off: refused, whether its data is there or not. */
	if (!fs->params.metacopy)
		return -EPERM;
	if (objfd >= 0) {
		r = vu_mc_redirect_of_fd(objfd, &redirect);
	} else {
		r = vu_node_fd(fs, parent, top, &d);
		if (r < 0)
			return r;
		r = vu_mc_redirect_of(d.fd, name, &redirect);
		vu_fdref_put(&d);
	}
	if (r < 0)
		return r;
	vu_mc_follow(&path, &cur, redirect);
	/* Without a name in a directory only an absolute redirect leads to the data. */
	if (!parent && !path)
		return -EIO;

	for (int l = top + 1; l < (int)fs->nlayers; l++) {
		_cleanup_close_ int owned = -1;
		const char *base = cur;
		unsigned dflags = 0;
		struct stat st;
		int dfd, mc;

		if (path) {
			dfd = vu_mc_open_dir(fs, l, path, &base, &owned);
			if (dfd < 0)
				continue;
			if (owned >= 0)
				vu_whiteout_dir_opaque(fs, l, dfd, &dflags);
			else
				dflags = fs->layers[l].root_flags;
		} else {
			if (l < ptop)
				continue;
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
		r = 0;
		if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT && errno != ENOTDIR)
				r = -errno;
			else if (vu_whiteout_oci_exists(dfd, base))
				r = -EIO;
			vu_fdref_put(&d);
			if (r < 0)
				return r;
			continue;
		}
		if (vu_whiteout_is(fs, l, dfd, dflags, base, &st) || !S_ISREG(st.st_mode)) {
			vu_fdref_put(&d);
			return -EIO;
		}
		if (first)
			ret->first_nlink = st.st_nlink;
		first = false;
		mc = vu_mc_check(fs, dfd, base, &st);
		if (mc == 0) {
			ret->fd = openat(dfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			r = ret->fd < 0 ? -errno : 0;
			vu_fdref_put(&d);
			if (r == 0 && fstat(ret->fd, &ret->st) < 0)
				r = -errno;
			ret->layer = l;
			return r;
		}
		r = mc < 0 ? mc : vu_mc_redirect_of(dfd, base, &redirect);
		vu_fdref_put(&d);
		if (r < 0)
			return r;
		vu_mc_follow(&path, &cur, redirect);
	}
	return -EIO;
}

/*
 * The data of a metacopy node; the caller closes ret->fd. An unlinked node (still
 * open, or another hard link's node) has no name left to look its data up by: only
 * an absolute redirect, which every hard-linked metacopy file has, finds it.
 */
int vu_mc_node_data(struct vu_fs *fs, struct vu_node *node, struct vu_mcdata *ret)
{
	g_autofree char *name = NULL;
	struct vu_fdref o = VU_FDREF_INIT;
	struct vu_node *parent = NULL;
	int r;

	ret->fd = -1;
	r = vu_node_fd(fs, node, atomic_load(&node->top), &o);
	if (r < 0)
		return r;
	if (vu_node_hashed(fs, node))
		parent = vu_node_parent(fs, node, &name);
	r = vu_mc_resolve(fs, parent, name ? name : "", atomic_load(&node->top), o.fd, ret);
	vu_fdref_put(&o);
	vu_node_unref(fs, parent);
	if (r < 0)
		log_debug_errno(r, "no data found for metacopy file '%s'", name ? name : "");
	return r;
}

/*
 * Before a metacopy upper moves (rename) or gains a name (link), record where its
 * data is looked up, as the kernel does: the old name when it stays in its
 * directory, else the absolute path it is looked up by now. A redirect already
 * there is kept unless an absolute one is needed and it is relative; an absolute
 * one always is, even where its path is gone from the merged view (the data is
 * looked up in the lower layers) and where node is no longer at its name (another
 * hard link's name moves): it is read from the file itself, not by name.
 */
int vu_mc_set_redirect(struct vu_fs *fs, struct vu_node *node, bool samedir)
{
	g_autofree char *name = NULL, *old = NULL, *value = NULL, *ppath = NULL;
	struct vu_fdref o = VU_FDREF_INIT, pd = VU_FDREF_INIT;
	struct vu_node *parent = NULL;
	struct vu_mcdata md;
	bool absolute;
	int r;

	if (!atomic_load(&node->metacopy) || atomic_load(&node->top) != 0)
		return 0;
	r = vu_node_fd(fs, node, 0, &o);
	if (r < 0)
		return r;
	r = vu_mc_redirect_of_fd(o.fd, &old);
	vu_fdref_put(&o);
	if (r < 0 || (old && old[0] == '/'))
		return r;
	/* Only a name it is still at tells where its data is looked up. */
	if (!vu_node_hashed(fs, node))
		return log_debug_errno(-EXDEV, "metacopy file without a name or absolute redirect");
	parent = vu_node_parent(fs, node, &name);
	if (!parent)
		return -ENOENT;
	r = vu_mc_resolve(fs, parent, name, 0, -1, &md);
	vc_close_nointr(md.fd);
	if (r < 0)
		goto out;
	/* Hard-linked lowers: upper links may sit in different directories. */
	absolute = !samedir || md.first_nlink > 1;
	if (old && !absolute)
		goto out;
	r = vu_node_fd(fs, parent, 0, &pd);
	if (r < 0)
		goto out;
	if (!absolute) {
		value = g_strdup(name);
	} else {
		ppath = vu_redirect_lower_path(fs, parent);
		if (!ppath) {
			r = -EXDEV;
			goto out;
		}
		value = g_strdup_printf("%s/%s", ppath, old ? old : name);
	}
	if (strlen(value) > VU_REDIRECT_MAX) {
		r = -EXDEV;
		goto out;
	}
	{
		char p[VC_PROC_FD_PATH_MAX + NAME_MAX + 2];

		vu_mc_at_path(pd.fd, name, p, sizeof(p));
		r = lsetxattr(p, VU_REDIRECT_XATTR, value, strlen(value), 0) < 0 ? -errno : 0;
	}
	/* As the kernel: a redirect that cannot be stored makes the caller fall back. */
	if (r < 0)
		r = log_debug_errno(-EXDEV, "could not set the redirect of '%s'", name);
out:
	vu_fdref_put(&pd);
	vu_node_unref(fs, parent);
	return r;
}
