/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for common/path-util.c: entry names, containment, lexical normalisation. */
#include <string.h>
#include <glib.h>

#include "path-util.h"

static void test_name(void)
{
	char long_name[300];

	g_assert_true(vc_name_is_valid("a"));
	g_assert_true(vc_name_is_valid(".wh.x"));
	g_assert_false(vc_name_is_valid(""));
	g_assert_false(vc_name_is_valid("."));
	g_assert_false(vc_name_is_valid(".."));
	g_assert_false(vc_name_is_valid("a/b"));
	memset(long_name, 'x', 255);
	long_name[255] = '\0';
	g_assert_true(vc_name_is_valid(long_name));
	long_name[255] = 'x';
	long_name[256] = '\0';
	g_assert_false(vc_name_is_valid(long_name));
}

static void test_inside(void)
{
	g_assert_true(vc_path_is_inside("/a/b", "/a"));
	g_assert_true(vc_path_is_inside("/a", "/a"));
	g_assert_false(vc_path_is_inside("/ab", "/a"));
	g_assert_true(vc_path_is_inside("/x", "/"));
	g_assert_false(vc_path_is_inside("/a", "/a/b"));
}

static void test_normalize(void)
{
	g_autofree char *a = vc_path_normalize("//a/./b/../c/");
	g_autofree char *b = vc_path_normalize("/..");
	g_autofree char *c = vc_path_normalize("/");

	g_assert_cmpstr(a, ==, "/a/c");
	g_assert_cmpstr(b, ==, "/");
	g_assert_cmpstr(c, ==, "/");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/path/name", test_name);
	g_test_add_func("/path/inside", test_inside);
	g_test_add_func("/path/normalize", test_normalize);
	return g_test_run();
}
