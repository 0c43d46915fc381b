/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-run's confinement, the pure side: capability names and Docker's
 * add/drop rules, the seccomp profile parser (every error names its entry;
 * errnoRet/errno, defaultErrnoRet, archMap, includes/excludes on caps,
 * arches and minKernel), the built-in profile, --device parsing, and the
 * BPF device program run through a small interpreter of the instructions it uses.
 */
#include <errno.h>
#include <glib.h>
#include <string.h>
#include <seccomp.h>
#include <linux/bpf.h>
#include <linux/capability.h>

#include "launcher.h"

#define CAP(x) (1ULL << (x))

static void test_cap_names(void)
{
	char buf[VR_CAP_NAME_MAX];

	g_assert_cmpint(vr_cap_from_name("NET_ADMIN"), ==, CAP_NET_ADMIN);
	g_assert_cmpint(vr_cap_from_name("net_admin"), ==, CAP_NET_ADMIN);
	g_assert_cmpint(vr_cap_from_name("CAP_SYS_ADMIN"), ==, CAP_SYS_ADMIN);
	g_assert_cmpint(vr_cap_from_name("cap_chown"), ==, CAP_CHOWN);
	g_assert_cmpint(vr_cap_from_name("BOGUS"), <, 0);
	g_assert_cmpint(vr_cap_from_name("12"), <, 0);
	g_assert_cmpint(vr_cap_from_name(""), <, 0);
	g_assert_cmpint(vr_cap_from_name("CAP_"), <, 0);
	g_assert_cmpint(vr_cap_from_name("ALL"), <, 0);
	g_assert_cmpint(vr_cap_from_name("sys admin"), <, 0);
	g_assert_cmpstr(vr_cap_name(CAP_SYS_ADMIN, buf), ==, "CAP_SYS_ADMIN");
	g_assert_cmpstr(vr_cap_name(CAP_DAC_READ_SEARCH, buf), ==, "CAP_DAC_READ_SEARCH");
}

static uint64_t resolve(const char *const *add, const char *const *drop, bool privileged,
			uint64_t avail, int *ret)
{
	struct vr_security sec;
	g_autofree char *err = NULL;
	uint64_t caps = 0;

	vr_security_init(&sec);
	sec.privileged = privileged;
	for (; add && *add; add++)
		g_ptr_array_add(sec.cap_add, g_strdup(*add));
	for (; drop && *drop; drop++)
		g_ptr_array_add(sec.cap_drop, g_strdup(*drop));
	*ret = vr_caps_resolve(&sec, avail, &caps, &err);
	g_assert_true((*ret < 0) == (err != NULL));
	vr_security_done(&sec);
	return caps;
}

static void test_caps_resolve(void)
{
	uint64_t all = vr_caps_all();
	int r;

	/* CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
	 * SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP: Docker's CapEff 00000000a80425fb. */
	g_assert_cmphex(VR_CAPS_DEFAULT, ==,
			CAP(CAP_CHOWN) | CAP(CAP_DAC_OVERRIDE) | CAP(CAP_FOWNER) | CAP(CAP_FSETID) |
				CAP(CAP_KILL) | CAP(CAP_SETGID) | CAP(CAP_SETUID) |
				CAP(CAP_SETPCAP) | CAP(CAP_NET_BIND_SERVICE) | CAP(CAP_NET_RAW) |
				CAP(CAP_SYS_CHROOT) | CAP(CAP_MKNOD) | CAP(CAP_AUDIT_WRITE) |
				CAP(CAP_SETFCAP));
	g_assert_cmphex(resolve(NULL, NULL, false, all, &r), ==, VR_CAPS_DEFAULT);
	g_assert_cmphex(resolve((const char *[]){"SYS_ADMIN", NULL},
				(const char *[]){"NET_RAW", NULL}, false, all, &r),
			==, (VR_CAPS_DEFAULT | CAP(CAP_SYS_ADMIN)) & ~CAP(CAP_NET_RAW));
	g_assert_cmphex(resolve((const char *[]){"CAP_SYS_TIME", NULL},
				(const char *[]){"ALL", NULL}, false, all, &r),
			==, CAP(CAP_SYS_TIME));
	g_assert_cmphex(resolve((const char *[]){"ALL", NULL}, (const char *[]){"SYS_ADMIN", NULL},
				false, all, &r),
			==, all & ~CAP(CAP_SYS_ADMIN));
	g_assert_cmphex(resolve(NULL, NULL, true, all, &r), ==, all);
	/* Only what veneer-run holds: silently for the default set, an error for --cap-add. */
	g_assert_cmphex(resolve(NULL, NULL, true, all & ~CAP(CAP_SYS_RESOURCE), &r), ==,
			all & ~CAP(CAP_SYS_RESOURCE));
	resolve((const char *[]){"SYS_RESOURCE", NULL}, NULL, false, all & ~CAP(CAP_SYS_RESOURCE),
		&r);
	g_assert_cmpint(r, ==, -EPERM);
	resolve((const char *[]){"NET_ADMIN", NULL}, (const char *[]){"net_admin", NULL}, false,
		all, &r);
	g_assert_cmpint(r, ==, -EINVAL);
}

