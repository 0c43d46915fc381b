/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for common/xattr-util.c on a scratch file: set, get, list and
 * remove through a normal fd and through an O_PATH fd (the /proc/self/fd path).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "cleanup.h"
#include "xattr-util.h"

static void check_fd(int fd, bool o_path)
{
	g_autofree char *v = NULL;
	g_autofree char *names = NULL;
	size_t len = 0;
	bool found = false;
	char small[2];
	int r;

	r = vc_fsetxattr(fd, o_path, "user.veneer", "value", 5, 0);
	if (r == -EOPNOTSUPP) {
		g_test_skip("no user xattrs on this filesystem");
		return;
	}
	g_assert_cmpint(r, ==, 0);
	g_assert_cmpint(vc_fgetxattr(fd, o_path, "user.veneer", NULL, 0), ==, 5);
	g_assert_cmpint(vc_fgetxattr(fd, o_path, "user.veneer", small, sizeof(small)), ==, -ERANGE);
	g_assert_cmpint(vc_fgetxattr_alloc(fd, o_path, "user.veneer", &v, &len), ==, 0);
	g_assert_cmpuint(len, ==, 5);
	g_assert_cmpstr(v, ==, "value");
	g_assert_cmpint(vc_flistxattr_alloc(fd, o_path, &names, &len), ==, 0);
	for (char *n = names; n < names + len; n += strlen(n) + 1)
		found |= strcmp(n, "user.veneer") == 0;
	g_assert_true(found);
	g_assert_cmpint(vc_fsetxattr(fd, o_path, "user.veneer", "x", 1, XATTR_CREATE), ==, -EEXIST);
	{
		/* Larger than the first guess: the probing path. */
		char big[3000];
		g_autofree char *bv = NULL;

		memset(big, 'b', sizeof(big));
		g_assert_cmpint(vc_fsetxattr(fd, o_path, "user.big", big, sizeof(big), 0), ==, 0);
		g_assert_cmpint(vc_fgetxattr_alloc(fd, o_path, "user.big", &bv, &len), ==, 0);
		g_assert_cmpuint(len, ==, sizeof(big));
		g_assert_true(memcmp(bv, big, sizeof(big)) == 0);
		g_assert_cmpint(vc_fremovexattr(fd, o_path, "user.big"), ==, 0);
	}
	g_assert_cmpint(vc_fremovexattr(fd, o_path, "user.veneer"), ==, 0);
	g_assert_cmpint(vc_fgetxattr(fd, o_path, "user.veneer", NULL, 0), ==, -ENODATA);
	g_assert_cmpint(vc_fgetxattr_alloc(fd, o_path, "user.veneer", &v, &len), ==, -ENODATA);
	g_clear_pointer(&names, g_free);
	g_assert_cmpint(vc_flistxattr_alloc(fd, o_path, &names, &len), ==, 0);
	for (char *n = names; n < names + len; n += strlen(n) + 1)
		g_assert_true(strncmp(n, "user.", 5) != 0);
}

static void test_xattr(gconstpointer data)
{
	bool o_path = GPOINTER_TO_INT(data);
	g_autofree char *dir = g_dir_make_tmp("veneer-xattr-XXXXXX", NULL);
	g_autofree char *file = g_build_filename(dir, "f", NULL);
	_cleanup_close_ int fd = -1;

	g_assert_true(g_file_set_contents(file, "x", 1, NULL));
	fd = open(file, (o_path ? O_PATH : O_RDONLY) | O_CLOEXEC);
	g_assert_cmpint(fd, >=, 0);
	check_fd(fd, o_path);
	g_assert_cmpint(g_unlink(file), ==, 0);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_data_func("/xattr/fd", GINT_TO_POINTER(0), test_xattr);
	g_test_add_data_func("/xattr/o-path", GINT_TO_POINTER(1), test_xattr);
	return g_test_run();
}
