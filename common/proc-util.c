/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc parsing and the pid-namespace init search (see proc-util.h).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "dir-util.h"
#include "fd-util.h"
#include "macro.h"
#include "parse-util.h"
#include "proc-util.h"

int vc_proc_parse_stat(const char *text, struct vc_proc_stat *ret)
{
	const char *p;
	g_auto(GStrv) f = NULL;
	uint64_t v;
	int64_t sv;
	int r;

	if (!text)
		return -EINVAL;
	/* The comm is "(...)" and may hold anything, so fields start after the last ')'. */
	p = strrchr(text, ')');
	if (!p || p[1] != ' ')
		return -EINVAL;
	f = g_strsplit_set(p + 2, " \n", -1);
	/* f[0] is field 3 (state); field N is f[N - 3]. */
	if (g_strv_length(f) < 20 || strlen(f[0]) != 1)
		return -EINVAL;
	ret->state = f[0][0];
	r = vc_parse_i64(f[1], &sv);
	if (r < 0)
		return r;
	ret->ppid = (pid_t)sv;
	r = vc_parse_u64(f[14 - 3], &v);
	if (r < 0)
		return r;
	ret->utime = v;
	r = vc_parse_u64(f[15 - 3], &v);
	if (r < 0)
		return r;
	ret->stime = v;
	r = vc_parse_u64(f[22 - 3], &v);
	if (r < 0)
		return r;
	ret->starttime = v;
	return 0;
}

static const char *vc_proc_status_line(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *line = text; line && *line;) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':')
			return line + klen + 1;
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return NULL;
}

int vc_proc_parse_nspid(const char *status_text, GArray **ret)
{
	g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(pid_t));
	const char *p = vc_proc_status_line(status_text, "NSpid");

	if (!p)
		return -ENOENT;
	for (;;) {
		char *end;
		long v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\n' || *p == '\0')
			break;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		errno = 0;
		v = strtol(p, &end, 10);
		if (errno || v <= 0 || v > INT32_MAX)
			return -EINVAL;
		g_array_append_vals(out, &(pid_t){(pid_t)v}, 1);
		p = end;
	}
	if (out->len == 0)
		return -EINVAL;
	*ret = g_steal_pointer(&out);
	return 0;
}

int vc_proc_parse_ppid(const char *status_text, pid_t *ret)
{
	const char *p = vc_proc_status_line(status_text, "PPid");
	g_autofree char *line = NULL;
	int64_t v;
	int r;

	if (!p)
		return -ENOENT;
	line = g_strndup(p, strcspn(p, "\n"));
	r = vc_parse_i64(line, &v);
	if (r < 0)
		return r;
	if (v < 0 || v > INT32_MAX)
		return -ERANGE;
	*ret = (pid_t)v;
	return 0;
}

int vc_proc_read(int procfd, pid_t pid, const char *file, char **ret, size_t *ret_len)
{
	char path[DECIMAL_STR_MAX(pid_t) + 256];
	int r;

	if (pid > 0)
		snprintf(path, sizeof(path), "%d/%s", (int)pid, file);
	else
		snprintf(path, sizeof(path), "self/%s", file);
	r = vc_read_file_at(procfd, path, ret, ret_len);
	/* A vanished pid shows as ENOENT or ESRCH depending on the moment. */
	if (r == -ENOENT && pid > 0)
		return -ESRCH;
	return r;
}

int vc_proc_read_stat(int procfd, pid_t pid, struct vc_proc_stat *ret)
{
	g_autofree char *text = NULL;
	int r = vc_proc_read(procfd, pid, "stat", &text, NULL);

	if (r < 0)
		return r;
	return vc_proc_parse_stat(text, ret);
}

int vc_proc_pidns_ino(int procfd, pid_t pid, uint64_t *ret)
{
	char path[DECIMAL_STR_MAX(pid_t) + 16], link[64], *end;
	ssize_t n;

	if (pid > 0)
		snprintf(path, sizeof(path), "%d/ns/pid", (int)pid);
	else
		snprintf(path, sizeof(path), "self/ns/pid");
	/* The link's text "pid:[INO]", not a stat through it: no nsfs dentry per call. */
	n = readlinkat(procfd, path, link, sizeof(link) - 1);
	if (n < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	link[n] = '\0';
	if (strncmp(link, "pid:[", 5) != 0 || !(end = strchr(link, ']')))
		return -EINVAL;
	*end = '\0';
	return vc_parse_u64(link + 5, ret);
}

/* NSpid and PPid of p. */
static int vc_proc_ns_info(int procfd, pid_t p, GArray **ret_nspid, pid_t *ret_ppid)
{
	g_autofree char *status = NULL;
	int r;

	r = vc_proc_read(procfd, p, "status", &status, NULL);
	if (r < 0)
		return r;
	r = vc_proc_parse_ppid(status, ret_ppid);
	if (r < 0)
		return r;
	return vc_proc_parse_nspid(status, ret_nspid);
}

static int vc_proc_scan_ns_init(int procfd, uint64_t ns, pid_t *ret_init)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int k = vc_opendir_at(procfd, ".", &d);

	if (k < 0)
		return k;
	while ((de = readdir(d))) {
		int64_t v;
		uint64_t ino;
		pid_t ppid;

		if (vc_parse_i64(de->d_name, &v) < 0 || v <= 0)
			continue;
		g_autoptr(GArray) nspid = NULL;

		if (vc_proc_pidns_ino(procfd, (pid_t)v, &ino) < 0 || ino != ns)
			continue;
		if (vc_proc_ns_info(procfd, (pid_t)v, &nspid, &ppid) >= 0 &&
		    g_array_index(nspid, pid_t, nspid->len - 1) == 1) {
			*ret_init = (pid_t)v;
			return 0;
		}
	}
	return -ENOENT;
}

int vc_proc_find_ns_init(int procfd, pid_t pid, pid_t *ret_init)
{
	g_autoptr(GArray) first = NULL;
	uint64_t ns;
	pid_t p = pid, ppid;
	guint depth;
	int r;

	r = vc_proc_ns_info(procfd, pid, &first, &ppid);
	if (r < 0)
		return r;
	depth = first->len;
	if (g_array_index(first, pid_t, depth - 1) == 1) {
		*ret_init = pid;
		return 0;
	}
	/*
	 * The parent chain of a process started inside the namespace reaches its
	 * init. A parent is in the same namespace exactly when its NSpid has the same
	 * length: a child's namespace is its parent's or a descendant of it. This
	 * needs no ptrace access to the ancestors' ns links.
	 */
	for (unsigned hops = 0; hops < 4096 && ppid > 0; hops++) {
		g_autoptr(GArray) nspid = NULL;
		pid_t next;

		p = ppid;
		if (vc_proc_ns_info(procfd, p, &nspid, &next) < 0 || nspid->len != depth)
			break;
		if (g_array_index(nspid, pid_t, depth - 1) == 1) {
			*ret_init = p;
			return 0;
		}
		ppid = next;
	}
	/* Joined with setns(): its parents are outside. Find the init by scanning. */
	r = vc_proc_pidns_ino(procfd, pid, &ns);
	if (r < 0)
		return r;
	return vc_proc_scan_ns_init(procfd, ns, ret_init);
}

unsigned vc_proc_clk_tck(void)
{
	long v = sysconf(_SC_CLK_TCK); /* a constant in glibc: no syscall */

	return v > 0 ? (unsigned)v : 100;
}

uint64_t vc_proc_boottime_ticks(void)
{
	struct timespec ts;
	unsigned hz = vc_proc_clk_tck();

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * hz + (uint64_t)ts.tv_nsec / (1000000000ULL / hz);
}
