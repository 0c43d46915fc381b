/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The seccomp profile format of Docker and containers-common (an OCI
 * LinuxSeccomp plus "archMap" and conditional entries), parsed with
 * json-glib into a struct vr_sc_profile: actions, errnoRet/errno,
 * defaultAction/defaultErrnoRet, architectures/archMap, flags, and each
 * entry's includes/excludes (caps, arches, minKernel). No libseccomp filter is
 * built here (seccomp.c does that); every error names the entry.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <json-glib/json-glib.h>
#include <seccomp.h>

#include "launcher.h"
#include "parse-util.h"

struct vr_sc_name {
	const char *name;
	uint32_t value;
};

static const struct vr_sc_name vr_sc_actions[] = {
	{"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD},
	{"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
	{"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
	{"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
	{"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0)},
	{"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0)},
	{"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},
	{"SCMP_ACT_LOG", SCMP_ACT_LOG},
};

static const struct vr_sc_name vr_sc_ops[] = {
	{"SCMP_CMP_NE", SCMP_CMP_NE},
	{"SCMP_CMP_LT", SCMP_CMP_LT},
	{"SCMP_CMP_LE", SCMP_CMP_LE},
	{"SCMP_CMP_EQ", SCMP_CMP_EQ},
	{"SCMP_CMP_GE", SCMP_CMP_GE},
	{"SCMP_CMP_GT", SCMP_CMP_GT},
	{"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

/* libseccomp's architecture tokens and the names Docker's "arches" conditions use. */
static const struct vr_sc_name vr_sc_gonames[] = {
	{"x86", SCMP_ARCH_X86},
	{"amd64", SCMP_ARCH_X86_64},
	{"x32", SCMP_ARCH_X32},
	{"arm", SCMP_ARCH_ARM},
	{"arm64", SCMP_ARCH_AARCH64},
	{"mips", SCMP_ARCH_MIPS},
	{"mipsel", SCMP_ARCH_MIPSEL},
	{"mips64", SCMP_ARCH_MIPS64},
	{"mips64n32", SCMP_ARCH_MIPS64N32},
	{"mipsel64", SCMP_ARCH_MIPSEL64},
	{"mips3l64n32", SCMP_ARCH_MIPSEL64N32},
	{"ppc", SCMP_ARCH_PPC},
	{"ppc64", SCMP_ARCH_PPC64},
	{"ppc64le", SCMP_ARCH_PPC64LE},
	{"s390", SCMP_ARCH_S390},
	{"s390x", SCMP_ARCH_S390X},
	{"riscv64", SCMP_ARCH_RISCV64},
};

const char *vr_sc_arch_goname(uint32_t arch)
{
	for (size_t i = 0; i < G_N_ELEMENTS(vr_sc_gonames); i++)
		if (vr_sc_gonames[i].value == arch)
			return vr_sc_gonames[i].name;
	return "unknown";
}

static bool vr_sc_lookup(const struct vr_sc_name *t, size_t n, const char *name, uint32_t *ret)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(t[i].name, name) == 0) {
			*ret = t[i].value;
			return true;
		}
	}
	return false;
}

/* "SCMP_ARCH_X86_64" -> SCMP_ARCH_X86_64; 0 when libseccomp does not know it. */
static uint32_t vr_sc_arch(const char *name)
{
	g_autofree char *lower = NULL;

	if (!g_str_has_prefix(name, "SCMP_ARCH_"))
		return 0;
	if (strcmp(name, "SCMP_ARCH_NATIVE") == 0)
		return seccomp_arch_native();
	lower = g_ascii_strdown(name + strlen("SCMP_ARCH_"), -1);
	return seccomp_arch_resolve_name(lower);
}

void vr_sc_profile_free(struct vr_sc_profile *p)
{
	if (!p)
		return;
	if (p->arches)
		g_array_unref(p->arches);
	if (p->rules)
		g_ptr_array_unref(p->rules);
	g_free(p);
}

static void vr_sc_cond_done(struct vr_sc_cond *c)
{
	if (c->arches)
		g_ptr_array_unref(c->arches);
}

static void vr_sc_rule_free(struct vr_sc_rule *r)
{
	if (r->names)
		g_ptr_array_unref(r->names);
	if (r->args)
		g_array_unref(r->args);
	vr_sc_cond_done(&r->includes);
	vr_sc_cond_done(&r->excludes);
	g_free(r);
}

/* The parse state: the error message says where, through ctx ("syscalls[3] (\"mount\")"). */
struct vr_sc_parser {
	char *where;
	char *error;
};

static int vr_sc_fail(struct vr_sc_parser *ps, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static int vr_sc_fail(struct vr_sc_parser *ps, const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (!ps->error)
		ps->error = ps->where ? g_strdup_printf("%s: %s", ps->where, msg)
				      : g_steal_pointer(&msg);
	return -EINVAL;
}

/* A member that must be a string when present; NULL when absent or null. */
static int vr_sc_string(struct vr_sc_parser *ps, JsonObject *o, const char *key, const char **ret)
{
	JsonNode *n = json_object_get_member(o, key);

	*ret = NULL;
	if (!n || JSON_NODE_HOLDS_NULL(n))
		return 0;
	if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
		return vr_sc_fail(ps, "'%s' is not a string", key);
	*ret = json_node_get_string(n);
	return 0;
}

/* A member that must be an array when present; NULL when absent or null. */
static int vr_sc_array(struct vr_sc_parser *ps, JsonObject *o, const char *key, JsonArray **ret)
{
	JsonNode *n = json_object_get_member(o, key);

	*ret = NULL;
	if (!n || JSON_NODE_HOLDS_NULL(n))
		return 0;
	if (!JSON_NODE_HOLDS_ARRAY(n))
		return vr_sc_fail(ps, "'%s' is not an array", key);
	*ret = json_node_get_array(n);
	return 0;
}

/* A non-negative integer member; *present false when absent or null. */
static int vr_sc_uint(struct vr_sc_parser *ps, JsonObject *o, const char *key, uint64_t *ret,
		      bool *present)
{
	JsonNode *n = json_object_get_member(o, key);
	GType t;

	*present = false;
	if (!n || JSON_NODE_HOLDS_NULL(n))
		return 0;
	t = JSON_NODE_HOLDS_VALUE(n) ? json_node_get_value_type(n) : G_TYPE_INVALID;
	if (t == G_TYPE_INT64 && json_node_get_int(n) >= 0) {
		*ret = (uint64_t)json_node_get_int(n);
	} else if (t == G_TYPE_DOUBLE && json_node_get_double(n) >= 0 &&
		   json_node_get_double(n) < 18446744073709551616.0 &&
		   json_node_get_double(n) == (double)(uint64_t)json_node_get_double(n)) {
		*ret = (uint64_t)json_node_get_double(n);
	} else {
		return vr_sc_fail(ps, "'%s' is not a non-negative integer", key);
	}
	*present = true;
	return 0;
}

/* An array of strings as a GPtrArray (borrowed strings). */
static int vr_sc_strings(struct vr_sc_parser *ps, JsonObject *o, const char *key, GPtrArray **ret)
{
	JsonArray *a;
	int r = vr_sc_array(ps, o, key, &a);

	*ret = NULL;
	if (r < 0 || !a)
		return r;
	*ret = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonNode *n = json_array_get_element(a, i);

		if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING) {
			g_clear_pointer(ret, g_ptr_array_unref);
			return vr_sc_fail(ps, "'%s'[%u] is not a string", key, i);
		}
		g_ptr_array_add(*ret, g_strdup(json_node_get_string(n)));
	}
	return 0;
}

/* An errno given as "errnoRet": 1 and/or "errno": "EPERM" (they must agree). */
static int vr_sc_errno(struct vr_sc_parser *ps, JsonObject *o, const char *num_key,
		       const char *name_key, uint32_t *ret, bool *present)
{
	const char *name;
	uint64_t v = 0;
	bool have_num;
	int r;

	r = vr_sc_uint(ps, o, num_key, &v, &have_num);
	if (r >= 0)
		r = vr_sc_string(ps, o, name_key, &name);
	if (r < 0)
		return r;
	if (have_num && (v == 0 || v > 4095))
		return vr_sc_fail(ps, "'%s' %" G_GUINT64_FORMAT " is not an errno (1-4095)",
				  num_key, v);
	if (name) {
		int e = 0;

		for (int i = 1; i < 4096 && !e; i++) {
			const char *n = strerrorname_np(i);

			if (n && strcmp(n, name) == 0)
				e = i;
		}
		if (!e)
			return vr_sc_fail(ps, "unknown errno name '%s' in '%s'", name, name_key);
		if (have_num && v != (uint64_t)e)
			return vr_sc_fail(ps, "'%s' %" G_GUINT64_FORMAT " and '%s' %s disagree",
					  num_key, v, name_key, name);
		v = (uint64_t)e;
	}
	*present = have_num || name;
	*ret = (uint32_t)v;
	return 0;
}

/* An action name plus its errno (ERRNO: default EPERM) or trace message number. */
static int vr_sc_action(struct vr_sc_parser *ps, JsonObject *o, const char *key,
			const char *num_key, const char *name_key, uint32_t *ret)
{
	const char *name;
	uint32_t action, e = 0;
	bool have_e = false;
	int r;

	r = vr_sc_string(ps, o, key, &name);
	if (r < 0)
		return r;
	if (!name)
		return vr_sc_fail(ps, "'%s' is missing", key);
	if (strcmp(name, "SCMP_ACT_NOTIFY") == 0)
		return vr_sc_fail(ps, "'%s' SCMP_ACT_NOTIFY is not supported (no seccomp agent)",
				  key);
	if (!vr_sc_lookup(vr_sc_actions, G_N_ELEMENTS(vr_sc_actions), name, &action))
		return vr_sc_fail(ps, "unknown action '%s' in '%s'", name, key);
	r = vr_sc_errno(ps, o, num_key, name_key, &e, &have_e);
	if (r < 0)
		return r;
	if (action == SCMP_ACT_ERRNO(0))
		action = SCMP_ACT_ERRNO(have_e ? e : EPERM);
	else if (action == SCMP_ACT_TRACE(0))
		action = SCMP_ACT_TRACE(have_e ? e : EPERM);
	*ret = action;
	return 0;
}

/* "4.8" (more components are ignored, as Docker does). */
static bool vr_sc_parse_kernel(const char *s, unsigned ret[2])
{
	g_auto(GStrv) parts = g_strsplit(s, ".", 3);

	return g_strv_length(parts) >= 2 && vc_parse_uint(parts[0], &ret[0]) == 0 &&
	       vc_parse_uint(parts[1], &ret[1]) == 0;
}

static int vr_sc_cond(struct vr_sc_parser *ps, JsonObject *rule, const char *key,
		      struct vr_sc_cond *c)
{
	JsonNode *n = json_object_get_member(rule, key);
	g_autoptr(GPtrArray) caps = NULL;
	const char *kernel;
	JsonObject *o;
	int r;

	if (!n || JSON_NODE_HOLDS_NULL(n))
		return 0;
	if (!JSON_NODE_HOLDS_OBJECT(n))
		return vr_sc_fail(ps, "'%s' is not an object", key);
	o = json_node_get_object(n);
	r = vr_sc_strings(ps, o, "caps", &caps);
	if (r >= 0)
		r = vr_sc_strings(ps, o, "arches", &c->arches);
	if (r >= 0)
		r = vr_sc_string(ps, o, "minKernel", &kernel);
	if (r < 0)
		return r;
	for (guint i = 0; caps && i < caps->len; i++) {
		int cap = vr_cap_from_name(caps->pdata[i]);

		/* A capability unknown here is one no container of ours can hold. */
		if (cap < 0)
			c->unknown_cap = true;
		else
			c->caps |= 1ULL << cap;
	}
	if (kernel) {
		if (!vr_sc_parse_kernel(kernel, c->kernel))
			return vr_sc_fail(ps, "bad '%s.minKernel' '%s' (MAJOR.MINOR)", key, kernel);
		c->has_kernel = true;
	}
	return 0;
}

static int vr_sc_args(struct vr_sc_parser *ps, JsonObject *rule, GArray **ret)
{
	JsonArray *a;
	int r = vr_sc_array(ps, rule, "args", &a);

	*ret = g_array_new(FALSE, TRUE, sizeof(struct vr_sc_arg));
	if (r < 0 || !a)
		return r;
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonNode *n = json_array_get_element(a, i);
		struct vr_sc_arg arg = {};
		const char *op;
		uint64_t index = 0;
		uint32_t opv;
		bool have;
		JsonObject *o;

		if (!JSON_NODE_HOLDS_OBJECT(n))
			return vr_sc_fail(ps, "args[%u] is not an object", i);
		o = json_node_get_object(n);
		r = vr_sc_uint(ps, o, "index", &index, &have);
		if (r >= 0 && index > 5)
			r = vr_sc_fail(ps, "args[%u].index %" G_GUINT64_FORMAT " is not 0-5", i,
				       index);
		if (r >= 0)
			r = vr_sc_uint(ps, o, "value", &arg.value, &have);
		if (r >= 0)
			r = vr_sc_uint(ps, o, "valueTwo", &arg.value_two, &have);
		if (r >= 0)
			r = vr_sc_string(ps, o, "op", &op);
		if (r < 0)
			return r;
		if (!op || !vr_sc_lookup(vr_sc_ops, G_N_ELEMENTS(vr_sc_ops), op, &opv))
			return vr_sc_fail(ps, "args[%u]: unknown op '%s'", i, op ? op : "(none)");
		arg.index = (unsigned)index;
		arg.op = (int)opv;
		g_array_append_val(*ret, arg);
	}
	return 0;
}

static int vr_sc_rule(struct vr_sc_parser *ps, JsonNode *n, guint index, struct vr_sc_rule **ret)
{
	struct vr_sc_rule *rule = g_new0(struct vr_sc_rule, 1);
	const char *single;
	JsonObject *o;
	int r;

	rule->index = index;
	*ret = rule;
	if (!JSON_NODE_HOLDS_OBJECT(n))
		return vr_sc_fail(ps, "not an object");
	o = json_node_get_object(n);
	r = vr_sc_string(ps, o, "name", &single);
	if (r >= 0)
		r = vr_sc_strings(ps, o, "names", &rule->names);
	if (r < 0)
		return r;
	if (single && rule->names && rule->names->len)
		return vr_sc_fail(ps, "both 'name' and 'names' are given");
	if (single) {
		g_clear_pointer(&rule->names, g_ptr_array_unref);
		rule->names = g_ptr_array_new_with_free_func(g_free);
		g_ptr_array_add(rule->names, g_strdup(single));
	}
	if (!rule->names || rule->names->len == 0)
		return vr_sc_fail(ps, "no 'names'");
	g_free(ps->where);
	ps->where = g_strdup_printf("syscalls[%u] (\"%s\"%s)", index,
				    (const char *)rule->names->pdata[0],
				    rule->names->len > 1 ? ", ..." : "");
	r = vr_sc_action(ps, o, "action", "errnoRet", "errno", &rule->action);
	if (r >= 0)
		r = vr_sc_args(ps, o, &rule->args);
	if (r >= 0)
		r = vr_sc_cond(ps, o, "includes", &rule->includes);
	if (r >= 0)
		r = vr_sc_cond(ps, o, "excludes", &rule->excludes);
	return r;
}

/* "architectures", or the native entry of "archMap" with its subArchitectures. */
static int vr_sc_arches(struct vr_sc_parser *ps, JsonObject *root, uint32_t native,
			struct vr_sc_profile *p)
{
	g_autoptr(GPtrArray) flat = NULL;
	JsonArray *map;
	int r;

	r = vr_sc_strings(ps, root, "architectures", &flat);
	if (r >= 0)
		r = vr_sc_array(ps, root, "archMap", &map);
	if (r < 0)
		return r;
	if (flat && flat->len && map && json_array_get_length(map))
		return vr_sc_fail(ps, "both 'architectures' and 'archMap' are given");
	for (guint i = 0; flat && i < flat->len; i++) {
		uint32_t a = vr_sc_arch(flat->pdata[i]);

		if (!a)
			return vr_sc_fail(ps, "unknown architecture '%s' in 'architectures'",
					  (const char *)flat->pdata[i]);
		g_array_append_val(p->arches, a);
	}
	for (guint i = 0; map && i < json_array_get_length(map); i++) {
		JsonNode *n = json_array_get_element(map, i);
		g_autoptr(GPtrArray) subs = NULL;
		const char *arch;
		JsonObject *o;

		if (!JSON_NODE_HOLDS_OBJECT(n))
			return vr_sc_fail(ps, "archMap[%u] is not an object", i);
		o = json_node_get_object(n);
		r = vr_sc_string(ps, o, "architecture", &arch);
		if (r >= 0)
			r = vr_sc_strings(ps, o, "subArchitectures", &subs);
		if (r < 0)
			return r;
		/* Only the native entry counts: others need not even be known here. */
		if (!arch || vr_sc_arch(arch) != native)
			continue;
		g_array_append_val(p->arches, native);
		for (guint j = 0; subs && j < subs->len; j++) {
			uint32_t a = vr_sc_arch(subs->pdata[j]);

			if (!a)
				return vr_sc_fail(ps, "unknown architecture '%s' in archMap[%u]",
						  (const char *)subs->pdata[j], i);
			g_array_append_val(p->arches, a);
		}
	}
	return 0;
}

static int vr_sc_flags(struct vr_sc_parser *ps, JsonObject *root, struct vr_sc_profile *p)
{
	g_autoptr(GPtrArray) flags = NULL;
	const char *listener;
	int r = vr_sc_strings(ps, root, "flags", &flags);

	if (r >= 0)
		r = vr_sc_string(ps, root, "listenerPath", &listener);
	if (r < 0)
		return r;
	if (listener && *listener)
		return vr_sc_fail(ps, "'listenerPath' is not supported (no seccomp agent)");
	for (guint i = 0; flags && i < flags->len; i++) {
		const char *f = flags->pdata[i];

		if (strcmp(f, "SECCOMP_FILTER_FLAG_LOG") == 0)
			p->flag_log = true;
		else if (strcmp(f, "SECCOMP_FILTER_FLAG_SPEC_ALLOW") == 0)
			p->flag_spec_allow = true;
		else if (strcmp(f, "SECCOMP_FILTER_FLAG_TSYNC") != 0) /* one thread anyway */
			return vr_sc_fail(ps, "unsupported flag '%s' in 'flags'", f);
	}
	return 0;
}

int vr_sc_profile_parse(const char *json, gssize len, uint32_t native_arch,
			struct vr_sc_profile **ret, char **ret_error)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) err = NULL;
	struct vr_sc_parser ps = {};
	struct vr_sc_profile *p;
	JsonArray *syscalls = NULL;
	JsonObject *root;
	int r;

	*ret = NULL;
	if (!json_parser_load_from_data(parser, json, len, &err)) {
		*ret_error = g_strdup_printf("not valid JSON: %s", err->message);
		return -EINVAL;
	}
	if (!JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
		*ret_error = g_strdup("the top level is not a JSON object");
		return -EINVAL;
	}
	root = json_node_get_object(json_parser_get_root(parser));
	p = g_new0(struct vr_sc_profile, 1);
	p->arches = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	p->rules = g_ptr_array_new_with_free_func((GDestroyNotify)vr_sc_rule_free);
	r = vr_sc_action(&ps, root, "defaultAction", "defaultErrnoRet", "defaultErrno",
			 &p->default_action);
	if (r >= 0)
		r = vr_sc_arches(&ps, root, native_arch, p);
	if (r >= 0)
		r = vr_sc_flags(&ps, root, p);
	if (r >= 0)
		r = vr_sc_array(&ps, root, "syscalls", &syscalls);
	for (guint i = 0; r >= 0 && syscalls && i < json_array_get_length(syscalls); i++) {
		struct vr_sc_rule *rule = NULL;

		g_free(ps.where);
		ps.where = g_strdup_printf("syscalls[%u]", i);
		r = vr_sc_rule(&ps, json_array_get_element(syscalls, i), i, &rule);
		g_ptr_array_add(p->rules, rule);
	}
	g_free(ps.where);
	if (r < 0) {
		*ret_error = ps.error;
		vr_sc_profile_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

static bool vr_sc_has_arch(const struct vr_sc_cond *c, const char *arch)
{
	for (guint i = 0; c->arches && i < c->arches->len; i++)
		if (strcmp(c->arches->pdata[i], arch) == 0)
			return true;
	return false;
}

static bool vr_sc_kernel_ge(const unsigned have[2], const unsigned want[2])
{
	return have[0] > want[0] || (have[0] == want[0] && have[1] >= want[1]);
}

/*
 * Docker's rule: an entry is skipped when the native arch is in
 * excludes.arches, the container holds any of excludes.caps or the kernel is
 * at least excludes.minKernel; and unless the native arch is in
 * includes.arches (when given), the container holds all of includes.caps and
 * the kernel is at least includes.minKernel. caps: the bounding set.
 */
bool vr_sc_rule_applies(const struct vr_sc_rule *r, uint64_t caps, const char *arch,
			const unsigned kernel[2])
{
	const struct vr_sc_cond *ex = &r->excludes, *in = &r->includes;

	if (ex->arches && ex->arches->len && vr_sc_has_arch(ex, arch))
		return false;
	if (ex->caps & caps)
		return false;
	if (ex->has_kernel && vr_sc_kernel_ge(kernel, ex->kernel))
		return false;
	if (in->arches && in->arches->len && !vr_sc_has_arch(in, arch))
		return false;
	if (in->unknown_cap || (in->caps & caps) != in->caps)
		return false;
	if (in->has_kernel && !vr_sc_kernel_ge(kernel, in->kernel))
		return false;
	return true;
}

/* The running kernel's MAJOR.MINOR, from a release such as "6.18.44-fc" or "6.19-rc1". */
int vr_sc_kernel_version(unsigned ret[2])
{
	struct utsname u;

	ret[0] = ret[1] = 0;
	if (uname(&u) < 0)
		return -errno;
	if (sscanf(u.release, "%u.%u", &ret[0], &ret[1]) != 2)
		return -EINVAL;
	return 0;
}
