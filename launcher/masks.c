/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Masked and read-only paths: the OCI/Docker defaults in /proc and /sys (host
 * state that no namespace covers), --mask PATH, and the one primitive behind
 * them and hide.c: an empty read-only tmpfs over a directory, /dev/null over
 * anything else, mounted on an O_PATH fd resolved beneath the container's
 * root so that a symlink in the image cannot point a mask elsewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "cleanup.h"
#include "launcher.h"
#include "log.h"

/* Host state that is not namespaced, or leaks the host's hardware and kernel internals. */
static const char *const vr_masked[] = {
	"proc/acpi",	   "proc/asound",	 "proc/interrupts",  "proc/kcore",
	"proc/keys",	   "proc/latency_stats", "proc/sched_debug", "proc/scsi",
	"proc/timer_list", "proc/timer_stats",	 "sys/firmware",     "sys/devices/virtual/powercap",
	"sys/dev/block", /* the host's disks by number (podman masks it too) */
};

/* Writing these would change the host: most of /proc/sys is global, sysrq acts on the machine. */
static const char *const vr_readonly[] = {
	"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger",
};

static int vr_resolve(int rootfd, const char *path, unsigned resolve)
{
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = resolve | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	while (*path == '/')
		path++;
	fd = (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

static int vr_empty_tmpfs(void)
{
	_cleanup_close_ int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	int mnt;

	if (fs < 0)
		return -errno;
	if (fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0555", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", "1", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "size", "4k", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return -errno;
	mnt = fsmount(fs, FSMOUNT_CLOEXEC,
		      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	return mnt < 0 ? -errno : mnt;
}

/*
 * Mask path (inside rootfd, resolved with the given RESOLVE_* flags): an
 * empty read-only tmpfs on a directory, /dev/null on anything else. 0 when
 * it does not exist (and missing_ok), 1 when masked.
 */
static int vr_mask_resolved(int rootfd, const char *path, unsigned resolve, bool missing_ok)
{
	_cleanup_close_ int target = vr_resolve(rootfd, path, resolve);
	_cleanup_close_ int src = -1;
	struct stat st;

	if (target < 0) {
		if (missing_ok && (target == -ENOENT || target == -ENOTDIR || target == -EXDEV))
			return 0;
		return log_error_errno(target, "cannot find '%s' to mask it", path);
	}
	if (fstat(target, &st) < 0)
		return log_error_errno(-errno, "cannot stat '%s'", path);
	if (S_ISDIR(st.st_mode)) {
		src = vr_empty_tmpfs();
		if (src < 0)
			return log_error_errno(src, "cannot make an empty tmpfs for '%s'", path);
	} else {
		src = open_tree(AT_FDCWD, "/dev/null", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (src < 0)
			return log_error_errno(-errno, "cannot bind /dev/null over '%s'", path);
	}
	if (move_mount(src, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return log_error_errno(-errno, "failed to mask '%s'", path);
	return 1;
}

/* For hide.c: only what the union shows (no symlink, no other mount on the way). */
int vr_mask_at(int rootfd, const char *path, bool missing_ok)
{
	return vr_mask_resolved(rootfd, path, RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV, missing_ok);
}

static int vr_readonly_at(int rootfd, const char *path)
{
	_cleanup_close_ int target = vr_resolve(rootfd, path, RESOLVE_NO_SYMLINKS);
	_cleanup_close_ int tree = -1;
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};

	if (target == -ENOENT)
		return 0;
	if (target < 0)
		return log_error_errno(target, "cannot find '%s'", path);
	tree = open_tree(target, "",
			 OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
	if (tree < 0 ||
	    mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0 ||
	    move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return log_error_errno(-errno, "failed to make '%s' read-only", path);
	return 0;
}

/* The OCI defaults over the fresh /proc and /sys, before pivot_root; none with --privileged. */
int vr_masks_proc_sys(const struct vr_ctx *ctx, int rootfd)
{
	int r;

	if (ctx->cfg->sec.privileged)
		return 0;
	for (size_t i = 0; i < G_N_ELEMENTS(vr_readonly); i++) {
		r = vr_readonly_at(rootfd, vr_readonly[i]);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(vr_masked); i++) {
		r = vr_mask_resolved(rootfd, vr_masked[i], RESOLVE_NO_SYMLINKS, true);
		if (r < 0)
			return r;
	}
	/* Per-CPU thermal throttling counters leak the host's load (as Docker masks them). */
	for (long cpu = 0; cpu < 4096; cpu++) {
		char p[64];

		snprintf(p, sizeof(p), "sys/devices/system/cpu/cpu%ld", cpu);
		if (faccessat(rootfd, p, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			break;
		snprintf(p, sizeof(p), "sys/devices/system/cpu/cpu%ld/thermal_throttle", cpu);
		r = vr_mask_resolved(rootfd, p, RESOLVE_NO_SYMLINKS, true);
		if (r < 0)
			return r;
	}
	return 0;
}

/* --mask PATH..., after the volumes: symlinks resolve inside the container. */
int vr_masks_user(const struct vr_ctx *ctx, int rootfd)
{
	GPtrArray *masks = ctx->cfg->sec.masks;

	for (guint i = 0; i < masks->len; i++) {
		int r = vr_mask_resolved(rootfd, masks->pdata[i], RESOLVE_IN_ROOT, true);

		if (r < 0)
			return r;
		if (r == 0)
			log_debug("--mask '%s': nothing there to mask",
				  (const char *)masks->pdata[i]);
	}
	return 0;
}
