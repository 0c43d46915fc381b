/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Extended attributes through the mount: reads from the layer holding the
 * object, changes after a copy-up; overlay-private names (trusted.overlay.*,
 * user.overlay.*) are never shown and cannot be set. Layer objects are held as
 * O_PATH fds, reached by the (following) *xattr calls on /proc/self/fd/N.
 */
#include <errno.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fd-util.h"
#include "xattr-util.h"
#include "log.h"
#include "unionfs.h"

#define VU_TRUSTED_OVL "trusted.overlay."
#define VU_ESCAPED_OVL "trusted.overlay.overlay."

bool vu_xattr_is_private(const char *name)
{
	return g_str_has_prefix(name, VU_TRUSTED_OVL) || g_str_has_prefix(name, "user.overlay.");
}

/*
 * The kernel's escaping: "trusted.overlay.X" set through the mount is stored as
 * "trusted.overlay.overlay.X", so nested overlays can keep their own markers.
 */
static bool vu_xattr_is_escaped(const char *real)
{
	return g_str_has_prefix(real, VU_ESCAPED_OVL);
}

static char *vu_xattr_real_name(const char *name)
{
	if (g_str_has_prefix(name, VU_TRUSTED_OVL))
		return g_strconcat(VU_ESCAPED_OVL, name + strlen(VU_TRUSTED_OVL), NULL);
	if (vu_xattr_is_private(name))
		return NULL;
	return g_strdup(name);
}

/*
 * What a copy-up must not lose, or it would change who may do what (the kernel's
 * ovl_must_copy_xattr): where the upper cannot store it, the copy-up fails.
 */
static bool vu_xattr_must_copy(const char *name)
{
	return vu_acl_is_name(name) || g_str_has_prefix(name, "security.");
}

int vu_xattr_copy(int srcfd, int dstfd)
{
	g_autofree char *names = NULL;
	size_t len;
	int r = vc_flistxattr_alloc(srcfd, true, &names, &len);

	if (r == -EOPNOTSUPP || r == -ENOTSUP)
		return 0;
	if (r < 0)
		return r;
	for (char *n = names; n < names + len; n += strlen(n) + 1) {
		g_autofree char *v = NULL;
		size_t vl;

		if (vu_xattr_is_private(n) && !vu_xattr_is_escaped(n))
			continue;
		r = vc_fgetxattr_alloc(srcfd, true, n, &v, &vl);
		if (r == -ENODATA)
			continue;
		if (r < 0)
			return r;
		r = vc_fsetxattr(dstfd, true, n, v, vl, 0);
		/* Other names the upper cannot store (e.g. user.* on a symlink) are dropped, as
		 * the kernel does. */
		if (r < 0 && (vu_xattr_must_copy(n) || (r != -EOPNOTSUPP && r != -EPERM)))
			return r;
	}
	return 0;
}

