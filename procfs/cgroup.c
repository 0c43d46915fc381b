/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * All cgroup access of veneer-procfs: a container's memory, CPU and I/O
 * values from v1 or v2 files (hybrid layouts mix both: each controller is
 * read where the layout finds it). Only reads files; no /proc access, so the
 * unit tests run it on fixture trees.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "parse-util.h"
#include "render.h"

/* The cgroup directory of the process for controller, or NULL (controller absent). */
static char *vp_cgroup_dir_of(const struct vc_cgroup_layout *l, GPtrArray *pc,
			      const char *controller, const struct vc_cgroup_hier **ret_h)
{
	const struct vc_cgroup_hier *h = vc_cgroup_layout_find(l, controller);
	const char *path;
	char *dir = NULL;

	if (!h)
		return NULL;
	path = vc_cgroup_path_in(pc, h);
	if (!path || vc_cgroup_dir(h, path, &dir) < 0)
		return NULL;
	*ret_h = h;
	return dir;
}

/* A cgroup file, through the fd cache when there is one (vp_fdcache_read takes a NULL cache). */
static int vp_cg_read(struct vp_fdcache *fc, const char *dir, const char *file, char **ret)
{
	g_autofree char *p = g_build_filename(dir, file, NULL);

	return vp_fdcache_read(fc, p, ret);
}

/* A one-number file; "max" and v1's "-1" read as UINT64_MAX. */
static int vp_cg_read_u64(struct vp_fdcache *fc, const char *dir, const char *file, uint64_t *ret)
{
	g_autofree char *text = NULL;
	int r = vp_cg_read(fc, dir, file, &text);

	if (r < 0)
		return r;
	return vc_cgroup_parse_u64(text, ret);
}

/* The smallest value of a one-number file over dir and its ancestors (vc_cgroup_min_up). */
static int vp_cg_min_up(struct vp_fdcache *fc, const struct vc_cgroup_hier *h, const char *dir,
			const char *file, uint64_t *ret)
{
	g_autoptr(GPtrArray) dirs = NULL;
	uint64_t best = UINT64_MAX;
	int r = vc_cgroup_ancestors(h, dir, &dirs);

	if (r < 0)
		return r;
	for (guint i = 0; i < dirs->len; i++) {
		uint64_t v;

		r = vp_cg_read_u64(fc, dirs->pdata[i], file, &v);
		if (r == -ENOENT)
			continue; /* the root has no limit files */
		if (r < 0)
			return r;
		if (v < best)
			best = v;
	}
	*ret = best;
	return 0;
}

static uint64_t vp_kv(const char *text, const char *key)
{
	uint64_t v = 0;

	if (text && vc_kv_lookup_u64(text, key, &v) < 0)
		v = 0;
	return v;
}

