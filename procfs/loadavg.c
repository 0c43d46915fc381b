/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/loadavg of a container: exponentially-decayed averages of its
 * runnable + uninterruptible tasks, folded every 5 s with the kernel's
 * constants (sampler.c takes the samples), then running/total tasks and the
 * highest pid as seen inside the container: no host pid leaks.
 */
#include <errno.h>
#include <inttypes.h>

#include "render.h"

#define VP_FSHIFT 11
#define VP_FIXED_1 ((uint64_t)1 << VP_FSHIFT)
#define VP_LOAD_INT(x) ((x) >> VP_FSHIFT)
#define VP_LOAD_FRAC(x) VP_LOAD_INT(((x) & (VP_FIXED_1 - 1)) * 100)

void vp_loadavg_fold(uint64_t avg[3], unsigned active)
{
	static const uint64_t exps[3] = {1884, 2014, 2037}; /* 1/exp(5s/1min), 5, 15 min */
	uint64_t a = (uint64_t)active * VP_FIXED_1;

	for (int i = 0; i < 3; i++) {
		uint64_t v = avg[i] * exps[i] + a * (VP_FIXED_1 - exps[i]);

		if (a >= avg[i])
			v += VP_FIXED_1 - 1;
		avg[i] = v / VP_FIXED_1;
	}
}

int vp_render_loadavg(const struct vp_loadavg *l, GString *out)
{
	uint64_t a[3];

	for (int i = 0; i < 3; i++)
		a[i] = l->avg[i] + VP_FIXED_1 / 200; /* round like the kernel */
	g_string_append_printf(out,
			       "%" PRIu64 ".%02" PRIu64 " %" PRIu64 ".%02" PRIu64 " %" PRIu64
			       ".%02" PRIu64 " %u/%u %d\n",
			       VP_LOAD_INT(a[0]), VP_LOAD_FRAC(a[0]), VP_LOAD_INT(a[1]),
			       VP_LOAD_FRAC(a[1]), VP_LOAD_INT(a[2]), VP_LOAD_FRAC(a[2]),
			       l->running, l->total, l->last_pid);
	return 0;
}
