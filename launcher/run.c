/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One container run, step by step: state directory, cgroup and device allow
 * list, shared procfs, hiding from other containers, private mount
 * namespace, union mount, volumes, clone of the init into new namespaces;
 * then the launcher's wait loop (forwarding signals, a grace period after
 * SIGTERM/SIGINT) and the teardown that undoes each step.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <termios.h>
#include <unistd.h>

#include "cleanup.h"
#include "fd-util.h"
#include "fsutil.h"
#include "launcher.h"
#include "log.h"

static void vr_forward_set(sigset_t *set)
{
	sigemptyset(set);
	for (size_t i = 0; i < vr_n_forwarded_signals; i++)
		sigaddset(set, vr_forwarded_signals[i]);
}

static int vr_mkdir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return log_error_errno(-errno, "failed to create '%s'", path);
	return 0;
}

/*
 * Two unions on one upper layer would corrupt it (the kernel's overlayfs
 * refuses it too): an exclusive flock on --upper for the whole run. The fd is
 * close-on-exec; the init's copy keeps it while the container lives.
 */
int vr_lock_upper(const char *upper, int *ret_fd)
{
	int fd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/*
 * The work directory must be on the upper layer's file system: in the
 * container's directory when it is, else beside --upper (removed on exit).
 */
static char *vr_work_path(const struct vr_ctx *ctx)
{
	g_autofree char *parent = g_path_get_dirname(ctx->upper);
	g_autofree char *base = g_path_get_basename(ctx->upper);
	struct stat a, b;

	if (stat(ctx->upper, &a) < 0 || stat(ctx->dir, &b) < 0 || a.st_dev == b.st_dev)
		return g_build_filename(ctx->dir, "work", NULL);
	return g_strdup_printf("%s/.%s.veneer-work-%s", parent, base, ctx->id);
}

/* The container's directory and layer directories. */
static int vr_run_dirs(struct vr_ctx *ctx)
{
	const struct vr_config *cfg = ctx->cfg;
	int r;

	r = vr_mkdir_p(cfg->state_dir, 0711);
	if (r < 0)
		return log_error_errno(r, "failed to create state directory '%s'", cfg->state_dir);
	ctx->dir = g_build_filename(cfg->state_dir, ctx->id, NULL);
	r = vr_state_create_dir(cfg->state_dir, ctx->id, &ctx->dir_lock);
	if (r < 0)
		return r;
	ctx->dir_created = true;
	if (cfg->upper) {
		ctx->upper = g_strdup(cfg->upper);
		r = vr_mkdir_p(ctx->upper, 0755);
		if (r < 0)
			return log_error_errno(r, "failed to create --upper '%s'", ctx->upper);
		if (cfg->upper_lock < 0) {
			r = vr_lock_upper(ctx->upper, &ctx->upper_lock);
			if (r < 0)
				return log_error_errno(r, "--upper '%s' is in use", ctx->upper);
		}
	} else {
		ctx->upper = g_build_filename(ctx->dir, "upper", NULL);
		ctx->fresh_upper = true;
		r = vr_mkdir(ctx->upper, 0755);
		if (r < 0)
			return r;
	}
	ctx->work = vr_work_path(ctx);
	ctx->merged = g_build_filename(ctx->dir, "merged", NULL);
	r = vr_mkdir(ctx->work, 0700);
	if (r >= 0)
		r = vr_mkdir(ctx->merged, 0755);
	if (r >= 0 && cfg->default_layers) {
		ctx->lower_view = g_build_filename(ctx->dir, "lower", NULL);
		r = vr_mkdir(ctx->lower_view, 0755);
	}
	return r;
}

static unsigned long vr_clone_flags(const struct vr_config *cfg)
{
	unsigned long f = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;

	if (cfg->net == VR_NET_NONE)
		f |= CLONE_NEWNET;
	return f;
}

/* Clone the init, put it in the cgroup, let it set up, and wait for its report. */
static int vr_run_container(struct vr_ctx *ctx)
{
	int go[2], report[2];
	int setup = -EIO;
	pid_t pid;
	int r;

	if (pipe2(go, O_CLOEXEC) < 0)
		return log_error_errno(-errno, "cannot create a pipe");
	if (pipe2(report, O_CLOEXEC) < 0) {
		r = -errno;
		close(go[0]);
		close(go[1]);
		return log_error_errno(r, "cannot create a pipe");
	}
	fflush(stdout);
	fflush(stderr);
	r = vr_ns_clone(vr_clone_flags(ctx->cfg), &pid);
	if (r < 0) {
		log_error_errno(r, "failed to create the container's namespaces");
		goto out;
	}
	if (pid == 0) {
		close(go[1]);
		close(report[0]);
		vr_init_run(ctx, go[0], report[1]);
	}
	ctx->init_pid = pid;
	ctx->init_pidfd = vr_pidfd_open(pid);
	vr_proc_start_time(pid, &ctx->init_start);
	r = vr_cgroup_attach(ctx, pid);
	if (r >= 0)
		r = vr_devices_cgroup_attach(ctx, pid);
	if (r >= 0 && ctx->hide_registered) {
		/* Now, while the init is dumpable still (it stops being so before COMMAND runs). */
		g_autofree char *ns = g_strdup_printf("/proc/%d/ns/mnt", (int)pid);

		ctx->mntns_fd = open(ns, O_RDONLY | O_CLOEXEC);
		if (ctx->mntns_fd < 0)
			r = log_error_errno(-errno, "cannot open '%s'", ns);
	}
	if (r >= 0)
		r = vr_hide_update(ctx); /* before the init scans the registry */
	if (r >= 0)
		r = vr_state_write(ctx); /* the init's pid, before it may run anything */
	if (r < 0)
		goto out;
	close(go[0]);
	go[0] = -1;
	close(report[1]);
	report[1] = -1;
	if (vc_write_all(go[1], "g", 1) < 0 ||
	    vc_read_all(report[0], &setup, sizeof(setup)) != sizeof(setup))
		setup = -EIO;
	r = setup < 0 ? setup : 0;
	if (r >= 0) {
		ctx->status = "running";
		r = vr_state_write(ctx);
	}
out:
	for (int i = 0; i < 2; i++) {
		if (go[i] >= 0)
			close(go[i]);
		if (report[i] >= 0)
			close(report[i]);
	}
	return r;
}

static int vr_wait_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return VR_EXIT_SETUP;
}