void vu_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_node *node = vu_node_of(fs, ino);
	struct vu_fdref d = VU_FDREF_INIT;
	g_autofree char *buf = NULL;
	g_autofree char *real = vu_xattr_real_name(name);
	ssize_t n;
	int r;

	if (vu_layer_xattr_reply(req, fs, node, name, size))
		return;
	if (node == fs->root && strcmp(name, VU_XATTR_STATS) == 0) {
		/* Not stored anywhere, not listed: the node budget's counters, for diagnosis. */
		g_autofree char *stats = vu_evict_stats(fs);

		n = strlen(stats);
		if (size == 0)
			fuse_reply_xattr(req, n);
		else if (size < (size_t)n)
			fuse_reply_err(req, ERANGE);
		else
			fuse_reply_buf(req, stats, n);
		return;
	}
	if (!real || vu_ids_xattr_hidden(fs, name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	r = vu_acl_check_name(fs, name);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	name = real;
	r = vu_node_fd(fs, node, atomic_load(&node->top), &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (size == 0) {
		n = vc_fgetxattr(d.fd, true, name, NULL, 0);
		vu_fdref_put(&d);
		if (n < 0)
			fuse_reply_err(req, -vu_acl_fix_get(name, n));
		else
			fuse_reply_xattr(req, n);
		return;
	}
	buf = g_malloc(size);
	n = vc_fgetxattr(d.fd, true, name, buf, size);
	vu_fdref_put(&d);
	if (n >= 0 && vu_acl_is_name(name)) {
		r = vu_ids_acl_map(fs, buf, n, false);
		if (r < 0)
			n = r;
	}
	if (n < 0)
		fuse_reply_err(req, -vu_acl_fix_get(name, n));
	else
		fuse_reply_buf(req, buf, n);
}

void vu_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_node *node = vu_node_of(fs, ino);
	struct vu_fdref d = VU_FDREF_INIT;
	g_autofree char *names = NULL;
	g_autoptr(GString) out = g_string_new(NULL);
	size_t len;
	int r;

	r = vu_node_fd(fs, node, atomic_load(&node->top), &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	r = vc_flistxattr_alloc(d.fd, true, &names, &len);
	vu_fdref_put(&d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	for (char *n = names; n < names + len; n += strlen(n) + 1) {
		if (vu_xattr_is_escaped(n)) {
			g_string_append(out, VU_TRUSTED_OVL);
			g_string_append_len(out, n + strlen(VU_ESCAPED_OVL),
					    strlen(n) - strlen(VU_ESCAPED_OVL) + 1);
		} else if (!vu_xattr_is_private(n) && vu_acl_check_name(fs, n) == 0 &&
			   !vu_ids_xattr_hidden(fs, n)) {
			g_string_append_len(out, n, strlen(n) + 1);
		}
	}
	if (size == 0)
		fuse_reply_xattr(req, out->len);
	else if (size < out->len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, out->str, out->len);
}

static int vu_xattr_change(struct vu_fs *fs, struct vu_node *node, const char *name,
			   const char *value, size_t size, int flags, bool remove)
{
	struct vu_fdref d = VU_FDREF_INIT;
	g_autofree char *real = vu_xattr_real_name(name);
	g_autofree char *stored = NULL;
	ssize_t n;
	int r;

	/* The mount's own: the virtual layer name and the owner override (idmap.c). */
	if (!real || strcmp(name, VU_XATTR_LAYER) == 0 || vu_ids_xattr_hidden(fs, name))
		return -EPERM;
	r = vu_acl_check_name(fs, name);
	if (r < 0)
		return r;
	name = real;
	if (!fs->has_upper)
		return -EROFS;
	if (!remove && vu_acl_is_name(name)) {
		/* Stored with the layer's ids (idmap.c); refused before anything is copied up. */
		stored = g_memdup2(value, size);
		r = vu_ids_acl_map(fs, stored, size, true);
		if (r < 0)
			return r;
		value = stored;
	}
	if ((remove || vu_acl_is_name(name)) && atomic_load(&node->top) != 0) {
		/*
		 * Removing what is not there changes nothing: no copy-up, as on the kernel,
		 * which also refuses any ACL change where the object's layer has no ACLs.
		 */
		r = vu_node_fd(fs, node, atomic_load(&node->top), &d);
		if (r < 0)
			return r;
		n = vc_fgetxattr(d.fd, true, name, NULL, 0);
		vu_fdref_put(&d);
		if (n == -EOPNOTSUPP && vu_acl_is_name(name))
			return -EOPNOTSUPP;
		if (n < 0 && remove)
			return n;
	}
	r = vu_copy_up_meta(fs, node);
	if (r < 0)
		return r;
	r = vu_node_fd(fs, node, 0, &d);
	if (r < 0)
		return r;
	if (remove)
		r = vc_fremovexattr(d.fd, true, name);
	else
		r = vc_fsetxattr(d.fd, true, name, value, size, flags);
	vu_fdref_put(&d);
	/* The ctime (and an ACL) changed for every node of the file. */
	if (r == 0)
		vu_alias_changed(fs, node);
	return r;
}

void vu_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		    size_t size, int flags)
{
	struct vu_fs *fs = vu_fs_of(req);
	struct vu_node *node = vu_node_of(fs, ino);
	int r;

	r = vu_xattr_change(fs, node, name, value, size, flags, false);
	if (r == 0 && fs->acl && strcmp(name, VU_ACL_ACCESS) == 0)
		r = vu_acl_kill_sgid(req, fs, node);
	fuse_reply_err(req, -r);
}

void vu_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct vu_fs *fs = vu_fs_of(req);

	fuse_reply_err(req, -vu_xattr_change(fs, vu_node_of(fs, ino), name, NULL, 0, 0, true));
}