static uint64_t vp_sub0(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

int vp_cgroup_read_mem(struct vp_fdcache *fc, const struct vc_cgroup_layout *l, GPtrArray *pc,
		       uint64_t host_mem_total, uint64_t host_swap_total, struct vp_mem *ret)
{
	const struct vc_cgroup_hier *h = NULL;
	g_autofree char *dir = vp_cgroup_dir_of(l, pc, "memory", &h);
	g_autofree char *stat = NULL;
	uint64_t limit = UINT64_MAX, sw = UINT64_MAX, v;
	bool v1;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->limit = host_mem_total;
	ret->swap_limit = host_swap_total;
	if (!dir)
		return 0;
	v1 = h->version == VC_CGROUP_V1;
	(void)vp_cg_read(fc, dir, "memory.stat", &stat);
	/* v1's memory.stat carries the smallest limit of the cgroup and its ancestors: one
	 * read instead of one per ancestor. */
	if (!v1 || !stat || vc_kv_lookup_u64(stat, "hierarchical_memory_limit", &limit) < 0) {
		r = vp_cg_min_up(fc, h, dir, v1 ? "memory.limit_in_bytes" : "memory.max", &limit);
		if (r < 0)
			return r;
	}
	if (limit < host_mem_total) {
		ret->limited = true;
		ret->limit = limit;
	}
	if (vp_cg_read_u64(fc, dir, v1 ? "memory.usage_in_bytes" : "memory.current", &v) >= 0)
		ret->usage = v;
	if (v1) {
		ret->cache = vp_kv(stat, "total_cache");
		ret->rss = vp_kv(stat, "total_rss");
		ret->shmem = vp_kv(stat, "total_shmem");
		ret->mapped = vp_kv(stat, "total_mapped_file");
		ret->active_anon = vp_kv(stat, "total_active_anon");
		ret->inactive_anon = vp_kv(stat, "total_inactive_anon");
		ret->active_file = vp_kv(stat, "total_active_file");
		ret->inactive_file = vp_kv(stat, "total_inactive_file");
		ret->unevictable = vp_kv(stat, "total_unevictable");
		/* v1 counts memory+swap together: swap = memsw - mem. No host swap: skip. */
		if (host_swap_total > 0 &&
		    ((stat && vc_kv_lookup_u64(stat, "hierarchical_memsw_limit", &sw) >= 0) ||
		     vp_cg_min_up(fc, h, dir, "memory.memsw.limit_in_bytes", &sw) >= 0) &&
		    sw != UINT64_MAX && sw >= limit)
			ret->swap_limit = MIN(sw - MIN(limit, sw), host_swap_total);
		if (host_swap_total > 0 &&
		    vp_cg_read_u64(fc, dir, "memory.memsw.usage_in_bytes", &v) >= 0)
			ret->swap_usage = vp_sub0(v, ret->usage);
	} else {
		ret->cache = vp_kv(stat, "file");
		ret->rss = vp_kv(stat, "anon");
		ret->shmem = vp_kv(stat, "shmem");
		ret->mapped = vp_kv(stat, "file_mapped");
		ret->active_anon = vp_kv(stat, "active_anon");
		ret->inactive_anon = vp_kv(stat, "inactive_anon");
		ret->active_file = vp_kv(stat, "active_file");
		ret->inactive_file = vp_kv(stat, "inactive_file");
		ret->unevictable = vp_kv(stat, "unevictable");
		ret->slab_reclaimable = vp_kv(stat, "slab_reclaimable");
		ret->slab_unreclaimable = vp_kv(stat, "slab_unreclaimable");
		if (host_swap_total > 0 && vp_cg_min_up(fc, h, dir, "memory.swap.max", &sw) >= 0)
			ret->swap_limit = MIN(sw, host_swap_total);
		if (host_swap_total > 0 && vp_cg_read_u64(fc, dir, "memory.swap.current", &v) >= 0)
			ret->swap_usage = v;
	}
	if (ret->usage > ret->limit)
		ret->usage = ret->limit;
	if (ret->swap_usage > ret->swap_limit)
		ret->swap_usage = ret->swap_limit;
	return 0;
}

void vp_cpu_clear(struct vp_cpu *c)
{
	g_clear_pointer(&c->cpuset, g_array_unref);
	g_clear_pointer(&c->user_ns, g_array_unref);
	g_clear_pointer(&c->system_ns, g_array_unref);
}

void vp_cpu_compute(struct vp_cpu *c, const guint *host_online, guint n_host_online, bool use_quota)
{
	unsigned n = c->cpuset && c->cpuset->len ? c->cpuset->len : n_host_online;

	if (!c->cpuset || c->cpuset->len == 0) {
		if (!c->cpuset)
			c->cpuset = g_array_new(FALSE, FALSE, sizeof(guint));
		g_array_set_size(c->cpuset, 0);
		g_array_append_vals(c->cpuset, host_online, n_host_online);
	}
	if (use_quota && c->quota_us != UINT64_MAX && c->period_us > 0) {
		uint64_t q = (c->quota_us + c->period_us - 1) / c->period_us;

		if (q < 1)
			q = 1;
		if (q < n)
			n = (unsigned)q;
	}
	c->count = n;
	c->limited = n != n_host_online || c->cpuset->len != n_host_online ||
		     memcmp(c->cpuset->data, host_online, n_host_online * sizeof(guint)) != 0;
}

/* A blank-separated list of per-CPU nanoseconds (cpuacct.usage_percpu_*). */
static GArray *vp_parse_percpu(const char *text)
{
	g_auto(GStrv) f = g_strsplit_set(text, " \t\n", -1);
	GArray *a = g_array_new(FALSE, TRUE, sizeof(uint64_t));

	for (guint i = 0; f[i]; i++) {
		uint64_t v;

		if (f[i][0] == '\0')
			continue;
		if (vc_parse_u64(f[i], &v) < 0)
			v = 0;
		g_array_append_val(a, v);
	}
	return a;
}

/* Smallest quota/period ratio over dir and its ancestors. */
static int vp_cgroup_quota(struct vp_fdcache *fc, const struct vc_cgroup_hier *h, const char *dir,
			   uint64_t *ret_quota, uint64_t *ret_period)
{
	g_autoptr(GPtrArray) dirs = NULL;
	int r = vc_cgroup_ancestors(h, dir, &dirs);

	*ret_quota = UINT64_MAX;
	*ret_period = 100000;
	if (r < 0)
		return r;
	for (guint i = 0; i < dirs->len; i++) {
		uint64_t q = UINT64_MAX, p = 0;

		if (h->version == VC_CGROUP_V1) {
			/* the period only matters where a quota is set (not at the root) */
			if (vp_cg_read_u64(fc, dirs->pdata[i], "cpu.cfs_quota_us", &q) < 0 ||
			    q == UINT64_MAX ||
			    vp_cg_read_u64(fc, dirs->pdata[i], "cpu.cfs_period_us", &p) < 0)
				continue;
		} else {
			g_autofree char *t = NULL;
			g_auto(GStrv) f = NULL;

			if (vp_cg_read(fc, dirs->pdata[i], "cpu.max", &t) < 0)
				continue;
			f = g_strsplit(g_strstrip(t), " ", -1);
			if (g_strv_length(f) != 2 || vc_parse_u64_or_max(f[0], &q) < 0 ||
			    vc_parse_u64(f[1], &p) < 0)
				continue;
		}
		if (q == UINT64_MAX || p == 0)
			continue;
		/* q/p < best_q/best_p, cross-multiplied in 128 bits */
		if (*ret_quota == UINT64_MAX ||
		    (unsigned __int128)q * *ret_period < (unsigned __int128)*ret_quota * p) {
			*ret_quota = q;
			*ret_period = p;
		}
	}
	return 0;
}

static int vp_cgroup_read_cpu_common(struct vp_fdcache *fc, const struct vc_cgroup_layout *l,
				     GPtrArray *pc, const guint *host_online, guint n_host_online,
				     bool use_quota, bool accounting, struct vp_cpu *ret)
{
	const struct vc_cgroup_hier *h = NULL;
	g_autofree char *setdir = vp_cgroup_dir_of(l, pc, "cpuset", &h);
	g_autofree char *cpudir = NULL, *acctdir = NULL;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->quota_us = UINT64_MAX;
	ret->period_us = 100000;
	if (setdir) {
		g_autoptr(GPtrArray) dirs = NULL;

		/* An empty v2 cpuset.cpus means "the parent's": take the first non-empty one. */
		if (vc_cgroup_ancestors(h, setdir, &dirs) >= 0) {
			/* v1 names the effective set cpuset.effective_cpus, v2
			 * cpuset.cpus.effective. */
			static const char *const v1_files[] = {"cpuset.effective_cpus",
							       "cpuset.cpus"};
			static const char *const v2_files[] = {"cpuset.cpus.effective",
							       "cpuset.cpus"};
			const char *const *files = h->version == VC_CGROUP_V1 ? v1_files : v2_files;

			for (guint i = 0; i < dirs->len && !ret->cpuset; i++) {
				for (guint j = 0; j < G_N_ELEMENTS(v1_files); j++) {
					g_autofree char *t = NULL;
					GArray *a = NULL;

					if (vp_cg_read(fc, dirs->pdata[i], files[j], &t) < 0)
						continue;
					if (vc_parse_cpulist(g_strstrip(t), &a) < 0)
						continue;
					if (a->len == 0) {
						g_array_unref(a);
						continue;
					}
					ret->cpuset = a;
					break;
				}
			}
		}
	}
	cpudir = vp_cgroup_dir_of(l, pc, "cpu", &h);
	if (cpudir) {
		r = vp_cgroup_quota(fc, h, cpudir, &ret->quota_us, &ret->period_us);
		if (r < 0)
			return r;
	}
	if (!accounting) {
		/* the CPU count alone (cpuinfo, the CPU lists): no cpuacct reads */
	} else if ((acctdir = vp_cgroup_dir_of(l, pc, "cpuacct", &h)) &&
		   h->version == VC_CGROUP_V1) {
		g_autofree char *u = NULL, *s = NULL, *all = NULL;

		if (vp_cg_read(fc, acctdir, "cpuacct.usage_percpu_user", &u) >= 0 &&
		    vp_cg_read(fc, acctdir, "cpuacct.usage_percpu_sys", &s) >= 0) {
			ret->user_ns = vp_parse_percpu(u);
			ret->system_ns = vp_parse_percpu(s);
			ret->have_percpu = true;
		} else if (vp_cg_read(fc, acctdir, "cpuacct.usage_percpu", &all) >= 0) {
			ret->user_ns = vp_parse_percpu(all);
			ret->system_ns = g_array_new(FALSE, TRUE, sizeof(uint64_t));
			g_array_set_size(ret->system_ns, ret->user_ns->len);
			ret->have_percpu = true;
		}
		for (guint i = 0; ret->have_percpu && i < ret->user_ns->len; i++)
			ret->total_user_ns += g_array_index(ret->user_ns, uint64_t, i);
		for (guint i = 0; ret->have_percpu && i < ret->system_ns->len; i++)
			ret->total_system_ns += g_array_index(ret->system_ns, uint64_t, i);
	} else {
		/* v2: cpu.stat exists in every cgroup, controller enabled or not. */
		const struct vc_cgroup_hier *h2 = vc_cgroup_layout_v2(l);
		const char *path = h2 ? vc_cgroup_path_in(pc, h2) : NULL;
		g_autofree char *dir = NULL, *st = NULL;

		if (path && vc_cgroup_dir(h2, path, &dir) >= 0 &&
		    vp_cg_read(fc, dir, "cpu.stat", &st) >= 0) {
			ret->total_user_ns = vp_kv(st, "user_usec") * 1000;
			ret->total_system_ns = vp_kv(st, "system_usec") * 1000;
		}
	}
	vp_cpu_compute(ret, host_online, n_host_online, use_quota);
	return 0;
}

int vp_cgroup_read_cpu(struct vp_fdcache *fc, const struct vc_cgroup_layout *l, GPtrArray *pc,
		       const guint *host_online, guint n_host_online, bool use_quota,
		       struct vp_cpu *ret)
{
	return vp_cgroup_read_cpu_common(fc, l, pc, host_online, n_host_online, use_quota, true,
					 ret);
}

int vp_cgroup_read_cpu_count(struct vp_fdcache *fc, const struct vc_cgroup_layout *l, GPtrArray *pc,
			     const guint *host_online, guint n_host_online, bool use_quota,
			     struct vp_cpu *ret)
{
	return vp_cgroup_read_cpu_common(fc, l, pc, host_online, n_host_online, use_quota, false,
					 ret);
}

static struct vp_io_dev *vp_io_dev_get(GArray *devs, unsigned major, unsigned minor)
{
	struct vp_io_dev d = {.major = major, .minor = minor};

	for (guint i = 0; i < devs->len; i++) {
		struct vp_io_dev *e = &g_array_index(devs, struct vp_io_dev, i);

		if (e->major == major && e->minor == minor)
			return e;
	}
	g_array_append_val(devs, d);
	return &g_array_index(devs, struct vp_io_dev, devs->len - 1);
}

static int vp_parse_majmin(const char *s, unsigned *ret_major, unsigned *ret_minor)
{
	return sscanf(s, "%u:%u", ret_major, ret_minor) == 2 ? 0 : -EINVAL;
}

/* v1 blkio "MAJ:MIN Read|Write|Discard N" lines into bytes (ios=false) or ios. */
static void vp_parse_blkio_v1(const char *text, GArray *devs, bool ios)
{
	g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);

	for (guint i = 0; lines[i]; i++) {
		g_auto(GStrv) f = g_strsplit(lines[i], " ", -1);
		unsigned ma, mi;
		uint64_t v;
		struct vp_io_dev *d;

		if (g_strv_length(f) != 3 || vp_parse_majmin(f[0], &ma, &mi) < 0 ||
		    vc_parse_u64(f[2], &v) < 0)
			continue;
		d = vp_io_dev_get(devs, ma, mi);
		if (strcmp(f[1], "Read") == 0)
			*(ios ? &d->rios : &d->rbytes) = v;
		else if (strcmp(f[1], "Write") == 0)
			*(ios ? &d->wios : &d->wbytes) = v;
		else if (strcmp(f[1], "Discard") == 0)
			*(ios ? &d->dios : &d->dbytes) = v;
	}
}

