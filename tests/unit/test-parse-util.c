/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for common/parse-util.c: numbers, sizes, escaped lists, key/value text, CPU lists. */
#include <errno.h>
#include <stdint.h>
#include <glib.h>

#include "parse-util.h"

static void test_u64(void)
{
	uint64_t v;

	g_assert_cmpint(vc_parse_u64("0", &v), ==, 0);
	g_assert_cmpuint(v, ==, 0);
	g_assert_cmpint(vc_parse_u64(" 18446744073709551615\n", &v), ==, 0);
	g_assert_cmpuint(v, ==, UINT64_MAX);
	g_assert_cmpint(vc_parse_u64("18446744073709551616", &v), ==, -ERANGE);
	g_assert_cmpint(vc_parse_u64("-1", &v), ==, -EINVAL);
	g_assert_cmpint(vc_parse_u64("", &v), ==, -EINVAL);
	g_assert_cmpint(vc_parse_u64("12x", &v), ==, -EINVAL);
	g_assert_cmpint(vc_parse_u64_or_max("max\n", &v), ==, 0);
	g_assert_cmpuint(v, ==, UINT64_MAX);
	g_assert_cmpint(vc_parse_u64_or_max("4096", &v), ==, 0);
	g_assert_cmpuint(v, ==, 4096);
}

static void test_i64(void)
{
	int64_t v;

	g_assert_cmpint(vc_parse_i64("-100000", &v), ==, 0);
	g_assert_cmpint(v, ==, -100000);
	g_assert_cmpint(vc_parse_i64("-", &v), ==, -EINVAL);
}

static void test_size(void)
{
	uint64_t v;

	g_assert_cmpint(vc_parse_size("256M", &v), ==, 0);
	g_assert_cmpuint(v, ==, 256ULL << 20);
	g_assert_cmpint(vc_parse_size("1g", &v), ==, 0);
	g_assert_cmpuint(v, ==, 1ULL << 30);
	g_assert_cmpint(vc_parse_size("1.5G", &v), ==, 0);
	g_assert_cmpuint(v, ==, 3ULL << 29);
	g_assert_cmpint(vc_parse_size("4096", &v), ==, 0);
	g_assert_cmpuint(v, ==, 4096);
	g_assert_cmpint(vc_parse_size("64kb", &v), ==, 0);
	g_assert_cmpuint(v, ==, 65536);
	g_assert_cmpint(vc_parse_size("12Q", &v), ==, -EINVAL);
	g_assert_cmpint(vc_parse_size("M", &v), ==, -EINVAL);
	g_assert_cmpint(vc_parse_size("-5M", &v), ==, -EINVAL);
	g_assert_cmpint(vc_parse_size("99999999999999P", &v), ==, -ERANGE);
}

static void test_decimal(void)
{
	uint64_t v;

	g_assert_cmpint(vc_parse_decimal_scaled("0.5", 100000, &v), ==, 0);
	g_assert_cmpuint(v, ==, 50000);
	g_assert_cmpint(vc_parse_decimal_scaled("2", 100000, &v), ==, 0);
	g_assert_cmpuint(v, ==, 200000);
	g_assert_cmpint(vc_parse_decimal_scaled(".5", 100000, &v), ==, -EINVAL);
	g_assert_cmpint(vc_parse_decimal_scaled("1.", 100000, &v), ==, -EINVAL);
}

static void test_split_escaped(void)
{
	g_autoptr(GPtrArray) a = NULL;
	g_autoptr(GPtrArray) b = NULL;
	GPtrArray *c = NULL;

	g_assert_cmpint(vc_split_escaped("/a:/b\\:c:/d\\\\e", ':', &a), ==, 0);
	g_assert_cmpuint(a->len, ==, 3);
	g_assert_cmpstr(a->pdata[0], ==, "/a");
	g_assert_cmpstr(a->pdata[1], ==, "/b:c");
	g_assert_cmpstr(a->pdata[2], ==, "/d\\e");
	g_assert_cmpint(vc_split_escaped("/only", ':', &b), ==, 0);
	g_assert_cmpuint(b->len, ==, 1);
	g_assert_cmpint(vc_split_escaped("/a::/b", ':', &c), ==, -EINVAL);
	g_assert_null(c);
	g_assert_cmpint(vc_split_escaped("", ':', &c), ==, -EINVAL);
	g_assert_cmpint(vc_split_escaped("/a:", ':', &c), ==, -EINVAL);
}

static void test_kv(void)
{
	const char *meminfo = "MemTotal:       24563540 kB\nMemFree:        20000000 kB\n"
			      "MemAvailable:   22000000 kB\n";
	const char *stat = "cache 1234\nrss 5678\ntotal_cache 99\n";
	uint64_t v;

	g_assert_cmpint(vc_kv_lookup_u64(meminfo, "MemFree", &v), ==, 0);
	g_assert_cmpuint(v, ==, 20000000);
	g_assert_cmpint(vc_kv_lookup_u64(meminfo, "Mem", &v), ==, -ENOENT);
	g_assert_cmpint(vc_kv_lookup_u64(stat, "cache", &v), ==, 0);
	g_assert_cmpuint(v, ==, 1234);
	g_assert_cmpint(vc_kv_lookup_u64(stat, "total_cache", &v), ==, 0);
	g_assert_cmpuint(v, ==, 99);
	g_assert_cmpint(vc_kv_lookup_u64(stat, "swap", &v), ==, -ENOENT);
}

static void test_cpulist(void)
{
	g_autoptr(GArray) a = NULL;
	g_autoptr(GArray) e = NULL;
	g_autofree char *s = NULL;
	GArray *bad = NULL;

	g_assert_cmpint(vc_parse_cpulist("0-3,5,7-8\n", &a), ==, 0);
	g_assert_cmpuint(a->len, ==, 7);
	g_assert_cmpuint(g_array_index(a, guint, 4), ==, 5);
	s = vc_format_cpulist((const guint *)a->data, a->len);
	g_assert_cmpstr(s, ==, "0-3,5,7-8");
	g_assert_cmpint(vc_parse_cpulist("", &e), ==, 0);
	g_assert_cmpuint(e->len, ==, 0);
	g_assert_cmpint(vc_parse_cpulist("3-1", &bad), ==, -EINVAL);
	g_assert_cmpint(vc_parse_cpulist("1,,2", &bad), ==, -EINVAL);
	g_assert_null(bad);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/parse/u64", test_u64);
	g_test_add_func("/parse/i64", test_i64);
	g_test_add_func("/parse/size", test_size);
	g_test_add_func("/parse/decimal", test_decimal);
	g_test_add_func("/parse/split-escaped", test_split_escaped);
	g_test_add_func("/parse/kv", test_kv);
	g_test_add_func("/parse/cpulist", test_cpulist);
	return g_test_run();
}
