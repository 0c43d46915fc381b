/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mount table: the launcher's private mount namespace with a host-root
 * view for the embedded default layer, then inside the container's namespace
 * a fresh proc (with veneer-procfs files bound over it), read-only sysfs
 * (both with the OCI masked and read-only paths, masks.c), a minimal /dev,
 * the masks over other containers' directories (hide.c), and pivot_root into
 * the union mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "launcher.h"
#include "log.h"
#include "procfs-files.h"

static const char *const vr_dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

int vr_mount_setattr_ro(const char *path, bool recursive)
{
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};

	if (mount_setattr(AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr, sizeof(attr)) < 0)
		return log_error_errno(-errno, "failed to make '%s' read-only", path);
	return 0;
}

static int vr_mount(const char *src, const char *dst, const char *type, unsigned long flags,
		    const char *data)
{
	if (mount(src, dst, type, flags, data) < 0)
		return log_error_errno(-errno, "failed to mount %s on '%s'",
				       type  ? type
				       : src ? src
					     : "(remount)",
				       dst);
	return 0;
}

/*
 * The launcher's own mount namespace: the union daemon mounts in it, so
 * nothing appears in (or leaks into) the host's table, and the mount goes
 * away with the daemon even if veneer-run is killed. For the embedded default
 * the lower layer is a bind of the host's root file system alone (no
 * submounts), so the union's own mount point is never visible through its
 * lower layer.
 */
int vr_mounts_private_view(struct vr_ctx *ctx)
{
	bool recursive = false;
	int r;

	if (!ctx->cfg->rootless && unshare(CLONE_NEWNS) < 0)
		return log_error_errno(-errno, "failed to create a mount namespace");
	r = vr_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	if (r < 0)
		return r;
	if (!ctx->lower_view)
		return 0;
	if (mount("/", ctx->lower_view, NULL, MS_BIND, NULL) < 0) {
		/* A user namespace may not bind a mount with locked submounts alone. */
		if (errno != EINVAL)
			return log_error_errno(-errno, "failed to bind the host root on '%s'",
					       ctx->lower_view);
		r = vr_mount("/", ctx->lower_view, NULL, MS_BIND | MS_REC, NULL);
		if (r < 0)
			return r;
		recursive = true;
	}
	return vr_mount_setattr_ro(ctx->lower_view, recursive);
}

/* name below dirfd must be a real directory (created when missing), never a symlink. */
static int vr_ensure_dir(int dirfd, const char *name, const char *shown)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		return log_error_errno(-ENOTDIR, "'%s' in the root filesystem is not a directory",
				       shown);
	}
	if (errno != ENOENT)
		return log_error_errno(-errno, "cannot stat '%s'", shown);
	if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
		return log_error_errno(-errno, "failed to create '%s'", shown);
	return 0;
}

/*
 * A terminal on stdin (an interactive run) appears as /dev/console, so that
 * tty(1) and ttyname() find it: it lives in a devpts that is not the
 * container's. Bound by name: the fd's own mount is the host namespace's,
 * not this copy's.
 */
static int vr_mount_console(int devfd, const char *dev)
{
	g_autofree char *console = g_build_filename(dev, "console", NULL);
	char tty[PATH_MAX];
	struct stat a, b;
	ssize_t n;
	int fd;

	if (!isatty(STDIN_FILENO))
		return 0;
	n = readlink("/proc/self/fd/0", tty, sizeof(tty) - 1);
	if (n <= 0)
		return 0;
	tty[n] = '\0';
	if (fstat(STDIN_FILENO, &a) < 0 || stat(tty, &b) < 0 || a.st_rdev != b.st_rdev)
		return 0; /* not reachable by that name here: no console */
	fd = openat(devfd, "console", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_error_errno(-errno, "failed to create '%s'", console);
	close(fd);
	return vr_mount(tty, console, NULL, MS_BIND, NULL);
}

static int vr_mount_dev(const struct vr_ctx *ctx, const char *dev)
{
	_cleanup_close_ int fd = -1;
	int r;

	r = vr_mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
	if (r < 0)
		return r;
	fd = open(dev, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-errno, "cannot open '%s'", dev);
	for (size_t i = 0; i < G_N_ELEMENTS(vr_dev_nodes); i++) {
		g_autofree char *src = g_build_filename("/dev", vr_dev_nodes[i], NULL);
		g_autofree char *dst = g_build_filename(dev, vr_dev_nodes[i], NULL);
		int nfd;

		/* Bind the host's nodes: mknod is not allowed in a user namespace. */
		nfd = openat(fd, vr_dev_nodes[i], O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
		if (nfd < 0)
			return log_error_errno(-errno, "failed to create '%s'", dst);
		close(nfd);
		r = vr_mount(src, dst, NULL, MS_BIND, NULL);
		if (r < 0)
			return r;
	}
	if (mkdirat(fd, "pts", 0755) < 0 || mkdirat(fd, "shm", 01777) < 0)
		return log_error_errno(-errno, "failed to create directories in '%s'", dev);
	{
		g_autofree char *pts = g_build_filename(dev, "pts", NULL);
		g_autofree char *shm = g_build_filename(dev, "shm", NULL);

		r = vr_mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC,
			     ctx->cfg->rootless ? "newinstance,ptmxmode=0666,mode=0620"
						: "newinstance,ptmxmode=0666,mode=0620,gid=5");
		if (r < 0)
			return r;
		r = vr_mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			     "mode=1777,size=65536k");
		if (r < 0)
			return r;
	}
	r = vr_mount_console(fd, dev);
	if (r >= 0)
		r = vr_devices_populate(ctx, fd, dev);
	if (r < 0)
		return r;
	static const char *const links[][2] = {
		{"ptmx", "pts/ptmx"},	       {"fd", "/proc/self/fd"},
		{"stdin", "/proc/self/fd/0"},  {"stdout", "/proc/self/fd/1"},
		{"stderr", "/proc/self/fd/2"},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(links); i++)
		if (symlinkat(links[i][1], fd, links[i][0]) < 0)
			return log_error_errno(-errno, "failed to create '%s/%s'", dev,
					       links[i][0]);
	return 0;
}

