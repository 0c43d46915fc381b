/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The node table and the bounded fd cache. A node is one name of the merged
 * tree, keyed by (parent node, name) -- never by the underlying (dev, ino),
 * which copy-up changes. Layer fds are cached per (node, layer) in an LRU of
 * bounded size; an evicted fd is reopened from the parent's fd and the name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "unionfs.h"

static guint vu_node_hash(gconstpointer p)
{
	const struct vu_node *n = p;

	return g_str_hash(n->name) ^ g_direct_hash(n->parent);
}

static gboolean vu_node_equal(gconstpointer a, gconstpointer b)
{
	const struct vu_node *x = a, *y = b;

	return x->parent == y->parent && strcmp(x->name, y->name) == 0;
}

static guint vu_fdent_hash(gconstpointer p)
{
	const struct vu_fdent *e = p;

	return g_direct_hash(e->node) ^ ((guint)e->layer * 2654435761u);
}

static gboolean vu_fdent_equal(gconstpointer a, gconstpointer b)
{
	const struct vu_fdent *x = a, *y = b;

	return x->node == y->node && x->layer == y->layer;
}

static struct vu_node *vu_node_alloc(const char *name)
{
	size_t len = strlen(name) + 1;
	struct vu_node *n = g_malloc0(sizeof(*n) + len);

	memcpy(n->inl, name, len);
	n->inl_size = len;
	n->name = n->inl;
	n->pinned_fd = -1;
	return n;
}

/* nodes_lock held (or the node not yet shared). */
static void vu_node_set_name(struct vu_node *n, const char *name)
{
	size_t len = strlen(name) + 1;

	if (n->name != n->inl)
		g_free(n->name);
	if (len <= n->inl_size) {
		memmove(n->inl, name, len);
		n->name = n->inl;
	} else {
		n->name = g_strdup(name);
	}
}

static pthread_mutex_t *vu_node_lock_of(struct vu_fs *fs, struct vu_node *node)
{
	return &fs->node_locks[((uintptr_t)node >> 4) * 2654435761u % VU_NODE_LOCKS];
}

void vu_node_lock(struct vu_fs *fs, struct vu_node *node)
{
	pthread_mutex_lock(vu_node_lock_of(fs, node));
}

void vu_node_unlock(struct vu_fs *fs, struct vu_node *node)
{
	pthread_mutex_unlock(vu_node_lock_of(fs, node));
}

/* Both nodes' locks (b may be NULL), in address order; one stripe is taken once. */
void vu_node_lock2(struct vu_fs *fs, struct vu_node *a, struct vu_node *b)
{
	pthread_mutex_t *x = vu_node_lock_of(fs, a), *y = b ? vu_node_lock_of(fs, b) : x;

	if (x == y) {
		pthread_mutex_lock(x);
	} else {
		pthread_mutex_lock(x < y ? x : y);
		pthread_mutex_lock(x < y ? y : x);
	}
}

void vu_node_unlock2(struct vu_fs *fs, struct vu_node *a, struct vu_node *b)
{
	pthread_mutex_t *x = vu_node_lock_of(fs, a), *y = b ? vu_node_lock_of(fs, b) : x;

	pthread_mutex_unlock(x);
	if (y != x)
		pthread_mutex_unlock(y);
}

struct vu_node *vu_node_new_root(struct vu_fs *fs)
{
	struct vu_node *root = vu_node_alloc("/");
	struct stat st;

	pthread_mutex_init(&fs->nodes_lock, NULL);
	pthread_mutex_init(&fs->fdcache_lock, NULL);
	for (size_t i = 0; i < VU_NODE_LOCKS; i++)
		pthread_mutex_init(&fs->node_locks[i], NULL);
	fs->names = g_hash_table_new(vu_node_hash, vu_node_equal);
	fs->unhashed = g_hash_table_new(g_direct_hash, g_direct_equal);
	fs->fdcache = g_hash_table_new(vu_fdent_hash, vu_fdent_equal);
	g_queue_init(&fs->lru);
	fs->links = g_hash_table_new(g_direct_hash, g_direct_equal);
	vu_alias_init(fs);
	vu_evict_init(fs);