static struct vr_sc_profile *parse(const char *json, char **err)
{
	struct vr_sc_profile *p = NULL;

	*err = NULL;
	if (vr_sc_profile_parse(json, -1, SCMP_ARCH_X86_64, &p, err) < 0)
		return NULL;
	return p;
}

static void test_profile_errors(void)
{
	static const struct {
		const char *json;
		const char *needle;
	} bad[] = {
		{"[1]", "not a JSON object"},
		{"{", "not valid JSON"},
		{"{\"syscalls\": []}", "'defaultAction' is missing"},
		{"{\"defaultAction\": \"SCMP_ACT_NOPE\"}", "unknown action 'SCMP_ACT_NOPE'"},
		{"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 5000}",
		 "'defaultErrnoRet' 5000 is not an errno"},
		{"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrno\": \"EBOGUS\"}",
		 "unknown errno name 'EBOGUS'"},
		{"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"], "
		 "\"action\": \"SCMP_ACT_ALLOW\"}, {\"names\": [\"mount\", \"umount2\"], "
		 "\"action\": "
		 "\"SCMP_ACT_ERRNO\", \"errnoRet\": 1, \"errno\": \"EACCES\"}]}",
		 "syscalls[1] (\"mount\", ...): 'errnoRet' 1 and 'errno' EACCES disagree"},
		{"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"kill\"], "
		 "\"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 6, \"value\": 1, \"op\": "
		 "\"SCMP_CMP_EQ\"}]}]}",
		 "syscalls[0] (\"kill\"): args[0].index 6 is not 0-5"},
		{"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"kill\"], "
		 "\"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 1, \"op\": "
		 "\"SCMP_CMP_ABOUT\"}]}]}",
		 "syscalls[0] (\"kill\"): args[0]: unknown op 'SCMP_CMP_ABOUT'"},
		{"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"action\": "
		 "\"SCMP_ACT_ALLOW\"}]}",
		 "syscalls[0]: no 'names'"},
		{"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"kill\"], "
		 "\"action\": \"SCMP_ACT_NOTIFY\"}]}",
		 "SCMP_ACT_NOTIFY is not supported"},
		{"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"kill\"], "
		 "\"action\": \"SCMP_ACT_ALLOW\", \"includes\": {\"minKernel\": \"four\"}}]}",
		 "syscalls[0] (\"kill\"): bad 'includes.minKernel' 'four'"},
		{"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [3], "
		 "\"action\": "
		 "\"SCMP_ACT_ALLOW\"}]}",
		 "syscalls[0]: 'names'[0] is not a string"},
		{"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"SCMP_ARCH_VAX\"]}",
		 "unknown architecture 'SCMP_ARCH_VAX'"},
		{"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"flags\": "
		 "[\"SECCOMP_FILTER_FLAG_BOGUS\"]}",
		 "unsupported flag 'SECCOMP_FILTER_FLAG_BOGUS'"},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autofree char *err = NULL;
		struct vr_sc_profile *p = parse(bad[i].json, &err);

		g_assert_null(p);
		g_assert_nonnull(err);
		if (!strstr(err, bad[i].needle))
			g_error("case %zu: '%s' does not contain '%s'", i, err, bad[i].needle);
		g_assert_null(strchr(err, '\n'));
	}
}

static const struct vr_sc_rule *rule(const struct vr_sc_profile *p, guint i)
{
	g_assert_cmpuint(i, <, p->rules->len);
	return p->rules->pdata[i];
}

