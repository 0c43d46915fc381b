/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The bind step: veneer-procfs's files over the container's /proc and /sys
 * files, in the container's mount namespace, before the runtime pivots into
 * the root filesystem.
 *
 * Everything that touches the veneer-procfs mount runs in a child process
 * that the parent kills after --timeout: a request to a mount whose worker is
 * gone waits (killably) for the next one, and a hook must never hold up a
 * container's start for long nor fail it for veneer's sake. The child
 * 1. checks that the mount point holds a live FUSE mount whose proc/meminfo
 *    answers;
 * 2. clones each served file as a detached mount (open_tree), here, where the
 *    mount point is visible (the container's namespace may predate it);
 * 3. enters the container's mount namespace, opens the root filesystem from
 *    the container's own root (/proc/PID/root: the runtime, and so root.path,
 *    may be chrooted, and setns() puts us at the namespace's real root), then
 *    each target beneath it without following a symlink, and checks that it is
 *    still the kernel's (procfs, sysfs): a /proc covered already (lxcfs, a
 *    second run of the hook) is left as it is, whole;
 * 4. attaches the clones there (move_mount), and detaches every one of them
 *    again if one fails, so a container gets all of the files or none.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "fd-util.h"
#include "hook.h"
#include "log.h"
#include "procfs-files.h"

#define VH_FILES G_N_ELEMENTS(vc_procfs_files)

/* Exit statuses of the child. */
enum {
	VH_CHILD_BOUND = 0,
	VH_CHILD_FAILED = 1,
	VH_CHILD_SKIPPED = 3,
};

struct vh_bind {
	const struct vh_opts *o;
	pid_t pid;
	const char *root;
	int rootfd;
	int src[VH_FILES];
	int dst[VH_FILES];
};

static void vh_bind_close(struct vh_bind *b)
{
	vc_closep(&b->rootfd);
	for (size_t i = 0; i < VH_FILES; i++) {
		vc_closep(&b->src[i]);
		vc_closep(&b->dst[i]);
	}
}

/* Is veneer-procfs serving the mount point? Logs why not. */
static int vh_bind_probe(const char *mnt)
{
	g_autofree char *meminfo = g_build_filename(mnt, "proc", "meminfo", NULL);
	_cleanup_close_ int fd = -1;
	struct statfs sfs;
	char buf[64];

	if (statfs(mnt, &sfs) < 0) {
		if (errno == ENOTCONN)
			log_notice(
				"veneer-procfs at '%s' is dead (its mount lost its daemon): /proc "
				"left as it is",
				mnt);
		else
			log_notice_errno(-errno, "no veneer-procfs at '%s': /proc left as it is",
					 mnt);
		return -ENOENT;
	}
	if (sfs.f_type != FUSE_SUPER_MAGIC) {
		log_notice("veneer-procfs is not running at '%s' (not a FUSE mount): /proc left "
			   "as it is",
			   mnt);
		return -ENOENT;
	}
	fd = open(meminfo, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0) {
		log_notice_errno(-errno,
				 "veneer-procfs at '%s' does not answer: /proc left as it is", mnt);
		return -EIO;
	}
	return 0;
}

