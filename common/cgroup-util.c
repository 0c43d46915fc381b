/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgroup discovery and reads (see cgroup-util.h). libcgroup is not used here:
 * its discovery reads /proc/mounts into process-global tables without a way to
 * confine it to one cgroup fs root, which nested setups and fixtures need.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cgroup-util.h"
#include "fd-util.h"
#include "parse-util.h"
#include "path-util.h"

static void vc_cgroup_hier_free(gpointer p)
{
	struct vc_cgroup_hier *h = p;

	g_free(h->controllers);
	g_free(h->mount);
	g_free(h->root);
	g_free(h);
}

struct vc_cgroup_layout *vc_cgroup_layout_new(void)
{
	struct vc_cgroup_layout *l = g_new0(struct vc_cgroup_layout, 1);

	l->hiers = g_ptr_array_new_with_free_func(vc_cgroup_hier_free);
	return l;
}

void vc_cgroup_layout_free(struct vc_cgroup_layout *l)
{
	if (!l)
		return;
	g_ptr_array_unref(l->hiers);
	g_free(l);
}

void vc_cgroup_layout_add(struct vc_cgroup_layout *l, enum vc_cgroup_version version,
			  const char *controllers, const char *mount, const char *root)
{
	struct vc_cgroup_hier *h = g_new0(struct vc_cgroup_hier, 1);

	h->version = version;
	h->mount = g_strdup(mount);
	h->root = g_strdup(root ? root : "/");
	if (controllers) {
		h->controllers = g_strdup(controllers);
	} else if (version == VC_CGROUP_V2) {
		g_autofree char *c = NULL;

		if (vc_cgroup_read(mount, "cgroup.controllers", &c) >= 0)
			h->controllers = g_strdup(g_strstrip(c));
	}
	if (!h->controllers)
		h->controllers = g_strdup("");
	g_ptr_array_add(l->hiers, h);
}