static void test_profile_fields(void)
{
	static const char json[] =
		"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38,"
		" \"archMap\": [{\"architecture\": \"SCMP_ARCH_AARCH64\", \"subArchitectures\": "
		"[\"SCMP_ARCH_ARM\"]}, {\"architecture\": \"SCMP_ARCH_X86_64\", "
		"\"subArchitectures\": [\"SCMP_ARCH_X86\", \"SCMP_ARCH_X32\"]},"
		" {\"architecture\": \"SCMP_ARCH_LOONGARCH64\"}],"
		" \"syscalls\": ["
		"{\"names\": [\"mount\"], \"action\": \"SCMP_ACT_ALLOW\", \"includes\": {\"caps\": "
		"[\"CAP_SYS_ADMIN\"]}},"
		"{\"names\": [\"mount\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 1, "
		"\"excludes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}},"
		"{\"name\": \"ptrace\", \"action\": \"SCMP_ACT_ALLOW\", \"includes\": "
		"{\"minKernel\": "
		"\"4.8\"}},"
		"{\"names\": [\"arch_prctl\"], \"action\": \"SCMP_ACT_ALLOW\", \"includes\": "
		"{\"arches\": [\"amd64\", \"x32\"]}},"
		"{\"names\": [\"clone\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": "
		"0, "
		"\"value\": 2114060288, \"op\": \"SCMP_CMP_MASKED_EQ\"}], \"excludes\": {\"caps\": "
		"[\"CAP_SYS_ADMIN\"], \"arches\": [\"s390x\"]}},"
		"{\"names\": [\"bpf\"], \"action\": \"SCMP_ACT_ALLOW\", \"includes\": {\"caps\": "
		"[\"CAP_SYS_ADMIN\", \"CAP_FROM_THE_FUTURE\"]}},"
		"{\"names\": [\"kill\"], \"action\": \"SCMP_ACT_ERRNO\", \"errno\": \"EACCES\", "
		"\"excludes\": {\"minKernel\": \"99.1\", \"caps\": [\"CAP_FROM_THE_FUTURE\"]}},"
		"{\"names\": [\"tkill\"], \"action\": \"SCMP_ACT_ERRNO\"}"
		"]}";
	const unsigned k618[2] = {6, 18}, k44[2] = {4, 4}, k100[2] = {100, 0};
	g_autofree char *err = NULL;
	struct vr_sc_profile *p = parse(json, &err);

	if (!p)
		g_error("%s", err);
	g_assert_cmphex(p->default_action, ==, SCMP_ACT_ERRNO(ENOSYS));
	/* The native entry of archMap and its sub-architectures; unknown others are fine. */
	g_assert_cmpuint(p->arches->len, ==, 3);
	g_assert_cmphex(g_array_index(p->arches, uint32_t, 0), ==, SCMP_ARCH_X86_64);
	g_assert_cmphex(g_array_index(p->arches, uint32_t, 1), ==, SCMP_ARCH_X86);
	g_assert_cmphex(g_array_index(p->arches, uint32_t, 2), ==, SCMP_ARCH_X32);
	g_assert_cmpuint(p->rules->len, ==, 8);
	g_assert_cmphex(rule(p, 1)->action, ==, SCMP_ACT_ERRNO(EPERM));
	g_assert_cmphex(rule(p, 6)->action, ==, SCMP_ACT_ERRNO(EACCES));
	g_assert_cmphex(rule(p, 7)->action, ==, SCMP_ACT_ERRNO(EPERM)); /* ERRNO alone: EPERM */
	g_assert_cmpstr(rule(p, 2)->names->pdata[0], ==, "ptrace");	/* "name" */
	/* includes.caps: all held; excludes.caps: none held. */
	g_assert_true(vr_sc_rule_applies(rule(p, 0), CAP(CAP_SYS_ADMIN), "amd64", k618));
	g_assert_false(vr_sc_rule_applies(rule(p, 0), VR_CAPS_DEFAULT, "amd64", k618));
	g_assert_false(vr_sc_rule_applies(rule(p, 1), CAP(CAP_SYS_ADMIN), "amd64", k618));
	g_assert_true(vr_sc_rule_applies(rule(p, 1), VR_CAPS_DEFAULT, "amd64", k618));
	/* includes.minKernel */
	g_assert_true(vr_sc_rule_applies(rule(p, 2), 0, "amd64", k618));
	g_assert_false(vr_sc_rule_applies(rule(p, 2), 0, "amd64", k44));
	/* includes.arches / excludes.arches */
	g_assert_true(vr_sc_rule_applies(rule(p, 3), 0, "amd64", k618));
	g_assert_false(vr_sc_rule_applies(rule(p, 3), 0, "arm64", k618));
	g_assert_true(vr_sc_rule_applies(rule(p, 4), 0, "amd64", k618));
	g_assert_false(vr_sc_rule_applies(rule(p, 4), 0, "s390x", k618));
	g_assert_false(vr_sc_rule_applies(rule(p, 4), CAP(CAP_SYS_ADMIN), "amd64", k618));
	g_assert_cmpuint(g_array_index(rule(p, 4)->args, struct vr_sc_arg, 0).value, ==,
			 0x7E020000);
	/* A capability unknown here: never held, so an includes never applies. */
	g_assert_false(vr_sc_rule_applies(rule(p, 5), vr_caps_all(), "amd64", k618));
	/* excludes.minKernel: skipped from that version on; an unknown cap excludes nothing. */
	g_assert_true(vr_sc_rule_applies(rule(p, 6), vr_caps_all(), "amd64", k618));
	g_assert_false(vr_sc_rule_applies(rule(p, 6), 0, "amd64", k100));
	vr_sc_profile_free(p);
}

