/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Readiness for a service manager: sd_notify(3) when $NOTIFY_SOCKET is set
 * (systemd's Type=notify). Without libsystemd at build time it does nothing.
 */
#pragma once

#include "macro.h"

/*
 * "READY=1", "MAINPID=<our pid>" and "STATUS=<fmt>": a process that systemd did
 * not start itself (a worker started by veneer-procfs's holder on a reload)
 * becomes the service's main process (the unit needs NotifyAccess=all).
 * Returns 1 when sent, 0 when no manager asked, or a negative errno (logged).
 */
int vc_notify_ready(const char *fmt, ...) VC_PRINTF(1, 2);
