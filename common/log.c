/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The logger behind log.h: level threshold, stderr or syslog, errno text for
 * the *_errno variants, and the bridge from libfuse's fuse_set_log_func().
 * A detached daemon on a machine without a syslog socket (no /dev/log: a
 * container, a minimal host) logs to a file in the runtime directory instead:
 * $XDG_RUNTIME_DIR/veneer/IDENT.log, else /run/veneer/IDENT.log for root and
 * /run/user/UID/veneer/IDENT.log for others.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <fuse_lowlevel.h>
#include <glib.h>

#include "log.h"

/* Written once at start-up before any thread exists, read-only afterwards. */
static struct {
	int level;
	enum vc_log_target target;
	const char *ident;
	bool use_file; /* VC_LOG_SYSLOG without a syslog socket: the fallback file */
	int file_fd;   /* that file once opened, or -1; protected by vc_log_file_lock */
} vc_log_state = {
	.level = LOG_NOTICE,
	.target = VC_LOG_STDERR,
	.ident = "veneer",
	.file_fd = -1,
};

void vc_log_init(const char *ident)
{
	vc_log_state.ident = ident;
}

void vc_log_set_level(int level)
{
	vc_log_state.level = level;
}

int vc_log_get_level(void)
{
	return vc_log_state.level;
}

/* A syslog daemon listens on /dev/log (datagram, or stream for some). */
static bool vc_log_syslog_listens(void)
{
	static const int types[] = {SOCK_DGRAM, SOCK_STREAM};
	struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = "/dev/log"};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
		int r;

		if (fd < 0)
			continue;
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (r == 0)
			return true;
	}
	return false;
}

char *vc_log_fallback_path(const char *ident)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char *dir, *path;

	if (rt && rt[0] == '/')
		dir = g_build_filename(rt, "veneer", NULL);
	else if (geteuid() == 0)
		dir = g_strdup("/run/veneer");
	else
		dir = g_strdup_printf("/run/user/%u/veneer", (unsigned)geteuid());
	path = g_strdup_printf("%s/%s.log", dir, ident);
	g_free(dir);
	return path;
}

/* The fallback file, its directory made if need be; returns an fd or a negative errno. */
static int vc_log_open_fallback(void)
{
	g_autofree char *path = vc_log_fallback_path(vc_log_state.ident);
	g_autofree char *dir = g_path_get_dirname(path);
	struct stat st;
	int r;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	/* Ours, or someone could read or redirect the messages. */
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return -EPERM;
	r = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	return r < 0 ? -errno : r;
}

void vc_log_set_target(enum vc_log_target target)
{
	if (target == VC_LOG_SYSLOG && vc_log_state.target != VC_LOG_SYSLOG) {
		if (vc_log_syslog_listens()) {
			openlog(vc_log_state.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
		} else {
			/* Opened at the first message: a quiet daemon leaves no file behind. */
			vc_log_state.use_file = true;
		}
	}
	vc_log_state.target = target;
}

static pthread_mutex_t vc_log_file_lock = PTHREAD_MUTEX_INITIALIZER;

/* The fallback file's fd, opened on first use; -1 where it cannot be. */
static int vc_log_file_fd(void)
{
	int fd;

	pthread_mutex_lock(&vc_log_file_lock);
	if (vc_log_state.file_fd == -1) {
		fd = vc_log_open_fallback();
		/* Nowhere to write: syslog(3) still, in case a syslog daemon starts later. */
		vc_log_state.file_fd = fd < 0 ? -2 : fd;
		if (fd < 0)
			openlog(vc_log_state.ident, LOG_PID, LOG_DAEMON);
	}
	fd = vc_log_state.file_fd;
	pthread_mutex_unlock(&vc_log_file_lock);
	return fd;
}

static void vc_log_emit(int level, const char *msg)
{
	int fd = vc_log_state.target == VC_LOG_SYSLOG && vc_log_state.use_file ? vc_log_file_fd()
									       : -1;

	if (fd >= 0) {
		char line[2400], ts[32];
		struct tm tm;
		time_t now = time(NULL);
		int n;

		gmtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		n = snprintf(line, sizeof(line), "%s %s[%d]: %s\n", ts, vc_log_state.ident,
			     (int)getpid(), msg);
		if (n > (int)sizeof(line) - 1) {
			n = sizeof(line) - 1;
			line[n - 1] = '\n';
		}
		/* One write per line: O_APPEND keeps the lines of several daemons whole. */
		if (n > 0 && write(fd, line, n) < 0) {
			/* nowhere left to say so */
		}
	} else if (vc_log_state.target == VC_LOG_SYSLOG) {
		syslog(level, "%s", msg);
	} else {
		fprintf(stderr, "%s: %s\n", vc_log_state.ident, msg);
	}
}

int vc_log_full(int level, int error, const char *file, int line, const char *func, const char *fmt,
		...)
{
	char buf[2048];
	va_list ap;
	int n;

	error = abs(error);
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (error != 0)
		snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(error));
	if (vc_log_state.level >= LOG_DEBUG && level >= LOG_DEBUG) {
		char dbg[2200];

		snprintf(dbg, sizeof(dbg), "%s (%s:%d %s)", buf, file, line, func);
		vc_log_emit(level, dbg);
	} else {
		vc_log_emit(level, buf);
	}
	return -error;
}

/*
 * libfuse writes some messages in pieces ("fuse: unknown option(s): `", then each
 * option, then "'\n"): a thread's pieces are joined until the newline so that
 * they come out as one line.
 */
static __thread char vc_log_fuse_pending[2048];
static __thread size_t vc_log_fuse_pending_len;

static void vc_log_fuse(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char *buf = vc_log_fuse_pending;
	size_t n = vc_log_fuse_pending_len, cap = sizeof(vc_log_fuse_pending);
	int lvl = (int)level;
	int w;

	if (lvl > vc_log_state.level)
		return;
	w = vsnprintf(buf + n, cap - n, fmt, ap);
	if (w > 0)
		n = MIN(n + (size_t)w, cap - 1);
	if (n == 0 || (buf[n - 1] != '\n' && n < cap - 1)) {
		vc_log_fuse_pending_len = n; /* a piece of a line: wait for the rest */
		return;
	}
	vc_log_fuse_pending_len = 0;
	while (n > 0 && buf[n - 1] == '\n')
		n--;
	buf[n] = '\0';
	vc_log_emit(lvl, buf);
}

void vc_log_route_fuse(void)
{
	fuse_set_log_func(vc_log_fuse);
}