	root->type = S_IFDIR;
	root->refs = 1;
	root->nlookup = 1;
	atomic_store(&root->top, 0);
	atomic_store(&root->bottom, (int)fs->nlayers - 1);
	/* The root reports the top layer's own inode, as the kernel does. */
	if (fstat(fs->layers[0].fd, &st) == 0)
		atomic_store(&root->ino, vu_xino_map(fs, st.st_dev, st.st_ino));
	else
		atomic_store(&root->ino, 1);
	return root;
}

struct vu_node *vu_node_of(struct vu_fs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return fs->root;
	return (struct vu_node *)(uintptr_t)ino;
}

fuse_ino_t vu_node_ino(struct vu_fs *fs, struct vu_node *node)
{
	if (node == fs->root)
		return FUSE_ROOT_ID;
	return (fuse_ino_t)(uintptr_t)node;
}

/* Drop every cached fd of node; fdcache_lock held. */
static void vu_node_drop_fds_locked(struct vu_fs *fs, struct vu_node *node)
{
	for (GSList *l = node->fdents; l; l = l->next) {
		struct vu_fdent *e = l->data;

		g_hash_table_remove(fs->fdcache, e);
		g_queue_unlink(&fs->lru, &e->link);
		if (e->users > 0) {
			e->dead = true;
		} else {
			close(e->fd);
			g_free(e);
		}
	}
	g_slist_free(node->fdents);
	node->fdents = NULL;
}

static void vu_node_free_locked(struct vu_fs *fs, struct vu_node *node)
{
	vu_evict_removed(fs, node);
	if (node->hashed)
		g_hash_table_remove(fs->names, node);
	else
		g_hash_table_remove(fs->unhashed, node);
	if (node->link_ino &&
	    g_hash_table_lookup(fs->links, GSIZE_TO_POINTER(node->link_ino)) == node)
		g_hash_table_remove(fs->links, GSIZE_TO_POINTER(node->link_ino));
	pthread_mutex_lock(&fs->fdcache_lock);
	vu_node_drop_fds_locked(fs, node);
	pthread_mutex_unlock(&fs->fdcache_lock);
	vu_alias_remove_locked(fs, node);
	vu_index_node_freed_locked(fs, node);
	vc_close_nointr(node->pinned_fd);
	vu_nameidx_free(atomic_load(&node->nameidx));
	if (node->name != node->inl)
		g_free(node->name);
	g_free(node);
}

/* Free node and then its ancestors while nothing references them; nodes_lock held. */
static void vu_node_release_locked(struct vu_fs *fs, struct vu_node *node)
{
	while (node && node != fs->root && node->refs == 0 && node->nlookup == 0) {
		struct vu_node *parent = node->parent;

		vu_node_free_locked(fs, node);
		node = parent;
		if (node)
			node->refs--;
	}
}

struct vu_node *vu_node_find(struct vu_fs *fs, struct vu_node *parent, const char *name)
{
	struct vu_node key = {.parent = parent, .name = (char *)name};
	struct vu_node *n;

	pthread_mutex_lock(&fs->nodes_lock);
	n = g_hash_table_lookup(fs->names, &key);
	if (n)
		n->refs++;
	pthread_mutex_unlock(&fs->nodes_lock);
	return n;
}

/* Move node from fs->names to fs->unhashed; nodes_lock held. */
static void vu_node_unhash_locked(struct vu_fs *fs, struct vu_node *node)
{
	if (!node->hashed)
		return;
	g_hash_table_remove(fs->names, node);
	g_hash_table_add(fs->unhashed, node);
	node->hashed = false;
}

