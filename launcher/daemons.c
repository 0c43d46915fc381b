/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The helper daemons: finding veneer-unionfs and veneer-procfs next to
 * veneer-run (build tree or bindir) or in $PATH, starting the union daemon in
 * the foreground with --ready-fd and stopping it, and making sure one shared
 * veneer-procfs instance serves the host (started under a lock when absent).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "fd-util.h"
#include "fsutil.h"
#include "launcher.h"
#include "log.h"
#include "parse-util.h"

#define VR_READY_TIMEOUT_MS 60000

/* The directory of our own executable (a build tree's launcher/ or the bindir). */
const char *vr_self_dir(void)
{
	static char dir[PATH_MAX];
	ssize_t n;
	char *slash;

	if (dir[0])
		return dir;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n <= 0) {
		strcpy(dir, ".");
		return dir;
	}
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	return dir;
}

/*
 * The helper binary: --unionfs/--procfs (override), $ENV, the build tree, beside
 * us, $PATH. -EACCES with *ret the explicit choice that is not executable;
 * -ENOENT when none is found. Logs nothing: the caller says it once.
 */
int vr_find_helper(const char *name, const char *env, const char *override, char **ret)
{
	const char *e = getenv(env);
	const char *sub = name + strlen("veneer-");
	g_autofree char *in_build = g_build_filename(vr_self_dir(), "..", sub, name, NULL);
	g_autofree char *beside = g_build_filename(vr_self_dir(), name, NULL);
	g_autofree char *in_path = g_find_program_in_path(name);
	const char *cands[] = {override, e && e[0] ? e : NULL, in_build, beside, in_path};

	for (size_t i = 0; i < G_N_ELEMENTS(cands); i++) {
		if (!cands[i])
			continue;
		if (access(cands[i], X_OK) == 0) {
			char *found = g_strdup(cands[i]);

			g_free(*ret);
			*ret = found;
			return 0;
		}
		/* An explicit choice that does not work is an error, not a fallback. */
		if (i < 2) {
			char *bad = g_strdup(cands[i]);

			g_free(*ret);
			*ret = bad;
			return -EACCES;
		}
	}
	return -ENOENT;
}

/* Escape what fuse's -o parser (',' and '\') and lowerdir (':') treat specially. */
static void vr_opt_escape(GString *out, const char *s, bool colon)
{
	for (; *s; s++) {
		if (*s == ',' || *s == '\\' || (colon && *s == ':'))
			g_string_append_c(out, '\\');
		g_string_append_c(out, *s);
	}
}

/*
 * The child between fork and exec of a daemon: a clean signal state, its own
 * session, stdin from /dev/null, output to a log file (never our stdout or
 * stderr: a daemon that outlives a killed launcher must not hold the caller's
 * pipes open), and no $NOTIFY_SOCKET: a veneer-run inside a systemd service
 * must not have its veneer-procfs announce itself as that service's main pid.
 * parent > 0: the daemon is this launcher's alone (the union daemon) and ends
 * with it. It mounts in the launcher's private mount namespace, which it keeps
 * alive itself: nobody would ever unmount it there, and a killed launcher's
 * container (killed with it, init.c) leaves no user of the mount. SIGKILL, as
 * the container gets: its files' RELEASEs never come once that is gone, so a
 * clean stop has nothing left to do; what it wrote is in the upper layer
 * already, and a half-done copy-up only in the work directory, which
 * --cleanup removes.
 */
