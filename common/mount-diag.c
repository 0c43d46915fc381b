/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Why a FUSE mount failed, in words an operator can act on. libfuse reports every failure
 * of fuse_session_mount() the same way (we used to print "Input/output error"); the usual
 * causes are an unusable /dev/fuse, a user namespace without a mount namespace of its own
 * (mount(2) and fusermount3 both get EPERM) and an unprivileged user without fusermount3.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "mount-diag.h"

/* True when the mount namespace we are in belongs to another user namespace than ours. */
static bool vc_mount_ns_foreign(void)
{
	_cleanup_close_ int mnt = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int owner = -1;
	struct stat a, b;

	if (mnt < 0)
		return false;
	owner = ioctl(mnt, NS_GET_USERNS);
	/* EPERM: the owner is outside our user namespace, an ancestor of it. */
	if (owner < 0)
		return errno == EPERM;
	if (fstat(owner, &a) < 0 || stat("/proc/self/ns/user", &b) < 0)
		return false;
	return a.st_ino != b.st_ino || a.st_dev != b.st_dev;
}

static bool vc_fusermount_usable(void)
{
	static const char *const paths[] = {"/usr/bin/fusermount3", "/bin/fusermount3",
					    "/usr/local/bin/fusermount3"};
	struct stat st;

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (stat(paths[i], &st) == 0 && (st.st_mode & S_ISUID) && st.st_uid == 0)
			return true;
	return false;
}

int vc_fuse_mount_diagnose(const char *mountpoint)
{
	_cleanup_close_ int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT)
		return log_error_errno(-ENODEV,
				       "could not mount on '%s': there is no /dev/fuse; load the "
				       "fuse module (modprobe fuse) or, in a container, pass the "
				       "device in (--device /dev/fuse)",
				       mountpoint);
	if (fd < 0)
		return log_error_errno(-errno,
				       "could not mount on '%s': /dev/fuse cannot be opened by uid "
				       "%u; let this user open it (as root: chmod 0666 /dev/fuse) "
				       "or mount as root",
				       mountpoint, (unsigned)geteuid());
	if (vc_mount_ns_foreign())
		return log_error_errno(
			-EPERM,
			"could not mount on '%s': this process is in a user namespace that does "
			"not "
			"own its mount namespace, so the kernel refuses the mount and fusermount3 "
			"cannot help; run it in a mount namespace of its own user namespace, e.g. "
			"'unshare -Urm %s ...' (podman: 'podman unshare')",
			mountpoint, program_invocation_short_name);
	if (geteuid() != 0 && !vc_fusermount_usable())
		return log_error_errno(-EPERM,
				       "could not mount on '%s': an unprivileged mount needs a "
				       "set-user-ID fusermount3 (Debian: package fuse3) or a user "
				       "and mount namespace of its own ('unshare -Urm ...')",
				       mountpoint);
	if (geteuid() != 0)
		return log_error_errno(
			-EPERM,
			"could not mount on '%s': fusermount3 refused the mount (its "
			"message is above); or mount in a user and mount namespace "
			"of its own ('unshare -Urm ...')",
			mountpoint);
	return log_error_errno(-EIO, "could not mount on '%s' (the kernel's reason is above)",
			       mountpoint);
}
