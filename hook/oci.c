/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The two OCI documents the hook reads, with json-glib: the container state a
 * runtime writes to a hook's stdin (id, pid, bundle, annotations) and, from
 * the bundle, config.json's root.path, namespaces, CPU quota and annotations.
 * Each error names the field.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "hook.h"
#include "log.h"

/* The member `name` of o if it has that JSON type, else NULL. */
static JsonNode *vh_member(JsonObject *o, const char *name, GType type)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	if (!n || JSON_NODE_HOLDS_NULL(n))
		return NULL;
	if (type == JSON_TYPE_OBJECT)
		return JSON_NODE_HOLDS_OBJECT(n) ? n : NULL;
	if (type == JSON_TYPE_ARRAY)
		return JSON_NODE_HOLDS_ARRAY(n) ? n : NULL;
	return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == type ? n : NULL;
}

static JsonObject *vh_object(JsonObject *o, const char *name)
{
	JsonNode *n = vh_member(o, name, JSON_TYPE_OBJECT);

	return n ? json_node_get_object(n) : NULL;
}

/* "annotations": {"k": "v", ...} into a new table; values that are not strings are skipped. */
static GHashTable *vh_annotations(JsonObject *o)
{
	GHashTable *t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	JsonObject *a = vh_object(o, "annotations");
	g_autoptr(GList) names = a ? json_object_get_members(a) : NULL;

	for (GList *l = names; l; l = l->next) {
		JsonNode *v = vh_member(a, l->data, G_TYPE_STRING);

		if (v)
			g_hash_table_insert(t, g_strdup(l->data),
					    g_strdup(json_node_get_string(v)));
	}
	return t;
}

static int vh_parse_object(const char *text, gssize len, const char *what, JsonParser **ret_p,
			   JsonObject **ret_o)
{
	g_autoptr(JsonParser) p = json_parser_new_immutable();
	g_autoptr(GError) err = NULL;
	JsonNode *root;

	if (!json_parser_load_from_data(p, text, len, &err)) {
		log_error("%s is not JSON: %s", what, err->message);
		return -EINVAL;
	}
	root = json_parser_get_root(p);
	if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
		log_error("%s is not a JSON object", what);
		return -EINVAL;
	}
	*ret_o = json_node_get_object(root);
	*ret_p = g_steal_pointer(&p);
	return 0;
}

int vh_state_parse(const char *text, size_t len, struct vh_state *ret)
{
	g_autoptr(JsonParser) p = NULL;
	JsonObject *o;
	JsonNode *n;
	gint64 pid;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = vh_parse_object(text, (gssize)len, "the OCI state on stdin", &p, &o);
	if (r < 0)
		return r;
	n = vh_member(o, "pid", G_TYPE_INT64);
	pid = n ? json_node_get_int(n) : 0;
	if (pid <= 0 || pid > INT_MAX) {
		log_error("the OCI state on stdin has no usable \"pid\" (a hook of the prestart or "
			  "createRuntime stage gets the container's)");
		return -EINVAL;
	}
	n = vh_member(o, "bundle", G_TYPE_STRING);
	if (!n || json_node_get_string(n)[0] != '/') {
		log_error("the OCI state on stdin has no absolute \"bundle\" path");
		return -EINVAL;
	}
	ret->bundle = g_strdup(json_node_get_string(n));
	ret->pid = (pid_t)pid;
	n = vh_member(o, "id", G_TYPE_STRING);
	ret->id = g_strdup(n ? json_node_get_string(n) : "?");
	ret->annotations = vh_annotations(o);
	return 0;
}

void vh_state_done(struct vh_state *s)
{
	g_free(s->id);
	g_free(s->bundle);
	if (s->annotations)
		g_hash_table_unref(s->annotations);
	memset(s, 0, sizeof(*s));
}

/* linux.namespaces has {"type": "mount"} (with or without a path: both are not the host's). */
static bool vh_has_mount_ns(JsonObject *linux_o)
{
	JsonNode *n = vh_member(linux_o, "namespaces", JSON_TYPE_ARRAY);
	JsonArray *a = n ? json_node_get_array(n) : NULL;

	for (guint i = 0; a && i < json_array_get_length(a); i++) {
		JsonNode *e = json_array_get_element(a, i);
		JsonNode *t = JSON_NODE_HOLDS_OBJECT(e)
				      ? vh_member(json_node_get_object(e), "type", G_TYPE_STRING)
				      : NULL;

		if (t && strcmp(json_node_get_string(t), "mount") == 0)
			return true;
	}
	return false;
}

int vh_config_load(const char *bundle, struct vh_config *ret)
{
	g_autofree char *path = g_build_filename(bundle, "config.json", NULL);
	g_autofree char *text = NULL, *root = NULL;
	g_autoptr(JsonParser) p = NULL;
	g_autoptr(GError) err = NULL;
	JsonObject *o, *linux_o, *cpu;
	JsonNode *n;
	gsize len;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (!g_file_get_contents(path, &text, &len, &err)) {
		log_error("cannot read the bundle's configuration: %s", err->message);
		return -ENOENT;
	}
	r = vh_parse_object(text, (gssize)len, path, &p, &o);
	if (r < 0)
		return r;
	n = vh_member(vh_object(o, "root"), "path", G_TYPE_STRING);
	if (!n || !json_node_get_string(n)[0]) {
		log_error("'%s' has no \"root\": {\"path\"}", path);
		return -EINVAL;
	}
	/* As runtimes do: relative to the bundle, symlinks resolved. */
	root = g_canonicalize_filename(json_node_get_string(n), bundle);
	ret->root = realpath(root, NULL);
	if (!ret->root)
		return log_error_errno(-errno, "root.path '%s' of '%s'", root, path);
	linux_o = vh_object(o, "linux");
	ret->mount_ns = vh_has_mount_ns(linux_o);
	cpu = vh_object(vh_object(linux_o, "resources"), "cpu");
	n = vh_member(cpu, "quota", G_TYPE_INT64);
	ret->quota = n ? json_node_get_int(n) : 0;
	n = vh_member(cpu, "period", G_TYPE_INT64);
	ret->period = n && json_node_get_int(n) > 0 ? (uint64_t)json_node_get_int(n) : 0;
	ret->annotations = vh_annotations(o);
	return 0;
}

void vh_config_done(struct vh_config *c)
{
	free(c->root);
	if (c->annotations)
		g_hash_table_unref(c->annotations);
	memset(c, 0, sizeof(*c));
}

bool vh_annotation_off(const char *value)
{
	static const char *const off[] = {"off", "false", "0", "no", "disabled"};

	for (size_t i = 0; value && i < G_N_ELEMENTS(off); i++)
		if (g_ascii_strcasecmp(value, off[i]) == 0)
			return true;
	return false;
}
