/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * From a parsed seccomp profile to a libseccomp filter for one capability set:
 * the entries that apply (vr_sc_rule_applies), each name resolved for the
 * native architecture and the profile's others, argument conditions, flags;
 * and the default profile, launcher/seccomp.json compiled into veneer-run as a
 * GResource so that no path lookup can fail at run time.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <gio/gio.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include "cleanup.h"

#include "launcher.h"
#include "log.h"
#include "vr-resources.h"

#define VR_SECCOMP_RESOURCE "/org/veneer/run/seccomp.json"

int vr_seccomp_default_json(const char **ret, gsize *ret_len)
{
	static GBytes *bytes;

	if (!bytes) {
		g_autoptr(GError) err = NULL;

		vr_resources_register_resource(); /* --manual-register: no constructor */
		bytes = g_resource_lookup_data(vr_resources_get_resource(), VR_SECCOMP_RESOURCE,
					       G_RESOURCE_LOOKUP_FLAGS_NONE, &err);
		if (!bytes)
			return log_error_errno(-ENOENT,
					       "the built-in seccomp profile is missing: %s",
					       err->message);
	}
	*ret = g_bytes_get_data(bytes, ret_len);
	return 0;
}

/* Where one syscall got its argument-less action, to report a contradiction. */
struct vr_sc_plain {
	uint32_t action;
	guint index;
};

static int vr_sc_fail(char **ret_error, const struct vr_sc_rule *r, const char *name,
		      const char *fmt, ...) G_GNUC_PRINTF(4, 5);
static int vr_sc_fail(char **ret_error, const struct vr_sc_rule *r, const char *name,
		      const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	*ret_error = g_strdup_printf("syscalls[%u] (\"%s\"): %s", r->index, name, msg);
	return -EINVAL;
}

static bool vr_sc_args_repeat_index(GArray *args)
{
	unsigned seen = 0;

	for (guint i = 0; i < args->len; i++) {
		unsigned bit = 1u << g_array_index(args, struct vr_sc_arg, i).index;

		if (seen & bit)
			return true;
		seen |= bit;
	}
	return false;
}

static struct scmp_arg_cmp vr_sc_cmp(const struct vr_sc_arg *a)
{
	return (struct scmp_arg_cmp){
		.arg = a->index,
		.op = (enum scmp_compare)a->op,
		.datum_a = a->value,
		.datum_b = a->value_two,
	};
}

/*
 * One name of one entry. Conditions on different arguments are ANDed in one
 * rule; libseccomp cannot AND two conditions on the same argument, so those
 * become one rule each (ORed), as runc does.
 */
static int vr_sc_add(scmp_filter_ctx ctx, const struct vr_sc_rule *r, int nr, const char *name,
		     char **ret_error)
{
	GArray *args = r->args;
	int e;

	if (args->len == 0) {
		e = seccomp_rule_add_array(ctx, r->action, nr, 0, NULL);
	} else if (!vr_sc_args_repeat_index(args)) {
		struct scmp_arg_cmp cmp[6];

		for (guint i = 0; i < args->len; i++)
			cmp[i] = vr_sc_cmp(&g_array_index(args, struct vr_sc_arg, i));
		e = seccomp_rule_add_array(ctx, r->action, nr, args->len, cmp);
	} else {
		e = 0;
		for (guint i = 0; i < args->len && e == 0; i++) {
			struct scmp_arg_cmp cmp =
				vr_sc_cmp(&g_array_index(args, struct vr_sc_arg, i));

			e = seccomp_rule_add_array(ctx, r->action, nr, 1, &cmp);
		}
	}
	if (e < 0)
		return vr_sc_fail(ret_error, r, name, "libseccomp refused the rule: %s",
				  strerror(-e));
	return 0;
}

/*
 * The filter for a container whose bounding set is caps, on this kernel
 * version. Names libseccomp does not know (or that no architecture of the
 * filter has) are skipped, as Docker's profile lists calls of every
 * architecture; an entry with the default action adds nothing. Errors name the
 * entry. SCMP_FLTATR_CTL_NNP is off: veneer-run sets no_new_privs itself.
 */