struct vu_node *vu_node_get(struct vu_fs *fs, struct vu_node *parent, const char *name,
			    const struct vu_found *f, bool count_lookup)
{
	struct vu_node key = {.parent = parent, .name = (char *)name};
	struct vu_node *n;

	pthread_mutex_lock(&fs->nodes_lock);
	n = g_hash_table_lookup(fs->names, &key);
	if (n && (n->type != (f->st.st_mode & S_IFMT))) {
		/* The object changed type behind our back: the old node is stale. */
		vu_node_unhash_locked(fs, n);
		n->gen++;
		n = NULL;
	}
	/* Another name of its file was copied up into the index meanwhile (index.c). */
	if (n && f->via_index && atomic_load(&n->top) != 0) {
		atomic_store(&n->bottom, f->bottom);
		atomic_store(&n->indexed, true);
		atomic_store(&n->via_index, true);
		atomic_store(&n->metacopy, f->metacopy);
		atomic_store(&n->top, 0);
	}
	/*
	 * Another name of a hard-linked upper file: the kernel must see one inode (one page
	 * cache), as overlayfs gives. The node keeps its own name; while it lives, so does
	 * the inode, so its number cannot have been reused.
	 */
	if (!n && vu_is_upper(fs, f->top) && !S_ISDIR(f->st.st_mode) && !f->via_index &&
	    g_hash_table_size(fs->links) > 0) {
		n = g_hash_table_lookup(fs->links, GSIZE_TO_POINTER(f->st.st_ino));
		if (n && n->type != (f->st.st_mode & S_IFMT))
			n = NULL;
		if (n)
			goto found;
	}
	if (!n) {
		n = vu_node_alloc(name);
		n->parent = parent;
		parent->refs++;
		n->type = f->st.st_mode & S_IFMT;
		atomic_store(&n->ino, f->ino);
		atomic_store(&n->top, f->top);
		atomic_store(&n->bottom, f->bottom);
		atomic_store(&n->opaque_lower, f->lower_exists);
		atomic_store(&n->metacopy, f->metacopy);
		atomic_store(&n->indexed, f->indexed);
		atomic_store(&n->via_index, f->via_index);
		n->hashed = true;
		g_hash_table_add(fs->names, n);
		vu_evict_added(fs, n);
		if (vu_is_upper(fs, f->top) && !S_ISDIR(f->st.st_mode) && f->st.st_nlink > 1 &&
		    !f->via_index &&
		    !g_hash_table_contains(fs->links, GSIZE_TO_POINTER(f->st.st_ino))) {
			n->link_ino = f->st.st_ino;
			g_hash_table_insert(fs->links, GSIZE_TO_POINTER(n->link_ino), n);
		}
		if (vu_is_upper(fs, f->top) && !S_ISDIR(f->st.st_mode))
			vu_alias_join_locked(fs, n, &f->st);
		vu_index_node_added_locked(fs, n, &f->st);
	}
found:
	if (count_lookup) {
		n->nlookup++;
		vu_evict_touch(fs, n);
	} else
		n->refs++;
	pthread_mutex_unlock(&fs->nodes_lock);
	return n;
}

void vu_node_lookup_inc(struct vu_fs *fs, struct vu_node *node)
{
	pthread_mutex_lock(&fs->nodes_lock);
	node->nlookup++;
	pthread_mutex_unlock(&fs->nodes_lock);
}

void vu_node_add_link(struct vu_fs *fs, struct vu_node *node, ino_t upper_ino)
{
	pthread_mutex_lock(&fs->nodes_lock);
	if ((!node->link_ino || node->link_ino == upper_ino) &&
	    !g_hash_table_contains(fs->links, GSIZE_TO_POINTER(upper_ino))) {
		node->link_ino = upper_ino;
		g_hash_table_insert(fs->links, GSIZE_TO_POINTER(upper_ino), node);
	}
	pthread_mutex_unlock(&fs->nodes_lock);
}

/* Is node the one hashed under (parent, name), or only another hard link's node? */
bool vu_node_is_at(struct vu_fs *fs, struct vu_node *node, struct vu_node *parent, const char *name)
{
	bool at;

	pthread_mutex_lock(&fs->nodes_lock);
	at = node->hashed && node->parent == parent && strcmp(node->name, name) == 0;
	pthread_mutex_unlock(&fs->nodes_lock);
	return at;
}

