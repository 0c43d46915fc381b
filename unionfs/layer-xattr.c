/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The read-only virtual xattr user.veneer.layer, for people who debug images: which layer
 * the name's object comes from, "upper" or "lower:N:PATH" (N counts the lowerdir= layers
 * from 1, top first, as the kernel numbers them). Stored nowhere, never listed (tools that
 * copy every listed xattr would store it), readable by anyone who may read the name's xattrs.
 */
#include <errno.h>
#include <string.h>
#include <glib.h>

#include "unionfs.h"

char *vu_layer_xattr_value(struct vu_fs *fs, struct vu_node *node)
{
	int top = atomic_load(&node->top);

	if (vu_is_upper(fs, top))
		return g_strdup("upper");
	return g_strdup_printf("lower:%d:%s", fs->has_upper ? top : top + 1, fs->layers[top].path);
}

bool vu_layer_xattr_reply(fuse_req_t req, struct vu_fs *fs, struct vu_node *node, const char *name,
			  size_t size)
{
	g_autofree char *v = NULL;
	size_t n;

	if (strcmp(name, VU_XATTR_LAYER) != 0)
		return false;
	v = vu_layer_xattr_value(fs, node);
	n = strlen(v);
	if (size == 0)
		fuse_reply_xattr(req, n);
	else if (size < n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v, n);
	return true;
}
