/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * PID 1 of the container: finishes the set-up inside the new namespaces
 * (hostname, loopback, mounts, pivot_root, volumes), starts COMMAND as its
 * child, forwards TERM INT HUP USR1 USR2 QUIT WINCH to it, reaps every zombie
 * (orphans re-parent to PID 1) and exits with COMMAND's status: 128+N for
 * signal N, 126/127 with a message when COMMAND cannot be executed or found.
 * COMMAND gets the container's capabilities, seccomp filter and
 * no_new_privs; PID 1 confines itself further before COMMAND may run (no
 * capability but CAP_KILL, not dumpable, no fd but stdio, its own filter),
 * as COMMAND runs as the same user in the same namespaces.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <linux/capability.h>

#include "cleanup.h"
#include "fd-util.h"
#include "fsutil.h"
#include "launcher.h"
#include "log.h"
#include "parse-util.h"

#define VR_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const int vr_forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGWINCH};
const size_t vr_n_forwarded_signals = G_N_ELEMENTS(vr_forwarded_signals);

const char *vr_env_get(GPtrArray *env, const char *key)
{
	size_t n = strlen(key);

	/* The last -e wins, as in the shell. */
	for (guint i = env->len; i > 0; i--) {
		const char *e = env->pdata[i - 1];

		if (strncmp(e, key, n) == 0 && e[n] == '=')
			return e + n + 1;
	}
	return NULL;
}

static void vr_env_set(GPtrArray *env, const char *key, const char *value)
{
	size_t n = strlen(key);

	for (guint i = 0; i < env->len; i++) {
		const char *e = env->pdata[i];

		if (strncmp(e, key, n) == 0 && e[n] == '=') {
			g_ptr_array_remove_index(env, i);
			break;
		}
	}
	g_ptr_array_add(env, g_strdup_printf("%s=%s", key, value));
}

/* Docker's base environment, then -e KEY=VAL (and -e KEY: the caller's value). */
GPtrArray *vr_env_build(const struct vr_config *cfg, const char *hostname)
{
	GPtrArray *env = g_ptr_array_new_with_free_func(g_free);
	const char *term = getenv("TERM");

	vr_env_set(env, "PATH", VR_DEFAULT_PATH);
	vr_env_set(env, "HOSTNAME", hostname);
	vr_env_set(env, "HOME", cfg->have_user && cfg->uid != 0 ? "/" : "/root");
	if (term)
		vr_env_set(env, "TERM", term);
	for (guint i = 0; i < cfg->env->len; i++) {
		const char *e = cfg->env->pdata[i];
		const char *eq = strchr(e, '=');

		if (eq) {
			g_autofree char *key = g_strndup(e, eq - e);

			vr_env_set(env, key, eq + 1);
		} else if (getenv(e)) {
			vr_env_set(env, e, getenv(e));
		}
	}
	return env;
}

/* The primary group of uid in the container's /etc/passwd, else 0 (as Docker). */
static gid_t vr_passwd_gid(uid_t uid)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_get_contents("/etc/passwd", &text, NULL, NULL))
		return 0;
	lines = g_strsplit(text, "\n", -1);
	for (guint i = 0; lines[i]; i++) {
		g_auto(GStrv) f = g_strsplit(lines[i], ":", 7);
		unsigned u, g;

		if (g_strv_length(f) < 4 || vc_parse_uint(f[2], &u) < 0 || u != uid)
			continue;
		if (vc_parse_uint(f[3], &g) == 0)
			return g;
	}
	return 0;
}

/*
 * --cpus N without --cpuset-cpus: narrow the affinity to the first ceil(N)
 * allowed CPUs, the ones veneer-procfs shows, so that nproc and
 * sched_getaffinity agree with /proc/cpuinfo and /sys/.../cpu/online.
 */
