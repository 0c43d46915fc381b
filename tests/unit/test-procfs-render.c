/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for veneer-procfs' pure side: cgroup2 values read from fixture
 * trees (kernel formats; limits set to max, nested limits, missing files) and
 * the renderers fed with real /proc files of a 2-CPU host (fixtures/proc).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib.h>

#include "fd-util.h"
#include "parse-util.h"
#include "pidcache.h"
#include "proc-util.h"
#include "render.h"

static const guint host_online[] = {0, 1};

/* Not inlined: gcc -O3 then misreads the returned buffer as a dangling local. */
__attribute__((noinline)) static char *fixture_text(const char *rel)
{
	g_autofree char *p = g_build_filename(g_getenv("VENEER_FIXTURES"), rel, NULL);
	char *text = NULL;

	g_assert_cmpint(vc_read_file_at(AT_FDCWD, p, &text, NULL), ==, 0);
	return text;
}

static struct vc_cgroup_layout *v2_layout(void)
{
	g_autofree char *root = g_build_filename(g_getenv("VENEER_FIXTURES"), "cgroup2", NULL);
	struct vc_cgroup_layout *l = vc_cgroup_layout_new();

	vc_cgroup_layout_add(l, VC_CGROUP_V2, NULL, root, "/");
	return l;
}

static GPtrArray *proc_cgroup(const char *path)
{
	g_autofree char *text = g_strdup_printf("0::%s\n", path);
	GPtrArray *pc = NULL;

	g_assert_cmpint(vc_cgroup_parse_proc(text, &pc), ==, 0);
	return pc;
}

static uint64_t kb(const char *text, const char *key)
{
	uint64_t v = 0;

	g_assert_cmpint(vc_kv_lookup_u64(text, key, &v), ==, 0);
	return v;
}

/* Keys and their order of two meminfo-like texts. */
static void assert_same_keys(const char *a, const char *b)
{
	g_auto(GStrv) la = g_strsplit(a, "\n", -1);
	g_auto(GStrv) lb = g_strsplit(b, "\n", -1);

	g_assert_cmpuint(g_strv_length(la), ==, g_strv_length(lb));
	for (guint i = 0; la[i]; i++) {
		const char *ca = strchr(la[i], ':'), *cb = strchr(lb[i], ':');

		g_assert_true((ca == NULL) == (cb == NULL));
		if (!ca)
			continue;
		g_assert_cmpint(ca - la[i], ==, cb - lb[i]);
		g_assert_cmpint(strncmp(la[i], lb[i], (size_t)(ca - la[i])), ==, 0);
		/* same line length: the numbers stay right-aligned in their columns */
		if (strlen(la[i]) < 30)
			g_assert_cmpuint(strlen(la[i]), ==, strlen(lb[i]));
	}
}

static void test_mem_nested_limit(void)
{
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = v2_layout();
	g_autoptr(GPtrArray) pc = proc_cgroup("/lxc/c1");
	g_autofree char *host = fixture_text("proc/meminfo");
	g_autoptr(GString) out = g_string_new("");
	uint64_t host_total, host_swap;
	struct vp_mem m;

	g_assert_cmpint(vp_meminfo_host_totals(host, &host_total, &host_swap), ==, 0);
	g_assert_cmpint(vp_cgroup_read_mem(NULL, l, pc, host_total, host_swap, &m), ==, 0);
	g_assert_true(m.limited);
	g_assert_cmpuint(m.limit, ==, 536870912); /* c1's max -> the parent's 512 MiB */
	g_assert_cmpuint(m.usage, ==, 104857600);
	g_assert_cmpuint(m.shmem, ==, 10485760);
	g_assert_cmpuint(m.swap_limit, ==, 0);
	g_assert_cmpint(vp_render_meminfo(host, &m, out), ==, 0);
	assert_same_keys(out->str, host);
	g_assert_cmpuint(kb(out->str, "MemTotal"), ==, 524288);
	g_assert_cmpuint(kb(out->str, "MemFree"), ==, (536870912 - 104857600) / 1024);
	/* available = free + file LRU + reclaimable slab */
	g_assert_cmpuint(kb(out->str, "MemAvailable"), ==,
			 (536870912 - 104857600 + 41943040 + 2097152) / 1024);
	g_assert_cmpuint(kb(out->str, "Cached"), ==, 52428800 / 1024);
	g_assert_cmpuint(kb(out->str, "Shmem"), ==, 10240);
	g_assert_cmpuint(kb(out->str, "Active(anon)"), ==, 20480);
	g_assert_cmpuint(kb(out->str, "SReclaimable"), ==, 2048);
	g_assert_cmpuint(kb(out->str, "SwapTotal"), ==, 0);
	/* a field that cannot be scoped keeps the host's value */
	g_assert_cmpuint(kb(out->str, "Hugepagesize"), ==, kb(host, "Hugepagesize"));
	g_assert_cmpuint(kb(out->str, "VmallocTotal"), ==, kb(host, "VmallocTotal"));
}

