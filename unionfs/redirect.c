/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Directory redirects (-o redirect_dir=), in the kernel's on-disk format: a
 * merged directory renamed with redirect_dir=on keeps its lower directories by
 * trusted.overlay.redirect on its upper (its old name when it stays in its
 * directory, else the absolute path its lowers are looked up by). This file owns
 * the option, where a redirected directory's lowers are opened, and the value
 * a rename stores. namei.c follows redirects met in a lookup.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "xattr-util.h"
#include "unionfs.h"

/* The kernel's default redirect_max: a longer redirect makes rename fall back (EXDEV). */
#define VU_REDIRECT_MAX 256

int vu_params_redirect(const char *value, bool metacopy_set, struct vu_params *p)
{
	static const char *const names[] = {
		[VU_REDIRECT_FOLLOW] = "follow",
		[VU_REDIRECT_OFF] = "off",
		[VU_REDIRECT_NOFOLLOW] = "nofollow",
		[VU_REDIRECT_ON] = "on",
	};
	int mode = -1;

	p->redirect_dir = VU_REDIRECT_FOLLOW;
	if (value) {
		for (int i = 0; i < (int)G_N_ELEMENTS(names); i++)
			if (strcmp(value, names[i]) == 0)
				mode = i;
		if (mode < 0) {
			log_error("redirect_dir='%s': expected on, follow, nofollow or off", value);
			return -EINVAL;
		}
		p->redirect_dir = mode;
	}
	/* As the kernel: metacopy needs redirects; it turns them on unless told otherwise. */
	if (p->metacopy && p->redirect_dir != VU_REDIRECT_ON) {
		if (value && metacopy_set) {
			log_error("conflicting options: metacopy=on,redirect_dir=%s", value);
			return -EINVAL;
		}
		if (value)
			p->metacopy = false;
		else
			p->redirect_dir = VU_REDIRECT_ON;
	}
	return 0;
}

/*
 * Redirects met in a lookup are followed but with nofollow. The kernel's off follows
 * them too while its redirect_always_follow parameter is Y, its default.
 */
bool vu_redirect_follows(const struct vu_fs *fs)
{
	return fs->params.redirect_dir != VU_REDIRECT_NOFOLLOW;
}

/*
 * The directory node in layer (below its top): found under the redirect of the
 * lowest of its layers above that has one, as the kernel's lookup continues.
 * 0 when no layer above redirects it (the caller opens it by name), 1 with
 * *ret_fd an O_PATH fd, or -errno.
 */
int vu_redirect_node_open(struct vu_fs *fs, struct vu_node *node, struct vu_node *parent, int layer,
			  int *ret_fd)
{
	g_autofree char *path = NULL, *cur = NULL;
	_cleanup_close_ int owned = -1;
	struct vu_fdref d = VU_FDREF_INIT;
	const char *base;
	int dfd, fd, r;

	*ret_fd = -1;
	for (int k = atomic_load(&node->top); k < layer; k++) {
		char *redirect;
		struct stat st;

		r = vu_node_fd(fs, node, k, &d);
		if (r == -ENOENT || r == -ENOTDIR)
			continue;
		if (r < 0)
			return r;
		r = 0;
		if (fstat(d.fd, &st) == 0 && S_ISDIR(st.st_mode))
			r = vu_mc_redirect_of_fd(d.fd, &redirect);
		else
			redirect = NULL;
		vu_fdref_put(&d);
		if (r < 0)
			return r;
		vu_mc_follow(&path, &cur, redirect);
	}
	if (!path && !cur)
		return 0;
	if (path) {
		dfd = vu_mc_open_dir(fs, layer, path, &base, &owned);
		if (dfd < 0)
			return dfd;
	} else {
		r = vu_node_fd(fs, parent, layer, &d);
		if (r < 0)
			return r;
		dfd = d.fd;
		base = cur;
	}
	fd = openat(dfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	r = fd < 0 ? -errno : 1;
	vu_fdref_put(&d);
	*ret_fd = fd;
	return r;
}

/* The redirect on the upper directory of node, NULL when it has none (or no upper). */
static char *vu_redirect_upper(struct vu_fs *fs, struct vu_node *node)
{
	struct vu_fdref d = VU_FDREF_INIT;
	char *redirect = NULL;

	if (!S_ISDIR(node->type) || atomic_load(&node->top) != 0 || node == fs->root)
		return NULL;
	if (vu_node_fd(fs, node, 0, &d) < 0)
		return NULL;
	if (vu_mc_redirect_of_fd(d.fd, &redirect) < 0)
		redirect = NULL;
	vu_fdref_put(&d);
	return redirect;
}

/*
 * "/a/b" (or "" for the root): the path node's lowers are looked up by, from the
 * layer roots: its name and those of its ancestors, each replaced by the redirect
 * of its upper directory, up to the first absolute one (the kernel's
 * ovl_get_redirect). NULL when node has no name left.
 */
char *vu_redirect_lower_path(struct vu_fs *fs, struct vu_node *node)
{
	g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);
	struct vu_node *n = node, *parent;
	GString *s;

	vu_node_ref(fs, n);
	while (n != fs->root) {
		char *name = NULL, *redirect;

		if (!vu_node_hashed(fs, n)) {
			vu_node_unref(fs, n);
			return NULL;
		}
		parent = vu_node_parent(fs, n, &name);
		redirect = vu_redirect_upper(fs, n);
		vu_node_unref(fs, n);
		n = parent;
		if (redirect) {
			g_free(name);
			name = redirect;
		}
		g_ptr_array_add(parts, name);
		if (name[0] == '/')
			break;
	}
	vu_node_unref(fs, n);
	s = g_string_new(NULL);
	for (guint i = parts->len; i > 0; i--) {
		const char *p = parts->pdata[i - 1];

		if (p[0] != '/')
			g_string_append_c(s, '/');
		g_string_append(s, p);
	}
	return g_string_free(s, false);
}

/*
 * Before a directory with lowers moves (redirect_dir=on), record where its lowers
 * are, as the kernel's ovl_set_redirect: the old name when it stays in its
 * directory, else the absolute path. A redirect already there is kept unless an
 * absolute one is needed and it is relative. Its upper exists (copied up first).
 */
int vu_redirect_set(struct vu_fs *fs, struct vu_node *node, bool samedir)
{
	g_autofree char *old = NULL, *value = NULL;
	struct vu_fdref d = VU_FDREF_INIT;
	int r;

	if (!S_ISDIR(node->type) || fs->params.redirect_dir != VU_REDIRECT_ON ||
	    atomic_load(&node->bottom) == 0)
		return 0;
	old = vu_redirect_upper(fs, node);
	if (old && (samedir || old[0] == '/'))
		return 0;
	if (samedir) {
		struct vu_node *parent = vu_node_parent(fs, node, &value);

		vu_node_unref(fs, parent);
	} else {
		value = vu_redirect_lower_path(fs, node);
	}
	if (!value)
		return -EXDEV;
	if (strlen(value) > VU_REDIRECT_MAX)
		return log_debug_errno(-EXDEV, "redirect '%s' too long", value);
	r = vu_node_fd(fs, node, 0, &d);
	if (r < 0)
		return r;
	r = vc_fsetxattr(d.fd, true, VU_REDIRECT_XATTR, value, strlen(value), 0);
	vu_fdref_put(&d);
	/* As the kernel: a redirect that cannot be stored makes the caller fall back. */
	if (r < 0)
		return log_debug_errno(-EXDEV, "could not set redirect '%s': %s", value,
				       strerror(-r));
	return 0;
}