/* mountinfo escapes blanks, tabs, newlines and backslashes as \ooo. */
static char *vc_cgroup_unescape(const char *s)
{
	GString *o = g_string_new("");

	for (const char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			g_string_append_c(
				o, (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0')));
			p += 3;
		} else {
			g_string_append_c(o, *p);
		}
	}
	return g_string_free(o, FALSE);
}

static bool vc_cgroup_is_known_opt(const char *o)
{
	static const char *const skip[] = {"rw",
					   "ro",
					   "relatime",
					   "noatime",
					   "nosuid",
					   "nodev",
					   "noexec",
					   "clone_children",
					   "nsdelegate",
					   "memory_recursiveprot",
					   "favordynmods",
					   "memory_localevents",
					   "memory_hugetlb_accounting"};

	for (size_t i = 0; i < G_N_ELEMENTS(skip); i++)
		if (strcmp(o, skip[i]) == 0)
			return true;
	return g_str_has_prefix(o, "release_agent=") || g_str_has_prefix(o, "xattr");
}

int vc_cgroup_layout_parse(const char *mountinfo, const char *fs_root,
			   struct vc_cgroup_layout **ret)
{
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = vc_cgroup_layout_new();
	g_auto(GStrv) lines = g_strsplit(mountinfo ? mountinfo : "", "\n", -1);
	g_autofree char *rootn = vc_path_normalize(fs_root ? fs_root : "/sys/fs/cgroup");
	g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

	if (!rootn)
		return -EINVAL;
	for (guint i = 0; lines[i]; i++) {
		g_auto(GStrv) f = g_strsplit(lines[i], " ", -1);
		guint n = g_strv_length(f), sep;
		g_autofree char *mnt = NULL, *root = NULL;
		g_autoptr(GString) ctl = NULL;
		enum vc_cgroup_version v;
		g_auto(GStrv) opts = NULL;
		char *key;

		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		for (sep = 6; sep < n && strcmp(f[sep], "-") != 0; sep++)
			;
		if (sep + 3 >= n)
			continue;
		if (strcmp(f[sep + 1], "cgroup2") == 0)
			v = VC_CGROUP_V2;
		else if (strcmp(f[sep + 1], "cgroup") == 0)
			v = VC_CGROUP_V1;
		else
			continue;
		mnt = vc_cgroup_unescape(f[4]);
		root = vc_cgroup_unescape(f[3]);
		if (!vc_path_is_inside(mnt, rootn))
			continue;
		ctl = g_string_new("");
		if (v == VC_CGROUP_V1) {
			opts = g_strsplit(f[sep + 3], ",", -1);
			for (guint j = 0; opts[j]; j++) {
				if (vc_cgroup_is_known_opt(opts[j]))
					continue;
				if (ctl->len)
					g_string_append_c(ctl, ',');
				g_string_append(ctl, opts[j]);
			}
			if (ctl->len == 0)
				continue;
		}
		/* A hierarchy mounted twice (bind mounts) is one hierarchy: keep the first. */
		key = g_strdup_printf("%d:%s", v, ctl->str);
		if (g_hash_table_contains(seen, key)) {
			g_free(key);
			continue;
		}
		g_hash_table_add(seen, key);
		vc_cgroup_layout_add(l, v, v == VC_CGROUP_V1 ? ctl->str : NULL, mnt, root);
	}
	if (l->hiers->len == 0)
		return -ENOENT;
	*ret = g_steal_pointer(&l);
	return 0;
}

int vc_cgroup_layout_load(const char *fs_root, struct vc_cgroup_layout **ret)
{
	g_autofree char *text = NULL;
	int r = vc_read_file_at(AT_FDCWD, "/proc/self/mountinfo", &text, NULL);

	if (r < 0)
		return r;
	return vc_cgroup_layout_parse(text, fs_root, ret);
}

static bool vc_cgroup_list_has(const char *list, const char *item, const char *seps)
{
	g_auto(GStrv) parts = g_strsplit_set(list, seps, -1);

	for (guint i = 0; parts[i]; i++)
		if (strcmp(parts[i], item) == 0)
			return true;
	return false;
}

const struct vc_cgroup_hier *vc_cgroup_layout_find(const struct vc_cgroup_layout *l,
						   const char *controller)
{
	for (guint i = 0; i < l->hiers->len; i++) {
		const struct vc_cgroup_hier *h = l->hiers->pdata[i];

		if (h->version == VC_CGROUP_V1 &&
		    vc_cgroup_list_has(h->controllers, controller, ","))
			return h;
	}
	for (guint i = 0; i < l->hiers->len; i++) {
		const struct vc_cgroup_hier *h = l->hiers->pdata[i];

		if (h->version == VC_CGROUP_V2 &&
		    vc_cgroup_list_has(h->controllers, controller, " \t\n"))
			return h;
	}
	return NULL;
}

const struct vc_cgroup_hier *vc_cgroup_layout_v2(const struct vc_cgroup_layout *l)
{
	for (guint i = 0; i < l->hiers->len; i++) {
		const struct vc_cgroup_hier *h = l->hiers->pdata[i];

		if (h->version == VC_CGROUP_V2)
			return h;
	}
	return NULL;
}

static void vc_proc_cgroup_free(gpointer p)
{
	struct vc_proc_cgroup *c = p;

	g_free(c->controllers);
	g_free(c->path);
	g_free(c);
}

int vc_cgroup_parse_proc(const char *text, GPtrArray **ret)
{
	g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(vc_proc_cgroup_free);
	g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);

	for (guint i = 0; lines[i]; i++) {
		char *c1, *c2;
		struct vc_proc_cgroup *c;
		unsigned id;
		int r;

		if (lines[i][0] == '\0')
			continue;
		c1 = strchr(lines[i], ':');
		c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || c2[1] != '/')
			return -EINVAL;
		*c1 = '\0';
		*c2 = '\0';
		r = vc_parse_uint(lines[i], &id);
		if (r < 0)
			return -EINVAL;
		c = g_new0(struct vc_proc_cgroup, 1);
		c->id = id;
		c->controllers = g_strdup(c1 + 1);
		c->path = g_strdup(c2 + 1);
		g_ptr_array_add(out, c);
	}
	*ret = g_steal_pointer(&out);
	return 0;
}