static int vr_init_affinity(const struct vr_config *cfg)
{
	cpu_set_t set, narrow;
	unsigned want, have = 0;

	if (!cfg->limits.cpu_milli || cfg->limits.cpuset_cpus)
		return 0;
	want = (unsigned)((cfg->limits.cpu_milli + 999) / 1000);
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return log_error_errno(-errno, "cannot read the CPU affinity");
	CPU_ZERO(&narrow);
	for (unsigned cpu = 0; cpu < CPU_SETSIZE && have < want; cpu++) {
		if (CPU_ISSET(cpu, &set)) {
			CPU_SET(cpu, &narrow);
			have++;
		}
	}
	if (sched_setaffinity(0, sizeof(narrow), &narrow) < 0)
		return log_error_errno(-errno, "cannot set the CPU affinity for --cpus");
	return 0;
}

static int vr_init_setup(struct vr_ctx *ctx, const char *hostname)
{
	const struct vr_config *cfg = ctx->cfg;
	guint nvol = cfg->volumes->len;
	g_autofree int *vfds = g_new(int, nvol + 1);
	int r;

	for (guint i = 0; i < nvol; i++)
		vfds[i] = -1;
	if (sethostname(hostname, strlen(hostname)) < 0)
		return log_error_errno(-errno, "failed to set the host name '%s'", hostname);
	if (cfg->net == VR_NET_NONE) {
		r = vr_ns_loopback_up();
		if (r < 0)
			return log_error_errno(r, "failed to bring up the loopback interface");
	}
	r = vr_init_affinity(cfg);
	if (r < 0)
		return r;
	r = vr_volumes_open(ctx, vfds);
	if (r >= 0)
		r = vr_mounts_rootfs(ctx);
	if (r >= 0)
		r = vr_mounts_pivot(ctx->merged);
	if (r >= 0)
		r = vr_hide_apply_late(ctx);
	if (r >= 0)
		r = vr_volumes_attach(ctx, vfds);
	for (guint i = 0; i < nvol; i++)
		if (vfds[i] >= 0)
			close(vfds[i]);
	if (r >= 0 && ctx->cfg->sec.masks->len) {
		_cleanup_close_ int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

		r = rootfd < 0 ? log_error_errno(-errno, "cannot open the new root")
			       : vr_masks_user(ctx, rootfd);
	}
	if (r < 0)
		return r;
	if (cfg->workdir) {
		r = vr_mkdir_p(cfg->workdir, 0755);
		if (r < 0)
			return log_error_errno(r, "failed to create the working directory '%s'",
					       cfg->workdir);
	}
	return 0;
}

/*
 * COMMAND's privileges, in the order that works: the seccomp filter while
 * CAP_SYS_ADMIN still allows it without no_new_privs (the profile permits the
 * calls that follow); the bounding set while CAP_SETPCAP is effective; the
 * user (keeping the permitted set across setuid); then the permitted,
 * effective and (for root) inheritable sets. A user other than root loses
 * them all at exec, as under Docker. Returns -errno, reported already.
 */
static int vr_init_confine_command(const struct vr_config *cfg)
{
	const struct vr_security *sec = &cfg->sec;
	bool root = !cfg->have_user || cfg->uid == 0;
	int r;

	if (sec->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = -errno;
		fprintf(stderr, "veneer-run: cannot set no_new_privs: %s\n", strerror(-r));
		return r;
	}
	if (sec->seccomp && !sec->no_new_privs && (r = vr_seccomp_load(sec->seccomp)) < 0) {
		fprintf(stderr, "veneer-run: cannot load the seccomp filter: %s\n", strerror(-r));
		return r;
	}
	r = vr_caps_bound(sec->caps);
	if (r < 0) {
		fprintf(stderr, "veneer-run: cannot drop capabilities: %s\n", strerror(-r));
		return r;
	}
	if (cfg->have_user) {
		gid_t gid = cfg->have_gid ? cfg->gid : vr_passwd_gid(cfg->uid);

		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 ||
		    (!cfg->rootless && setgroups(0, NULL) < 0) || setgid(gid) < 0 ||
		    setuid(cfg->uid) < 0) {
			r = -errno;
			fprintf(stderr, "veneer-run: cannot switch to user %u:%u: %s\n",
				(unsigned)cfg->uid, (unsigned)gid, strerror(-r));
			return r;
		}
	}
	/* Inheritable only for root: no file-inheritable capability for a user (CVE-2022-24769). */
	r = vr_caps_apply(sec->caps, root, false);
	if (r < 0) {
		fprintf(stderr, "veneer-run: cannot set the capabilities: %s\n", strerror(-r));
		return r;
	}
	return 0;
}

