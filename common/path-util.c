/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Lexical path checks (see path-util.h). Nothing here touches the filesystem;
 * callers that need the truth about symlinks resolve with realpath() first.
 */
#include <limits.h>
#include <string.h>
#include <glib.h>

#include "path-util.h"

bool vc_name_is_valid(const char *name)
{
	size_t len;

	if (!name)
		return false;
	len = strlen(name);
	if (len == 0 || len > NAME_MAX)
		return false;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return strchr(name, '/') == NULL;
}

bool vc_path_is_inside(const char *a, const char *b)
{
	size_t lb = strlen(b);

	if (strcmp(b, "/") == 0)
		return a[0] == '/';
	if (strncmp(a, b, lb) != 0)
		return false;
	return a[lb] == '\0' || a[lb] == '/';
}

char *vc_path_normalize(const char *path)
{
	g_auto(GStrv) parts = g_strsplit(path, "/", -1);
	g_autoptr(GPtrArray) out = g_ptr_array_new();
	GString *s = g_string_new("");

	for (guint i = 0; parts[i]; i++) {
		if (parts[i][0] == '\0' || strcmp(parts[i], ".") == 0)
			continue;
		if (strcmp(parts[i], "..") == 0) {
			if (out->len > 0)
				g_ptr_array_remove_index(out, out->len - 1);
			continue;
		}
		g_ptr_array_add(out, parts[i]);
	}
	for (guint i = 0; i < out->len; i++) {
		g_string_append_c(s, '/');
		g_string_append(s, out->pdata[i]);
	}
	if (s->len == 0)
		g_string_append_c(s, '/');
	return g_string_free(s, FALSE);
}
