/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /sys/devices/system/cpu/{online,possible,present} of a container: the CPUs
 * it sees are numbered 0..count-1, the same numbering cpuinfo and stat use.
 */
#include <errno.h>

#include "render.h"

int vp_render_cpu_range(const struct vp_cpu *c, GString *out)
{
	if (c->count == 0)
		return -EINVAL;
	if (c->count == 1)
		g_string_append(out, "0\n");
	else
		g_string_append_printf(out, "0-%u\n", c->count - 1);
	return 0;
}
