/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for common/cgroup-util.c and common/proc-util.c: layouts from
 * real mountinfo text (v1+v2 hybrid, pure v2, nested with a subtree root),
 * /proc/PID/cgroup parsing, path mapping and limits up a fixture cgroup2 tree;
 * /proc/PID/stat and NSpid parsing.
 */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "cgroup-util.h"
#include "fd-util.h"
#include "proc-util.h"

static char *fixture(const char *rel)
{
	const char *dir = g_getenv("VENEER_FIXTURES");

	g_assert_nonnull(dir);
	return g_build_filename(dir, rel, NULL);
}

static char *fixture_text(const char *rel)
{
	g_autofree char *p = fixture(rel);
	char *text = NULL;

	g_assert_cmpint(vc_read_file_at(AT_FDCWD, p, &text, NULL), ==, 0);
	return text;
}

static void test_layout_hybrid(void)
{
	g_autofree char *mi = fixture_text("proc/mountinfo-hybrid");
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = NULL;
	const struct vc_cgroup_hier *h;

	g_assert_cmpint(vc_cgroup_layout_parse(mi, "/sys/fs/cgroup", &l), ==, 0);
	g_assert_cmpuint(l->hiers->len, ==, 10); /* nine v1 + the unified v2 */
	h = vc_cgroup_layout_find(l, "memory");
	g_assert_nonnull(h);
	g_assert_cmpint(h->version, ==, VC_CGROUP_V1);
	g_assert_cmpstr(h->mount, ==, "/sys/fs/cgroup/memory");
	g_assert_cmpstr(h->controllers, ==, "memory");
	h = vc_cgroup_layout_find(l, "name=systemd");
	g_assert_nonnull(h);
	g_assert_cmpstr(h->mount, ==, "/sys/fs/cgroup/systemd");
	h = vc_cgroup_layout_v2(l);
	g_assert_nonnull(h);
	g_assert_cmpstr(h->mount, ==, "/sys/fs/cgroup/unified");
	g_assert_null(vc_cgroup_layout_find(l, "rdma"));
	/* A root that excludes everything. */
	{
		_cleanup_cgroup_layout_ struct vc_cgroup_layout *none = NULL;

		g_assert_cmpint(vc_cgroup_layout_parse(mi, "/srv", &none), ==, -ENOENT);
	}
}

static void test_layout_v2_and_nested(void)
{
	g_autofree char *v2 = fixture_text("proc/mountinfo-v2");
	g_autofree char *nested = fixture_text("proc/mountinfo-nested");
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = NULL, *n = NULL;
	const struct vc_cgroup_hier *h;
	g_autofree char *dir = NULL;

	g_assert_cmpint(vc_cgroup_layout_parse(v2, "/sys/fs/cgroup", &l), ==, 0);
	g_assert_cmpuint(l->hiers->len, ==, 1);
	g_assert_cmpint(((struct vc_cgroup_hier *)l->hiers->pdata[0])->version, ==, VC_CGROUP_V2);

	/* Nested: the daemon sees the host's hierarchy below /host, showing subtree /lxc/c1. */
	g_assert_cmpint(vc_cgroup_layout_parse(nested, "/host", &n), ==, 0);
	g_assert_cmpuint(n->hiers->len, ==, 1); /* the bind mount of the same hierarchy is one */
	h = vc_cgroup_layout_v2(n);
	g_assert_cmpstr(h->root, ==, "/lxc/c1");
	g_assert_cmpint(vc_cgroup_dir(h, "/lxc/c1/inner", &dir), ==, 0);
	g_assert_cmpstr(dir, ==, "/host/cgroup/inner");
	g_clear_pointer(&dir, g_free);
	g_assert_cmpint(vc_cgroup_dir(h, "/lxc/c1", &dir), ==, 0);
	g_assert_cmpstr(dir, ==, "/host/cgroup");
	g_clear_pointer(&dir, g_free);
	g_assert_cmpint(vc_cgroup_dir(h, "/lxc/c2", &dir), ==, -ENOENT);
	g_assert_cmpint(vc_cgroup_dir(h, "/lxc/c10", &dir), ==, -ENOENT);
}