static int64_t vr_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The union daemon is dead or dying: seen dead before, its pidfd is readable, or its connection is
 * already aborted (ENOTCONN) while the kernel has not yet finished its exit,
 * which a container can see first (an exec that failed in between exits 126).
 */
static bool vr_union_gone(const struct vr_ctx *ctx)
{
	struct statfs sf;

	if (ctx->union_died)
		return true;
	if (ctx->union_pidfd < 0)
		return false;
	if (poll(&(struct pollfd){.fd = ctx->union_pidfd, .events = POLLIN}, 1, 0) > 0)
		return true;
	return ctx->merged && statfs(ctx->merged, &sf) < 0 && errno == ENOTCONN;
}

/*
 * Forward signals to the init until it exits. The first SIGTERM/SIGINT also
 * starts a grace period (--stop-timeout) after which the container is killed,
 * so veneer-run always gets to its clean-up. A dead union daemon kills the
 * container too: its root file system is gone.
 */
static int vr_run_wait(struct vr_ctx *ctx)
{
	sigset_t set;
	_cleanup_close_ int sfd = -1;
	int64_t deadline = -1;
	int status = 0;

	vr_forward_set(&set);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0)
		return log_error_errno(-errno, "cannot create a signalfd");
	for (;;) {
		struct pollfd p[3] = {
			{.fd = ctx->init_pidfd, .events = POLLIN},
			{.fd = sfd, .events = POLLIN},
			{.fd = ctx->union_pidfd, .events = POLLIN},
		};
		int timeout = -1;
		int n;

		if (deadline >= 0)
			timeout = (int)MAX(0, deadline - vr_now_ms());
		n = poll(p, ctx->union_pidfd >= 0 ? 3 : 2, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return log_error_errno(-errno, "poll failed");
		if (p[0].revents) {
			while (waitpid(ctx->init_pid, &status, 0) < 0 && errno == EINTR)
				;
			ctx->init_pid = 0;
			/*
			 * Its root file system went away under it (a killed union daemon): it was
			 * killed, whatever it ended with once the file system was gone (127 from
			 * a loader that could no longer read a library, say); 0 stays 0.
			 */
			if (status != 0 && vr_union_gone(ctx))
				return 128 + SIGKILL;
			return vr_wait_status(status);
		}
		if (n == 0) {
			log_notice("container %s did not stop within %u s: killing it", ctx->id,
				   ctx->cfg->stop_timeout);
			kill(ctx->init_pid, SIGKILL);
			deadline = -1;
			continue;
		}
		if (p[1].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			kill(ctx->init_pid, (int)si.ssi_signo);
			if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && deadline < 0)
				deadline = vr_now_ms() + ctx->cfg->stop_timeout * 1000LL;
		}
		if (ctx->union_pidfd >= 0 && p[2].revents) {
			log_error("veneer-unionfs (pid %d) exited: stopping the container",
				  (int)ctx->union_pid);
			vr_pidfd_wait(ctx->union_pidfd, ctx->union_pid, 0, NULL);
			close(ctx->union_pidfd);
			ctx->union_pidfd = -1;
			ctx->union_pid = 0;
			ctx->union_died = true;
			kill(ctx->init_pid, SIGKILL);
		}
	}
}

