/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/meminfo of a container: the host's file with the memory fields taken
 * from the cgroup (MemTotal = the limit; free/available/cache/LRU from its
 * usage and memory.stat). Keys, order, column widths and units stay the
 * host's; fields that cannot be scoped to a cgroup keep the host's values.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "parse-util.h"
#include "render.h"

struct vp_meminfo_field {
	const char *key;
	uint64_t kb;
};

int vp_meminfo_host_totals(const char *host, uint64_t *ret_mem, uint64_t *ret_swap)
{
	uint64_t m, s = 0;
	int r = vc_kv_lookup_u64(host, "MemTotal", &m);

	if (r < 0)
		return r;
	(void)vc_kv_lookup_u64(host, "SwapTotal", &s);
	*ret_mem = m * 1024;
	*ret_swap = s * 1024;
	return 0;
}

/* Append one "Key:   value kB" line, the number right-aligned where the host's was. */
static void vp_meminfo_line(GString *out, const char *line, size_t len, uint64_t kb)
{
	const char *colon = memchr(line, ':', len);
	const char *num, *end;
	size_t width;

	num = colon + 1;
	while (num < line + len && *num == ' ')
		num++;
	end = num;
	while (end < line + len && *end >= '0' && *end <= '9')
		end++;
	width = (size_t)(end - (colon + 1));
	g_string_append_len(out, line, colon + 1 - line);
	g_string_append_printf(out, "%*" PRIu64, (int)width, kb);
	g_string_append_len(out, end, line + len - end);
}

int vp_render_meminfo(const char *host, const struct vp_mem *m, GString *out)
{
	uint64_t total = m->limit, usage = m->usage;
	uint64_t free_ = total > usage ? total - usage : 0;
	uint64_t file = m->active_file + m->inactive_file;
	uint64_t avail = free_ + file + m->slab_reclaimable;
	uint64_t swap_total = m->swap_limit;
	uint64_t swap_free = swap_total > m->swap_usage ? swap_total - m->swap_usage : 0;
	const struct vp_meminfo_field fields[] = {
		{"MemTotal", total / 1024},
		{"MemFree", free_ / 1024},
		{"MemAvailable", MIN(avail, total) / 1024},
		{"Buffers", 0},
		{"Cached", m->cache / 1024},
		{"SwapCached", 0},
		{"Active", (m->active_anon + m->active_file) / 1024},
		{"Inactive", (m->inactive_anon + m->inactive_file) / 1024},
		{"Active(anon)", m->active_anon / 1024},
		{"Inactive(anon)", m->inactive_anon / 1024},
		{"Active(file)", m->active_file / 1024},
		{"Inactive(file)", m->inactive_file / 1024},
		{"Unevictable", m->unevictable / 1024},
		{"SwapTotal", swap_total / 1024},
		{"SwapFree", swap_free / 1024},
		{"AnonPages", m->rss / 1024},
		{"Mapped", m->mapped / 1024},
		{"Shmem", m->shmem / 1024},
		{"Slab", (m->slab_reclaimable + m->slab_unreclaimable) / 1024},
		{"SReclaimable", m->slab_reclaimable / 1024},
		{"SUnreclaim", m->slab_unreclaimable / 1024},
	};
	const char *line = host;

	if (!host)
		return -EINVAL;
	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *colon = memchr(line, ':', len);
		bool done = false;

		for (size_t i = 0; colon && i < G_N_ELEMENTS(fields); i++) {
			size_t kl = strlen(fields[i].key);

			if ((size_t)(colon - line) == kl && memcmp(line, fields[i].key, kl) == 0) {
				vp_meminfo_line(out, line, len, fields[i].kb);
				done = true;
				break;
			}
		}
		if (!done)
			g_string_append_len(out, line, len);
		if (!nl)
			break;
		g_string_append_c(out, '\n');
		line = nl + 1;
	}
	return 0;
}
