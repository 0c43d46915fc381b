/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sd_notify(3) readiness (see notify.h), through libsystemd where it was
 * found at build time.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>
#include <glib.h>

#include "config.h"
#include "log.h"
#include "notify.h"

#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

int vc_notify_ready(const char *fmt, ...)
{
#if HAVE_LIBSYSTEMD
	g_autofree char *status = NULL;
	va_list ap;
	int r;

	if (!getenv("NOTIFY_SOCKET"))
		return 0;
	va_start(ap, fmt);
	status = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	r = sd_pid_notifyf(0, 0, "READY=1\nMAINPID=%d\nSTATUS=%s", (int)getpid(), status);
	if (r < 0)
		return log_warning_errno(r, "could not notify the service manager");
	return r > 0;
#else
	(void)fmt;
	return 0;
#endif
}
