/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The /proc benchmark's reader: one per container. For each file given it
 * waits for one byte on the go fd, then runs open/read-to-EOF/close loops of
 * that file for the given seconds, and reports "reads elapsed_ns bytes" on the
 * result fd. Built by bench/procbench.py with the system compiler.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long reader_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int reader_write_line(int fd, const char *line)
{
	size_t len = strlen(line);

	/* One write below PIPE_BUF: atomic even with 100 writers on one pipe. */
	return write(fd, line, len) == (ssize_t)len ? 0 : -errno;
}

/* Reads path to EOF once; returns the bytes read or -errno. */
static long reader_read_once(const char *path, char *buf, size_t size)
{
	long total = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, size)) > 0)
		total += n;
	if (n < 0)
		total = -errno;
	close(fd);
	return total;
}

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	char line[128];
	int go_fd, res_fd;
	double seconds;

	if (argc < 5) {
		fprintf(stderr, "usage: %s GO_FD RESULT_FD SECONDS FILE...\n", argv[0]);
		return 2;
	}
	go_fd = atoi(argv[1]);
	res_fd = atoi(argv[2]);
	seconds = atof(argv[3]);
	if (seconds <= 0 || seconds > 600) {
		fprintf(stderr, "reader: bad seconds '%s'\n", argv[3]);
		return 2;
	}
	if (reader_write_line(res_fd, "ready\n") < 0)
		return 1;
	for (int f = 4; f < argc; f++) {
		long long start, end, deadline, reads = 0;
		long bytes = 0, r;
		char go;

		if (read(go_fd, &go, 1) != 1)
			return 1;
		start = reader_now_ns();
		deadline = start + (long long)(seconds * 1e9);
		do {
			r = reader_read_once(argv[f], buf, sizeof(buf));
			if (r <= 0) {
				snprintf(line, sizeof(line), "error %s %ld\n", argv[f], -r);
				reader_write_line(res_fd, line);
				return 1;
			}
			bytes = r;
			reads++;
			end = reader_now_ns();
		} while (end < deadline);
		snprintf(line, sizeof(line), "%lld %lld %ld\n", reads, end - start, bytes);
		if (reader_write_line(res_fd, line) < 0)
			return 1;
	}
	return 0;
}
