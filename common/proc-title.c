/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Process titles (see proc-title.h), as systemd's rename_process() does it:
 * a new argument area announced with prctl(PR_SET_MM), else the old one
 * rewritten in place.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <glib.h>

#include "cleanup.h"
#include "proc-title.h"

/* Fields 48 and 49 of /proc/self/stat: where the argument area is. */
static int vc_proc_title_area(char **ret_start, char **ret_end)
{
	char buf[2048], *p, *save = NULL, *tok;
	unsigned long long v[2] = {0, 0};
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n;
	int field = 3;

	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the comm may hold blanks and parentheses */
	if (!p)
		return -EINVAL;
	for (tok = strtok_r(p + 1, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), field++)
		if (field == 48 || field == 49)
			v[field - 48] = strtoull(tok, NULL, 10);
	if (v[0] == 0 || v[1] <= v[0])
		return -EINVAL;
	*ret_start = (char *)(uintptr_t)v[0];
	*ret_end = (char *)(uintptr_t)v[1];
	return 0;
}

static int vc_proc_title_move(const char *title)
{
	size_t len = strlen(title) + 1, size = (len + 4095) & ~(size_t)4095;
	char *area = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (area == MAP_FAILED)
		return -errno;
	memcpy(area, title, len);
	/*
	 * The kernel checks start <= end after each call: the new area may lie
	 * above the old end, so on failure set the end first (as systemd does).
	 * The area is never freed: the kernel reads the command line from it.
	 */
	if (prctl(PR_SET_MM, PR_SET_MM_ARG_START, (unsigned long)area, 0, 0) < 0) {
		if (prctl(PR_SET_MM, PR_SET_MM_ARG_END, (unsigned long)area + len, 0, 0) < 0 ||
		    prctl(PR_SET_MM, PR_SET_MM_ARG_START, (unsigned long)area, 0, 0) < 0) {
			int r = -errno;

			munmap(area, size);
			return r;
		}
	} else if (prctl(PR_SET_MM, PR_SET_MM_ARG_END, (unsigned long)area + len, 0, 0) < 0) {
		return -errno;
	}
	return 0;
}

int vc_proc_set_title(const char *title, const char *comm)
{
	char *start, *end;

	if (vc_proc_title_move(title) < 0 && vc_proc_title_area(&start, &end) == 0) {
		size_t room = (size_t)(end - start);

		/* The old area, cut to its size; the rest zeroed so no argument shows. */
		memset(start, 0, room);
		memcpy(start, title, MIN(strlen(title), room - 1));
	}
	if (prctl(PR_SET_NAME, (unsigned long)comm, 0, 0, 0) < 0)
		return -errno;
	return 0;
}
