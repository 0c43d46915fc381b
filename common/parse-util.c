/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Number, size, list and key/value parsing (see parse-util.h).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "parse-util.h"

int vc_parse_u64(const char *s, uint64_t *ret)
{
	char *end = NULL;
	unsigned long long v;

	if (!s)
		return -EINVAL;
	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0')
		return -EINVAL;
	*ret = v;
	return 0;
}

int vc_parse_i64(const char *s, int64_t *ret)
{
	char *end = NULL;
	long long v;

	if (!s)
		return -EINVAL;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == s)
		return -EINVAL;
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0')
		return -EINVAL;
	*ret = v;
	return 0;
}

int vc_parse_uint(const char *s, unsigned *ret)
{
	uint64_t v;
	int r = vc_parse_u64(s, &v);

	if (r < 0)
		return r;
	if (v > UINT32_MAX)
		return -ERANGE;
	*ret = (unsigned)v;
	return 0;
}

int vc_parse_u64_or_max(const char *s, uint64_t *ret)
{
	g_autofree char *t = g_strstrip(g_strdup(s ? s : ""));

	if (strcmp(t, "max") == 0) {
		*ret = UINT64_MAX;
		return 0;
	}
	return vc_parse_u64(t, ret);
}

int vc_parse_decimal_scaled(const char *s, uint64_t scale, uint64_t *ret)
{
	uint64_t ip = 0, frac = 0, fscale = 1;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (ip > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		ip = ip * 10 + (*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++) {
			if (fscale >= 1000000000ULL)
				continue; /* ignore digits past 1e-9 */
			frac = frac * 10 + (*p - '0');
			fscale *= 10;
		}
	}
	if (*p != '\0')
		return -EINVAL;
	if (scale && ip > UINT64_MAX / scale)
		return -ERANGE;
	*ret = ip * scale + (frac * scale + fscale / 2) / fscale;
	return 0;
}

int vc_parse_size(const char *s, uint64_t *ret)
{
	static const struct {
		char c;
		uint64_t mul;
	} units[] = {
		{'k', 1ULL << 10}, {'m', 1ULL << 20}, {'g', 1ULL << 30},
		{'t', 1ULL << 40}, {'p', 1ULL << 50},
	};
	g_autofree char *t = NULL;
	size_t len;
	uint64_t mul = 1;

	if (!s)
		return -EINVAL;
	t = g_strstrip(g_strdup(s));
	len = strlen(t);
	if (len > 0 && (t[len - 1] == 'b' || t[len - 1] == 'B'))
		t[--len] = '\0';
	if (len > 0 && isalpha((unsigned char)t[len - 1])) {
		char c = (char)tolower((unsigned char)t[len - 1]);
		size_t i;

		for (i = 0; i < G_N_ELEMENTS(units); i++)
			if (units[i].c == c)
				break;
		if (i == G_N_ELEMENTS(units))
			return -EINVAL;
		mul = units[i].mul;
		t[--len] = '\0';
	}
	if (len == 0)
		return -EINVAL;
	return vc_parse_decimal_scaled(t, mul, ret);
}

int vc_split_escaped(const char *s, char sep, GPtrArray **ret)
{
	g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GString) cur = g_string_new("");

	if (!s || *s == '\0')
		return -EINVAL;
	for (const char *p = s;; p++) {
		if (*p == '\\' && (p[1] == sep || p[1] == '\\')) {
			g_string_append_c(cur, p[1]);
			p++;
			continue;
		}
		if (*p == sep || *p == '\0') {
			if (cur->len == 0)
				return -EINVAL;
			g_ptr_array_add(out, g_strdup(cur->str));
			g_string_truncate(cur, 0);
			if (*p == '\0')
				break;
			continue;
		}
		g_string_append_c(cur, *p);
	}
	*ret = g_steal_pointer(&out);
	return 0;
}

int vc_kv_lookup_u64(const char *text, const char *key, uint64_t *ret)
{
	size_t klen = strlen(key);
	const char *line = text;

	while (line && *line) {
		const char *nl = strchr(line, '\n');

		if (strncmp(line, key, klen) == 0 &&
		    (line[klen] == ':' || line[klen] == ' ' || line[klen] == '\t')) {
			const char *p = line + klen;
			char *end;
			unsigned long long v;

			while (*p == ':' || *p == ' ' || *p == '\t')
				p++;
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
			errno = 0;
			v = strtoull(p, &end, 10);
			if (errno == ERANGE)
				return -ERANGE;
			*ret = v;
			return 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

static int vc_cmp_uint(gconstpointer a, gconstpointer b)
{
	guint x = *(const guint *)a, y = *(const guint *)b;

	return x < y ? -1 : x > y;
}

int vc_parse_cpulist(const char *s, GArray **ret)
{
	g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(guint));
	g_autofree char *t = g_strstrip(g_strdup(s ? s : ""));
	g_auto(GStrv) parts = g_strsplit(t, ",", -1);

	for (guint i = 0; parts[i]; i++) {
		char *dash;
		unsigned lo, hi;
		int r;

		if (parts[i][0] == '\0') {
			if (parts[i + 1] == NULL && i == 0)
				break; /* empty list */
			return -EINVAL;
		}
		dash = strchr(parts[i], '-');
		if (dash) {
			*dash = '\0';
			r = vc_parse_uint(parts[i], &lo);
			if (r < 0)
				return r;
			r = vc_parse_uint(dash + 1, &hi);
			if (r < 0)
				return r;
		} else {
			r = vc_parse_uint(parts[i], &lo);
			if (r < 0)
				return r;
			hi = lo;
		}
		if (hi < lo || hi > 65535)
			return -EINVAL;
		for (guint c = lo; c <= hi; c++)
			g_array_append_val(out, c);
	}
	g_array_sort(out, vc_cmp_uint);
	/* drop duplicates */
	for (guint i = 1; i < out->len;) {
		if (g_array_index(out, guint, i) == g_array_index(out, guint, i - 1))
			g_array_remove_index(out, i);
		else
			i++;
	}
	*ret = g_steal_pointer(&out);
	return 0;
}

char *vc_format_cpulist(const guint *cpus, guint n)
{
	GString *s = g_string_new("");

	for (guint i = 0; i < n;) {
		guint j = i;

		while (j + 1 < n && cpus[j + 1] == cpus[j] + 1)
			j++;
		if (s->len)
			g_string_append_c(s, ',');
		if (j == i)
			g_string_append_printf(s, "%u", cpus[i]);
		else
			g_string_append_printf(s, "%u-%u", cpus[i], cpus[j]);
		i = j + 1;
	}
	return g_string_free(s, FALSE);
}