static void vr_exec_daemon(char **argv, int keep_fd, const char *log, pid_t parent)
{
	sigset_t none;
	int null, out;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (parent > 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(VR_EXIT_SETUP); /* the launcher died before the prctl */
	}
	setsid();
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (null >= 0)
		dup2(null, STDIN_FILENO);
	if (out >= 0) {
		dup2(out, STDOUT_FILENO);
		dup2(out, STDERR_FILENO);
	}
	if (keep_fd >= 0)
		fcntl(keep_fd, F_SETFD, 0);
	unsetenv("NOTIFY_SOCKET");
	execv(argv[0], argv);
	fprintf(stderr, "veneer-run: cannot execute '%s': %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Copy what the union daemon logged to our stderr, then drop the log. */
void vr_relay_log(const char *dir)
{
	g_autofree char *path = g_build_filename(dir, VR_UNIONFS_LOG, NULL);
	g_autofree char *text = NULL;
	gsize len = 0;

	if (g_file_get_contents(path, &text, &len, NULL) && len > 0)
		(void)vc_write_all(STDERR_FILENO, text, len);
	unlink(path);
}

int vr_unionfs_start(struct vr_ctx *ctx)
{
	g_autoptr(GString) opts = g_string_new("lowerdir=");
	g_autoptr(GString) lowerdir = g_string_new("");
	g_autofree char *ready_opt = NULL;
	int pfd[2];
	pid_t pid;
	char buf[16] = "";
	ssize_t n = 0;
	int r;

	if (ctx->lower_view) {
		vr_opt_escape(lowerdir, ctx->lower_view, true);
	} else {
		for (guint i = 0; i < ctx->cfg->layers->len; i++) {
			if (i)
				g_string_append_c(lowerdir, ':');
			vr_opt_escape(lowerdir, ctx->cfg->layers->pdata[i], true);
		}
	}
	g_string_append(opts, lowerdir->str);
	g_string_append(opts, ",upperdir=");
	vr_opt_escape(opts, ctx->upper, false);
	g_string_append(opts, ",workdir=");
	vr_opt_escape(opts, ctx->work, false);
	/* Other users inside the container (-u) must reach the root file system. */
	if (!ctx->cfg->rootless)
		g_string_append(opts, ",allow_other");
	ctx->lowerdir = g_strdup(lowerdir->str);

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return log_error_errno(-errno, "cannot create a pipe");
	ready_opt = g_strdup_printf("--ready-fd=%d", pfd[1]);
	pid_t self = getpid();
	g_autofree char *log = g_build_filename(ctx->dir, VR_UNIONFS_LOG, NULL);
	char *argv[] = {ctx->cfg->unionfs_bin, "-f", ready_opt, "-o", opts->str, ctx->merged, NULL};

	log_debug("starting %s -f %s -o %s %s", argv[0], ready_opt, opts->str, ctx->merged);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return log_error_errno(r, "cannot fork");
	}
	if (pid == 0) {
		close(pfd[0]);
		vr_exec_daemon(argv, pfd[1], log, self);
	}
	close(pfd[1]);
	ctx->union_pid = pid;
	ctx->union_pidfd = vr_pidfd_open(pid);
	vr_proc_start_time(pid, &ctx->union_start);

	struct pollfd p = {.fd = pfd[0], .events = POLLIN};
	r = poll(&p, 1, VR_READY_TIMEOUT_MS);
	if (r > 0)
		n = read(pfd[0], buf, sizeof(buf) - 1);
	close(pfd[0]);
	if (n >= 5 && strncmp(buf, "READY", 5) == 0) {
		log_debug("veneer-unionfs (pid %d) mounted '%s'", (int)pid, ctx->merged);
		return 0;
	}
	if (r == 0) {
		log_error("veneer-unionfs did not mount '%s' within %d s", ctx->merged,
			  VR_READY_TIMEOUT_MS / 1000);
		return -ETIMEDOUT;
	}
	int status = 0;
	if (vr_pidfd_wait(ctx->union_pidfd, pid, 5000, &status) == 0) {
		ctx->union_pid = 0;
		close(ctx->union_pidfd);
		ctx->union_pidfd = -1;
	}
	vr_relay_log(ctx->dir);
	log_error("veneer-unionfs failed to mount '%s' (lowerdir=%s, upperdir=%s) with exit status "
		  "%d",
		  ctx->merged, ctx->lowerdir, ctx->upper,
		  WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return -EIO;
}

/*
 * Before unmounting: let the daemon answer what the kernel still queued, the
 * RELEASEs of files the container's processes closed as they died, so that
 * it closes those handles itself rather than losing them to the connection
 * abort at unmount. fusectl's per-connection "waiting" counter tells; it is
 * mounted in our private namespace when the host has not (root only).
 */
static void vr_unionfs_drain(const char *merged)
{
	g_autofree char *waiting = NULL;
	struct stat st;

	if (stat(merged, &st) < 0)
		return;
	waiting = g_strdup_printf("/sys/fs/fuse/connections/%u/waiting",
				  (major(st.st_dev) << 20) | minor(st.st_dev));
	if (access(waiting, R_OK) < 0 && geteuid() == 0)
		(void)mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL);
	for (int i = 0; i < 200; i++) {
		g_autofree char *text = NULL;
		unsigned n;

		if (!g_file_get_contents(waiting, &text, NULL, NULL) ||
		    vc_parse_uint(g_strstrip(text), &n) < 0 || n == 0)
			return;
		nanosleep(&(struct timespec){.tv_nsec = 10L * 1000 * 1000}, NULL);
	}
	log_debug("veneer-unionfs still has requests queued at unmount");
}

/*
 * Unmount the union (its daemon then leaves its loop) and wait for the
 * daemon; SIGTERM, then SIGKILL, if it lingers. pid may be a process that is
 * not our child (--cleanup): then it is only waited for through its pidfd.
 * Returns 1 when a SIGKILL not ours ended it (a killed union daemon), else 0.
 */
int vr_unionfs_stop(pid_t pid, int pidfd, const char *merged)
{
	bool killed = false;
	int status = 0;

	if (merged)
		vr_unionfs_drain(merged);
	if (merged && umount2(merged, 0) < 0 && errno != EINVAL && errno != ENOENT)
		umount2(merged, MNT_DETACH);
	if (pid <= 0 || pidfd < 0)
		return 0;
	if (vr_pidfd_wait(pidfd, pid, merged ? 10000 : 0, &status) == 0)
		goto done;
	kill(pid, SIGTERM);
	if (vr_pidfd_wait(pidfd, pid, 10000, &status) == 0)
		goto done;
	log_warning("veneer-unionfs (pid %d) did not stop: killing it", (int)pid);
	kill(pid, SIGKILL);
	killed = true;
	vr_pidfd_wait(pidfd, pid, -1, &status);
done:
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		log_warning("veneer-unionfs (pid %d) exited with status %d", (int)pid,
			    WEXITSTATUS(status));
	else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
		log_warning("veneer-unionfs (pid %d) was killed by signal %d", (int)pid,
			    WTERMSIG(status));
	/* Killed by someone else: it may have been dying while the container still ran. */
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && !killed ? 1 : 0;
}

/* True when path is the mount point of a FUSE file system in this namespace. */
static bool vr_is_fuse_mount(const char *path)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, NULL))
		return false;
	lines = g_strsplit(text, "\n", -1);
	for (guint i = 0; lines[i]; i++) {
		g_auto(GStrv) f = g_strsplit(lines[i], " ", -1);
		g_autofree char *mp = NULL;
		guint n = g_strv_length(f), j;

		if (n < 10)
			continue;
		mp = g_strcompress(f[4]); /* mountinfo escapes blanks as \040 */
		if (strcmp(mp, path) != 0)
			continue;
		for (j = 5; j < n && strcmp(f[j], "-") != 0; j++)
			;
		if (j + 1 < n && g_str_has_prefix(f[j + 1], "fuse"))
			return true;
	}
	return false;
}

