/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The CPU affinity step, as veneer-run's init does it for --cpus: a container
 * with a CPU quota of Q/P gets the affinity of its first process narrowed to
 * the first ceil(Q/P) CPUs it may use, the CPUs veneer-procfs shows it, so
 * that nproc and sched_getaffinity() agree with /proc/cpuinfo and
 * /sys/devices/system/cpu/online. The process is the runtime's init, still
 * waiting to exec the container's command: every thread of it is narrowed
 * (the one that execs keeps its mask), until a pass finds none left to do.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>

#include "cleanup.h"
#include "hook.h"
#include "log.h"
#include "parse-util.h"

#define VH_DEFAULT_CFS_PERIOD 100000 /* us: the kernel's, and runtimes' default */
#define VH_AFFINITY_PASSES 5

unsigned vh_cpu_want(int64_t quota, uint64_t period)
{
	if (quota <= 0)
		return 0;
	if (period == 0)
		period = VH_DEFAULT_CFS_PERIOD;
	return (unsigned)(((uint64_t)quota + period - 1) / period);
}

/* Narrow one thread; true when it had more than `want` CPUs. */
static int vh_affinity_thread(pid_t tid, unsigned want, bool *ret_changed)
{
	cpu_set_t set, narrow;
	unsigned have = 0;

	*ret_changed = false;
	if (sched_getaffinity(tid, sizeof(set), &set) < 0)
		return -errno;
	if ((unsigned)CPU_COUNT(&set) <= want)
		return 0;
	CPU_ZERO(&narrow);
	for (unsigned cpu = 0; cpu < CPU_SETSIZE && have < want; cpu++) {
		if (CPU_ISSET(cpu, &set)) {
			CPU_SET(cpu, &narrow);
			have++;
		}
	}
	if (sched_setaffinity(tid, sizeof(narrow), &narrow) < 0)
		return -errno;
	*ret_changed = true;
	return 0;
}

int vh_affinity_narrow(pid_t pid, unsigned want, unsigned *ret_threads)
{
	g_autofree char *task = g_strdup_printf("/proc/%d/task", (int)pid);
	unsigned changed_total = 0;

	*ret_threads = 0;
	if (want == 0)
		return 0;
	for (unsigned pass = 0; pass < VH_AFFINITY_PASSES; pass++) {
		_cleanup_closedir_ DIR *d = opendir(task);
		unsigned changed = 0;
		struct dirent *de;

		if (!d)
			return log_error_errno(-errno, "cannot list the threads of %d", (int)pid);
		while ((de = readdir(d))) {
			unsigned tid;
			bool ch;
			int r;

			if (vc_parse_uint(de->d_name, &tid) < 0)
				continue;
			r = vh_affinity_thread((pid_t)tid, want, &ch);
			if (r == -ESRCH)
				continue; /* a thread that ended meanwhile */
			if (r < 0)
				return log_error_errno(r, "cannot narrow the CPU affinity of %u",
						       tid);
			changed += ch;
		}
		if (changed == 0)
			break;
		changed_total += changed;
	}
	*ret_threads = changed_total;
	return 0;
}