static void test_mem_own_limit_missing_stat(void)
{
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = v2_layout();
	g_autoptr(GPtrArray) pc = proc_cgroup("/lxc/c2");
	g_autofree char *host = fixture_text("proc/meminfo");
	g_autoptr(GString) out = g_string_new("");
	uint64_t host_total, host_swap;
	struct vp_mem m;

	g_assert_cmpint(vp_meminfo_host_totals(host, &host_total, &host_swap), ==, 0);
	g_assert_cmpint(vp_cgroup_read_mem(NULL, l, pc, host_total, host_swap, &m), ==, 0);
	g_assert_true(m.limited);
	g_assert_cmpuint(m.limit, ==, 268435456);
	g_assert_cmpuint(m.usage, ==, 1048576);
	g_assert_cmpuint(m.cache, ==, 0); /* no memory.stat */
	g_assert_cmpint(vp_render_meminfo(host, &m, out), ==, 0);
	g_assert_cmpuint(kb(out->str, "MemTotal"), ==, 262144);
	g_assert_cmpuint(kb(out->str, "MemAvailable"), ==, 262144 - 1024);
}

static void test_mem_max_everywhere(void)
{
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = v2_layout();
	g_autoptr(GPtrArray) pc = proc_cgroup("/unlimited");
	g_autoptr(GPtrArray) nowhere = proc_cgroup("/does/not/exist");
	g_autoptr(GPtrArray) c1 = proc_cgroup("/lxc/c1");
	struct vp_mem m;

	g_assert_cmpint(vp_cgroup_read_mem(NULL, l, pc, 8ULL << 30, 0, &m), ==, 0);
	g_assert_false(m.limited);
	g_assert_cmpuint(m.limit, ==, 8ULL << 30);
	/* A limit above the host's memory is no limit either: clipped to the host. */
	g_assert_cmpint(vp_cgroup_read_mem(NULL, l, c1, 256 << 20, 0, &m), ==, 0);
	g_assert_false(m.limited);
	g_assert_cmpuint(m.limit, ==, 256 << 20);
	/* A cgroup whose files are all missing: nothing limited, no error. */
	g_assert_cmpint(vp_cgroup_read_mem(NULL, l, nowhere, 8ULL << 30, 0, &m), ==, 0);
	g_assert_false(m.limited);
}

static void test_mem_swap_limits(void)
{
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = v2_layout();
	g_autoptr(GPtrArray) c1 = proc_cgroup("/lxc/c1");
	g_autoptr(GPtrArray) c2 = proc_cgroup("/lxc/c2");
	struct vp_mem m;

	/* A host with 1 GiB of swap: c1's memory.swap.max is 0, so no swap for it. */
	g_assert_cmpint(vp_cgroup_read_mem(NULL, l, c1, 8ULL << 30, 1ULL << 30, &m), ==, 0);
	g_assert_cmpuint(m.swap_limit, ==, 0);
	g_assert_cmpuint(m.swap_usage, ==, 0);
	/* c2 has no swap files and its parent says max: the host's swap. */
	g_assert_cmpint(vp_cgroup_read_mem(NULL, l, c2, 8ULL << 30, 1ULL << 30, &m), ==, 0);
	g_assert_cmpuint(m.swap_limit, ==, 1ULL << 30);
}

static void test_cpu_quota_and_cpuset(void)
{
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = v2_layout();
	g_autoptr(GPtrArray) pc = proc_cgroup("/lxc/c1");
	g_autoptr(GPtrArray) c2 = proc_cgroup("/lxc/c2");
	struct vp_cpu c;

	/* cpuset "1", quota 1.5 -> ceil = 2, min(1, 2) = 1 */
	g_assert_cmpint(vp_cgroup_read_cpu(NULL, l, pc, host_online, 2, true, &c), ==, 0);
	g_assert_true(c.limited);
	g_assert_cmpuint(c.count, ==, 1);
	g_assert_cmpuint(c.cpuset->len, ==, 1);
	g_assert_cmpuint(g_array_index(c.cpuset, guint, 0), ==, 1);
	g_assert_cmpuint(c.quota_us, ==, 150000);
	g_assert_cmpuint(c.period_us, ==, 100000);
	g_assert_false(c.have_percpu);
	g_assert_cmpuint(c.total_user_ns, ==, 1500000000ULL);
	g_assert_cmpuint(c.total_system_ns, ==, 500000000ULL);
	vp_cpu_clear(&c);

	/* c2: no cpuset files (inherits 0-1 from lxc), quota max -> the host's CPUs */
	g_assert_cmpint(vp_cgroup_read_cpu(NULL, l, c2, host_online, 2, true, &c), ==, 0);
	g_assert_false(c.limited);
	g_assert_cmpuint(c.count, ==, 2);
	vp_cpu_clear(&c);
}