/* Steps 2 and 3: clones here, then the targets in the container's namespace. */
static int vh_bind_prepare(struct vh_bind *b)
{
	g_autofree char *ns = g_strdup_printf("/proc/%d/ns/mnt", (int)b->pid);
	g_autofree char *pidroot = g_strdup_printf("/proc/%d/root", (int)b->pid);
	_cleanup_close_ int nsfd = -1, prootfd = -1;
	struct stat ours, theirs;
	unsigned n = 0;
	int r;

	for (size_t i = 0; i < VH_FILES; i++) {
		g_autofree char *p = g_build_filename(b->o->procfs_mount, vc_procfs_files[i], NULL);

		b->src[i] = open_tree(AT_FDCWD, p, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (b->src[i] < 0 && errno != ENOENT)
			return log_error_errno(-errno, "cannot clone '%s'", p);
		if (b->src[i] < 0)
			log_debug("veneer-procfs does not serve '%s'", vc_procfs_files[i]);
	}
	nsfd = open(ns, O_RDONLY | O_CLOEXEC);
	prootfd = open(pidroot, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (nsfd < 0 || prootfd < 0)
		return log_error_errno(-errno, "cannot open '%s' (container %d gone?)",
				       nsfd < 0 ? ns : pidroot, (int)b->pid);
	if (stat("/proc/self/ns/mnt", &ours) == 0 && fstat(nsfd, &theirs) == 0 &&
	    ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev) {
		log_notice("container %d shares the hook's mount namespace: /proc left as it is",
			   (int)b->pid);
		return -EXDEV;
	}
	if (setns(nsfd, CLONE_NEWNS) < 0)
		return log_error_errno(-errno, "cannot enter the mount namespace of %d",
				       (int)b->pid);
	/* root.path is absolute and canonical (oci.c): beneath the container's root. */
	if (b->root[1]) {
		r = vc_open_beneath(prootfd, b->root + 1, O_PATH | O_DIRECTORY, 0);
		if (r < 0)
			return log_error_errno(r,
					       "the root filesystem '%s' is not in the container's "
					       "mount namespace (a hook stage after pivot_root?)",
					       b->root);
		b->rootfd = r;
	} else {
		b->rootfd = TAKE_FD(prootfd);
	}
	for (size_t i = 0; i < VH_FILES; i++) {
		bool proc = g_str_has_prefix(vc_procfs_files[i], "proc/");
		struct statfs sfs;

		if (b->src[i] < 0)
			continue;
		b->dst[i] = vc_open_beneath(b->rootfd, vc_procfs_files[i], O_PATH, 0);
		if (b->dst[i] < 0) {
			log_debug_errno(b->dst[i], "no '/%s' to cover in the container",
					vc_procfs_files[i]);
			b->dst[i] = -1;
			continue;
		}
		if (fstatfs(b->dst[i], &sfs) < 0)
			return log_error_errno(-errno, "cannot statfs '/%s' in the container",
					       vc_procfs_files[i]);
		if (sfs.f_type != (proc ? PROC_SUPER_MAGIC : SYSFS_MAGIC)) {
			log_notice("'/%s' of the container is not the kernel's (filesystem 0x%lx): "
				   "covered already, /proc left as it is",
				   vc_procfs_files[i], (unsigned long)sfs.f_type);
			return -EEXIST;
		}
		n++;
	}
	if (n == 0) {
		log_notice(
			"nothing of veneer-procfs to bind in the container: /proc left as it is");
		return -ENOENT;
	}
	return 0;
}

/* Step 4: all files or none. Returns how many were attached. */
static int vh_bind_attach(struct vh_bind *b)
{
	size_t done = 0;
	int r = 0;

	for (; done < VH_FILES; done++) {
		if (b->src[done] < 0 || b->dst[done] < 0)
			continue;
		if (move_mount(b->src[done], "", b->dst[done], "",
			       MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
			r = log_error_errno(-errno,
					    "cannot bind veneer-procfs's '%s' in the container",
					    vc_procfs_files[done]);
			break;
		}
	}
	if (r == 0) {
		unsigned n = 0;

		for (size_t i = 0; i < VH_FILES; i++)
			n += b->src[i] >= 0 && b->dst[i] >= 0;
		return (int)n;
	}
	/* Undo what was attached: the container gets the kernel's /proc, not a mix. */
	for (size_t i = 0; i < done; i++) {
		g_autofree char *p = g_build_filename(b->root, vc_procfs_files[i], NULL);

		if (b->src[i] >= 0 && b->dst[i] >= 0 &&
		    umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
			log_warning_errno(-errno, "cannot undo the bind of '%s'", p);
	}
	return r;
}

static int vh_bind_child(struct vh_bind *b, int report)
{
	uint32_t n;
	int r;

	if (vh_bind_probe(b->o->procfs_mount) < 0)
		return VH_CHILD_SKIPPED;
	r = vh_bind_prepare(b);
	if (r < 0)
		return r == -EEXIST || r == -ENOENT || r == -EXDEV ? VH_CHILD_SKIPPED
								   : VH_CHILD_FAILED;
	r = vh_bind_attach(b);
	if (r < 0)
		return VH_CHILD_FAILED;
	n = (uint32_t)r;
	return vc_write_all(report, &n, sizeof(n)) < 0 ? VH_CHILD_FAILED : VH_CHILD_BOUND;
}

/* Wait up to timeout_ms for the child; kill it after that. Returns its wait status or -ETIME. */
static int vh_bind_wait(pid_t child, unsigned timeout_ms)
{
	_cleanup_close_ int pfd = pidfd_open(child, 0);
	int status;

	if (pfd >= 0) {
		struct pollfd p = {.fd = pfd, .events = POLLIN};
		int r;

		do
			r = poll(&p, 1, (int)timeout_ms);
		while (r < 0 && errno == EINTR);
		if (r == 0) {
			kill(child, SIGKILL);
			(void)waitpid(child, &status, 0);
			return -ETIME;
		}
	}
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return status;
}

int vh_bind_procfs(const struct vh_opts *o, pid_t pid, const char *root, unsigned *ret_bound)
{
	struct vh_bind b = {.o = o, .pid = pid, .root = root, .rootfd = -1};
	_cleanup_close_ int rd = -1, wr = -1;
	uint32_t n = 0;
	int fds[2], status;
	pid_t child;

	*ret_bound = 0;
	for (size_t i = 0; i < VH_FILES; i++)
		b.src[i] = b.dst[i] = -1;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return log_error_errno(-errno, "cannot create a pipe");
	rd = fds[0];
	wr = fds[1];
	child = fork();
	if (child < 0)
		return log_error_errno(-errno, "cannot fork");
	if (child == 0) {
		int r = vh_bind_child(&b, wr);

		vh_bind_close(&b);
		_exit(r);
	}
	vc_closep(&wr);
	status = vh_bind_wait(child, o->timeout_ms);
	if (status == -ETIME) {
		log_warning(
			"veneer-procfs at '%s' did not answer within %u ms: /proc left as it is",
			o->procfs_mount, o->timeout_ms);
		return 0;
	}
	if (status < 0)
		return log_error_errno(status, "cannot wait for the bind step");
	if (WIFEXITED(status) && WEXITSTATUS(status) == VH_CHILD_BOUND &&
	    vc_read_all(rd, &n, sizeof(n)) == sizeof(n)) {
		*ret_bound = n;
		return 0;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == VH_CHILD_SKIPPED)
		return 0;
	return -EIO; /* the child said why */
}