int vr_seccomp_build(const struct vr_sc_profile *p, uint64_t caps, const unsigned kernel[2],
		     void **ret_filter, char **ret_error)
{
	g_autoptr(GHashTable) plain = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	uint32_t native = seccomp_arch_native();
	const char *arch = vr_sc_arch_goname(native);
	scmp_filter_ctx ctx;
	int r = 0;

	ctx = seccomp_init(p->default_action);
	if (!ctx) {
		*ret_error = g_strdup("libseccomp refused the default action");
		return -EINVAL;
	}
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0 ||
	    (p->flag_log && seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1) < 0) ||
	    (p->flag_spec_allow && seccomp_attr_set(ctx, SCMP_FLTATR_CTL_SSB, 1) < 0)) {
		*ret_error = g_strdup("libseccomp refused a filter flag");
		r = -EINVAL;
		goto fail;
	}
	for (guint i = 0; i < p->arches->len; i++) {
		uint32_t a = g_array_index(p->arches, uint32_t, i);
		int e = a == native ? 0 : seccomp_arch_add(ctx, a);

		if (e < 0 && e != -EEXIST) {
			*ret_error = g_strdup_printf("libseccomp cannot add architecture 0x%x: %s",
						     a, strerror(-e));
			r = -EINVAL;
			goto fail;
		}
	}
	for (guint i = 0; i < p->rules->len; i++) {
		const struct vr_sc_rule *rule = p->rules->pdata[i];

		if (!vr_sc_rule_applies(rule, caps, arch, kernel) ||
		    rule->action == p->default_action)
			continue;
		for (guint j = 0; j < rule->names->len; j++) {
			const char *name = rule->names->pdata[j];
			int nr = seccomp_syscall_resolve_name(name);
			struct vr_sc_plain *prev;

			if (nr == __NR_SCMP_ERROR) {
				log_debug("seccomp: no system call '%s' here", name);
				continue;
			}
			if (rule->args->len == 0) {
				prev = g_hash_table_lookup(plain, GINT_TO_POINTER(nr));
				if (prev && prev->action != rule->action) {
					r = vr_sc_fail(ret_error, rule, name,
						       "contradicts syscalls[%u], which gives it "
						       "another action",
						       prev->index);
					goto fail;
				}
				if (!prev) {
					prev = g_new(struct vr_sc_plain, 1);
					*prev = (struct vr_sc_plain){rule->action, rule->index};
					g_hash_table_insert(plain, GINT_TO_POINTER(nr), prev);
				}
			}
			r = vr_sc_add(ctx, rule, nr, name, ret_error);
			if (r < 0)
				goto fail;
		}
	}
	*ret_filter = ctx;
	return 0;
fail:
	seccomp_release(ctx);
	return r;
}

/*
 * PID 1's filter, once it has forked COMMAND: only what its loop (waiting,
 * forwarding signals, reaping, a message, exit) and the C library, ASan's
 * included, may need; the rest fails with ENOSYS. A few dozen rules, where
 * the profile's filter costs tens of milliseconds to build and load.
 */
int vr_seccomp_init_filter(void **ret_filter)
{
	static const char *const allowed[] = {
		"read",
		"write",
		"close",
		"exit",
		"exit_group",
		"rt_sigtimedwait",
		"rt_sigprocmask",
		"rt_sigreturn",
		"rt_sigaction",
		"sigaltstack",
		"wait4",
		"waitid",
		"kill",
		"tgkill",
		"getpid",
		"gettid",
		"brk",
		"mmap",
		"munmap",
		"mremap",
		"madvise",
		"mprotect",
		"futex",
		"clock_gettime",
		"nanosleep",
		"clock_nanosleep",
		"fstat",
		"newfstatat",
		"lseek",
		"sched_yield",
		"getrandom",
		"restart_syscall",
	};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));

	if (!ctx)
		return -ENOMEM;
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0)
		goto fail;
	for (size_t i = 0; i < G_N_ELEMENTS(allowed); i++) {
		int nr = seccomp_syscall_resolve_name(allowed[i]);

		if (nr != __NR_SCMP_ERROR && seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) < 0)
			goto fail;
	}
	*ret_filter = ctx;
	return 0;
fail:
	seccomp_release(ctx);
	return -EINVAL;
}

void vr_seccomp_free(void *filter)
{
	if (filter)
		seccomp_release((scmp_filter_ctx)filter);
}

void vr_bpf_free(struct vr_bpf *bpf)
{
	if (!bpf)
		return;
	g_free(bpf->insns);
	g_free(bpf);
}

/*
 * The BPF program of a filter, released: generated once in the launcher
 * rather than in each child (where it would also copy the launcher's pages
 * on write), and loaded there with seccomp(2) directly.
 */
int vr_seccomp_compile(void *filter, struct vr_bpf **ret)
{
	_cleanup_close_ int fd = memfd_create("veneer-seccomp", MFD_CLOEXEC);
	struct vr_bpf *bpf = g_new0(struct vr_bpf, 1);
	uint32_t log = 0, ssb = 0;
	struct stat st;
	int r;

	r = fd < 0 ? -errno : seccomp_export_bpf((scmp_filter_ctx)filter, fd);
	if (r >= 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r >= 0 && (st.st_size % sizeof(struct sock_filter) || st.st_size == 0 ||
		       st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS))
		r = -E2BIG;
	if (r >= 0) {
		bpf->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
		bpf->insns = g_malloc(st.st_size);
		if (pread(fd, bpf->insns, st.st_size, 0) != st.st_size)
			r = -EIO;
	}
	seccomp_attr_get((scmp_filter_ctx)filter, SCMP_FLTATR_CTL_LOG, &log);
	seccomp_attr_get((scmp_filter_ctx)filter, SCMP_FLTATR_CTL_SSB, &ssb);
	bpf->flags =
		(log ? SECCOMP_FILTER_FLAG_LOG : 0) | (ssb ? SECCOMP_FILTER_FLAG_SPEC_ALLOW : 0);
	seccomp_release((scmp_filter_ctx)filter);
	if (r < 0) {
		vr_bpf_free(bpf);
		return r;
	}
	*ret = bpf;
	return 0;
}

/* Needs no_new_privs or CAP_SYS_ADMIN in the caller's user namespace, as the kernel says. */
int vr_seccomp_load(const struct vr_bpf *bpf)
{
	struct sock_fprog prog = {.len = bpf->len, .filter = bpf->insns};

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, bpf->flags, &prog) < 0)
		return -errno;
	return 0;
}
