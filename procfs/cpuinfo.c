/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/cpuinfo of a container: the host's per-processor blocks of the CPUs
 * the container sees (the first count of its cpuset), renumbered from 0 so
 * that tools counting "processor" lines get the container's CPU count.
 */
#include <errno.h>
#include <string.h>

#include "parse-util.h"
#include "render.h"

static bool vp_cpuinfo_wanted(const struct vp_cpu *c, unsigned cpu)
{
	for (unsigned i = 0; i < c->count && i < c->cpuset->len; i++)
		if (g_array_index(c->cpuset, guint, i) == cpu)
			return true;
	return false;
}

int vp_render_cpuinfo(const char *host, const struct vp_cpu *c, GString *out)
{
	const char *p = host;
	unsigned next = 0;

	if (!host || !c->cpuset)
		return -EINVAL;
	while (*p) {
		const char *end = strstr(p, "\n\n");
		size_t len = end ? (size_t)(end - p) + 2 : strlen(p);
		g_autofree char *block = g_strndup(p, len);
		const char *colon;
		unsigned cpu;

		p += len;
		if (!g_str_has_prefix(block, "processor") || !(colon = strchr(block, ':'))) {
			g_string_append(out, block); /* not a processor block: keep */
			continue;
		}
		{
			g_autofree char *num = g_strndup(colon + 1, strcspn(colon + 1, "\n"));

			if (vc_parse_uint(num, &cpu) < 0)
				return -EINVAL;
		}
		if (!vp_cpuinfo_wanted(c, cpu))
			continue;
		g_string_append_len(out, block, colon + 1 - block);
		g_string_append_printf(out, " %u", next++);
		g_string_append(out, colon + 1 + strcspn(colon + 1, "\n"));
	}
	return 0;
}