static void test_cpu_compute(void)
{
	struct vp_cpu c = {.quota_us = 50000, .period_us = 100000};

	/* quota only: 0.5 -> 1 CPU of the host's 2 */
	vp_cpu_compute(&c, host_online, 2, true);
	g_assert_cmpuint(c.count, ==, 1);
	g_assert_true(c.limited);
	/* the quota rule turned off */
	vp_cpu_compute(&c, host_online, 2, false);
	g_assert_cmpuint(c.count, ==, 2);
	g_assert_false(c.limited);
	/* 2.01 CPUs -> 3, but only 2 in the set */
	c.quota_us = 201000;
	vp_cpu_compute(&c, host_online, 2, true);
	g_assert_cmpuint(c.count, ==, 2);
	vp_cpu_clear(&c);
}

/* "processor physical-id siblings core-id cpu-cores apicid initial-apicid" of block n. */
static const char *cpuinfo_topology(const char *text, unsigned n)
{
	static char buf[128];
	static const char *const keys[] = {"processor", "physical id", "siblings",	"core id",
					   "cpu cores", "apicid",      "initial apicid"};
	g_auto(GStrv) blocks = g_strsplit(text, "\n\n", -1);
	g_autoptr(GString) s = g_string_new("");

	g_assert_cmpuint(n, <, g_strv_length(blocks));
	for (size_t k = 0; k < G_N_ELEMENTS(keys); k++) {
		g_auto(GStrv) lines = g_strsplit(blocks[n], "\n", -1);
		bool found = false;

		for (guint i = 0; lines[i] && !found; i++) {
			size_t kl = strlen(keys[k]);
			char *c = strchr(lines[i], ':');

			if (c && strncmp(lines[i], keys[k], kl) == 0 &&
			    strspn(lines[i] + kl, "\t ") == (size_t)(c - lines[i] - kl)) {
				g_string_append_printf(s, "%s%s", s->len ? " " : "",
						       g_strstrip(c + 1));
				found = true;
			}
		}
		g_assert_true(found);
	}
	g_strlcpy(buf, s->str, sizeof(buf));
	return buf;
}

/* The first block with the topology lines dropped: what must stay the host's. */
static char *cpuinfo_without_topology(const char *text)
{
	static const char *const keys[] = {"processor", "physical id", "siblings",	"core id",
					   "cpu cores", "apicid",      "initial apicid"};
	g_autofree char *first = g_strndup(text, strstr(text, "\n\n") - text);
	g_auto(GStrv) lines = g_strsplit(first, "\n", -1);
	GString *s = g_string_new("");

	for (guint i = 0; lines[i]; i++) {
		bool topo = false;

		for (size_t k = 0; k < G_N_ELEMENTS(keys); k++)
			if (g_str_has_prefix(lines[i], keys[k]))
				topo = true;
		if (!topo)
			g_string_append_printf(s, "%s\n", lines[i]);
	}
	return g_string_free(s, false);
}