void vu_node_ref(struct vu_fs *fs, struct vu_node *node)
{
	pthread_mutex_lock(&fs->nodes_lock);
	node->refs++;
	pthread_mutex_unlock(&fs->nodes_lock);
}

void vu_node_unref(struct vu_fs *fs, struct vu_node *node)
{
	if (!node)
		return;
	pthread_mutex_lock(&fs->nodes_lock);
	node->refs--;
	vu_node_release_locked(fs, node);
	pthread_mutex_unlock(&fs->nodes_lock);
}

void vu_node_forget(struct vu_fs *fs, struct vu_node *node, uint64_t n)
{
	if (node == fs->root)
		return;
	pthread_mutex_lock(&fs->nodes_lock);
	node->nlookup = node->nlookup > n ? node->nlookup - n : 0;
	vu_node_release_locked(fs, node);
	pthread_mutex_unlock(&fs->nodes_lock);
}

struct vu_node *vu_node_parent(struct vu_fs *fs, struct vu_node *node, char **ret_name)
{
	struct vu_node *p;

	pthread_mutex_lock(&fs->nodes_lock);
	p = node->parent;
	if (p)
		p->refs++;
	if (ret_name)
		*ret_name = g_strdup(node->name);
	pthread_mutex_unlock(&fs->nodes_lock);
	return p;
}

bool vu_node_hashed(struct vu_fs *fs, struct vu_node *node)
{
	bool h;

	pthread_mutex_lock(&fs->nodes_lock);
	h = node->hashed;
	pthread_mutex_unlock(&fs->nodes_lock);
	return h;
}

void vu_node_unhash(struct vu_fs *fs, struct vu_node *node)
{
	pthread_mutex_lock(&fs->nodes_lock);
	vu_node_unhash_locked(fs, node);
	node->gen++;
	pthread_mutex_unlock(&fs->nodes_lock);
}

/*
 * Take node off its name for good, keeping its object reachable through a pinned
 * fd like an unlinked node's: the files the kernel has open on it stay valid, and
 * the next lookup of the name makes a new node (a new kernel inode) for the same
 * object, an alias of this one (alias.c). Its FORGETs still come; it goes when they
 * and its handles are gone.
 */
int vu_node_detach(struct vu_fs *fs, struct vu_node *node)
{
	struct vu_fdref d = VU_FDREF_INIT;
	struct stat st = {.st_ino = 0};
	int fd, r;

	if (node == fs->root)
		return -EINVAL;
	/* Serialised with a copy-up, which would otherwise rename the object under us. */
	vu_node_lock(fs, node);
	r = vu_node_fd(fs, node, atomic_load(&node->top), &d);
	if (r < 0) {
		vu_node_unlock(fs, node);
		return r;
	}
	fd = fcntl(d.fd, F_DUPFD_CLOEXEC, 3);
	r = fd < 0 ? -errno : 0;
	if (r == 0 && vu_is_upper(fs, atomic_load(&node->top)) && fstat(fd, &st) < 0)
		r = -errno;
	vu_fdref_put(&d);
	if (r < 0) {
		vc_close_nointr(fd);
		vu_node_unlock(fs, node);
		return r;
	}
	pthread_mutex_lock(&fs->nodes_lock);
	if (node->hashed && node->pinned_fd < 0) {
		node->pinned_fd = fd;
		fd = -1;
	}
	vu_node_unhash_locked(fs, node);
	/* Another name of a hard link must find the new node, not this one. */
	if (node->link_ino &&
	    g_hash_table_lookup(fs->links, GSIZE_TO_POINTER(node->link_ino)) == node)
		g_hash_table_remove(fs->links, GSIZE_TO_POINTER(node->link_ino));
	node->link_ino = 0;
	if (st.st_ino)
		vu_alias_add_locked(fs, node, st.st_ino);
	node->gen++;
	pthread_mutex_unlock(&fs->nodes_lock);
	vu_node_unlock(fs, node);
	vc_close_nointr(fd);
	/* What the kernel cached for it, for as long as the timeout, goes: from now on it
	 * caches no attributes of an aliased node (vu_attr_timeout). */
	if (st.st_ino && fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, vu_node_ino(fs, node), -1, 0);
	return 0;
}