static int vr_teardown(struct vr_ctx *ctx)
{
	int result = 0;

	if (ctx->init_pid > 0) {
		kill(ctx->init_pid, SIGKILL);
		if (ctx->init_pidfd >= 0)
			vr_pidfd_wait(ctx->init_pidfd, ctx->init_pid, -1, NULL);
		else
			waitpid(ctx->init_pid, NULL, 0);
		ctx->init_pid = 0;
	}
	if (ctx->init_pidfd >= 0)
		close(ctx->init_pidfd);
	ctx->init_pidfd = -1;
	/* It would keep the container's mounts, the union's among them, alive. */
	if (ctx->mntns_fd >= 0)
		close(ctx->mntns_fd);
	ctx->mntns_fd = -1;
	if (ctx->union_pid > 0 &&
	    vr_unionfs_stop(ctx->union_pid, ctx->union_pidfd, ctx->merged) > 0)
		ctx->union_died = true;
	else if (ctx->merged)
		/* A killed daemon's mount (ENOTCONN) stays in our namespace, busying merged/. */
		umount2(ctx->merged, MNT_DETACH);
	if (ctx->dir_created)
		vr_relay_log(ctx->dir);
	if (ctx->union_pidfd >= 0)
		close(ctx->union_pidfd);
	ctx->union_pidfd = -1;
	ctx->union_pid = 0;
	if (ctx->lower_view)
		umount2(ctx->lower_view, MNT_DETACH);
	if (ctx->cgroup_name && vr_cgroup_remove(ctx->cgroup_name, ctx->cgroup_controllers) < 0)
		result = -EBUSY;
	if (ctx->devcg_path && vr_devices_cgroup_remove(ctx->devcg_path) < 0)
		result = -EBUSY;
	if (!ctx->dir_created)
		return result;
	if (ctx->work)
		vr_rm_rf(ctx->work);
	if (ctx->merged)
		rmdir(ctx->merged);
	if (ctx->lower_view)
		rmdir(ctx->lower_view);
	if (ctx->cfg->keep && ctx->fresh_upper) {
		/* The upper layer stays, with a state that --list shows and --cleanup leaves. */
		ctx->status = "exited";
		vr_state_write(ctx);
		return result; /* and stays hidden from other containers */
	}
	if (ctx->hide_registered)
		vr_hide_unregister(ctx->dir);
	if (ctx->fresh_upper)
		vr_rm_rf(ctx->upper);
	{
		g_autofree char *state = g_build_filename(ctx->dir, "state.json", NULL);
		g_autofree char *tmp = g_build_filename(ctx->dir, "state.json.tmp", NULL);

		unlink(state);
		unlink(tmp);
	}
	if (rmdir(ctx->dir) < 0 && errno != ENOENT)
		log_warning_errno(-errno, "could not remove '%s'", ctx->dir);
	return result;
}

