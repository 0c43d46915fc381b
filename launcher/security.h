/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The container's confinement: what the command line asked for (struct
 * vr_security, part of struct vr_config), what validation resolved it to, and
 * the prototypes of the files that apply it, grouped by file: caps.c,
 * seccomp-profile.c, seccomp.c, devices.c, devices-bpf.c, masks.c, hide.c and
 * security.c (the options and their validation).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

struct vr_ctx;
struct vr_config;

/* Access bits of a device rule, as the v1 controller spells them "rwm". */
enum {
	VR_DEV_MKNOD = 1,
	VR_DEV_READ = 2,
	VR_DEV_WRITE = 4,
	VR_DEV_RWM = 7,
};

/* One allow rule of the device controller; type 'a' (any), 'c' or 'b'; -1: any number. */
struct vr_dev_rule {
	char type;
	int64_t major;
	int64_t minor;
	unsigned access;
};

/* --device HOST[:CTR][:rwm] */
struct vr_device {
	char *host;
	char *ctr;
	unsigned access;
	/* From stat(HOST) at validation. */
	char type;
	unsigned major;
	unsigned minor;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

/* How the device allow list is enforced. */
enum vr_devcg {
	VR_DEVCG_NONE, /* rootless or --privileged */
	VR_DEVCG_V1,   /* the v1 devices controller */
	VR_DEVCG_BPF,  /* a BPF_CGROUP_DEVICE program on a cgroup2 directory */
};

struct vr_security {
	bool privileged;
	bool no_new_privs;
	bool seccomp_unconfined;
	char *seccomp_file; /* NULL: the default profile built into veneer-run */
	GPtrArray *cap_add; /* names as given */
	GPtrArray *cap_drop;
	GPtrArray *devices; /* struct vr_device * */
	GPtrArray *masks;   /* absolute, normalised paths inside the container */
	/* Resolved by vr_security_validate(). */
	uint64_t caps;		     /* bit N: capability N, in all sets of COMMAND */
	struct vr_bpf *seccomp;	     /* COMMAND's filter, NULL: none */
	struct vr_bpf *init_seccomp; /* PID 1's own */
	enum vr_devcg devcg;	     /* how devices are restricted */
};

/* caps.c */
#define VR_CAPS_DEFAULT 0xa80425fbULL /* the OCI/Docker default set */
#define VR_CAP_NAME_MAX 32
int vr_cap_last(void);
uint64_t vr_caps_all(void);
int vr_cap_from_name(const char *name);
const char *vr_cap_name(int cap, char buf[static VR_CAP_NAME_MAX]);
int vr_caps_resolve(const struct vr_security *sec, uint64_t available, uint64_t *ret,
		    char **ret_error);
int vr_caps_available(uint64_t *ret);
int vr_caps_apply(uint64_t caps, bool inheritable, bool bounding);
int vr_caps_bound(uint64_t caps);

/* seccomp-profile.c */
struct vr_sc_arg {
	unsigned index;
	uint64_t value;
	uint64_t value_two;
	int op; /* enum scmp_compare */
};

/* "includes" or "excludes" of one entry. */
struct vr_sc_cond {
	uint64_t caps;	    /* capabilities named and known */
	bool unknown_cap;   /* a capability this kernel/libcap-ng does not know */
	GPtrArray *arches;  /* Go-style names ("amd64", "x86", ...) */
	bool has_kernel;    /* minKernel given */
	unsigned kernel[2]; /* its major, minor */
};

struct vr_sc_rule {
	guint index; /* position in "syscalls", for messages */
	GPtrArray *names;
	uint32_t action; /* SCMP_ACT_* with its errno/trace value */
	GArray *args;	 /* struct vr_sc_arg */
	struct vr_sc_cond includes;
	struct vr_sc_cond excludes;
};

struct vr_sc_profile {
	uint32_t default_action;
	GArray *arches;	  /* uint32_t SCMP_ARCH_* to add besides the native one */
	GPtrArray *rules; /* struct vr_sc_rule * */
	bool flag_log;
	bool flag_spec_allow;
};

int vr_sc_profile_parse(const char *json, gssize len, uint32_t native_arch,
			struct vr_sc_profile **ret, char **ret_error);
void vr_sc_profile_free(struct vr_sc_profile *p);
const char *vr_sc_arch_goname(uint32_t arch);
bool vr_sc_rule_applies(const struct vr_sc_rule *r, uint64_t caps, const char *arch,
			const unsigned kernel[2]);
int vr_sc_kernel_version(unsigned ret[2]);

/* seccomp.c */
/* A seccomp filter compiled to BPF (before any fork: libseccomp's work is done once). */
struct vr_bpf {
	unsigned flags; /* SECCOMP_FILTER_FLAG_* */
	unsigned short len;
	void *insns; /* struct sock_filter[len] */
};

int vr_seccomp_default_json(const char **ret, gsize *ret_len);
int vr_seccomp_build(const struct vr_sc_profile *p, uint64_t caps, const unsigned kernel[2],
		     void **ret_filter, char **ret_error);
int vr_seccomp_init_filter(void **ret_filter);
void vr_seccomp_free(void *filter);
int vr_seccomp_compile(void *filter, struct vr_bpf **ret);
int vr_seccomp_load(const struct vr_bpf *bpf);
void vr_bpf_free(struct vr_bpf *bpf);

/* devices.c */
int vr_device_parse(const char *spec, struct vr_device **ret);
void vr_device_free(struct vr_device *d);
int vr_device_stat(struct vr_device *d);
GArray *vr_devices_rules(const struct vr_config *cfg);
int vr_devices_cgroup_setup(struct vr_ctx *ctx);
int vr_devices_cgroup_attach(struct vr_ctx *ctx, pid_t pid);
int vr_devices_cgroup_remove(const char *path);
enum vr_devcg vr_devices_mode(const struct vr_config *cfg);
int vr_devices_populate(const struct vr_ctx *ctx, int devfd, const char *dev);

/* devices-bpf.c */
struct bpf_insn;
int vr_devbpf_program(const struct vr_dev_rule *rules, size_t n, struct bpf_insn **ret,
		      size_t *ret_len);
int vr_devbpf_attach(int cgroup_fd, const struct vr_dev_rule *rules, size_t n);

/* masks.c */
int vr_masks_proc_sys(const struct vr_ctx *ctx, int rootfd);
int vr_mask_at(int rootfd, const char *path, bool missing_ok);
int vr_masks_user(const struct vr_ctx *ctx, int rootfd);

/* hide.c */
int vr_hide_register(struct vr_ctx *ctx);
int vr_hide_push(struct vr_ctx *ctx);
int vr_hide_update(struct vr_ctx *ctx);
int vr_hide_apply(const struct vr_ctx *ctx, int rootfd);
int vr_hide_apply_late(const struct vr_ctx *ctx);
void vr_hide_unregister(const char *dir);

/* security.c */
enum {
	VR_OPT_CAP_ADD = 0x200,
	VR_OPT_CAP_DROP,
	VR_OPT_PRIVILEGED,
	VR_OPT_SECURITY_OPT,
	VR_OPT_DEVICE,
	VR_OPT_MASK,
};
#define VR_SECURITY_LONG_OPTIONS                                                \
	{"cap-add", required_argument, NULL, VR_OPT_CAP_ADD},                   \
		{"cap-drop", required_argument, NULL, VR_OPT_CAP_DROP},         \
		{"privileged", no_argument, NULL, VR_OPT_PRIVILEGED},           \
		{"security-opt", required_argument, NULL, VR_OPT_SECURITY_OPT}, \
		{"device", required_argument, NULL, VR_OPT_DEVICE},             \
	{                                                                       \
		"mask", required_argument, NULL, VR_OPT_MASK                    \
	}
int vr_security_option(struct vr_config *cfg, int opt, const char *arg, char **ret_error);
int vr_security_validate(struct vr_config *cfg, char **ret_error);
void vr_security_init(struct vr_security *sec);
struct _JsonBuilder;
void vr_security_state(struct _JsonBuilder *b, const struct vr_ctx *ctx);
void vr_security_done(struct vr_security *sec);
