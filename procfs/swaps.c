/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/swaps of a container: the host's header, and one line for the swap
 * the cgroup may use (its share of the host's swap), none when it may use none.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "render.h"

int vp_render_swaps(const char *host, const struct vp_mem *m, GString *out)
{
	const char *nl;

	if (!host)
		return -EINVAL;
	nl = strchr(host, '\n');
	g_string_append_len(out, host, nl ? (gssize)(nl - host + 1) : (gssize)strlen(host));
	if (!nl)
		g_string_append_c(out, '\n');
	if (m->swap_limit == 0)
		return 0;
	/* The kernel's layout: name padded to 40, type, size, used (kB), priority. */
	g_string_append_printf(out, "%-40s%s\t\t%" PRIu64 "\t\t%" PRIu64 "\t\t%d\n", "none",
			       "partition", m->swap_limit / 1024, m->swap_usage / 1024, -1);
	return 0;
}