/* Undo vu_node_unhash after a failed removal, unless the name was taken meanwhile. */
void vu_node_rehash(struct vu_fs *fs, struct vu_node *node)
{
	pthread_mutex_lock(&fs->nodes_lock);
	if (!node->hashed && !g_hash_table_contains(fs->names, node)) {
		g_hash_table_remove(fs->unhashed, node);
		g_hash_table_add(fs->names, node);
		node->hashed = true;
	}
	node->gen++;
	pthread_mutex_unlock(&fs->nodes_lock);
}

/* Rename node to (newparent, newname); whatever node held that name must be unhashed first. */
void vu_node_move(struct vu_fs *fs, struct vu_node *node, struct vu_node *newparent,
		  const char *newname)
{
	struct vu_node *old;

	pthread_mutex_lock(&fs->nodes_lock);
	if (node->hashed)
		g_hash_table_remove(fs->names, node);
	else
		g_hash_table_remove(fs->unhashed, node);
	old = node->parent;
	node->gen++;
	newparent->refs++;
	node->parent = newparent;
	vu_node_set_name(node, newname);
	if (!g_hash_table_contains(fs->names, node)) {
		g_hash_table_add(fs->names, node);
		node->hashed = true;
	} else {
		g_hash_table_add(fs->unhashed, node);
		node->hashed = false;
	}
	old->refs--;
	vu_node_release_locked(fs, old);
	pthread_mutex_unlock(&fs->nodes_lock);
}

void vu_node_exchange(struct vu_fs *fs, struct vu_node *a, struct vu_node *b)
{
	g_autofree char *aname = NULL, *bname = NULL;
	struct vu_node *p;

	pthread_mutex_lock(&fs->nodes_lock);
	if (a->hashed)
		g_hash_table_remove(fs->names, a);
	else
		g_hash_table_remove(fs->unhashed, a);
	if (b->hashed)
		g_hash_table_remove(fs->names, b);
	else
		g_hash_table_remove(fs->unhashed, b);
	p = a->parent;
	a->parent = b->parent;
	b->parent = p;
	aname = g_strdup(a->name);
	bname = g_strdup(b->name);
	vu_node_set_name(a, bname);
	vu_node_set_name(b, aname);
	g_hash_table_add(fs->names, a);
	g_hash_table_add(fs->names, b);
	a->hashed = b->hashed = true;
	a->gen++;
	b->gen++;
	pthread_mutex_unlock(&fs->nodes_lock);
}

/* Evict least recently used, unused entries above the bound; fdcache_lock held. */
static void vu_fdcache_trim_locked(struct vu_fs *fs)
{
	GList *l = fs->lru.tail;

	while (g_hash_table_size(fs->fdcache) > fs->fdcache_max && l) {
		struct vu_fdent *e = l->data;
		GList *prev = l->prev;

		if (e->users == 0) {
			g_hash_table_remove(fs->fdcache, e);
			g_queue_unlink(&fs->lru, &e->link);
			e->node->fdents = g_slist_remove(e->node->fdents, e);
			close(e->fd);
			g_free(e);
		}
		l = prev;
	}
}

static void vu_fdref_fill(struct vu_fs *fs, struct vu_fdent *e, struct vu_fdref *ret)
{
	ret->fs = fs;
	ret->ent = e;
	ret->fd = e->fd;
	ret->flags = e->flags;
}

