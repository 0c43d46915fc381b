/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The files veneer-procfs serves, relative to its mount point and to a
 * container's "/": what veneer-run and the OCI hook bind over a container's
 * /proc and /sys. procfs/nodes.c is the server's side of the same list.
 */
#pragma once

static const char *const vc_procfs_files[] = {
	"proc/meminfo",
	"proc/cpuinfo",
	"proc/stat",
	"proc/uptime",
	"proc/loadavg",
	"proc/swaps",
	"proc/diskstats",
	"sys/devices/system/cpu/online",
	"sys/devices/system/cpu/possible",
	"sys/devices/system/cpu/present",
};
