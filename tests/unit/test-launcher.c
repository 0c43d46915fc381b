/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-run's pure pieces: -v parsing, container names and ids, the
 * container's environment, /proc start times, and the tree copy and removal
 * behind copy-data and the state clean-up (on a temporary directory).
 */
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "launcher.h"

static void test_volume_parse(void)
{
	static const char *const bad[] = {
		"a:/b", "/a:b", "/a:/", "/a", "/a:/b:bogus", "/a:/b:ro:x", "", ":/b",
	};
	struct vr_volume *v = NULL;

	g_assert_cmpint(vr_volume_parse("/srv//data/:/var/lib/x", &v), ==, 0);
	g_assert_cmpstr(v->host, ==, "/srv/data");
	g_assert_cmpstr(v->ctr, ==, "/var/lib/x");
	g_assert_false(v->ro);
	g_assert_false(v->nocopy);
	vr_volume_free(v);
	g_assert_cmpint(vr_volume_parse("/a:/b:ro,nocopy", &v), ==, 0);
	g_assert_true(v->ro);
	g_assert_true(v->nocopy);
	vr_volume_free(v);
	g_assert_cmpint(vr_volume_parse("/a:/b:rw", &v), ==, 0);
	g_assert_false(v->ro);
	vr_volume_free(v);
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		g_assert_cmpint(vr_volume_parse(bad[i], &v), <, 0);
	/* A ':' in a path, escaped as in lowerdir. */
	g_assert_cmpint(vr_volume_parse("/a\\:b:/c\\:d\\\\:ro", &v), ==, 0);
	g_assert_cmpstr(v->host, ==, "/a:b");
	g_assert_cmpstr(v->ctr, ==, "/c:d\\");
	g_assert_true(v->ro);
	vr_volume_free(v);
	g_assert_cmpint(vr_volume_parse("/a\\:b", &v), <, 0);
}

static void test_mount_parse(void)
{
	static const char *const bad[] = {
		"",
		"src=/a,dst=/b",
		"type=volume,src=/a,dst=/b",
		"type=bind,src=/a",
		"type=bind,dst=/b",
		"type=bind,src=a,dst=/b",
		"type=bind,src=/a,dst=/",
		"type=bind,src=/a,dst=/b,ro=maybe",
		"type=bind,src=/a,dst=/b,bogus=1",
		"type=bind,src=/a,dst=/b,bind-propagation=shared",
		"type=bind,\"src=/a,dst=/b",
		"type=bind,src=,dst=/b",
	};
	struct vr_volume *v = NULL;

	g_assert_cmpint(vr_mount_parse("type=bind,src=/a:b,dst=/c:d", &v, NULL), ==, 0);
	g_assert_cmpstr(v->host, ==, "/a:b");
	g_assert_cmpstr(v->ctr, ==, "/c:d");
	g_assert_false(v->ro);
	g_assert_true(v->nocopy);
	g_assert_true(v->must_exist);
	vr_volume_free(v);
	g_assert_cmpint(
		vr_mount_parse("type=bind,\"source=/a,\"\"b\",target=/c,readonly", &v, NULL), ==,
		0);
	g_assert_cmpstr(v->host, ==, "/a,\"b");
	g_assert_cmpstr(v->ctr, ==, "/c");
	g_assert_true(v->ro);
	vr_volume_free(v);
	g_assert_cmpint(vr_mount_parse("ro=false,destination=/c,type=bind,src=/a", &v, NULL), ==,
			0);
	g_assert_false(v->ro);
	vr_volume_free(v);
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autofree char *err = NULL;

		g_assert_cmpint(vr_mount_parse(bad[i], &v, &err), <, 0);
		g_assert_nonnull(err);
	}
}

static void test_names_and_ids(void)
{
	g_autofree char *a = vr_state_new_id();
	g_autofree char *b = vr_state_new_id();

	g_assert_cmpuint(strlen(a), ==, 12);
	for (const char *p = a; *p; p++)
		g_assert_true(g_ascii_isxdigit(*p));
	g_assert_cmpstr(a, !=, b);
	g_assert_true(vr_state_name_valid(a));
	g_assert_true(vr_state_name_valid("web-1_a.b"));
	g_assert_false(vr_state_name_valid(""));
	g_assert_false(vr_state_name_valid(".hidden"));
	g_assert_false(vr_state_name_valid("a/b"));
	g_assert_false(vr_state_name_valid("a b"));
	g_assert_false(vr_state_name_valid(
		"x123456789012345678901234567890123456789012345678901234567890123"
		"45"));
}