int vp_cgroup_read_io(struct vp_fdcache *fc, const struct vc_cgroup_layout *l, GPtrArray *pc,
		      GArray **ret, bool *ret_limited)
{
	g_autoptr(GArray) devs = g_array_new(FALSE, TRUE, sizeof(struct vp_io_dev));
	const struct vc_cgroup_hier *h = vc_cgroup_layout_find(l, "blkio");
	const char *path;
	g_autofree char *dir = NULL;

	*ret_limited = false;
	if (!h)
		h = vc_cgroup_layout_find(l, "io");
	if (!h || !(path = vc_cgroup_path_in(pc, h)) || vc_cgroup_dir(h, path, &dir) < 0) {
		*ret = g_steal_pointer(&devs);
		return 0;
	}
	*ret_limited = strcmp(path, "/") != 0;
	if (h->version == VC_CGROUP_V1) {
		g_autofree char *b = NULL, *n = NULL;

		(void)vp_cg_read(fc, dir, "blkio.throttle.io_service_bytes_recursive", &b);
		(void)vp_cg_read(fc, dir, "blkio.throttle.io_serviced_recursive", &n);
		vp_parse_blkio_v1(b, devs, false);
		vp_parse_blkio_v1(n, devs, true);
	} else {
		g_autofree char *t = NULL;
		g_auto(GStrv) lines = NULL;

		(void)vp_cg_read(fc, dir, "io.stat", &t);
		lines = g_strsplit(t ? t : "", "\n", -1);
		for (guint i = 0; lines[i]; i++) {
			g_auto(GStrv) f = g_strsplit(lines[i], " ", -1);
			unsigned ma, mi;
			struct vp_io_dev *d;

			if (!f[0] || vp_parse_majmin(f[0], &ma, &mi) < 0)
				continue;
			d = vp_io_dev_get(devs, ma, mi);
			for (guint j = 1; f[j]; j++) {
				static const char *const keys[] = {"rbytes", "wbytes", "rios",
								   "wios",   "dbytes", "dios"};
				uint64_t *dst[] = {&d->rbytes, &d->wbytes, &d->rios,
						   &d->wios,   &d->dbytes, &d->dios};
				char *eq = strchr(f[j], '=');
				uint64_t v;

				if (!eq)
					continue;
				*eq = '\0';
				for (guint k = 0; k < G_N_ELEMENTS(keys); k++)
					if (strcmp(f[j], keys[k]) == 0 &&
					    vc_parse_u64(eq + 1, &v) >= 0)
						*dst[k] = v;
			}
		}
	}
	*ret = g_steal_pointer(&devs);
	return 0;
}

