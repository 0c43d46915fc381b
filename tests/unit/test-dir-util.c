/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for common/dir-util.c on a scratch tree: removal never follows a
 * symlink out of the tree, gets through unreadable directories, and treats a
 * missing name as done.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "cleanup.h"
#include "dir-util.h"

static void put(const char *dir, const char *rel, const char *content)
{
	g_autofree char *p = g_build_filename(dir, rel, NULL);

	g_assert_true(g_file_set_contents(p, content, -1, NULL));
}

static void test_rm_rf(void)
{
	g_autofree char *outside = g_dir_make_tmp("veneer-out-XXXXXX", NULL);
	g_autofree char *dir = g_dir_make_tmp("veneer-rm-XXXXXX", NULL);
	g_autofree char *victim = g_build_filename(outside, "keep", NULL);
	g_autofree char *tree = g_build_filename(dir, "tree", NULL);
	g_autofree char *locked = g_build_filename(tree, "a", "locked", NULL);
	g_autofree char *link = g_build_filename(tree, "a", "out", NULL);
	_cleanup_close_ int dfd = -1;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int n = 0;

	put(outside, "keep", "precious");
	g_assert_cmpint(g_mkdir_with_parents(locked, 0755), ==, 0);
	put(tree, "a/locked/f", "x");
	put(tree, "top", "y");
	g_assert_cmpint(symlink(outside, link), ==, 0);
	g_assert_cmpint(chmod(locked, 0), ==, 0);

	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	g_assert_cmpint(dfd, >=, 0);
	g_assert_cmpint(vc_opendir_at(dfd, "tree", &d), ==, 0);
	while ((de = readdir(d)))
		n++;
	g_assert_cmpint(n, ==, 4); /* ., .., a, top */
	g_assert_cmpint(vc_opendir_at(dfd, "missing", &d), ==, -ENOENT);

	g_assert_cmpint(vc_rm_rf_at(dfd, "tree"), ==, 0);
	g_assert_false(g_file_test(tree, G_FILE_TEST_EXISTS));
	g_assert_true(g_file_test(victim, G_FILE_TEST_IS_REGULAR));
	g_assert_cmpint(vc_rm_rf_at(dfd, "tree"), ==, 0);

	put(dir, "x", "1");
	g_assert_cmpint(vc_rm_children_at(dfd), ==, 0);
	g_assert_true(g_file_test(dir, G_FILE_TEST_IS_DIR));
	g_assert_cmpint(g_rmdir(dir), ==, 0);
	g_assert_cmpint(g_unlink(victim), ==, 0);
	g_assert_cmpint(g_rmdir(outside), ==, 0);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/dir/rm-rf", test_rm_rf);
	return g_test_run();
}
