/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Nodes that stand for one upper file. A copy-up while the lower file is held
 * open with passthrough gives the name a new node (vu_node_detach) while the old
 * one lives on for its open files: two kernel inodes, one file, where the kernel
 * overlay has one inode. Such nodes, and every node made later for the same upper
 * inode, are grouped by its st_ino, so what is changed through one is seen
 * through all: the kernel caches no attributes of them, and a change made through
 * the daemon invalidates what it cached for the others (ACLs included).
 */
#include <errno.h>
#include <sys/stat.h>

#include "log.h"
#include "unionfs.h"

/* Tables of key -> GSList of nodes (fs->aliases, fs->ilower): add or drop one node. */
void vu_nodelist_add(GHashTable *t, gpointer key, struct vu_node *node)
{
	g_hash_table_insert(t, key, g_slist_prepend(g_hash_table_lookup(t, key), node));
}

void vu_nodelist_remove(GHashTable *t, gpointer key, struct vu_node *node)
{
	GSList *l = g_slist_remove(g_hash_table_lookup(t, key), node);

	if (l)
		g_hash_table_insert(t, key, l);
	else
		g_hash_table_remove(t, key);
}

void vu_alias_init(struct vu_fs *fs)
{
	fs->aliases = g_hash_table_new(g_direct_hash, g_direct_equal);
}

/* node stands for the upper file of st_ino upper_ino, as others may; nodes_lock held. */
void vu_alias_add_locked(struct vu_fs *fs, struct vu_node *node, ino_t upper_ino)
{
	if (atomic_load(&node->aliased))
		return;
	vu_nodelist_add(fs->aliases, GSIZE_TO_POINTER(upper_ino), node);
	node->link_ino = upper_ino;
	atomic_store(&node->aliased, true);
}

/* A new node of an upper non-directory st: one of a group when the group exists; nodes_lock
 * held. */
void vu_alias_join_locked(struct vu_fs *fs, struct vu_node *node, const struct stat *st)
{
	if (g_hash_table_size(fs->aliases) == 0 ||
	    !g_hash_table_contains(fs->aliases, GSIZE_TO_POINTER(st->st_ino)))
		return;
	vu_alias_add_locked(fs, node, st->st_ino);
}

/* node is about to be freed; nodes_lock held. */
void vu_alias_remove_locked(struct vu_fs *fs, struct vu_node *node)
{
	if (!atomic_load(&node->aliased))
		return;
	vu_nodelist_remove(fs->aliases, GSIZE_TO_POINTER(node->link_ino), node);
	atomic_store(&node->aliased, false);
}

/*
 * Attributes (or xattrs) of node's file changed through node: invalidate what the
 * kernel cached for every other node of the same upper file, its aliases and the
 * node of its hard links. Attributes only (offset -1): no page or inode lock is
 * taken, so this is safe inside a request, as the copy-up's invalidation.
 */
void vu_alias_changed(struct vu_fs *fs, struct vu_node *node)
{
	g_autoptr(GPtrArray) others = NULL;
	struct vu_node *n;

	if (!fs->se)
		return;
	pthread_mutex_lock(&fs->nodes_lock);
	if (g_hash_table_size(fs->aliases) == 0 || !node->link_ino ||
	    !g_hash_table_contains(fs->aliases, GSIZE_TO_POINTER(node->link_ino))) {
		pthread_mutex_unlock(&fs->nodes_lock);
		return;
	}
	others = g_ptr_array_new();
	for (GSList *l = g_hash_table_lookup(fs->aliases, GSIZE_TO_POINTER(node->link_ino)); l;
	     l = l->next)
		if (l->data != node)
			g_ptr_array_add(others, l->data);
	n = g_hash_table_lookup(fs->links, GSIZE_TO_POINTER(node->link_ino));
	if (n && n != node && !atomic_load(&n->aliased))
		g_ptr_array_add(others, n);
	/* Held across the notifications: a node id is its address. */
	for (guint i = 0; i < others->len; i++)
		((struct vu_node *)others->pdata[i])->refs++;
	pthread_mutex_unlock(&fs->nodes_lock);

	for (guint i = 0; i < others->len; i++) {
		int r;

		n = others->pdata[i];
		r = fuse_lowlevel_notify_inval_inode(fs->se, vu_node_ino(fs, n), -1, 0);
		if (r < 0 && r != -ENOENT)
			log_debug_errno(r, "could not invalidate the attributes of an alias");
		vu_node_unref(fs, n);
	}
}

/*
 * How long the kernel may keep node's attributes. Not at all for hard links, which
 * are separate nodes (their link counts change by other names), nor for a node
 * whose file other nodes stand for too: the passthrough writes of one change its
 * size and times without a word to the daemon.
 */
double vu_attr_timeout(struct vu_fs *fs, struct vu_node *node, const struct stat *st)
{
	if ((!S_ISDIR(st->st_mode) && st->st_nlink > 1) || atomic_load(&node->aliased) ||
	    atomic_load(&node->indexed))
		return 0;
	return fs->timeout;
}