/* The command's process, between fork and exec. Never returns. */
static void vr_init_exec(struct vr_ctx *ctx, GPtrArray *env, int err_fd)
{
	const struct vr_config *cfg = ctx->cfg;
	int code = VR_EXIT_CANNOT_EXEC;
	sigset_t none, ttou;
	int e;

	/* Its own process group: a signal is delivered once, by us, not twice. */
	setpgid(0, 0);
	if (isatty(STDIN_FILENO)) {
		sigemptyset(&ttou);
		sigaddset(&ttou, SIGTTOU);
		sigprocmask(SIG_BLOCK, &ttou, NULL);
		(void)tcsetpgrp(STDIN_FILENO, getpid());
	}
	/* A clean signal state, whatever the caller ignored (nohup, a shell's background job). */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	e = vr_init_confine_command(cfg);
	if (e < 0) {
		code = VR_EXIT_SETUP;
		goto fail;
	}
	if (chdir(cfg->workdir ? cfg->workdir : "/") < 0) {
		e = errno;
		fprintf(stderr, "veneer-run: cannot enter the working directory '%s': %s\n",
			cfg->workdir ? cfg->workdir : "/", strerror(e));
		e = -e;
		goto fail;
	}
	clearenv();
	for (guint i = 0; i < env->len; i++)
		putenv(env->pdata[i]);
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	/* With no_new_privs the filter needs no privilege: as late as possible. */
	if (cfg->sec.seccomp && cfg->sec.no_new_privs &&
	    (e = vr_seccomp_load(cfg->sec.seccomp)) < 0) {
		fprintf(stderr, "veneer-run: cannot load the seccomp filter: %s\n", strerror(-e));
		code = VR_EXIT_SETUP;
		goto fail;
	}
	execvp(cfg->argv[0], cfg->argv);
	e = errno;
fail:
	/* errno > 0: PID 1 reports it; < 0: reported already, our exit code says the rest. */
	(void)!write(err_fd, &e, sizeof(e));
	_exit(code);
}

static int vr_init_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return VR_EXIT_SETUP;
}

/* The PID 1 loop: forward, reap, and leave with COMMAND's status. */
static int vr_init_loop(const char *name, pid_t cmd, int exec_errno)
{
	sigset_t set;
	int status = 0;

	sigemptyset(&set);
	for (size_t i = 0; i < vr_n_forwarded_signals; i++)
		sigaddset(&set, vr_forwarded_signals[i]);
	sigaddset(&set, SIGCHLD);
	for (;;) {
		siginfo_t si;
		bool done = false;
		int sig = sigwaitinfo(&set, &si);

		if (sig < 0)
			continue; /* EINTR */
		if (sig != SIGCHLD) {
			kill(cmd, sig);
			continue;
		}
		for (;;) {
			int st;
			pid_t p = waitpid(-1, &st, WNOHANG);

			if (p <= 0)
				break;
			if (p == cmd) {
				status = st;
				done = true;
			}
		}
		if (done)
			break;
	}
	if (exec_errno > 0) {
		fprintf(stderr, "veneer-run: cannot run '%s': %s\n", name, strerror(exec_errno));
		return exec_errno == ENOENT ? VR_EXIT_NOT_FOUND : VR_EXIT_CANNOT_EXEC;
	}
	return vr_init_status(status);
}

/* Close every fd but stdio, keep and keep2 (the launcher's, the host's: none for COMMAND to find).
 */
