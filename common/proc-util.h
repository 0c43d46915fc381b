/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc parsing shared by the daemons and the launcher: /proc/PID/stat fields,
 * the NSpid/PPid lines of /proc/PID/status, pid namespace identity and the
 * search for the init process of a pid namespace. Parsers take text and are
 * pure; readers take an fd of a /proc mount (procfd) so callers choose which.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

struct vc_proc_stat {
	char state;	    /* field 3: R, S, D, Z, ... */
	pid_t ppid;	    /* field 4 */
	uint64_t utime;	    /* field 14, clock ticks */
	uint64_t stime;	    /* field 15, clock ticks */
	uint64_t starttime; /* field 22, clock ticks after boot */
};

/* Parse the text of /proc/PID/stat (the comm may contain blanks and parentheses). */
int vc_proc_parse_stat(const char *text, struct vc_proc_stat *ret);

/*
 * The NSpid line of /proc/PID/status: the pid as seen from the reader's pid
 * namespace first, then in each nested namespace down to the process' own.
 * ret: GArray of pid_t. -ENOENT when the line is missing (kernels < 4.1).
 */
int vc_proc_parse_nspid(const char *status_text, GArray **ret);
/* The PPid line of /proc/PID/status. */
int vc_proc_parse_ppid(const char *status_text, pid_t *ret);

/* Read /proc/PID/<file> (pid 0 means "self") below procfd into a NUL-terminated buffer. */
int vc_proc_read(int procfd, pid_t pid, const char *file, char **ret, size_t *ret_len);
int vc_proc_read_stat(int procfd, pid_t pid, struct vc_proc_stat *ret);

/* Inode of /proc/PID/ns/pid: the identity of the process' pid namespace (pid 0: self). */
int vc_proc_pidns_ino(int procfd, pid_t pid, uint64_t *ret);

/*
 * Find the init process (pid 1 inside) of the pid namespace pid lives in, as a
 * pid of procfd's namespace. Walks the parent chain while it stays inside that
 * namespace (cheap: usually a few reads), and falls back to scanning procfd
 * (for processes that joined the namespace with setns()). -ESRCH when pid is
 * gone, -ENOENT when the init is not visible from procfd.
 */
int vc_proc_find_ns_init(int procfd, pid_t pid, pid_t *ret_init);

/* Seconds since boot (CLOCK_BOOTTIME) in clock ticks, the unit of starttime. */
uint64_t vc_proc_boottime_ticks(void);
/* sysconf(_SC_CLK_TCK). */
unsigned vc_proc_clk_tck(void);
