/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A process' title: what /proc/PID/cmdline (ps, pgrep -f) and /proc/PID/comm
 * (pidof, ps -C, pgrep) show, so processes of one binary with different roles
 * can be told apart and signalled one role at a time.
 */
#pragma once

/*
 * Show title as the whole command line and comm (at most 15 bytes) as the
 * name. The command line moves to memory of its own (PR_SET_MM, needs
 * CAP_SYS_RESOURCE); without the capability the original argument area is
 * overwritten, truncated to its size. Returns 0 or -errno of the comm change.
 */
int vc_proc_set_title(const char *title, const char *comm);