static void test_render_cpuinfo_stat_online(void)
{
	g_autofree char *cpuinfo = fixture_text("proc/cpuinfo");
	g_autofree char *stat = fixture_text("proc/stat");
	g_autoptr(GString) ci = g_string_new(""), st = g_string_new(""), on = g_string_new("");
	g_autoptr(GArray) tot = NULL, idle = NULL;
	struct vp_cpu c = {.quota_us = UINT64_MAX, .period_us = 100000};
	uint64_t user1 = 3000000000ULL, sys1 = 1000000000ULL;
	unsigned cpu0, u, n, s, id;
	char *p;

	c.cpuset = g_array_new(FALSE, FALSE, sizeof(guint));
	g_array_append_val(c.cpuset, host_online[1]);
	c.have_percpu = true;
	c.user_ns = g_array_new(FALSE, TRUE, sizeof(uint64_t));
	c.system_ns = g_array_new(FALSE, TRUE, sizeof(uint64_t));
	g_array_set_size(c.user_ns, 2);
	g_array_set_size(c.system_ns, 2);
	g_array_index(c.user_ns, uint64_t, 1) = user1;
	g_array_index(c.system_ns, uint64_t, 1) = sys1;
	vp_cpu_compute(&c, host_online, 2, true);
	g_assert_cmpuint(c.count, ==, 1);

	/* cpuinfo: host CPU 1's block, renumbered 0, a package of one core (issue 11: it said
	 * siblings 2, cpu cores 2, core id 1, apicid 1); every other line is the host's. */
	g_assert_cmpint(vp_render_cpuinfo(cpuinfo, &c, ci), ==, 0);
	g_assert_true(g_str_has_prefix(ci->str, "processor\t: 0\n"));
	g_assert_null(strstr(ci->str, "processor\t: 1"));
	p = strstr(cpuinfo, "processor\t: 1\n");
	g_assert_nonnull(p);
	g_assert_cmpstr(cpuinfo_topology(ci->str, 0), ==, "0 0 1 0 1 0 0");
	{
		g_autofree char *shown = cpuinfo_without_topology(ci->str);
		g_autofree char *hosts = cpuinfo_without_topology(p);

		g_assert_cmpstr(shown, ==, hosts);
	}

	/* stat: one cpuN line from the accounting, the total agrees, the rest is the host's */
	g_assert_cmpint(vp_render_stat(stat, &c, st), ==, 0);
	g_assert_nonnull(strstr(st->str, "\ncpu0 "));
	g_assert_null(strstr(st->str, "\ncpu1 "));
	g_assert_cmpint(
		sscanf(strstr(st->str, "\ncpu0 ") + 1, "cpu%u %u %u %u %u", &cpu0, &u, &n, &s, &id),
		==, 5);
	g_assert_cmpuint(u, ==, 300); /* 3 s at USER_HZ 100 */
	g_assert_cmpuint(s, ==, 100);
	vp_stat_parse_host(stat, &tot, &idle);
	g_assert_cmpuint(id, ==, g_array_index(tot, uint64_t, 1) - 400);
	g_assert_true(g_str_has_prefix(st->str, "cpu  300 0 100 "));
	g_assert_nonnull(strstr(st->str, "\nintr "));
	g_assert_nonnull(strstr(st->str, "\nbtime "));
	g_assert_true(g_str_has_suffix(st->str, "\n"));
	g_assert_null(strstr(st->str, "\n\n"));

	g_assert_cmpint(vp_render_cpu_range(&c, on), ==, 0);
	g_assert_cmpstr(on->str, ==, "0\n");
	c.count = 3;
	g_string_truncate(on, 0);
	vp_render_cpu_range(&c, on);
	g_assert_cmpstr(on->str, ==, "0-2\n");
	vp_cpu_clear(&c);
}

/*
 * Two packages of two cores of two threads (host ids: core 0 and 4, apicid
 * pkg<<4 | core<<1 | thread, threads numbered after all cores as Linux does):
 * whatever subset a container sees, its blocks describe that subset alone.
 */