const char *vc_cgroup_path_in(GPtrArray *proc_cgroups, const struct vc_cgroup_hier *h)
{
	for (guint i = 0; i < proc_cgroups->len; i++) {
		const struct vc_proc_cgroup *c = proc_cgroups->pdata[i];

		if (h->version == VC_CGROUP_V2) {
			if (c->id == 0 && c->controllers[0] == '\0')
				return c->path;
			continue;
		}
		if (c->id == 0)
			continue;
		/* The same controllers in either order ("cpu,cpuacct" vs "cpuacct,cpu"). */
		{
			g_auto(GStrv) a = g_strsplit(c->controllers, ",", -1);
			g_auto(GStrv) b = g_strsplit(h->controllers, ",", -1);
			bool same = g_strv_length(a) == g_strv_length(b);

			for (guint j = 0; same && a[j]; j++)
				same = g_strv_contains((const char *const *)b, a[j]);
			if (same)
				return c->path;
		}
	}
	return NULL;
}

int vc_cgroup_dir(const struct vc_cgroup_hier *h, const char *path, char **ret)
{
	g_autofree char *p = vc_path_normalize(path);
	const char *rel;
	size_t rl = strlen(h->root);

	if (!p)
		return -EINVAL;
	if (strcmp(h->root, "/") == 0) {
		rel = p;
	} else {
		if (!vc_path_is_inside(p, h->root))
			return -ENOENT;
		rel = p + rl;
	}
	while (*rel == '/')
		rel++;
	*ret = *rel ? g_build_filename(h->mount, rel, NULL) : g_strdup(h->mount);
	return 0;
}

int vc_cgroup_read(const char *dir, const char *file, char **ret)
{
	g_autofree char *p = g_build_filename(dir, file, NULL);

	return vc_read_file_at(AT_FDCWD, p, ret, NULL);
}

int vc_cgroup_parse_u64(char *text, uint64_t *ret)
{
	g_strstrip(text);
	if (strcmp(text, "-1") == 0) {
		*ret = UINT64_MAX;
		return 0;
	}
	return vc_parse_u64_or_max(text, ret);
}

int vc_cgroup_read_u64(const char *dir, const char *file, uint64_t *ret)
{
	g_autofree char *text = NULL;
	int r = vc_cgroup_read(dir, file, &text);

	if (r < 0)
		return r;
	return vc_cgroup_parse_u64(text, ret);
}

int vc_cgroup_ancestors(const struct vc_cgroup_hier *h, const char *dir, GPtrArray **ret)
{
	g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
	g_autofree char *cur = vc_path_normalize(dir);
	g_autofree char *top = vc_path_normalize(h->mount);

	if (!cur || !top)
		return -EINVAL;
	if (!vc_path_is_inside(cur, top))
		return -EINVAL;
	for (;;) {
		char *slash;

		g_ptr_array_add(out, g_strdup(cur));
		if (strcmp(cur, top) == 0)
			break;
		slash = strrchr(cur, '/');
		if (!slash || slash == cur)
			break;
		*slash = '\0';
	}
	*ret = g_steal_pointer(&out);
	return 0;
}

int vc_cgroup_min_up(const struct vc_cgroup_hier *h, const char *dir, const char *file,
		     uint64_t *ret)
{
	g_autoptr(GPtrArray) dirs = NULL;
	uint64_t best = UINT64_MAX;
	int r = vc_cgroup_ancestors(h, dir, &dirs);

	if (r < 0)
		return r;
	for (guint i = 0; i < dirs->len; i++) {
		uint64_t v;

		r = vc_cgroup_read_u64(dirs->pdata[i], file, &v);
		if (r == -ENOENT)
			continue; /* the root has no limit files; a fixture may lack some */
		if (r < 0)
			return r;
		if (v < best)
			best = v;
	}
	*ret = best;
	return 0;
}