static void test_proc_cgroup(void)
{
	g_autofree char *mi = fixture_text("proc/mountinfo-hybrid");
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = NULL;
	g_autoptr(GPtrArray) pc = NULL;
	const char *text = "9:name=systemd:/\n8:pids:/a\n4:memory:/process_api/x y\n"
			   "2:cpuacct:/\n1:cpu:/c\n0::/u\n";

	g_assert_cmpint(vc_cgroup_layout_parse(mi, "/sys/fs/cgroup", &l), ==, 0);
	g_assert_cmpint(vc_cgroup_parse_proc(text, &pc), ==, 0);
	g_assert_cmpuint(pc->len, ==, 6);
	g_assert_cmpstr(vc_cgroup_path_in(pc, vc_cgroup_layout_find(l, "memory")), ==,
			"/process_api/x y");
	g_assert_cmpstr(vc_cgroup_path_in(pc, vc_cgroup_layout_find(l, "cpu")), ==, "/c");
	g_assert_cmpstr(vc_cgroup_path_in(pc, vc_cgroup_layout_v2(l)), ==, "/u");
	g_assert_null(vc_cgroup_path_in(pc, vc_cgroup_layout_find(l, "blkio")));
	g_clear_pointer(&pc, g_ptr_array_unref);
	g_assert_cmpint(vc_cgroup_parse_proc("garbage\n", &pc), ==, -EINVAL);
	/* co-mounted controllers in either order */
	{
		_cleanup_cgroup_layout_ struct vc_cgroup_layout *co = vc_cgroup_layout_new();

		vc_cgroup_layout_add(co, VC_CGROUP_V1, "cpu,cpuacct", "/x", "/");
		g_assert_cmpint(vc_cgroup_parse_proc("3:cpuacct,cpu:/k\n", &pc), ==, 0);
		g_assert_cmpstr(vc_cgroup_path_in(pc, vc_cgroup_layout_find(co, "cpuacct")), ==,
				"/k");
	}
}

static void test_min_up(void)
{
	g_autofree char *root = fixture("cgroup2");
	g_autofree char *c1 = NULL, *c2 = NULL, *un = NULL;
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = vc_cgroup_layout_new();
	const struct vc_cgroup_hier *h;
	g_autoptr(GPtrArray) anc = NULL;
	uint64_t v;

	vc_cgroup_layout_add(l, VC_CGROUP_V2, NULL, root, "/");
	h = vc_cgroup_layout_find(l, "memory"); /* from the fixture's cgroup.controllers */
	g_assert_nonnull(h);
	g_assert_cmpint(vc_cgroup_dir(h, "/lxc/c1", &c1), ==, 0);
	g_assert_cmpint(vc_cgroup_ancestors(h, c1, &anc), ==, 0);
	g_assert_cmpuint(anc->len, ==, 3);
	/* c1 says max, its parent 512 MiB: the parent's limit applies. */
	g_assert_cmpint(vc_cgroup_min_up(h, c1, "memory.max", &v), ==, 0);
	g_assert_cmpuint(v, ==, 536870912);
	/* c2 sets less than its parent. */
	g_assert_cmpint(vc_cgroup_dir(h, "/lxc/c2", &c2), ==, 0);
	g_assert_cmpint(vc_cgroup_min_up(h, c2, "memory.max", &v), ==, 0);
	g_assert_cmpuint(v, ==, 268435456);
	/* max everywhere (the root has no memory.max at all) */
	g_assert_cmpint(vc_cgroup_dir(h, "/unlimited", &un), ==, 0);
	g_assert_cmpint(vc_cgroup_min_up(h, un, "memory.max", &v), ==, 0);
	g_assert_cmpuint(v, ==, UINT64_MAX);
	/* a file nobody has */
	g_assert_cmpint(vc_cgroup_min_up(h, c2, "pids.max", &v), ==, 0);
	g_assert_cmpuint(v, ==, UINT64_MAX);
	g_assert_cmpint(vc_cgroup_read_u64(c2, "memory.stat", &v), ==, -ENOENT);
}

