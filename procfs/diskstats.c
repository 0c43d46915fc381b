/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/diskstats of a container: the host's lines (their name column and
 * field count) of the devices the cgroup did I/O on, with the cgroup's
 * completed I/Os and sectors; what cgroups do not account (merges, times,
 * in-flight) reads as 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "render.h"

int vp_render_diskstats(const char *host, const GArray *devs, GString *out)
{
	g_auto(GStrv) lines = NULL;

	if (!host)
		return -EINVAL;
	lines = g_strsplit(host, "\n", -1);
	for (guint i = 0; lines[i]; i++) {
		unsigned ma, mi;
		int name_end = 0, nfields = 0;
		const struct vp_io_dev *d = NULL;
		uint64_t f[20] = {0};

		if (sscanf(lines[i], "%u %u %*s%n", &ma, &mi, &name_end) < 2 || name_end == 0)
			continue;
		for (guint j = 0; j < devs->len; j++) {
			const struct vp_io_dev *e = &g_array_index(devs, struct vp_io_dev, j);

			if (e->major == ma && e->minor == mi)
				d = e;
		}
		if (!d)
			continue;
		{
			g_auto(GStrv) rest = g_strsplit_set(lines[i] + name_end, " \t", -1);

			for (guint j = 0; rest[j]; j++)
				if (rest[j][0])
					nfields++;
		}
		if (nfields > 20)
			nfields = 20;
		f[0] = d->rios;
		f[2] = d->rbytes / 512;
		f[4] = d->wios;
		f[6] = d->wbytes / 512;
		f[11] = d->dios;
		f[13] = d->dbytes / 512;
		g_string_append_len(out, lines[i], name_end);
		for (int k = 0; k < nfields; k++)
			g_string_append_printf(out, " %" PRIu64, f[k]);
		g_string_append_c(out, '\n');
	}
	return 0;
}