static void test_env(void)
{
	struct vr_config cfg = {0};
	g_autoptr(GPtrArray) env = NULL;

	cfg.env = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(cfg.env, g_strdup("FOO=1"));
	g_ptr_array_add(cfg.env, g_strdup("PATH=/opt/bin"));
	g_ptr_array_add(cfg.env, g_strdup("FOO=2=3"));
	g_ptr_array_add(cfg.env, g_strdup("VENEER_UNIT_FROM_CALLER"));
	g_ptr_array_add(cfg.env, g_strdup("VENEER_UNIT_UNSET"));
	g_setenv("VENEER_UNIT_FROM_CALLER", "caller", TRUE);
	g_unsetenv("VENEER_UNIT_UNSET");
	env = vr_env_build(&cfg, "box");
	g_assert_cmpstr(vr_env_get(env, "FOO"), ==, "2=3");
	g_assert_cmpstr(vr_env_get(env, "PATH"), ==, "/opt/bin");
	g_assert_cmpstr(vr_env_get(env, "HOSTNAME"), ==, "box");
	g_assert_cmpstr(vr_env_get(env, "HOME"), ==, "/root");
	g_assert_cmpstr(vr_env_get(env, "VENEER_UNIT_FROM_CALLER"), ==, "caller");
	g_assert_null(vr_env_get(env, "VENEER_UNIT_UNSET"));
	g_assert_null(vr_env_get(env, "FO"));
	/* Each key once. */
	guint foo = 0;
	for (guint i = 0; i < env->len; i++)
		foo += g_str_has_prefix(env->pdata[i], "FOO=");
	g_assert_cmpuint(foo, ==, 1);
	cfg.have_user = true;
	cfg.uid = 1000;
	g_ptr_array_unref(env);
	env = vr_env_build(&cfg, "box");
	g_assert_cmpstr(vr_env_get(env, "HOME"), ==, "/");
	g_ptr_array_unref(cfg.env);
}

static void test_proc_start_time(void)
{
	uint64_t start = 0;

	g_assert_cmpint(vr_proc_start_time(getpid(), &start), ==, 0);
	g_assert_cmpuint(start, >, 0);
	g_assert_true(vr_proc_matches(getpid(), start));
	g_assert_false(vr_proc_matches(getpid(), start + 1));
	g_assert_false(vr_proc_matches(0, start));
	g_assert_true(vr_proc_running(getpid()));
	g_assert_cmpint(vr_proc_start_time(-1, &start), <, 0);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	g_assert_true(g_file_set_contents(path, text, -1, NULL));
	g_assert_cmpint(chmod(path, mode), ==, 0);
}

static void test_copy_and_remove_tree(void)
{
	g_autofree char *top = g_dir_make_tmp("veneer-unit-XXXXXX", NULL);
	g_autofree char *src = g_build_filename(top, "src", NULL);
	g_autofree char *dst = g_build_filename(top, "dst", NULL);
	g_autofree char *ab = g_build_filename(src, "a", "b", NULL);
	g_autofree char *p = NULL;
	g_autofree char *text = NULL;
	char link[64];
	struct stat st;
	ssize_t n;
	int sfd, dfd;

	g_assert_nonnull(top);
	g_assert_cmpint(vr_mkdir_p(ab, 0750), ==, 0);
	g_assert_cmpint(vr_mkdir_p(dst, 0755), ==, 0);
	p = g_build_filename(src, "a", "b", "f", NULL);
	write_file(p, "data", 0640);
	g_free(p);
	p = g_build_filename(src, "l", NULL);
	g_assert_cmpint(symlink("a/b/f", p), ==, 0);
	sfd = open(src, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	dfd = open(dst, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	g_assert_cmpint(sfd, >=, 0);
	g_assert_true(vr_dir_is_empty(dfd));
	g_assert_false(vr_dir_is_empty(sfd));
	/* vr_dir_is_empty must not move sfd's offset for the copy. */
	g_assert_cmpint(vr_copy_tree(sfd, dfd), ==, 0);
	g_assert_false(vr_dir_is_empty(dfd));
	close(sfd);
	close(dfd);

	g_free(p);
	p = g_build_filename(dst, "a", "b", "f", NULL);
	g_assert_true(g_file_get_contents(p, &text, NULL, NULL));
	g_assert_cmpstr(text, ==, "data");
	g_assert_cmpint(stat(p, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 07777, ==, 0640);
	g_free(p);
	p = g_build_filename(dst, "a", NULL);
	g_assert_cmpint(stat(p, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 07777, ==, 0750);
	g_free(p);
	p = g_build_filename(dst, "l", NULL);
	n = readlink(p, link, sizeof(link) - 1);
	g_assert_cmpint(n, ==, 5);
	link[n] = '\0';
	g_assert_cmpstr(link, ==, "a/b/f");

	/* Removal copes with a directory the container made unreadable. */
	g_free(p);
	p = g_build_filename(dst, "a", NULL);
	g_assert_cmpint(chmod(p, 0), ==, 0);
	g_assert_cmpint(vr_rm_rf(dst), ==, 0);
	g_assert_false(g_file_test(dst, G_FILE_TEST_EXISTS));
	g_assert_cmpint(vr_rm_rf(dst), ==, 0); /* already gone: fine */
	g_assert_cmpint(vr_rm_rf(src), ==, 0);
	g_assert_cmpint(g_rmdir(top), ==, 0);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/launcher/volume-parse", test_volume_parse);
	g_test_add_func("/launcher/mount-parse", test_mount_parse);
	g_test_add_func("/launcher/names-and-ids", test_names_and_ids);
	g_test_add_func("/launcher/env", test_env);
	g_test_add_func("/launcher/proc-start-time", test_proc_start_time);
	g_test_add_func("/launcher/copy-and-remove-tree", test_copy_and_remove_tree);
	return g_test_run();
}