static void vr_ctx_done(struct vr_ctx *ctx)
{
	g_free(ctx->id);
	g_free(ctx->created);
	g_free(ctx->dir);
	g_free(ctx->upper);
	g_free(ctx->work);
	g_free(ctx->merged);
	g_free(ctx->lower_view);
	g_free(ctx->lowerdir);
	g_free(ctx->cgroup_name);
	if (ctx->cgroup_controllers)
		g_ptr_array_unref(ctx->cgroup_controllers);
	if (ctx->cgroup_paths)
		g_ptr_array_unref(ctx->cgroup_paths);
	g_free(ctx->procfs_mount);
	if (ctx->upper_lock >= 0)
		close(ctx->upper_lock);
	g_free(ctx->devcg_path);
	if (ctx->hide_paths)
		g_ptr_array_unref(ctx->hide_paths);
	if (ctx->hide_fd >= 0)
		close(ctx->hide_fd);
	if (ctx->hide_root_fd >= 0)
		close(ctx->hide_root_fd);
	if (ctx->mntns_fd >= 0)
		close(ctx->mntns_fd);
	if (ctx->dir_lock >= 0)
		close(ctx->dir_lock);
}

/* Give the terminal back to our process group when COMMAND had taken it. */
static void vr_reclaim_tty(void)
{
	sigset_t ttou, old;

	if (!isatty(STDIN_FILENO) || tcgetpgrp(STDIN_FILENO) == getpgrp())
		return;
	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	sigprocmask(SIG_BLOCK, &ttou, &old);
	(void)tcsetpgrp(STDIN_FILENO, getpgrp());
	sigprocmask(SIG_SETMASK, &old, NULL);
}

int vr_run(const struct vr_config *cfg)
{
	struct vr_ctx ctx = {
		.cfg = cfg,
		.union_pidfd = -1,
		.init_pidfd = -1,
		.upper_lock = -1,
		.status = "creating",
		.host_uid = geteuid(),
		.hide_fd = -1,
		.hide_root_fd = -1,
		.mntns_fd = -1,
		.dir_lock = -1,
	};
	uid_t uid = geteuid();
	gid_t gid = getegid();
	sigset_t set;
	int r, status;

	/* Held from here on and read from a signalfd: a SIGTERM during set-up still cleans up. */
	vr_forward_set(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
	ctx.id = cfg->name ? g_strdup(cfg->name) : vr_state_new_id();

	r = vr_run_dirs(&ctx);
	if (r >= 0)
		r = vr_state_write(&ctx);
	if (r >= 0 && vr_cgroup_wanted(cfg)) {
		r = vr_cgroup_create(&ctx);
		if (r >= 0)
			r = vr_state_write(&ctx);
	}
	if (r >= 0)
		r = vr_devices_cgroup_setup(&ctx);
	if (r >= 0)
		r = vr_state_write(&ctx);
	if (r >= 0)
		r = vr_procfs_ensure(&ctx);
	/* Still outside a rootless user namespace: the others' are ours to enter. */
	if (r >= 0)
		r = vr_hide_register(&ctx);
	if (r >= 0)
		r = vr_hide_push(&ctx);
	if (r >= 0 && cfg->rootless)
		r = vr_ns_enter_rootless(uid, gid);
	if (r >= 0)
		r = vr_mounts_private_view(&ctx);
	if (r >= 0)
		r = vr_unionfs_start(&ctx);
	if (r >= 0)
		r = vr_state_write(&ctx);
	if (r >= 0)
		r = vr_volumes_prepare(&ctx);
	if (r >= 0)
		r = vr_run_container(&ctx);
	if (r < 0) {
		log_error("container %s could not be set up: cleaning up", ctx.id);
		vr_teardown(&ctx);
		vr_ctx_done(&ctx);
		return VR_EXIT_SETUP;
	}

	status = vr_run_wait(&ctx);
	if (status < 0)
		status = VR_EXIT_SETUP;
	vr_reclaim_tty();
	ctx.exit_status = status;
	if (vr_teardown(&ctx) < 0 && status == 0)
		status = VR_EXIT_SETUP;
	/*
	 * COMMAND failed while its union daemon was being killed, before the daemon's exit
	 * could be seen (with io_uring a request in flight fails with ECANCELED before the
	 * daemon's /dev/fuse is closed): as in vr_run_wait, its root file system went first.
	 */
	if (status != 0 && status != 128 + SIGKILL && ctx.union_died)
		status = 128 + SIGKILL;
	vr_ctx_done(&ctx);
	return status;
}
