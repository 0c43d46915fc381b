/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for common/fd-util.c on a scratch directory: the beneath-open
 * refuses symlinks and '..' escapes both through openat2 and the O_NOFOLLOW walk.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "cleanup.h"
#include "fd-util.h"

typedef int (*open_fn)(int, const char *, int, mode_t);

struct fixture {
	char *dir;
	int dfd;
};

static void fixture_setup(struct fixture *f, gconstpointer data)
{
	g_autofree char *p = NULL;

	f->dir = g_dir_make_tmp("veneer-fd-XXXXXX", NULL);
	g_assert_nonnull(f->dir);
	f->dfd = open(f->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	g_assert_cmpint(f->dfd, >=, 0);
	g_assert_cmpint(mkdirat(f->dfd, "sub", 0755), ==, 0);
	p = g_build_filename(f->dir, "sub", "file", NULL);
	g_assert_true(g_file_set_contents(p, "hello", 5, NULL));
	g_assert_cmpint(symlinkat("/etc", f->dfd, "escape"), ==, 0);
	g_assert_cmpint(symlinkat("file", f->dfd, "sub/link"), ==, 0);
}

static void fixture_teardown(struct fixture *f, gconstpointer data)
{
	g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);

	close(f->dfd);
	g_assert_cmpint(system(cmd), ==, 0);
	g_free(f->dir);
}

static void check_beneath(struct fixture *f, open_fn fn)
{
	_cleanup_close_ int fd = -1;
	char buf[8] = {0};

	fd = fn(f->dfd, "sub/file", O_RDONLY, 0);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(vc_read_all(fd, buf, sizeof(buf) - 1), ==, 5);
	g_assert_cmpstr(buf, ==, "hello");
	g_assert_cmpint(fn(f->dfd, "escape/passwd", O_RDONLY, 0), ==, -ELOOP);
	g_assert_cmpint(fn(f->dfd, "sub/link", O_RDONLY, 0), ==, -ELOOP);
	g_assert_cmpint(fn(f->dfd, "../x", O_RDONLY, 0), ==, -EXDEV);
	g_assert_cmpint(fn(f->dfd, "sub/../../x", O_RDONLY, 0), ==, -EXDEV);
	g_assert_cmpint(fn(f->dfd, "/etc/passwd", O_RDONLY, 0), ==, -EXDEV);
	g_assert_cmpint(fn(f->dfd, "sub/missing", O_RDONLY, 0), ==, -ENOENT);
}

static void test_beneath(struct fixture *f, gconstpointer data)
{
	check_beneath(f, vc_open_beneath);
}

static void test_beneath_walk(struct fixture *f, gconstpointer data)
{
	check_beneath(f, vc_open_beneath_walk);
}

static void test_read_file(struct fixture *f, gconstpointer data)
{
	g_autofree char *s = NULL;
	size_t len;

	g_assert_cmpint(vc_read_file_at(f->dfd, "sub/file", &s, &len), ==, 0);
	g_assert_cmpuint(len, ==, 5);
	g_assert_cmpstr(s, ==, "hello");
	g_assert_cmpint(vc_read_file_at(f->dfd, "nope", &s, &len), ==, -ENOENT);
}

static void test_pwrite_all(struct fixture *f, gconstpointer data)
{
	_cleanup_close_ int fd = -1;
	g_autofree char *s = NULL;
	size_t len;

	fd = openat(f->dfd, "sub/file", O_WRONLY | O_CLOEXEC);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(vc_pwrite_all(fd, "XY", 2, 3), ==, 0);
	g_assert_cmpint(vc_pwrite_all(fd, "!", 1, 7), ==, 0);
	g_assert_cmpint(vc_read_file_at(f->dfd, "sub/file", &s, &len), ==, 0);
	g_assert_cmpuint(len, ==, 8);
	g_assert_cmpmem(s, len, "helXY\0\0!", 8);
	g_assert_cmpint(vc_pwrite_all(-1, "x", 1, 0), ==, -EBADF);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add("/fd/beneath", struct fixture, NULL, fixture_setup, test_beneath,
		   fixture_teardown);
	g_test_add("/fd/beneath-walk", struct fixture, NULL, fixture_setup, test_beneath_walk,
		   fixture_teardown);
	g_test_add("/fd/read-file", struct fixture, NULL, fixture_setup, test_read_file,
		   fixture_teardown);
	g_test_add("/fd/pwrite-all", struct fixture, NULL, fixture_setup, test_pwrite_all,
		   fixture_teardown);
	return g_test_run();
}
