/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/cpuinfo of a container: the host's per-processor blocks of the CPUs
 * the container sees (the first count of its cpuset), renumbered from 0 so
 * that tools counting "processor" lines get the container's CPU count, with
 * the x86 topology lines (physical id, siblings, core id, cpu cores, apicid,
 * initial apicid) rewritten to describe those CPUs only.
 */
#include <errno.h>
#include <string.h>

#include "parse-util.h"
#include "render.h"

/* One shown CPU: where the host puts it, and where the container sees it. */
struct vp_ci_cpu {
	unsigned host_pkg, host_core; /* "physical id", "core id" (0 when absent) */
	unsigned pkg, core, thread;   /* renumbered: package, core in it, thread in it */
};

static bool vp_cpuinfo_wanted(const struct vp_cpu *c, unsigned cpu)
{
	for (unsigned i = 0; i < c->count && i < c->cpuset->len; i++)
		if (g_array_index(c->cpuset, guint, i) == cpu)
			return true;
	return false;
}

/* The value of "key<tabs>: value" in a block, as a number; false when absent. */
static bool vp_cpuinfo_field(const char *block, const char *key, unsigned *ret)
{
	size_t klen = strlen(key);

	for (const char *l = block; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		const char *p = l + klen;
		g_autofree char *v = NULL;

		if (strncmp(l, key, klen) != 0 || (*p != '\t' && *p != ' ' && *p != ':'))
			continue;
		p += strspn(p, "\t ");
		if (*p != ':')
			continue;
		v = g_strndup(p + 1, strcspn(p + 1, "\n"));
		return vc_parse_uint(v, ret) == 0;
	}
	return false;
}

/* Bits that hold 0..n-1, as the APIC id layout packs thread, core and package. */
static unsigned vp_bits(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

/*
 * Renumber packages and cores in the order the shown CPUs meet them; the
 * threads of one core in order too. Sparse host ids (core id 0, 4, 8...) and
 * CPUs outside the container leave no gaps.
 */
static void vp_cpuinfo_topology(GArray *cpus, unsigned *ret_pkg_shift, unsigned *ret_core_shift)
{
	unsigned max_threads = 1, max_cores = 1;

	for (guint i = 0; i < cpus->len; i++) {
		struct vp_ci_cpu *x = &g_array_index(cpus, struct vp_ci_cpu, i);
		unsigned pkgs = 0, cores = 0, threads = 0;
		bool pkg_seen = false, core_seen = false;

		for (guint j = 0; j < i; j++) {
			struct vp_ci_cpu *y = &g_array_index(cpus, struct vp_ci_cpu, j);

			if (y->host_pkg == x->host_pkg) {
				if (!pkg_seen)
					x->pkg = y->pkg;
				pkg_seen = true;
				if (y->host_core == x->host_core) {
					if (!core_seen)
						x->core = y->core;
					core_seen = true;
					threads++;
				}
			}
			pkgs = MAX(pkgs, y->pkg + 1);
			if (y->host_pkg == x->host_pkg)
				cores = MAX(cores, y->core + 1);
		}
		if (!pkg_seen)
			x->pkg = pkgs;
		if (!core_seen)
			x->core = cores;
		x->thread = threads;
		max_threads = MAX(max_threads, threads + 1);
		max_cores = MAX(max_cores, x->core + 1);
	}
	*ret_core_shift = vp_bits(max_threads);
	*ret_pkg_shift = *ret_core_shift + vp_bits(max_cores);
}

static unsigned vp_cpuinfo_count(GArray *cpus, const struct vp_ci_cpu *x, bool cores)
{
	unsigned n = 0;

	for (guint j = 0; j < cpus->len; j++) {
		const struct vp_ci_cpu *y = &g_array_index(cpus, struct vp_ci_cpu, j);

		if (y->pkg == x->pkg && (!cores || y->thread == 0))
			n++;
	}
	return n;
}

/* Append one block with its topology lines replaced. */
static void vp_cpuinfo_emit(GString *out, const char *block, unsigned processor, GArray *cpus,
			    unsigned pkg_shift, unsigned core_shift)
{
	const struct vp_ci_cpu *x = &g_array_index(cpus, struct vp_ci_cpu, processor);
	unsigned apic = (x->pkg << pkg_shift) | (x->core << core_shift) | x->thread;
	const struct {
		const char *key;
		unsigned value;
	} repl[] = {
		{"processor", processor},
		{"physical id", x->pkg},
		{"siblings", vp_cpuinfo_count(cpus, x, false)},
		{"core id", x->core},
		{"cpu cores", vp_cpuinfo_count(cpus, x, true)},
		{"apicid", apic},
		{"initial apicid", apic},
	};
	const char *l = block;

	while (*l) {
		size_t len = strcspn(l, "\n");
		const char *colon = memchr(l, ':', len);
		bool done = false;

		for (size_t k = 0; colon && k < G_N_ELEMENTS(repl) && !done; k++) {
			size_t klen = strlen(repl[k].key);

			if (strncmp(l, repl[k].key, klen) != 0 ||
			    strspn(l + klen, "\t ") != (size_t)(colon - l - klen))
				continue;
			g_string_append_len(out, l, colon + 1 - l);
			g_string_append_printf(out, " %u", repl[k].value);
			done = true;
		}
		if (!done)
			g_string_append_len(out, l, len);
		l += len;
		if (*l == '\n') {
			g_string_append_c(out, '\n');
			l++;
		}
	}
}

int vp_render_cpuinfo(const char *host, const struct vp_cpu *c, GString *out)
{
	g_autoptr(GPtrArray) blocks = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GArray) cpus = g_array_new(FALSE, TRUE, sizeof(struct vp_ci_cpu));
	unsigned pkg_shift, core_shift, next = 0;
	const char *p = host;

	if (!host || !c->cpuset)
		return -EINVAL;
	/* Pass 1: the blocks, and the host topology of the wanted ones. */
	while (*p) {
		const char *end = strstr(p, "\n\n");
		size_t len = end ? (size_t)(end - p) + 2 : strlen(p);
		char *block = g_strndup(p, len);
		unsigned cpu;

		p += len;
		g_ptr_array_add(blocks, block);
		if (!g_str_has_prefix(block, "processor"))
			continue; /* not a processor block: kept as it is */
		if (!vp_cpuinfo_field(block, "processor", &cpu))
			return -EINVAL;
		if (vp_cpuinfo_wanted(c, cpu)) {
			struct vp_ci_cpu x = {0};

			(void)vp_cpuinfo_field(block, "physical id", &x.host_pkg);
			if (!vp_cpuinfo_field(block, "core id", &x.host_core))
				x.host_core = cpu; /* no topology lines: one core each */
			g_array_append_val(cpus, x);
		} else {
			g_ptr_array_index(blocks, blocks->len - 1) = NULL;
			g_free(block);
		}
	}
	vp_cpuinfo_topology(cpus, &pkg_shift, &core_shift);
	/* Pass 2: the wanted blocks in host order, numbered 0.. like stat and online. */
	for (guint i = 0; i < blocks->len; i++) {
		const char *block = g_ptr_array_index(blocks, i);

		if (!block)
			continue;
		if (!g_str_has_prefix(block, "processor")) {
			g_string_append(out, block);
			continue;
		}
		vp_cpuinfo_emit(out, block, next++, cpus, pkg_shift, core_shift);
	}
	return 0;
}
