/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-directory name index of a deep lower stack: which lower layers hold an
 * entry NAME or ".wh.NAME" in a merged directory, learned by listing each lower
 * once. A lookup then probes only those layers (plus the upper) instead of all
 * of them. Lowers are read-only by contract (as with overlayfs), and a directory
 * that has lowers never moves (EXDEV), so an index stays true for the node's life.
 */
#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "dir-util.h"
#include "log.h"
#include "unionfs.h"

/* Below this many lowers a lookup's probes cost less than a listing of each. */
#define VU_NAMEIDX_MIN_LAYERS 8
/* Entries listed over all lowers; a larger directory is probed layer by layer. */
#define VU_NAMEIDX_MAX_ENTRIES 200000

/* Marks a node whose index could not be built (too large, unreadable): not retried. */
static struct vu_nameidx vu_nameidx_none;

static void vu_nameidx_add(GHashTable *names, const char *key, int layer)
{
	GArray *a = g_hash_table_lookup(names, key);

	if (!a) {
		a = g_array_sized_new(FALSE, FALSE, sizeof(int), 1);
		g_hash_table_insert(names, g_strdup(key), a);
	} else if (a->len && g_array_index(a, int, a->len - 1) == layer) {
		return; /* NAME and .wh.NAME in the same layer */
	}
	g_array_append_val(a, layer);
}

static int vu_nameidx_list(struct vu_fs *fs, struct vu_node *dir, int layer, GHashTable *names,
			   size_t *count)
{
	struct vu_fdref d = VU_FDREF_INIT;
	_cleanup_closedir_ DIR *dp = NULL;
	struct dirent *de;
	int r = vu_node_fd(fs, dir, layer, &d);

	if (r == -ENOENT || r == -ENOTDIR)
		return 0; /* not in this layer: it holds no name of the directory */
	if (r < 0)
		return r;
	r = vc_opendir_at(d.fd, ".", &dp);
	vu_fdref_put(&d);
	if (r == -ENOTDIR)
		return 0;
	if (r < 0)
		return r;
	errno = 0;
	while ((de = readdir(dp))) {
		const char *n = de->d_name;

		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		if (++*count > VU_NAMEIDX_MAX_ENTRIES)
			return -E2BIG;
		if (strncmp(n, VU_OCI_PREFIX, strlen(VU_OCI_PREFIX)) == 0)
			n += strlen(VU_OCI_PREFIX);
		vu_nameidx_add(names, n, layer);
	}
	return errno ? -errno : 0;
}

void vu_nameidx_free(struct vu_nameidx *idx)
{
	if (!idx || idx == &vu_nameidx_none)
		return;
	g_hash_table_unref(idx->names);
	g_free(idx);
}

const struct vu_nameidx *vu_nameidx_get(struct vu_fs *fs, struct vu_node *dir, int first, int last)
{
	struct vu_nameidx *idx = atomic_load(&dir->nameidx), *expected = NULL;
	size_t count = 0;

	if (idx)
		goto check;
	if (last - first + 1 < VU_NAMEIDX_MIN_LAYERS)
		return NULL;
	idx = g_new0(struct vu_nameidx, 1);
	idx->first = first;
	idx->last = last;
	idx->names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					   (GDestroyNotify)g_array_unref);
	for (int l = first; l <= last; l++) {
		int r = vu_nameidx_list(fs, dir, l, idx->names, &count);

		if (r < 0) {
			log_debug_errno(r, "no name index for a directory of %d lowers",
					last - first + 1);
			vu_nameidx_free(idx);
			idx = &vu_nameidx_none;
			break;
		}
	}
	/* Two threads may build it at once: the first to publish wins. */
	if (!atomic_compare_exchange_strong(&dir->nameidx, &expected, idx)) {
		vu_nameidx_free(idx);
		idx = expected;
	} else if (idx != &vu_nameidx_none) {
		atomic_fetch_add(&fs->nameidx_built, 1);
	}
check:
	if (idx == &vu_nameidx_none || idx->first != first || idx->last != last)
		return NULL;
	return idx;
}

const GArray *vu_nameidx_layers(const struct vu_nameidx *idx, const char *name)
{
	return g_hash_table_lookup(idx->names, name);
}
