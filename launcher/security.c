/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The confinement options (--cap-add, --cap-drop, --privileged,
 * --security-opt, --device, --mask): parsing, one specific message per bad
 * value, and their validation before anything is created: the capability set,
 * the seccomp filters of COMMAND and of PID 1 built from their profiles, the
 * device nodes, and how the device allow list will be enforced.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <seccomp.h>
#include <json-glib/json-glib.h>

#include "fd-util.h"
#include "launcher.h"
#include "log.h"
#include "path-util.h"

void vr_security_init(struct vr_security *sec)
{
	*sec = (struct vr_security){
		.cap_add = g_ptr_array_new_with_free_func(g_free),
		.cap_drop = g_ptr_array_new_with_free_func(g_free),
		.devices = g_ptr_array_new_with_free_func((GDestroyNotify)vr_device_free),
		.masks = g_ptr_array_new_with_free_func(g_free),
	};
}

void vr_security_done(struct vr_security *sec)
{
	g_free(sec->seccomp_file);
	g_ptr_array_unref(sec->cap_add);
	g_ptr_array_unref(sec->cap_drop);
	g_ptr_array_unref(sec->devices);
	g_ptr_array_unref(sec->masks);
	vr_bpf_free(sec->seccomp);
	vr_bpf_free(sec->init_seccomp);
}

/* "NET_ADMIN,SYS_TIME" or "ALL", into names. */
static int vr_security_caps(GPtrArray *names, const char *flag, const char *arg, char **ret_error)
{
	g_auto(GStrv) parts = g_strsplit(arg, ",", -1);

	for (guint i = 0; parts[i]; i++) {
		const char *n = g_strstrip(parts[i]);

		if (g_ascii_strcasecmp(n, "ALL") != 0 && vr_cap_from_name(n) < 0) {
			*ret_error = g_strdup_printf("unknown capability '%s' for %s (a name from "
						     "capabilities(7) such as NET_ADMIN, or ALL)",
						     n, flag);
			return -EINVAL;
		}
		g_ptr_array_add(names, g_strdup(n));
	}
	return 0;
}

static int vr_security_bool(const char *v, bool *ret)
{
	if (!v || strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
		*ret = true;
		return 0;
	}
	if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
		*ret = false;
		return 0;
	}
	return -EINVAL;
}

/* --security-opt: seccomp=FILE|unconfined, no-new-privileges[=true|false] (':' as Docker). */
static int vr_security_opt(struct vr_security *sec, const char *arg, char **ret_error)
{
	size_t klen = strcspn(arg, "=:");
	const char *value = arg[klen] ? arg + klen + 1 : NULL;

	if (klen == strlen("seccomp") && strncmp(arg, "seccomp", klen) == 0 && value && *value) {
		g_clear_pointer(&sec->seccomp_file, g_free);
		sec->seccomp_unconfined = strcmp(value, "unconfined") == 0;
		if (!sec->seccomp_unconfined)
			sec->seccomp_file = g_strdup(value);
		return 0;
	}
	if (klen == strlen("no-new-privileges") && strncmp(arg, "no-new-privileges", klen) == 0 &&
	    vr_security_bool(value, &sec->no_new_privs) == 0)
		return 0;
	*ret_error = g_strdup_printf("bad --security-opt '%s' (seccomp=FILE, seccomp=unconfined or "
				     "no-new-privileges)",
				     arg);
	return -EINVAL;
}

int vr_security_option(struct vr_config *cfg, int opt, const char *arg, char **ret_error)
{
	struct vr_security *sec = &cfg->sec;

	switch (opt) {
	case VR_OPT_CAP_ADD:
		return vr_security_caps(sec->cap_add, "--cap-add", arg, ret_error);
	case VR_OPT_CAP_DROP:
		return vr_security_caps(sec->cap_drop, "--cap-drop", arg, ret_error);
	case VR_OPT_PRIVILEGED:
		sec->privileged = true;
		return 0;
	case VR_OPT_SECURITY_OPT:
		return vr_security_opt(sec, arg, ret_error);
	case VR_OPT_DEVICE: {
		struct vr_device *d;

		if (vr_device_parse(arg, &d) < 0) {
			*ret_error = g_strdup_printf("bad --device '%s' (HOST[:CTR][:rwm] with "
						     "absolute paths)",
						     arg);
			return -EINVAL;
		}
		g_ptr_array_add(sec->devices, d);
		return 0;
	}
	case VR_OPT_MASK: {
		g_autofree char *p = arg[0] == '/' ? vc_path_normalize(arg) : NULL;

		if (!p || strcmp(p, "/") == 0) {
			*ret_error = g_strdup_printf("bad --mask '%s' (an absolute path inside the "
						     "container, not /)",
						     arg);
			return -EINVAL;
		}
		g_ptr_array_add(sec->masks, g_steal_pointer(&p));
		return 0;
	}
	}
	*ret_error = g_strdup("internal error: not a confinement option");
	return -EINVAL;
}

