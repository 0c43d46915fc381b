/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Namespaces and processes: the rootless user namespace (caller mapped to
 * root), the fork-like clone of the container's init into new namespaces, the
 * loopback of a new network namespace, and pidfd/start-time helpers that let
 * the launcher and --cleanup recognise their own processes despite pid reuse.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "fd-util.h"
#include "proc-util.h"
#include "launcher.h"
#include "log.h"
#include "parse-util.h"

static int vr_ns_write_map(const char *file, const char *content)
{
	int r = vc_write_file_at(AT_FDCWD, file, content);

	if (r < 0)
		return log_error_errno(r, "failed to write '%s' ('%s')", file, content);
	return 0;
}

int vr_ns_enter_rootless(uid_t outer_uid, gid_t outer_gid)
{
	char map[64];
	int r;

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return log_error_errno(-errno, "failed to create a user namespace (rootless)");
	r = vc_write_file_at(AT_FDCWD, "/proc/self/setgroups", "deny");
	if (r < 0 && r != -ENOENT)
		return log_error_errno(r, "failed to write '/proc/self/setgroups'");
	snprintf(map, sizeof(map), "0 %u 1", (unsigned)outer_uid);
	r = vr_ns_write_map("/proc/self/uid_map", map);
	if (r < 0)
		return r;
	snprintf(map, sizeof(map), "0 %u 1", (unsigned)outer_gid);
	return vr_ns_write_map("/proc/self/gid_map", map);
}

/*
 * clone() without a new stack, like fork(): the child continues on a copy of
 * this stack. The launcher has no threads, so no lock can be held across it.
 */
int vr_ns_clone(unsigned long flags, pid_t *ret_pid)
{
	long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);

	if (pid < 0)
		return -errno;
	*ret_pid = (pid_t)pid;
	return 0;
}

int vr_ns_loopback_up(void)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {};

	if (fd < 0)
		return -errno;
	strncpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name) - 1);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return -errno;
	return 0;
}

int vr_pidfd_open(pid_t pid)
{
	int fd = pidfd_open(pid, 0);

	if (fd < 0)
		return -errno;
	/* pidfds are close-on-exec by the kernel's definition. */
	return fd;
}

/*
 * Wait up to timeout_ms (-1: forever) for pid to exit. When it is our child
 * it is reaped and its wait status stored; returns 0 when it exited,
 * -ETIMEDOUT otherwise.
 */
int vr_pidfd_wait(int pidfd, pid_t pid, int timeout_ms, int *ret_status)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	int status = 0;

	for (;;) {
		int n = poll(&p, 1, timeout_ms);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		break;
	}
	if (waitpid(pid, &status, WNOHANG) > 0 && ret_status)
		*ret_status = status;
	return 0;
}

static int vr_proc_stat(pid_t pid, struct vc_proc_stat *ret)
{
	char path[64];
	g_autofree char *text = NULL;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = vc_read_file_at(AT_FDCWD, path, &text, NULL);
	if (r < 0)
		return r;
	return vc_proc_parse_stat(text, ret);
}

/* Field 22 of /proc/PID/stat: start time in clock ticks since boot. */
int vr_proc_start_time(pid_t pid, uint64_t *ret)
{
	struct vc_proc_stat st;
	int r = vr_proc_stat(pid, &st);

	if (r < 0)
		return r;
	*ret = st.starttime;
	return 0;
}

/* Exists and is neither a zombie nor dead. */
bool vr_proc_running(pid_t pid)
{
	struct vc_proc_stat st;

	return vr_proc_stat(pid, &st) == 0 && st.state != 'Z' && st.state != 'X';
}

bool vr_proc_matches(pid_t pid, uint64_t start)
{
	uint64_t now;

	if (pid <= 0)
		return false;
	return vr_proc_start_time(pid, &now) == 0 && now == start;
}