static void vr_init_close_fds(int keep, int keep2)
{
	int lo = MIN(keep, keep2), hi = MAX(keep, keep2);

	if (lo > 3)
		close_range(3, (unsigned)lo - 1, 0);
	if (hi > lo + 1)
		close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
	close_range((unsigned)hi + 1, ~0U, 0);
}

/*
 * PID 1 after forking COMMAND and before letting it exec: COMMAND will be the
 * same user in the same namespaces, so PID 1 keeps nothing worth reaching
 * through ptrace or /proc/1: no fd but stdio and its two pipes, no
 * capability but CAP_KILL (to signal a COMMAND of another uid), not dumpable
 * (so ptrace, /proc/1/{mem,fd,root,environ} need CAP_SYS_PTRACE), its
 * argument area blanked (no host path in /proc/1/cmdline), and a seccomp
 * filter of its own.
 */
static int vr_init_confine(const struct vr_ctx *ctx, int keep, int keep2)
{
	const struct vr_config *cfg = ctx->cfg;
	int r;

	vr_init_close_fds(keep, keep2);
	if (cfg->argv_area && cfg->argv_area_len > 1) {
		memset(cfg->argv_area, 0, cfg->argv_area_len);
		g_strlcpy(cfg->argv_area, "veneer-init", cfg->argv_area_len);
	}
	r = vr_caps_apply(1ULL << CAP_KILL, false, true);
	if (r < 0)
		return log_error_errno(r, "PID 1 cannot drop its capabilities");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return log_error_errno(-errno, "PID 1 cannot make itself undumpable");
	r = vr_seccomp_load(cfg->sec.init_seccomp);
	if (r < 0)
		return log_error_errno(r, "PID 1 cannot load its seccomp filter");
	return 0;
}

void vr_init_run(struct vr_ctx *ctx, int go_fd, int report_fd)
{
	const char *hostname = ctx->cfg->hostname ? ctx->cfg->hostname : ctx->id;
	g_autofree char *name = g_strdup(ctx->cfg->argv[0]);
	g_autoptr(GPtrArray) env = NULL;
	sigset_t chld;
	int err_pipe[2], start_pipe[2];
	int r, exec_errno = 0;
	pid_t cmd;
	char go;

	/* Die with the launcher: a killed veneer-run takes its container along. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (read(go_fd, &go, 1) != 1)
		_exit(VR_EXIT_SETUP);
	close(go_fd);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);

	r = vr_init_setup(ctx, hostname);
	if (r >= 0 && (pipe2(err_pipe, O_CLOEXEC) < 0 || pipe2(start_pipe, O_CLOEXEC) < 0))
		r = log_error_errno(-errno, "cannot create a pipe");
	(void)!write(report_fd, &r, sizeof(r));
	close(report_fd);
	if (r < 0)
		_exit(VR_EXIT_SETUP);

	env = vr_env_build(ctx->cfg, hostname);
	cmd = fork();
	if (cmd < 0) {
		log_error_errno(-errno, "cannot fork COMMAND");
		_exit(VR_EXIT_SETUP);
	}
	if (cmd == 0) {
		close(err_pipe[0]);
		close(start_pipe[1]);
		/* Not before PID 1 is out of reach. */
		if (read(start_pipe[0], &go, 1) != 1)
			_exit(VR_EXIT_SETUP);
		close(start_pipe[0]);
		vr_init_exec(ctx, env, err_pipe[1]);
	}
	close(err_pipe[1]);
	close(start_pipe[0]);
	r = vr_init_confine(ctx, err_pipe[0], start_pipe[1]);
	if (r < 0) {
		kill(cmd, SIGKILL);
		_exit(VR_EXIT_SETUP);
	}
	(void)!write(start_pipe[1], "g", 1);
	close(start_pipe[1]);
	/* EOF: exec succeeded (the pipe was close-on-exec); data: its errno. */
	if (vc_read_all(err_pipe[0], &exec_errno, sizeof(exec_errno)) != sizeof(exec_errno))
		exec_errno = 0;
	close(err_pipe[0]);
	fflush(stdout);
	_exit(vr_init_loop(name, cmd, exec_errno));
}
