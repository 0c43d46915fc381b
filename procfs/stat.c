/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/stat of a container: one cpuN line per CPU it sees, user and system
 * from the cgroup's CPU accounting (CPUs of its cpuset beyond the count are
 * folded onto the shown ones), idle = the rest of that CPU's time; the "cpu"
 * line is the sum of the cpuN lines. Every other line is the host's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "parse-util.h"
#include "proc-util.h"
#include "render.h"

/* "cpuN f1 f2 ..." -> N (or -1 for the "cpu" line) and the numbers. */
static int vp_stat_cpu_line(const char *line, int *ret_cpu, uint64_t f[10], unsigned *ret_n)
{
	g_auto(GStrv) t = g_strsplit_set(line, " \t", -1);
	unsigned n = 0;
	guint i;

	if (!t[0] || !g_str_has_prefix(t[0], "cpu"))
		return -EINVAL;
	if (t[0][3] == '\0') {
		*ret_cpu = -1;
	} else {
		unsigned c;

		if (vc_parse_uint(t[0] + 3, &c) < 0)
			return -EINVAL;
		*ret_cpu = (int)c;
	}
	for (i = 1; t[i]; i++) {
		if (t[i][0] == '\0')
			continue;
		if (n < 10 && vc_parse_u64(t[i], &f[n]) >= 0)
			n++;
	}
	*ret_n = n;
	return 0;
}

int vp_stat_parse_host(const char *host, GArray **ret_total, GArray **ret_idle)
{
	g_autoptr(GArray) tot = g_array_new(FALSE, TRUE, sizeof(uint64_t));
	g_autoptr(GArray) idle = g_array_new(FALSE, TRUE, sizeof(uint64_t));
	g_auto(GStrv) lines = g_strsplit(host, "\n", -1);

	for (guint i = 0; lines[i]; i++) {
		uint64_t f[10] = {0}, sum = 0;
		unsigned n;
		int cpu;

		if (vp_stat_cpu_line(lines[i], &cpu, f, &n) < 0 || cpu < 0 || n < 4)
			continue;
		for (unsigned k = 0; k < n && k < 8; k++) /* guest time is already in user */
			sum += f[k];
		if ((guint)cpu >= tot->len) {
			g_array_set_size(tot, cpu + 1);
			g_array_set_size(idle, cpu + 1);
		}
		g_array_index(tot, uint64_t, cpu) = sum;
		g_array_index(idle, uint64_t, cpu) = f[3] + (n > 4 ? f[4] : 0);
	}
	*ret_total = g_steal_pointer(&tot);
	*ret_idle = g_steal_pointer(&idle);
	return 0;
}

static uint64_t vp_at(const GArray *a, guint i)
{
	return a && i < a->len ? g_array_index(a, uint64_t, i) : 0;
}

static void vp_stat_append(GString *out, const char *name, const uint64_t f[10])
{
	g_string_append(out, name);
	for (int k = 0; k < 10; k++)
		g_string_append_printf(out, " %" PRIu64, f[k]);
	g_string_append_c(out, '\n');
}

int vp_render_stat(const char *host, const struct vp_cpu *c, GString *out)
{
	g_autoptr(GArray) htot = NULL, hidle = NULL;
	g_autofree uint64_t *rows = NULL; /* n rows of 10 fields */
	uint64_t sum[10] = {0};
	uint64_t ns_per_tick = 1000000000ULL / vc_proc_clk_tck();
	g_auto(GStrv) lines = NULL;
	bool cpus_done = false;
	unsigned n = c->count;

	if (!host || n == 0 || !c->cpuset)
		return -EINVAL;
	vp_stat_parse_host(host, &htot, &hidle);
	rows = g_new0(uint64_t, (gsize)n * 10);
	for (unsigned j = 0; j < c->cpuset->len; j++) {
		guint phys = g_array_index(c->cpuset, guint, j);
		unsigned i = j % n;

		if (c->have_percpu) {
			rows[i * 10 + 0] += vp_at(c->user_ns, phys) / ns_per_tick;
			rows[i * 10 + 2] += vp_at(c->system_ns, phys) / ns_per_tick;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		guint phys = g_array_index(c->cpuset, guint, i);
		uint64_t busy, t = vp_at(htot, phys);

		if (!c->have_percpu) {
			rows[i * 10 + 0] = c->total_user_ns / ns_per_tick / n;
			rows[i * 10 + 2] = c->total_system_ns / ns_per_tick / n;
		}
		busy = rows[i * 10 + 0] + rows[i * 10 + 2];
		rows[i * 10 + 3] = t > busy ? t - busy : 0;
		for (int k = 0; k < 10; k++)
			sum[k] += rows[i * 10 + k];
	}
	lines = g_strsplit(host, "\n", -1);
	for (guint i = 0; lines[i]; i++) {
		if (g_str_has_prefix(lines[i], "cpu")) {
			if (!cpus_done) {
				vp_stat_append(out, "cpu ", sum);
				for (unsigned k = 0; k < n; k++) {
					char name[32];

					snprintf(name, sizeof(name), "cpu%u", k);
					vp_stat_append(out, name, &rows[k * 10]);
				}
				cpus_done = true;
			}
			continue;
		}
		if (lines[i][0] == '\0' && !lines[i + 1])
			break;
		g_string_append(out, lines[i]);
		g_string_append_c(out, '\n');
	}
	return 0;
}
