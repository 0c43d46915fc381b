/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/uptime of a container: the age of its init process, and as idle the
 * CPU time its CPUs had and it did not use (so idle <= uptime * CPUs).
 */
#include <errno.h>
#include <inttypes.h>

#include "render.h"

int vp_render_uptime(uint64_t age_ticks, unsigned hz, const struct vp_cpu *c, GString *out)
{
	uint64_t cap, used, idle;
	unsigned cpus = c && c->count ? c->count : 1;

	if (hz == 0)
		return -EINVAL;
	cap = age_ticks * cpus;
	used = c ? (c->total_user_ns + c->total_system_ns) / (1000000000ULL / hz) : 0;
	idle = cap > used ? cap - used : 0;
	g_string_append_printf(out, "%" PRIu64 ".%02" PRIu64 " %" PRIu64 ".%02" PRIu64 "\n",
			       age_ticks / hz, (age_ticks % hz) * 100 / hz, idle / hz,
			       (idle % hz) * 100 / hz);
	return 0;
}