/* COMMAND's filter from FILE or the built-in profile, and PID 1's. */
static int vr_security_seccomp(struct vr_config *cfg, char **ret_error)
{
	struct vr_security *sec = &cfg->sec;
	g_autofree char *text = NULL;
	g_autofree char *err = NULL;
	struct vr_sc_profile *p = NULL;
	void *filter = NULL;
	unsigned kernel[2];
	const char *json;
	gsize len;
	int r;

	vr_sc_kernel_version(kernel);
	r = vr_seccomp_init_filter(&filter);
	if (r >= 0)
		r = vr_seccomp_compile(filter, &sec->init_seccomp);
	if (r >= 0)
		r = vr_seccomp_default_json(&json, &len);
	if (r < 0) {
		*ret_error = g_strdup("libseccomp refused PID 1's filter, or the built-in profile "
				      "is missing");
		return VR_EXIT_SETUP;
	}
	/* --privileged means no filter, unless a profile file is named explicitly. */
	if (sec->seccomp_unconfined || (sec->privileged && !sec->seccomp_file))
		return 0;
	if (sec->seccomp_file) {
		g_autoptr(GError) gerr = NULL;

		if (!g_file_get_contents(sec->seccomp_file, &text, &len, &gerr)) {
			*ret_error = g_strdup_printf("cannot read seccomp profile '%s': %s",
						     sec->seccomp_file, gerr->message);
			return VR_EXIT_PATH;
		}
		json = text;
	}
	r = vr_sc_profile_parse(json, (gssize)len, seccomp_arch_native(), &p, &err);
	if (r >= 0)
		r = vr_seccomp_build(p, sec->caps, kernel, &filter, &err);
	vr_sc_profile_free(p);
	if (r >= 0 && vr_seccomp_compile(filter, &sec->seccomp) < 0) {
		*ret_error = g_strdup("libseccomp could not generate the filter");
		return VR_EXIT_SETUP;
	}
	if (r < 0) {
		*ret_error =
			g_strdup_printf("seccomp profile '%s': %s",
					sec->seccomp_file ? sec->seccomp_file : "(built-in)", err);
		return sec->seccomp_file ? VR_EXIT_USAGE : VR_EXIT_SETUP;
	}
	return 0;
}

/* Every check of the confinement options; returns 0 or an exit code with *ret_error set. */
int vr_security_validate(struct vr_config *cfg, char **ret_error)
{
	struct vr_security *sec = &cfg->sec;
	uint64_t avail;
	int r;

	r = vr_caps_available(&avail);
	if (r < 0) {
		*ret_error = g_strdup("cannot read veneer-run's own capabilities");
		return VR_EXIT_SETUP;
	}
	r = vr_caps_resolve(sec, avail, &sec->caps, ret_error);
	if (r < 0)
		return r == -EPERM ? VR_EXIT_PERM : VR_EXIT_USAGE;
	r = vr_security_seccomp(cfg, ret_error);
	if (r != 0)
		return r;
	for (guint i = 0; i < sec->devices->len; i++) {
		struct vr_device *d = sec->devices->pdata[i];

		r = vr_device_stat(d);
		if (r < 0) {
			*ret_error = g_strdup_printf("--device '%s': %s", d->host,
						     r == -ENODEV ? "not a character or block "
								    "device"
								  : g_strerror(-r));
			return VR_EXIT_PATH;
		}
	}
	sec->devcg = vr_devices_mode(cfg);
	return 0;
}

/* The "Security" object of state.json: what confines the container. */
void vr_security_state(JsonBuilder *b, const struct vr_ctx *ctx)
{
	const struct vr_security *sec = &ctx->cfg->sec;
	static const char *const devcg[] = {"none", "v1", "bpf"};
	char nbuf[VR_CAP_NAME_MAX];

	json_builder_set_member_name(b, "Security");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "Privileged");
	json_builder_add_boolean_value(b, sec->privileged);
	json_builder_set_member_name(b, "Capabilities");
	json_builder_begin_array(b);
	for (int c = 0; c < 64; c++)
		if (sec->caps & (1ULL << c))
			json_builder_add_string_value(b, vr_cap_name(c, nbuf));
	json_builder_end_array(b);
	json_builder_set_member_name(b, "Seccomp");
	json_builder_add_string_value(b, !sec->seccomp	     ? "unconfined"
					 : sec->seccomp_file ? sec->seccomp_file
							     : "default");
	json_builder_set_member_name(b, "NoNewPrivileges");
	json_builder_add_boolean_value(b, sec->no_new_privs);
	json_builder_set_member_name(b, "Devices");
	json_builder_add_string_value(b, devcg[sec->devcg]);
	json_builder_set_member_name(b, "DeviceCgroup");
	if (ctx->devcg_path)
		json_builder_add_string_value(b, ctx->devcg_path);
	else
		json_builder_add_null_value(b);
	json_builder_set_member_name(b, "Masks");
	json_builder_begin_array(b);
	for (guint i = 0; i < sec->masks->len; i++)
		json_builder_add_string_value(b, sec->masks->pdata[i]);
	json_builder_end_array(b);
	json_builder_end_object(b);
}
