/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgroup discovery and reads: which hierarchies are mounted where (v1, v2 or
 * both: "hybrid"), limited to mounts below a configurable cgroup fs root for
 * nested setups; which cgroup a process is in (/proc/PID/cgroup); and reading
 * a cgroup's files, including limits that apply from any ancestor.
 * Everything returns >= 0 or -errno; no global state.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

enum vc_cgroup_version {
	VC_CGROUP_V1 = 1,
	VC_CGROUP_V2 = 2,
};

/* One mounted hierarchy. */
struct vc_cgroup_hier {
	enum vc_cgroup_version version;
	/* v1: the mount's controllers as the kernel names them ("cpu,cpuacct",
	 * "name=systemd"); v2: the root's cgroup.controllers, blank-separated. */
	char *controllers;
	char *mount; /* absolute mount point */
	char *root;  /* the hierarchy path the mount shows at its top ("/" usually) */
};

struct vc_cgroup_layout {
	GPtrArray *hiers; /* of struct vc_cgroup_hier *, in mountinfo order */
};

struct vc_cgroup_layout *vc_cgroup_layout_new(void);
void vc_cgroup_layout_free(struct vc_cgroup_layout *l);
static inline void vc_cgroup_layout_freep(struct vc_cgroup_layout **l)
{
	vc_cgroup_layout_free(*l);
}
/* g_autoptr needs a typedef, which the house style avoids for structs. */
#define _cleanup_cgroup_layout_ __attribute__((cleanup(vc_cgroup_layout_freep)))

/* Add one hierarchy by hand (tests, fixtures). controllers may be NULL for v2: read from disk. */
void vc_cgroup_layout_add(struct vc_cgroup_layout *l, enum vc_cgroup_version version,
			  const char *controllers, const char *mount, const char *root);

/*
 * Build a layout from mountinfo text: every cgroup/cgroup2 mount whose mount
 * point lies below fs_root (e.g. "/sys/fs/cgroup"). The first mount of each
 * hierarchy wins. -ENOENT when there is none.
 */
int vc_cgroup_layout_parse(const char *mountinfo, const char *fs_root,
			   struct vc_cgroup_layout **ret);
/* vc_cgroup_layout_parse() on /proc/self/mountinfo. */
int vc_cgroup_layout_load(const char *fs_root, struct vc_cgroup_layout **ret);

/*
 * The hierarchy that carries controller ("memory", "cpuset", "name=systemd"):
 * a v1 mount listing it, else a v2 mount whose cgroup.controllers lists it.
 * NULL when the controller is nowhere. The v2 hierarchy itself: vc_cgroup_layout_v2().
 */
const struct vc_cgroup_hier *vc_cgroup_layout_find(const struct vc_cgroup_layout *l,
						   const char *controller);
const struct vc_cgroup_hier *vc_cgroup_layout_v2(const struct vc_cgroup_layout *l);

/* One line of /proc/PID/cgroup: "ID:CONTROLLERS:PATH" (v2: "0::PATH"). */
struct vc_proc_cgroup {
	unsigned id;
	char *controllers;
	char *path;
};

/* Parse /proc/PID/cgroup text; ret is a GPtrArray of struct vc_proc_cgroup * (owned). */
int vc_cgroup_parse_proc(const char *text, GPtrArray **ret);
/* The path of the process in hierarchy h, or NULL. */
const char *vc_cgroup_path_in(GPtrArray *proc_cgroups, const struct vc_cgroup_hier *h);

/*
 * The directory of cgroup path (as /proc/PID/cgroup names it) in hierarchy h:
 * mount + path below root. -ENOENT when path is outside what the mount shows.
 */
int vc_cgroup_dir(const struct vc_cgroup_hier *h, const char *path, char **ret);

/* Read a file of a cgroup directory; NUL-terminated, trailing newline kept. */
int vc_cgroup_read(const char *dir, const char *file, char **ret);
/* The text of a one-number file (stripped in place); "max" and v1's "-1" are UINT64_MAX. */
int vc_cgroup_parse_u64(char *text, uint64_t *ret);
/* A one-number file; "max" and v1's "-1" read as UINT64_MAX. */
int vc_cgroup_read_u64(const char *dir, const char *file, uint64_t *ret);

/*
 * The directories from dir up to the top of its mount (dir first), for
 * limits that any ancestor may set. ret: GPtrArray of char * (owned).
 */
int vc_cgroup_ancestors(const struct vc_cgroup_hier *h, const char *dir, GPtrArray **ret);

/* The smallest value of a one-number file over dir and its ancestors; UINT64_MAX when none set it.
 */
int vc_cgroup_min_up(const struct vc_cgroup_hier *h, const char *dir, const char *file,
		     uint64_t *ret);