int vp_cgroup_task_dir(const struct vc_cgroup_layout *l, GPtrArray *pc, char **ret_dir,
		       bool *ret_v2)
{
	static const char *const pref[] = {"cpuacct", "cpu", "pids", "memory", "cpuset"};

	for (guint i = 0; i < G_N_ELEMENTS(pref); i++) {
		const struct vc_cgroup_hier *h = vc_cgroup_layout_find(l, pref[i]);
		const char *path = h ? vc_cgroup_path_in(pc, h) : NULL;

		if (h && h->version == VC_CGROUP_V1 && path && strcmp(path, "/") != 0 &&
		    vc_cgroup_dir(h, path, ret_dir) >= 0) {
			*ret_v2 = false;
			return 0;
		}
	}
	{
		const struct vc_cgroup_hier *h = vc_cgroup_layout_v2(l);
		const char *path = h ? vc_cgroup_path_in(pc, h) : NULL;

		if (h && path && strcmp(path, "/") != 0 && vc_cgroup_dir(h, path, ret_dir) >= 0) {
			*ret_v2 = true;
			return 0;
		}
	}
	return -ENOENT;
}

bool vp_cgroup_all_root(const struct vc_cgroup_layout *l, GPtrArray *pc)
{
	for (guint i = 0; i < l->hiers->len; i++) {
		const char *path = vc_cgroup_path_in(pc, l->hiers->pdata[i]);

		if (path && strcmp(path, "/") != 0)
			return false;
	}
	return true;
}