static void test_render_cpuinfo_topology(void)
{
	g_autofree char *host = fixture_text("proc/cpuinfo-2x2x2");
	static const struct {
		guint cpus[8];
		unsigned n, count;
		const char *want[4];
	} cases[] = {
		/* both threads of one core */
		{{1, 5}, 2, 2, {"0 0 2 0 1 0 0", "1 0 2 0 1 1 1"}},
		/* two cores of package 1, sparse host core ids 0 and 4 */
		{{2, 3}, 2, 2, {"0 0 2 0 2 0 0", "1 0 2 1 2 1 1"}},
		/* one core of each package, both threads */
		{{0, 2, 4, 6},
		 4,
		 4,
		 {"0 0 2 0 1 0 0", "1 1 2 0 1 2 2", "2 0 2 0 1 1 1", "3 1 2 0 1 3 3"}},
		/* a quota of 3 CPUs out of all 8: the first three */
		{{0, 1, 2, 3, 4, 5, 6, 7},
		 8,
		 3,
		 {"0 0 2 0 2 0 0", "1 0 2 1 2 1 1", "2 1 1 0 1 2 2"}},
		/* one CPU: processor 0 of a one-core package whatever host CPU it is */
		{{7}, 1, 1, {"0 0 1 0 1 0 0"}},
	};

	for (size_t t = 0; t < G_N_ELEMENTS(cases); t++) {
		g_autoptr(GString) ci = g_string_new(""), on = g_string_new("");
		struct vp_cpu c = {.quota_us = UINT64_MAX, .period_us = 100000};
		g_auto(GStrv) blocks = NULL;
		unsigned shown = 0;

		c.cpuset = g_array_new(FALSE, FALSE, sizeof(guint));
		g_array_append_vals(c.cpuset, cases[t].cpus, cases[t].n);
		c.count = cases[t].count;
		g_assert_cmpint(vp_render_cpuinfo(host, &c, ci), ==, 0);
		for (unsigned i = 0; i < c.count; i++)
			g_assert_cmpstr(cpuinfo_topology(ci->str, i), ==, cases[t].want[i]);
		blocks = g_strsplit(ci->str, "\n\n", -1);
		for (guint i = 0; blocks[i]; i++)
			shown += g_str_has_prefix(blocks[i], "processor");
		g_assert_cmpuint(shown, ==, c.count);
		/* the CPU list names the same processors */
		g_assert_cmpint(vp_render_cpu_range(&c, on), ==, 0);
		g_assert_cmpstr(on->str, ==,
				c.count == 1 ? "0\n"
					     : (c.count == 2 ? "0-1\n"
							     : (c.count == 3 ? "0-2\n" : "0-3\n")));
		vp_cpu_clear(&c);
	}
}

static void test_render_uptime_loadavg(void)
{
	g_autoptr(GString) out = g_string_new("");
	struct vp_cpu c = {.count = 2, .total_user_ns = 1000000000ULL};
	struct vp_loadavg l = {{0}, 1, 7, 42};

	g_assert_cmpint(vp_render_uptime(1234, 100, &c, out), ==, 0);
	g_assert_cmpstr(out->str, ==, "12.34 23.68\n"); /* idle = 2 * 12.34 - 1.00 */
	g_string_truncate(out, 0);
	g_assert_cmpint(vp_render_loadavg(&l, out), ==, 0);
	g_assert_cmpstr(out->str, ==, "0.00 0.00 0.00 1/7 42\n");
	/* One runnable task for a minute (12 samples): 1-min average near 1 - 1/e */
	for (int i = 0; i < 12; i++)
		vp_loadavg_fold(l.avg, 1);
	g_string_truncate(out, 0);
	vp_render_loadavg(&l, out);
	g_assert_true(g_str_has_prefix(out->str, "0.6"));
}

static void test_render_io_swaps(void)
{
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = v2_layout();
	g_autofree char *host = fixture_text("proc/diskstats");
	g_autofree char *swaps = fixture_text("proc/swaps");
	g_autoptr(GArray) devs = NULL;
	g_autoptr(GString) out = g_string_new(""), sw = g_string_new("");
	struct vp_mem m = {.swap_limit = 64 << 20, .swap_usage = 1 << 20};
	g_autofree char *fake = NULL;
	g_autoptr(GPtrArray) c1 = proc_cgroup("/lxc/c1");
	g_autoptr(GPtrArray) c2 = proc_cgroup("/lxc/c2");
	bool limited;

	g_assert_cmpint(vp_cgroup_read_io(NULL, l, c1, &devs, &limited), ==, 0);
	g_assert_true(limited);
	g_assert_cmpuint(devs->len, ==, 2);
	/* A host line for device 8:0 in the kernel's format, plus the fixture's. */
	fake = g_strconcat(host, "   8       0 sda 5 0 80 3 1 0 8 1 0 4 4 0 0 0 0 0 0\n", NULL);
	g_assert_cmpint(vp_render_diskstats(fake, devs, out), ==, 0);
	/* 253:0 is in the fixture host's file, 8:0 in the appended line; both did I/O */
	g_assert_cmpstr(out->str, ==,
			" 253       0 zram0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
			"   8       0 sda 10 0 2048 0 1 0 8 0 0 0 0 0 0 0 0 0 0\n");
	g_clear_pointer(&devs, g_array_unref);
	/* missing io.stat: no devices, still limited (not the root) */
	g_assert_cmpint(vp_cgroup_read_io(NULL, l, c2, &devs, &limited), ==, 0);
	g_assert_cmpuint(devs->len, ==, 0);

	g_assert_cmpint(vp_render_swaps(swaps, &m, sw), ==, 0);
	g_assert_true(g_str_has_prefix(sw->str, "Filename"));
	g_assert_nonnull(strstr(sw->str, "\t65536\t"));
	g_assert_nonnull(strstr(sw->str, "\t1024\t"));
}