static void test_profile_build(void)
{
	const unsigned kernel[2] = {6, 1};
	g_autofree char *err = NULL;
	struct vr_sc_profile *p;
	void *filter = NULL;

	/* Two entries that give one call two actions at once: an error naming both. */
	p = parse("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
		  "{\"names\": [\"mount\"], \"action\": \"SCMP_ACT_KILL\"},"
		  "{\"names\": [\"getpid\", \"mount\"], \"action\": \"SCMP_ACT_ERRNO\"}]}",
		  &err);
	g_assert_nonnull(p);
	g_assert_cmpint(vr_seccomp_build(p, 0, kernel, &filter, &err), ==, -EINVAL);
	g_assert_cmpstr(err, ==,
			"syscalls[1] (\"mount\"): contradicts syscalls[0], which gives it "
			"another action");
	vr_sc_profile_free(p);
	g_clear_pointer(&err, g_free);
	/* Repeated argument indexes (ORed, one rule each), unknown names, the default action. */
	p = parse("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": ["
		  "{\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": ["
		  "{\"index\": 0, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"}, {\"index\": 0, "
		  "\"value\": 8, "
		  "\"op\": \"SCMP_CMP_EQ\"}]},"
		  "{\"names\": [\"no_such_call\", \"read\"], \"action\": \"SCMP_ACT_ALLOW\"},"
		  "{\"names\": [\"write\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 1}]}",
		  &err);
	g_assert_nonnull(p);
	g_assert_cmpint(vr_seccomp_build(p, 0, kernel, &filter, &err), ==, 0);
	vr_seccomp_free(filter);
	vr_sc_profile_free(p);
}

static bool rule_named(const struct vr_sc_rule *r, const char *name)
{
	for (guint i = 0; i < r->names->len; i++)
		if (strcmp(r->names->pdata[i], name) == 0)
			return true;
	return false;
}

/*
 * The action the built-in profile gives a call (argument-less entries only)
 * for a container holding caps: first applicable entry, else the default.
 */
static uint32_t builtin_action(const struct vr_sc_profile *p, const char *name, uint64_t caps)
{
	const unsigned kernel[2] = {6, 1};

	for (guint i = 0; i < p->rules->len; i++) {
		const struct vr_sc_rule *r = p->rules->pdata[i];

		if (r->args->len == 0 && rule_named(r, name) &&
		    vr_sc_rule_applies(r, caps, "amd64", kernel))
			return r->action;
	}
	return p->default_action;
}

static void test_builtin_profile(void)
{
	static const char *const denied[] = {
		"mount",      "umount2",	 "pivot_root",
		"move_mount", "open_tree",	 "fsopen",
		"kexec_load", "init_module",	 "finit_module",
		"bpf",	      "perf_event_open", "keyctl",
		"add_key",    "request_key",	 "reboot",
		"swapon",     "swapoff",	 "open_by_handle_at",
		"acct",	      "settimeofday",	 "clock_settime",
		"iopl",	      "ioperm",		 "syslog",
		"unshare",    "setns",
	};
	const unsigned kernel[2] = {6, 1};
	g_autofree char *err = NULL;
	struct vr_sc_profile *p = NULL;
	void *filter = NULL;
	const char *json;
	gsize len;

	g_assert_cmpint(vr_seccomp_default_json(&json, &len), ==, 0);
	g_assert_cmpint(vr_sc_profile_parse(json, (gssize)len, SCMP_ARCH_X86_64, &p, &err), ==, 0);
	for (size_t i = 0; i < G_N_ELEMENTS(denied); i++)
		if (builtin_action(p, denied[i], VR_CAPS_DEFAULT) != SCMP_ACT_ERRNO(EPERM))
			g_error("'%s' is not EPERM for the default set", denied[i]);
	g_assert_cmphex(builtin_action(p, "read", VR_CAPS_DEFAULT), ==, SCMP_ACT_ALLOW);
	g_assert_cmphex(builtin_action(p, "ptrace", VR_CAPS_DEFAULT), ==, SCMP_ACT_ALLOW);
	g_assert_cmphex(builtin_action(p, "clone3", VR_CAPS_DEFAULT), ==, SCMP_ACT_ERRNO(ENOSYS));
	g_assert_cmphex(builtin_action(p, "no_such_call", VR_CAPS_DEFAULT), ==,
			SCMP_ACT_ERRNO(ENOSYS));
	/* The capability that each needs re-enables it, as on Docker. */
	g_assert_cmphex(builtin_action(p, "mount", VR_CAPS_DEFAULT | CAP(CAP_SYS_ADMIN)), ==,
			SCMP_ACT_ALLOW);
	g_assert_cmphex(builtin_action(p, "unshare", VR_CAPS_DEFAULT | CAP(CAP_SYS_ADMIN)), ==,
			SCMP_ACT_ALLOW);
	g_assert_cmphex(
		builtin_action(p, "open_by_handle_at", VR_CAPS_DEFAULT | CAP(CAP_DAC_READ_SEARCH)),
		==, SCMP_ACT_ALLOW);
	g_assert_cmphex(builtin_action(p, "reboot", CAP(CAP_SYS_BOOT)), ==, SCMP_ACT_ALLOW);
	g_assert_cmphex(builtin_action(p, "init_module", CAP(CAP_SYS_MODULE)), ==, SCMP_ACT_ALLOW);
	g_assert_cmphex(builtin_action(p, "syslog", CAP(CAP_SYSLOG)), ==, SCMP_ACT_ALLOW);
	g_assert_cmphex(builtin_action(p, "bpf", CAP(CAP_BPF)), ==, SCMP_ACT_ALLOW);
	g_assert_cmphex(builtin_action(p, "keyctl", vr_caps_all()), ==, SCMP_ACT_ERRNO(EPERM));
	g_assert_cmphex(builtin_action(p, "chroot", VR_CAPS_DEFAULT), ==, SCMP_ACT_ALLOW);
	g_assert_cmphex(builtin_action(p, "chroot", 0), ==, SCMP_ACT_ERRNO(EPERM));
	/* It builds for every capability set the tests use. */
	g_assert_cmpint(vr_seccomp_build(p, VR_CAPS_DEFAULT, kernel, &filter, &err), ==, 0);
	vr_seccomp_free(filter);
	g_assert_cmpint(vr_seccomp_build(p, vr_caps_all(), kernel, &filter, &err), ==, 0);
	vr_seccomp_free(filter);
	g_assert_cmpint(vr_seccomp_build(p, CAP(CAP_KILL), kernel, &filter, &err), ==, 0);
	vr_seccomp_free(filter);
	vr_sc_profile_free(p);
}

static void test_device_parse(void)
{
	static const char *const bad[] = {
		"dev/fuse",
		"/dev/fuse:rwx",
		"/dev/fuse:/etc/fuse",
		"/dev/fuse:/dev/x:rr",
		"/dev/fuse:/dev/pts/9",
		"/dev/a:/dev/b:rw:x",
		"/dev/fuse:",
	};
	struct vr_device *d = NULL;

	g_assert_cmpint(vr_device_parse("/dev/fuse", &d), ==, 0);
	g_assert_cmpstr(d->ctr, ==, "/dev/fuse");
	g_assert_cmpuint(d->access, ==, VR_DEV_RWM);
	vr_device_free(d);
	g_assert_cmpint(vr_device_parse("/dev/loop3:r", &d), ==, 0);
	g_assert_cmpstr(d->ctr, ==, "/dev/loop3");
	g_assert_cmpuint(d->access, ==, VR_DEV_READ);
	vr_device_free(d);
	g_assert_cmpint(vr_device_parse("/dev/sdc:/dev/xvdc:mw", &d), ==, 0);
	g_assert_cmpstr(d->host, ==, "/dev/sdc");
	g_assert_cmpstr(d->ctr, ==, "/dev/xvdc");
	g_assert_cmpuint(d->access, ==, VR_DEV_MKNOD | VR_DEV_WRITE);
	vr_device_free(d);
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		if (vr_device_parse(bad[i], &d) == 0)
			g_error("'%s' was accepted", bad[i]);
}

/* The instructions vr_devbpf_program emits, run on one bpf_cgroup_dev_ctx. */
static int run_devbpf(const struct bpf_insn *p, size_t n, unsigned type, unsigned access,
		      unsigned major, unsigned minor)
{
	const uint32_t ctx[3] = {access << 16 | type, major, minor};
	uint64_t reg[11] = {};

	for (size_t pc = 0; pc < n; pc++) {
		const struct bpf_insn *in = &p[pc];

		switch (in->code) {
		case BPF_LDX | BPF_MEM | BPF_W:
			g_assert_cmpint(in->src_reg, ==, 1);
			reg[in->dst_reg] = ctx[in->off / 4];
			break;
		case BPF_ALU | BPF_MOV | BPF_X:
			reg[in->dst_reg] = (uint32_t)reg[in->src_reg];
			break;
		case BPF_ALU | BPF_AND | BPF_K:
			reg[in->dst_reg] = (uint32_t)reg[in->dst_reg] & (uint32_t)in->imm;
			break;
		case BPF_ALU | BPF_RSH | BPF_K:
			reg[in->dst_reg] = (uint32_t)reg[in->dst_reg] >> in->imm;
			break;
		case BPF_JMP | BPF_JNE | BPF_K:
			if (reg[in->dst_reg] != (uint64_t)(int64_t)in->imm)
				pc += in->off;
			break;
		case BPF_ALU64 | BPF_MOV | BPF_K:
			reg[in->dst_reg] = (uint64_t)(int64_t)in->imm;
			break;
		case BPF_JMP | BPF_EXIT:
			return (int)reg[0];
		default:
			g_error("unexpected instruction 0x%x at %zu", in->code, pc);
		}
		g_assert_cmpuint(pc + 1, <=, n);
	}
	g_error("ran off the end of the program");
	return -1;
}

static void test_devbpf(void)
{
	const struct vr_dev_rule rules[] = {
		{'c', -1, -1, VR_DEV_MKNOD},
		{'c', 1, 3, VR_DEV_RWM},
		{'c', 136, -1, VR_DEV_RWM},
		{'b', 7, 2, VR_DEV_READ},
	};
	g_autofree struct bpf_insn *p = NULL;
	size_t n;
	const unsigned C = BPF_DEVCG_DEV_CHAR, B = BPF_DEVCG_DEV_BLOCK;
	const unsigned R = BPF_DEVCG_ACC_READ, W = BPF_DEVCG_ACC_WRITE, M = BPF_DEVCG_ACC_MKNOD;

	g_assert_cmpint(vr_devbpf_program(rules, G_N_ELEMENTS(rules), &p, &n), ==, 0);
	g_assert_cmpint(run_devbpf(p, n, C, R | W, 1, 3), ==, 1);   /* null */
	g_assert_cmpint(run_devbpf(p, n, C, R, 1, 4), ==, 0);	    /* not null */
	g_assert_cmpint(run_devbpf(p, n, C, M, 10, 229), ==, 1);    /* mknod anything */
	g_assert_cmpint(run_devbpf(p, n, C, R, 10, 229), ==, 0);    /* but no open */
	g_assert_cmpint(run_devbpf(p, n, C, R | W, 136, 7), ==, 1); /* any pts */
	g_assert_cmpint(run_devbpf(p, n, B, R, 7, 2), ==, 1);	    /* read-only loop2 */
	g_assert_cmpint(run_devbpf(p, n, B, R | W, 7, 2), ==, 0);
	g_assert_cmpint(run_devbpf(p, n, B, M, 7, 2), ==, 0); /* no 'b *:* m' here */
	g_assert_cmpint(run_devbpf(p, n, B, R, 1, 3), ==, 0); /* type matters */
	g_clear_pointer(&p, g_free);
	g_assert_cmpint(vr_devbpf_program((const struct vr_dev_rule[]){{'x', 1, 1, 1}}, 1, &p, &n),
			==, -EINVAL);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/security/cap-names", test_cap_names);
	g_test_add_func("/security/caps-resolve", test_caps_resolve);
	g_test_add_func("/security/profile-errors", test_profile_errors);
	g_test_add_func("/security/profile-fields", test_profile_fields);
	g_test_add_func("/security/profile-build", test_profile_build);
	g_test_add_func("/security/builtin-profile", test_builtin_profile);
	g_test_add_func("/security/device-parse", test_device_parse);
	g_test_add_func("/security/devbpf", test_devbpf);
	return g_test_run();
}
