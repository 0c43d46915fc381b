/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The static inode table: the tree veneer-procfs serves (proc/... and
 * sys/devices/system/cpu/...) with fixed inode numbers, so they stay the same
 * across worker restarts and the kernel's cached dentries remain valid.
 */
#include <string.h>
#include <sys/stat.h>

#include "procfs.h"

#define VP_DIR (S_IFDIR | 0555)
#define VP_REG (S_IFREG | 0444)

static const struct vp_node vp_nodes[] = {
	{1, 1, "", VP_DIR, VP_F_NONE},
	{2, 1, "proc", VP_DIR, VP_F_NONE},
	{3, 1, "sys", VP_DIR, VP_F_NONE},
	{4, 3, "devices", VP_DIR, VP_F_NONE},
	{5, 4, "system", VP_DIR, VP_F_NONE},
	{6, 5, "cpu", VP_DIR, VP_F_NONE},
	{7, 2, "meminfo", VP_REG, VP_F_MEMINFO},
	{8, 2, "cpuinfo", VP_REG, VP_F_CPUINFO},
	{9, 2, "stat", VP_REG, VP_F_STAT},
	{10, 2, "uptime", VP_REG, VP_F_UPTIME},
	{11, 2, "loadavg", VP_REG, VP_F_LOADAVG},
	{12, 2, "swaps", VP_REG, VP_F_SWAPS},
	{13, 2, "diskstats", VP_REG, VP_F_DISKSTATS},
	{14, 6, "online", VP_REG, VP_F_CPU_ONLINE},
	{15, 6, "possible", VP_REG, VP_F_CPU_POSSIBLE},
	{16, 6, "present", VP_REG, VP_F_CPU_PRESENT},
};

const struct vp_node *vp_node_get(fuse_ino_t ino)
{
	if (ino < 1 || ino > G_N_ELEMENTS(vp_nodes))
		return NULL;
	return &vp_nodes[ino - 1];
}

const struct vp_node *vp_node_lookup(fuse_ino_t parent, const char *name)
{
	for (size_t i = 1; i < G_N_ELEMENTS(vp_nodes); i++)
		if (vp_nodes[i].parent == parent && strcmp(vp_nodes[i].name, name) == 0)
			return &vp_nodes[i];
	return NULL;
}

const struct vp_node *vp_node_child(fuse_ino_t dir, unsigned i)
{
	for (size_t k = 1; k < G_N_ELEMENTS(vp_nodes); k++) {
		if (vp_nodes[k].parent != dir)
			continue;
		if (i-- == 0)
			return &vp_nodes[k];
	}
	return NULL;
}

void vp_node_stat(const struct vp_node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = n->mode;
	st->st_nlink = S_ISDIR(n->mode) ? 2 : 1;
	/* Like the real files: /proc reports size 0, sysfs 4096; readers go to EOF. */
	st->st_size = n->file >= VP_F_CPU_ONLINE ? 4096 : 0;
	st->st_blksize = 4096;
}