static void fdcache_write(const char *dir, const char *name, const char *text)
{
	g_autofree char *p = g_build_filename(dir, name, NULL);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(write(fd, text, strlen(text)), ==, (ssize_t)strlen(text));
	close(fd);
}

static void test_fdcache_fresh_and_bounded(void)
{
	g_autofree char *dir = g_dir_make_tmp("veneer-fdcache-XXXXXX", NULL);
	g_autofree char *a = g_build_filename(dir, "a", NULL);
	g_autofree char *b = g_build_filename(dir, "b", NULL);
	g_autofree char *big = g_build_filename(dir, "big", NULL);
	g_autofree char *none = g_build_filename(dir, "none", NULL);
	g_autofree char *long_text = g_strnfill(10000, 'x');
	struct vp_fdcache *c = vp_fdcache_new(2);

	g_assert_nonnull(dir);
	fdcache_write(dir, "a", "1\n");
	fdcache_write(dir, "b", "2\n");
	fdcache_write(dir, "big", long_text);
	for (int i = 0; i < 3; i++) {
		g_autofree char *t = NULL;

		g_assert_cmpint(vp_fdcache_read(c, a, &t), ==, 0);
		g_assert_cmpstr(t, ==, "1\n");
	}
	/* rewritten in place behind the kept fd: the next read has the new text */
	fdcache_write(dir, "a", "22\n");
	{
		g_autofree char *t = NULL;

		g_assert_cmpint(vp_fdcache_read(c, a, &t), ==, 0);
		g_assert_cmpstr(t, ==, "22\n");
	}
	/* more than one buffer; a missing file is an error and keeps no fd */
	{
		g_autofree char *t = NULL, *u = NULL, *v = NULL;

		g_assert_cmpint(vp_fdcache_read(c, big, &t), ==, 0);
		g_assert_cmpstr(t, ==, long_text);
		g_assert_cmpint(vp_fdcache_read(c, none, &u), ==, -ENOENT);
		g_assert_cmpint(vp_fdcache_read(c, b, &v), ==, 0);
		g_assert_cmpstr(v, ==, "2\n");
	}
	/* never more than max fds */
	g_assert_cmpuint(vp_fdcache_size(c), <=, 2);
	/* a sweep keeps the fds of files that are still there (only a removed cgroup's go,
	 * tested on real cgroups in test_procfs_fresh.py) */
	{
		unsigned n = vp_fdcache_size(c);

		g_assert_cmpuint(n, >, 0);
		g_assert_cmpuint(vp_fdcache_sweep(c), ==, 0);
		g_assert_cmpuint(vp_fdcache_size(c), ==, n);
	}
	/* no cache: plain reads by path */
	{
		g_autofree char *t = NULL;

		g_assert_cmpint(vp_fdcache_read(NULL, a, &t), ==, 0);
		g_assert_cmpstr(t, ==, "22\n");
	}
	vp_fdcache_free(c);
	g_assert_cmpint(unlink(a), ==, 0);
	g_assert_cmpint(unlink(b), ==, 0);
	g_assert_cmpint(unlink(big), ==, 0);
	g_assert_cmpint(rmdir(dir), ==, 0);
}

/* Reads through the fd cache give what reads by path give. */
static void test_cgroup_reads_through_fdcache(void)
{
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = v2_layout();
	g_autoptr(GPtrArray) pc = proc_cgroup("/lxc/c1");
	struct vp_fdcache *fc = vp_fdcache_new(64);

	for (int i = 0; i < 2; i++) {
		struct vp_mem m1, m2;
		struct vp_cpu c1, c2;

		g_assert_cmpint(vp_cgroup_read_mem(NULL, l, pc, 8ULL << 30, 1ULL << 30, &m1), ==,
				0);
		g_assert_cmpint(vp_cgroup_read_mem(fc, l, pc, 8ULL << 30, 1ULL << 30, &m2), ==, 0);
		g_assert_cmpmem(&m1, sizeof(m1), &m2, sizeof(m2));
		g_assert_true(m2.limited);
		g_assert_cmpint(vp_cgroup_read_cpu(NULL, l, pc, host_online, 2, true, &c1), ==, 0);
		g_assert_cmpint(vp_cgroup_read_cpu(fc, l, pc, host_online, 2, true, &c2), ==, 0);
		g_assert_cmpuint(c1.count, ==, c2.count);
		g_assert_cmpuint(c1.quota_us, ==, c2.quota_us);
		g_assert_cmpuint(c1.period_us, ==, c2.period_us);
		g_assert_cmpuint(c1.total_user_ns, ==, c2.total_user_ns);
		g_assert_cmpuint(c1.total_system_ns, ==, c2.total_system_ns);
		g_assert_cmpuint(c1.cpuset->len, ==, c2.cpuset->len);
		vp_cpu_clear(&c2);
		/* the count alone: same CPUs, no accounting */
		g_assert_cmpint(vp_cgroup_read_cpu_count(fc, l, pc, host_online, 2, true, &c2), ==,
				0);
		g_assert_cmpuint(c1.count, ==, c2.count);
		g_assert_true(c1.limited == c2.limited);
		g_assert_cmpuint(c1.cpuset->len, ==, c2.cpuset->len);
		g_assert_false(c2.have_percpu);
		g_assert_cmpuint(c2.total_user_ns, ==, 0);
		vp_cpu_clear(&c1);
		vp_cpu_clear(&c2);
	}
	g_assert_cmpuint(vp_fdcache_size(fc), >, 0);
	vp_fdcache_free(fc);
}