int vu_node_fd(struct vu_fs *fs, struct vu_node *node, int layer, struct vu_fdref *ret)
{
	struct vu_fdent key = {.node = node, .layer = layer};
	g_autofree char *name = NULL;
	struct vu_fdref pref = VU_FDREF_INIT;
	struct vu_node *parent;
	struct vu_fdent *e;
	unsigned flags = 0, gen;
	bool stale;
	int fd = -1, r;

	*ret = (struct vu_fdref)VU_FDREF_INIT;
	ret->fs = fs;
	if (layer < 0 || layer >= (int)fs->nlayers)
		return -ENOENT;
	if (node == fs->root) {
		ret->fd = fs->layers[layer].fd;
		ret->flags = atomic_load(&fs->layers[layer].root_flags);
		return 0;
	}

	pthread_mutex_lock(&fs->fdcache_lock);
	e = g_hash_table_lookup(fs->fdcache, &key);
	if (e) {
		e->users++;
		g_queue_unlink(&fs->lru, &e->link);
		g_queue_push_head_link(&fs->lru, &e->link);
		vu_fdref_fill(fs, e, ret);
		pthread_mutex_unlock(&fs->fdcache_lock);
		return 0;
	}
	pthread_mutex_unlock(&fs->fdcache_lock);

retry:
	pthread_mutex_lock(&fs->nodes_lock);
	if (!node->hashed) {
		/* Unlinked: only the fd pinned at unlink time still reaches the object. */
		int pinned = node->pinned_fd;

		pthread_mutex_unlock(&fs->nodes_lock);
		if (pinned < 0 || layer != atomic_load(&node->top))
			return -ENOENT;
		ret->fd = pinned;
		return 0;
	}
	parent = node->parent;
	parent->refs++;
	g_free(name);
	name = g_strdup(node->name);
	gen = node->gen;
	pthread_mutex_unlock(&fs->nodes_lock);

	/* A directory below a layer that redirects it is found where the redirect says. */
	r = 0;
	if (S_ISDIR(node->type) && layer > atomic_load(&node->top) && vu_redirect_follows(fs))
		r = vu_redirect_node_open(fs, node, parent, layer, &fd);
	/* A name served from the index, not linked in the upper yet (index.c). */
	if (r == 0 && layer == 0 && atomic_load(&node->via_index)) {
		r = vu_index_open(fs, node, &fd);
		if (r == 0)
			r = 1;
	}
	if (r == 0) {
		r = vu_node_fd(fs, parent, layer, &pref);
		if (r < 0) {
			vu_node_unref(fs, parent);
			return r;
		}
		fd = openat(pref.fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		r = fd < 0 ? -errno : 0;
		vu_fdref_put(&pref);
	} else if (r > 0) {
		r = 0;
	}
	vu_node_unref(fs, parent);
	/* Renamed or unlinked while we opened by name: what we got may be something else. */
	pthread_mutex_lock(&fs->nodes_lock);
	stale = node->gen != gen;
	pthread_mutex_unlock(&fs->nodes_lock);
	if (stale) {
		if (fd >= 0)
			close(fd);
		goto retry;
	}
	if (r < 0)
		return r;
	if (S_ISDIR(node->type) && !vu_is_upper(fs, layer)) {
		r = vu_whiteout_dir_opaque(fs, layer, fd, &flags);
		(void)r;
	}

	pthread_mutex_lock(&fs->fdcache_lock);
	e = g_hash_table_lookup(fs->fdcache, &key);
	if (e) {
		/* Another thread opened it meanwhile: use theirs. */
		close(fd);
	} else {
		e = g_new0(struct vu_fdent, 1);
		e->node = node;
		e->layer = layer;
		e->fd = fd;
		e->flags = flags;
		e->link.data = e;
		g_hash_table_add(fs->fdcache, e);
		node->fdents = g_slist_prepend(node->fdents, e);
		g_queue_push_head_link(&fs->lru, &e->link);
	}
	e->users++;
	vu_fdref_fill(fs, e, ret);
	vu_fdcache_trim_locked(fs);
	pthread_mutex_unlock(&fs->fdcache_lock);
	return 0;
}

void vu_fdref_put(struct vu_fdref *ref)
{
	struct vu_fdent *e = ref->ent;

	if (e) {
		struct vu_fs *fs = ref->fs;

		pthread_mutex_lock(&fs->fdcache_lock);
		e->users--;
		if (e->users == 0 && e->dead) {
			close(e->fd);
			g_free(e);
		}
		pthread_mutex_unlock(&fs->fdcache_lock);
	}
	ref->ent = NULL;
	ref->fd = -1;
}

/* Add flags (VU_FD_NOWH) to what the borrowed fd of layer says from now on. */
void vu_fdref_set_flags(struct vu_fdref *ref, int layer, unsigned flags)
{
	struct vu_fs *fs = ref->fs;

	if (!ref->ent) {
		/* A layer root (pinned fds of unlinked nodes are never directories). */
		if (fs && ref->fd >= 0 && layer >= 0 && layer < (int)fs->nlayers &&
		    ref->fd == fs->layers[layer].fd)
			atomic_fetch_or(&fs->layers[layer].root_flags, flags);
		return;
	}
	pthread_mutex_lock(&fs->fdcache_lock);
	if (!ref->ent->dead)
		ref->ent->flags |= flags;
	pthread_mutex_unlock(&fs->fdcache_lock);
	ref->flags |= flags;
}

/* Take flags away from node's cached fd in layer (a reopened fd starts without NOWH). */
void vu_node_fd_clear_flags(struct vu_fs *fs, struct vu_node *node, int layer, unsigned flags)
{
	struct vu_fdent key = {.node = node, .layer = layer};
	struct vu_fdent *e;

	if (node == fs->root) {
		atomic_fetch_and(&fs->layers[layer].root_flags, ~flags);
		return;
	}
	pthread_mutex_lock(&fs->fdcache_lock);
	e = g_hash_table_lookup(fs->fdcache, &key);
	if (e)
		e->flags &= ~flags;
	pthread_mutex_unlock(&fs->fdcache_lock);
}

void vu_node_fd_forget(struct vu_fs *fs, struct vu_node *node, int layer)
{
	struct vu_fdent key = {.node = node, .layer = layer};
	struct vu_fdent *e;

	pthread_mutex_lock(&fs->fdcache_lock);
	e = g_hash_table_lookup(fs->fdcache, &key);
	if (e) {
		g_hash_table_remove(fs->fdcache, e);
		g_queue_unlink(&fs->lru, &e->link);
		node->fdents = g_slist_remove(node->fdents, e);
		if (e->users > 0) {
			e->dead = true;
		} else {
			close(e->fd);
			g_free(e);
		}
	}
	pthread_mutex_unlock(&fs->fdcache_lock);
}

void vu_nodes_teardown(struct vu_fs *fs)
{
	g_autofree gpointer *all = NULL;
	guint n;

	if (!fs->names)
		return;
	/* After unmount nothing references nodes any more, whatever the kernel forgot to forget. */
	for (GHashTable *t = fs->names; t; t = t == fs->names ? fs->unhashed : NULL) {
		g_free(all);
		all = g_hash_table_get_keys_as_array(t, &n);
		for (guint i = 0; i < n; i++)
			vu_node_free_locked(fs, all[i]);
	}
	pthread_mutex_lock(&fs->fdcache_lock);
	vu_node_drop_fds_locked(fs, fs->root);
	pthread_mutex_unlock(&fs->fdcache_lock);
	for (size_t i = 0; i < VU_NODE_LOCKS; i++)
		pthread_mutex_destroy(&fs->node_locks[i]);
	pthread_cond_destroy(&fs->evict_cond);
	vu_nameidx_free(atomic_load(&fs->root->nameidx));
	g_free(fs->root);
	fs->root = NULL;
	g_hash_table_destroy(fs->names);
	fs->names = NULL;
	g_hash_table_destroy(fs->fdcache);
	fs->fdcache = NULL;
	g_hash_table_destroy(fs->links);
	fs->links = NULL;
	g_clear_pointer(&fs->aliases, g_hash_table_destroy);
	g_hash_table_destroy(fs->unhashed);
	fs->unhashed = NULL;
}
