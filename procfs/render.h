/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The pure side of veneer-procfs: what a container's cgroups say (filled by
 * cgroup.c) and one renderer per served file. Renderers take the host's file
 * text and these values and append the container's file to a GString; they do
 * no I/O, so the unit tests feed them fixtures.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "cgroup-util.h"

/*
 * fdcache.c: kept fds of cgroup files, read with pread from 0 (fresh text each
 * time); at most max fds, all dropped when full. A NULL cache reads by path.
 */
struct vp_fdcache;
struct vp_fdcache *vp_fdcache_new(unsigned max);
void vp_fdcache_free(struct vp_fdcache *c);
int vp_fdcache_read(struct vp_fdcache *c, const char *path, char **ret);
unsigned vp_fdcache_size(struct vp_fdcache *c);
/* Close the fds of files whose cgroup was removed (pinned memcgs); returns how many.
 * Never waits on a reader: the cache lock is held only to list the fds. */
unsigned vp_fdcache_sweep(struct vp_fdcache *c);
/* A thread that sweeps every interval_ms, until vp_fdcache_free, and then calls
 * also(data) if not NULL (the other caches that hold fds of things that end). */
void vp_fdcache_start_sweeper(struct vp_fdcache *c, unsigned interval_ms, void (*also)(void *data),
			      void *data);
/* The whole file from offset 0, NUL-terminated. A short read is the end: cgroup and
 * /proc/PID files are seq_files, which fill the buffer unless the text ends. */
int vp_pread_all(int fd, char **ret);

/* Memory of a cgroup, in bytes; UINT64_MAX = no limit. */
struct vp_mem {
	bool limited; /* a limit below the host's memory applies */
	uint64_t limit;
	uint64_t usage;
	uint64_t swap_limit; /* swap the cgroup may use on top of limit; UINT64_MAX = no limit */
	uint64_t swap_usage;
	uint64_t cache, rss, shmem, mapped;
	uint64_t active_anon, inactive_anon, active_file, inactive_file, unevictable;
	uint64_t slab_reclaimable, slab_unreclaimable;
};

/* CPU view of a cgroup. */
struct vp_cpu {
	bool limited;		      /* count or cpu set differ from the host's online CPUs */
	GArray *cpuset;		      /* guint physical CPUs the cgroup may use, sorted (owned) */
	uint64_t quota_us, period_us; /* quota_us UINT64_MAX: none */
	unsigned count;		      /* CPUs the container sees: the first count of cpuset */
	/* Accounting in ns. Per physical CPU when have_percpu (index = CPU number). */
	bool have_percpu;
	GArray *user_ns, *system_ns; /* uint64_t, owned */
	uint64_t total_user_ns, total_system_ns;
};

struct vp_loadavg {
	uint64_t avg[3]; /* fixed point, FSHIFT 11 like the kernel */
	unsigned running, total;
	int last_pid; /* highest pid inside the container */
};

/* One device's I/O of a cgroup. */
struct vp_io_dev {
	unsigned major, minor;
	uint64_t rbytes, wbytes, rios, wios, dbytes, dios;
};

void vp_cpu_clear(struct vp_cpu *c);
/* count = min(|cpuset|, ceil(quota/period)) (the quota rule only when use_quota). */
void vp_cpu_compute(struct vp_cpu *c, const guint *host_online, guint n_host_online,
		    bool use_quota);

/* meminfo.c */
int vp_render_meminfo(const char *host, const struct vp_mem *m, GString *out);
/* cpuinfo.c: the host's blocks of the first count CPUs of cpuset, renumbered from 0. */
int vp_render_cpuinfo(const char *host, const struct vp_cpu *c, GString *out);
/* stat.c: cpu/cpuN lines from the cgroup's accounting, other lines as the host's. */
int vp_render_stat(const char *host, const struct vp_cpu *c, GString *out);
/* cpuonline.c: online/possible/present of a container: "0-(count-1)". */
int vp_render_cpu_range(const struct vp_cpu *c, GString *out);
/* uptime.c: init's age in ticks; idle = CPU time the container did not use. */
int vp_render_uptime(uint64_t age_ticks, unsigned hz, const struct vp_cpu *c, GString *out);
/* loadavg.c */
int vp_render_loadavg(const struct vp_loadavg *l, GString *out);
/* Fold one sample into the averages (every 5 s, the kernel's constants). */
void vp_loadavg_fold(uint64_t avg[3], unsigned active);
/* swaps.c */
int vp_render_swaps(const char *host, const struct vp_mem *m, GString *out);
/* diskstats.c: the host's lines of the devices the cgroup did I/O on, with its counts. */
int vp_render_diskstats(const char *host, const GArray *devs, GString *out);

/*
 * cgroup.c: the container's values from the cgroups in proc_cgroups (parsed
 * /proc/PID/cgroup of its init) under layout. host_mem_total in bytes.
 * Missing controllers and files are not errors: they leave "no limit".
 * fc: kept fds of the cgroup files (fdcache.c), or NULL to open each file.
 */
int vp_cgroup_read_mem(struct vp_fdcache *fc, const struct vc_cgroup_layout *l,
		       GPtrArray *proc_cgroups, uint64_t host_mem_total, uint64_t host_swap_total,
		       struct vp_mem *ret);
int vp_cgroup_read_cpu(struct vp_fdcache *fc, const struct vc_cgroup_layout *l,
		       GPtrArray *proc_cgroups, const guint *host_online, guint n_host_online,
		       bool use_quota, struct vp_cpu *ret);
/* The same without the accounting (have_percpu false, totals 0): for the CPU count. */
int vp_cgroup_read_cpu_count(struct vp_fdcache *fc, const struct vc_cgroup_layout *l,
			     GPtrArray *proc_cgroups, const guint *host_online, guint n_host_online,
			     bool use_quota, struct vp_cpu *ret);
/* ret: GArray of struct vp_io_dev; *ret_limited false when the cgroup is the root. */
int vp_cgroup_read_io(struct vp_fdcache *fc, const struct vc_cgroup_layout *l,
		      GPtrArray *proc_cgroups, GArray **ret, bool *ret_limited);
/* The directory whose tasks are the container's (for loadavg); -ENOENT when all are root. */
int vp_cgroup_task_dir(const struct vc_cgroup_layout *l, GPtrArray *proc_cgroups, char **ret_dir,
		       bool *ret_v2);
/* True when every hierarchy places the process at its root. */
bool vp_cgroup_all_root(const struct vc_cgroup_layout *l, GPtrArray *proc_cgroups);

/* Parse the "cpuN" lines of a host /proc/stat: per-CPU total and idle ticks (uint64_t by CPU). */
int vp_stat_parse_host(const char *host, GArray **ret_total, GArray **ret_idle);
/* MemTotal/SwapTotal of a host /proc/meminfo, bytes. */
int vp_meminfo_host_totals(const char *host, uint64_t *ret_mem, uint64_t *ret_swap);