/* A pid's namespace is remembered while the process lives, and never served once it is gone. */
static void test_pidcache_follows_the_process(void)
{
	int procfd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct vp_pidcache *c = vp_pidcache_new(2);
	uint64_t want, ns;
	pid_t child;
	int status;

	g_assert_cmpint(procfd, >=, 0);
	child = fork();
	g_assert_cmpint(child, >=, 0);
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
		pause();
		_exit(0);
	}
	g_assert_cmpint(vc_proc_pidns_ino(procfd, child, &want), ==, 0);
	for (int i = 0; i < 3; i++) { /* noted, then kept with a pidfd, then served from it */
		g_assert_cmpint(vp_pidcache_ns(c, procfd, child, &ns), ==, 0);
		g_assert_cmpuint(ns, ==, want);
	}
	g_assert_cmpuint(vp_pidcache_size(c), ==, 1);
	/* bounded: more pids than max empty the table instead of growing it */
	for (int i = 0; i < 8; i++) {
		g_assert_cmpint(vp_pidcache_ns(c, procfd, getpid(), &ns), ==, 0);
		g_assert_cmpint(vp_pidcache_ns(c, procfd, getppid(), &ns), ==, 0);
	}
	g_assert_cmpuint(vp_pidcache_size(c), <=, 2);
	g_assert_cmpint(vp_pidcache_ns(c, procfd, child, &ns), ==, 0);
	g_assert_cmpint(vp_pidcache_ns(c, procfd, child, &ns), ==, 0);
	/* gone (reaped): its pid answers nothing, the kept entry is not trusted */
	g_assert_cmpint(kill(child, SIGKILL), ==, 0);
	g_assert_cmpint(waitpid(child, &status, 0), ==, child);
	g_assert_cmpint(vp_pidcache_ns(c, procfd, child, &ns), ==, -ESRCH);
	vp_pidcache_free(c);
	close(procfd);
}

/* The sweeper thread starts, sweeps live files without dropping them, and stops on free. */
static void test_fdcache_sweeper_keeps_live_files(void)
{
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = v2_layout();
	g_autoptr(GPtrArray) pc = proc_cgroup("/lxc/c1");
	struct vp_fdcache *fc = vp_fdcache_new(64);
	struct vp_mem m;
	unsigned n;

	vp_fdcache_start_sweeper(fc, 1, NULL, NULL);
	g_assert_cmpint(vp_cgroup_read_mem(fc, l, pc, 8ULL << 30, 1ULL << 30, &m), ==, 0);
	n = vp_fdcache_size(fc);
	g_assert_cmpuint(n, >, 0);
	g_usleep(20 * 1000); /* a few sweeps */
	g_assert_cmpuint(vp_fdcache_size(fc), ==, n);
	vp_fdcache_free(fc);
}

/* v1: the limit comes from memory.stat's hierarchical_memory_limit when it is there (one read
 * instead of one per ancestor), else from the smallest memory.limit_in_bytes up the tree. */