static int vr_mount_sys(const struct vr_ctx *ctx, const char *sys)
{
	int r;

	unsigned long ro = ctx->cfg->sec.privileged ? 0 : MS_RDONLY;

	if (mount("sysfs", sys, "sysfs", ro | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0)
		return 0;
	/*
	 * A rootless container sharing the host's network namespace may not
	 * mount sysfs: show the host's, read-only.
	 */
	if (errno != EPERM || !ctx->cfg->rootless)
		return log_error_errno(-errno, "failed to mount sysfs on '%s'", sys);
	r = vr_mount("/sys", sys, NULL, MS_BIND | MS_REC, NULL);
	if (r < 0)
		return r;
	return vr_mount_setattr_ro(sys, true);
}

static int vr_mount_procfs_files(const struct vr_ctx *ctx)
{
	for (size_t i = 0; i < G_N_ELEMENTS(vc_procfs_files); i++) {
		g_autofree char *src =
			g_build_filename(ctx->procfs_mount, vc_procfs_files[i], NULL);
		g_autofree char *dst = g_build_filename(ctx->merged, vc_procfs_files[i], NULL);
		struct stat st;
		int r;

		if (stat(src, &st) < 0) {
			log_debug("veneer-procfs does not serve '%s'", vc_procfs_files[i]);
			continue;
		}
		if (stat(dst, &st) < 0) {
			log_debug("no '%s' to cover in the container", vc_procfs_files[i]);
			continue;
		}
		r = vr_mount(src, dst, NULL, MS_BIND, NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Everything below the union mount, before pivot_root (runs in the container's namespaces). */
int vr_mounts_rootfs(struct vr_ctx *ctx)
{
	_cleanup_close_ int rootfd = -1;
	g_autofree char *proc = g_build_filename(ctx->merged, "proc", NULL);
	g_autofree char *sys = g_build_filename(ctx->merged, "sys", NULL);
	g_autofree char *dev = g_build_filename(ctx->merged, "dev", NULL);
	int r;

	r = vr_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	if (r < 0)
		return r;
	rootfd = open(ctx->merged, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (rootfd < 0)
		return log_error_errno(-errno, "cannot open the union mount '%s'", ctx->merged);
	r = vr_ensure_dir(rootfd, "proc", "/proc");
	if (r >= 0)
		r = vr_ensure_dir(rootfd, "sys", "/sys");
	if (r >= 0)
		r = vr_ensure_dir(rootfd, "dev", "/dev");
	if (r < 0)
		return r;
	r = vr_mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (r < 0)
		return r;
	r = vr_mount_sys(ctx, sys);
	if (r >= 0)
		r = vr_masks_proc_sys(ctx, rootfd);
	if (r < 0)
		return r;
	r = vr_mount_dev(ctx, dev);
	if (r < 0)
		return r;
	if (ctx->procfs_mount) {
		r = vr_mount_procfs_files(ctx);
		if (r < 0)
			return r;
	}
	return vr_hide_apply(ctx, rootfd);
}

/*
 * pivot_root(".", "."): the old root ends up stacked on the new one and is
 * detached at once, so no put_old directory is ever created in the image.
 */
int vr_mounts_pivot(const char *newroot)
{
	_cleanup_close_ int oldfd = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int newfd = open(newroot, O_DIRECTORY | O_RDONLY | O_CLOEXEC);

	if (oldfd < 0 || newfd < 0)
		return log_error_errno(-errno, "cannot open '%s'", oldfd < 0 ? "/" : newroot);
	if (fchdir(newfd) < 0)
		return log_error_errno(-errno, "cannot enter '%s'", newroot);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return log_error_errno(-errno, "failed to pivot_root into '%s'", newroot);
	if (fchdir(oldfd) < 0)
		return log_error_errno(-errno, "cannot enter the old root");
	if (mount(NULL, ".", NULL, MS_REC | MS_PRIVATE, NULL) < 0 || umount2(".", MNT_DETACH) < 0)
		return log_error_errno(-errno, "failed to detach the old root");
	if (chdir("/") < 0)
		return log_error_errno(-errno, "cannot enter the new root");
	return 0;
}