bool vr_procfs_running(const struct vr_config *cfg)
{
	return vr_is_fuse_mount(cfg->procfs_mount);
}

static int vr_procfs_start(const struct vr_config *cfg)
{
	char *argv[] = {cfg->procfs_bin, cfg->procfs_mount, NULL};
	int status = 0;
	pid_t pid;
	int r;

	r = vr_mkdir_p(cfg->procfs_mount, 0755);
	if (r < 0)
		return log_error_errno(r, "failed to create '%s'", cfg->procfs_mount);
	log_debug("starting %s %s", argv[0], argv[1]);
	pid = fork();
	if (pid < 0)
		return log_error_errno(-errno, "cannot fork");
	if (pid == 0)
		vr_exec_daemon(argv, -1, "/dev/null", 0);
	/* Without -f it forks only once the mount is up: its exit means ready. */
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return log_error_errno(-errno, "cannot wait for veneer-procfs");
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !vr_is_fuse_mount(cfg->procfs_mount))
		return log_error_errno(-EIO, "veneer-procfs failed to mount '%s'",
				       cfg->procfs_mount);
	return 0;
}

int vr_procfs_ensure(struct vr_ctx *ctx)
{
	const struct vr_config *cfg = ctx->cfg;
	g_autofree char *probe = g_build_filename(cfg->procfs_mount, "proc", "meminfo", NULL);
	g_autofree char *lock = g_strconcat(cfg->procfs_mount, ".lock", NULL);
	g_autofree char *parent = g_path_get_dirname(cfg->procfs_mount);
	_cleanup_close_ int lfd = -1;
	struct stat st;
	int r;

	if (cfg->no_procfs)
		return 0;
	if (!cfg->rootless && vr_mkdir_p(parent, 0755) == 0) {
		/* Two launchers must not both start an instance on the same mount point. */
		lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (lfd >= 0)
			flock(lfd, LOCK_EX);
	}
	if (vr_is_fuse_mount(cfg->procfs_mount)) {
		if (stat(probe, &st) == 0) {
			ctx->procfs_mount = g_strdup(cfg->procfs_mount);
			log_debug("reusing veneer-procfs at '%s'", cfg->procfs_mount);
			return 0;
		}
		if (errno != ENOTCONN) {
			log_notice("veneer-procfs at '%s' is not usable (%s): /proc shows the "
				   "host's values",
				   cfg->procfs_mount, strerror(errno));
			return 0;
		}
		log_notice("veneer-procfs at '%s' is dead: restarting it", cfg->procfs_mount);
		umount2(cfg->procfs_mount, MNT_DETACH);
	}
	if (cfg->rootless) {
		log_notice("no veneer-procfs runs at '%s' and a rootless launcher cannot start the "
			   "shared one: /proc shows the host's values (start it as root, or pass "
			   "--no-procfs)",
			   cfg->procfs_mount);
		return 0;
	}
	if (!cfg->procfs_bin) {
		log_error("veneer-procfs not found (next to veneer-run, in $PATH, --procfs or "
			  "$VENEER_PROCFS); --no-procfs runs without it");
		return -ENOENT;
	}
	r = vr_procfs_start(cfg);
	if (r < 0)
		return r;
	ctx->procfs_mount = g_strdup(cfg->procfs_mount);
	return 0;
}