static void test_mem_v1_hierarchical_limit(void)
{
	g_autofree char *root = g_dir_make_tmp("veneer-memv1-XXXXXX", NULL);
	g_autofree char *c1 = g_build_filename(root, "c1", NULL);
	g_autofree char *c2 = g_build_filename(root, "c2", NULL);
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = vc_cgroup_layout_new();
	g_autoptr(GPtrArray) p1 = NULL;
	g_autoptr(GPtrArray) p2 = NULL;
	static const char *const files[] = {"memory.limit_in_bytes", "memory.usage_in_bytes",
					    "memory.stat"};
	struct vc_cgroup_layout *lp = l;
	struct vp_fdcache *fc = vp_fdcache_new(16);

	g_assert_nonnull(root);
	g_assert_cmpint(vc_cgroup_parse_proc("5:memory:/c1\n1:name=systemd:/\n", &p1), ==, 0);
	g_assert_cmpint(vc_cgroup_parse_proc("5:memory:/c2\n", &p2), ==, 0);
	g_assert_cmpint(mkdir(c1, 0755), ==, 0);
	g_assert_cmpint(mkdir(c2, 0755), ==, 0);
	vc_cgroup_layout_add(l, VC_CGROUP_V1, "memory", root, "/");
	fdcache_write(root, "memory.limit_in_bytes", "1073741824\n");
	/* c1's own file says unlimited; the stat line is what applies */
	fdcache_write(c1, "memory.limit_in_bytes", "9223372036854771712\n");
	fdcache_write(c1, "memory.usage_in_bytes", "1048576\n");
	fdcache_write(c1, "memory.stat",
		      "total_rss 1048576\nhierarchical_memory_limit 268435456\n");
	/* c2: no stat line (an old kernel): the parent's 1 GiB */
	fdcache_write(c2, "memory.limit_in_bytes", "9223372036854771712\n");
	fdcache_write(c2, "memory.usage_in_bytes", "2097152\n");
	fdcache_write(c2, "memory.stat", "total_rss 2097152\n");
	for (int i = 0; i < 2; i++) {
		struct vp_fdcache *cache = i ? fc : NULL;
		struct vp_mem m;

		g_assert_cmpint(vp_cgroup_read_mem(cache, lp, p1, 8ULL << 30, 0, &m), ==, 0);
		g_assert_true(m.limited);
		g_assert_cmpuint(m.limit, ==, 268435456);
		g_assert_cmpuint(m.usage, ==, 1048576);
		g_assert_cmpuint(m.rss, ==, 1048576);
		g_assert_cmpint(vp_cgroup_read_mem(cache, lp, p2, 8ULL << 30, 0, &m), ==, 0);
		g_assert_true(m.limited);
		g_assert_cmpuint(m.limit, ==, 1073741824);
		g_assert_cmpuint(m.usage, ==, 2097152);
	}
	vp_fdcache_free(fc);
	for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
		g_autofree char *a = g_build_filename(c1, files[i], NULL);
		g_autofree char *b = g_build_filename(c2, files[i], NULL);

		g_assert_cmpint(unlink(a), ==, 0);
		g_assert_cmpint(unlink(b), ==, 0);
	}
	{
		g_autofree char *t = g_build_filename(root, "memory.limit_in_bytes", NULL);

		g_assert_cmpint(unlink(t), ==, 0);
	}
	g_assert_cmpint(rmdir(c1), ==, 0);
	g_assert_cmpint(rmdir(c2), ==, 0);
	g_assert_cmpint(rmdir(root), ==, 0);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/procfs/mem/nested-limit", test_mem_nested_limit);
	g_test_add_func("/procfs/mem/own-limit-missing-stat", test_mem_own_limit_missing_stat);
	g_test_add_func("/procfs/mem/max-everywhere", test_mem_max_everywhere);
	g_test_add_func("/procfs/mem/swap-limits", test_mem_swap_limits);
	g_test_add_func("/procfs/cpu/quota-and-cpuset", test_cpu_quota_and_cpuset);
	g_test_add_func("/procfs/cpu/compute", test_cpu_compute);
	g_test_add_func("/procfs/render/cpuinfo-stat-online", test_render_cpuinfo_stat_online);
	g_test_add_func("/procfs/render/cpuinfo-topology", test_render_cpuinfo_topology);
	g_test_add_func("/procfs/render/uptime-loadavg", test_render_uptime_loadavg);
	g_test_add_func("/procfs/render/io-swaps", test_render_io_swaps);
	g_test_add_func("/procfs/fdcache/fresh-and-bounded", test_fdcache_fresh_and_bounded);
	g_test_add_func("/procfs/fdcache/cgroup-reads", test_cgroup_reads_through_fdcache);
	g_test_add_func("/procfs/pidcache", test_pidcache_follows_the_process);
	g_test_add_func("/procfs/fdcache/sweeper", test_fdcache_sweeper_keeps_live_files);
	g_test_add_func("/procfs/mem/v1-hierarchical-limit", test_mem_v1_hierarchical_limit);
	return g_test_run();
}