static void test_parse_u64(void)
{
	char max[] = "max\n", minus[] = "-1\n", num[] = " 268435456\n", bad[] = "12k";
	uint64_t v = 0;

	g_assert_cmpint(vc_cgroup_parse_u64(max, &v), ==, 0);
	g_assert_cmpuint(v, ==, UINT64_MAX);
	g_assert_cmpint(vc_cgroup_parse_u64(minus, &v), ==, 0);
	g_assert_cmpuint(v, ==, UINT64_MAX);
	g_assert_cmpint(vc_cgroup_parse_u64(num, &v), ==, 0);
	g_assert_cmpuint(v, ==, 268435456);
	g_assert_cmpint(vc_cgroup_parse_u64(bad, &v), ==, -EINVAL);
}

static void test_proc_stat(void)
{
	struct vc_proc_stat st;
	const char *s =
		"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 9 0 0 20 0 1 0 "
		"123456 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

	g_assert_cmpint(vc_proc_parse_stat(s, &st), ==, 0);
	g_assert_cmpint(st.state, ==, 'S');
	g_assert_cmpint(st.ppid, ==, 1);
	g_assert_cmpuint(st.utime, ==, 17);
	g_assert_cmpuint(st.stime, ==, 9);
	g_assert_cmpuint(st.starttime, ==, 123456);
	g_assert_cmpint(vc_proc_parse_stat("12 (x S 1", &st), ==, -EINVAL);
	g_assert_cmpint(vc_proc_parse_stat("12 (x) S 1 2", &st), ==, -EINVAL);
}

static void test_nspid(void)
{
	g_autoptr(GArray) a = NULL;
	pid_t pp;
	const char *status = "Name:\tsh\nState:\tS (sleeping)\nPPid:\t77\nNSpid:\t7842\t3\t1\n";

	g_assert_cmpint(vc_proc_parse_nspid(status, &a), ==, 0);
	g_assert_cmpuint(a->len, ==, 3);
	g_assert_cmpint(g_array_index(a, pid_t, 0), ==, 7842);
	g_assert_cmpint(g_array_index(a, pid_t, 2), ==, 1);
	g_assert_cmpint(vc_proc_parse_ppid(status, &pp), ==, 0);
	g_assert_cmpint(pp, ==, 77);
	g_clear_pointer(&a, g_array_unref);
	g_assert_cmpint(vc_proc_parse_nspid("Name:\tx\n", &a), ==, -ENOENT);
	g_assert_cmpint(vc_proc_parse_nspid("NSpid:\t12 x\n", &a), ==, -EINVAL);
}

static void test_self_ns_init(void)
{
	/* Our own namespace's init is found from ourselves (the host, or a CI container). */
	int procfd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	uint64_t a, b;
	pid_t init = 0;

	g_assert_cmpint(procfd, >=, 0);
	g_assert_cmpint(vc_proc_pidns_ino(procfd, 0, &a), ==, 0);
	g_assert_cmpint(vc_proc_pidns_ino(procfd, getpid(), &b), ==, 0);
	g_assert_cmpuint(a, ==, b);
	g_assert_cmpint(vc_proc_find_ns_init(procfd, getpid(), &init), ==, 0);
	g_assert_cmpint(init, ==, 1);
	g_assert_cmpint(vc_proc_find_ns_init(procfd, 0x3fffffff, &init), ==, -ESRCH);
	close(procfd);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/cgroup-util/layout-hybrid", test_layout_hybrid);
	g_test_add_func("/cgroup-util/layout-v2-nested", test_layout_v2_and_nested);
	g_test_add_func("/cgroup-util/proc-cgroup", test_proc_cgroup);
	g_test_add_func("/cgroup-util/min-up", test_min_up);
	g_test_add_func("/cgroup-util/parse-u64", test_parse_u64);
	g_test_add_func("/proc-util/stat", test_proc_stat);
	g_test_add_func("/proc-util/nspid", test_nspid);
	g_test_add_func("/proc-util/self-ns-init", test_self_ns_init);
	return g_test_run();
}
