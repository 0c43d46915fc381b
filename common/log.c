/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The logger behind log.h: level threshold, stderr or syslog, errno text for
 * the *_errno variants, and the bridge from libfuse's fuse_set_log_func().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fuse_lowlevel.h>

#include "log.h"

/* Written once at start-up before any thread exists, read-only afterwards. */
static struct {
	int level;
	enum vc_log_target target;
	const char *ident;
} vc_log_state = {
	.level = LOG_NOTICE,
	.target = VC_LOG_STDERR,
	.ident = "veneer",
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

void vc_log_set_target(enum vc_log_target target)
{
	if (target == VC_LOG_SYSLOG && vc_log_state.target != VC_LOG_SYSLOG)
		openlog(vc_log_state.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	vc_log_state.target = target;
}

static void vc_log_emit(int level, const char *msg)
{
	if (vc_log_state.target == VC_LOG_SYSLOG)
		syslog(level, "%s", msg);
	else
		fprintf(stderr, "%s: %s\n", vc_log_state.ident, msg);
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

static void vc_log_fuse(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char buf[2048];
	size_t n;
	int lvl = (int)level;

	if (lvl > vc_log_state.level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	vc_log_emit(lvl, buf);
}

void vc_log_route_fuse(void)
{
	fuse_set_log_func(vc_log_fuse);
}
