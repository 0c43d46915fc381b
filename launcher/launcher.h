/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-run's private types: the parsed command line (struct vr_config), the
 * run-time context of one container (struct vr_ctx, the single explicit context
 * of this single-threaded launcher), the exit codes, and the prototypes of each
 * file grouped by file.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

#include "security.h"

/*
 * Exit codes. Anything else is COMMAND's own status (128+N when killed by
 * signal N). Bad input is detected before anything is created.
 */
enum {
	VR_EXIT_USAGE = 121,	    /* unknown option, bad value, missing COMMAND */
	VR_EXIT_PATH = 122,	    /* a layer, --upper, volume or state path is unusable */
	VR_EXIT_PERM = 123,	    /* no permission (rootless limits, state dir, -u) */
	VR_EXIT_NO_CONTAINER = 124, /* --inspect ID: no such container */
	VR_EXIT_SETUP = 125,	    /* setting the container up failed at run time */
	VR_EXIT_CANNOT_EXEC = 126,  /* COMMAND exists but cannot be executed */
	VR_EXIT_NOT_FOUND = 127,    /* COMMAND not found */
};

enum vr_net {
	VR_NET_NONE,
	VR_NET_HOST,
};

enum vr_action {
	VR_ACTION_RUN,
	VR_ACTION_LIST,
	VR_ACTION_INSPECT,
	VR_ACTION_CLEANUP,
};

struct vr_volume {
	char *host; /* absolute, normalised */
	char *ctr;  /* absolute, normalised, as seen inside the container */
	bool ro;
	bool nocopy;
	bool must_exist; /* --mount type=bind: HOST is not created */
};

struct vr_limits {
	uint64_t memory;     /* bytes; 0 = unlimited */
	uint64_t cpu_milli;  /* --cpus * 1000; 0 = unlimited */
	uint64_t cpu_period; /* CFS period in microseconds */
	char *cpuset_cpus;   /* NULL = all */
	uint64_t pids;	     /* 0 = unlimited */
};

struct vr_config {
	enum vr_action action;
	char *inspect_id;
	GPtrArray *layers; /* absolute dirs, leftmost on top; {"/"} for the embedded default */
	bool default_layers;
	char *upper;	/* --upper, kept after exit; NULL = fresh one in the state dir */
	int upper_lock; /* flock'ed fd on --upper for the run, -1 until taken */
	bool keep;
	struct vr_limits limits;
	bool ignore_limits;
	bool no_procfs;
	char *procfs_mount;
	char *hostname;
	enum vr_net net;
	bool rootless;
	GPtrArray *env; /* "KEY=VAL" given with -e */
	char *workdir;
	bool have_user;
	uid_t uid;
	bool have_gid;
	gid_t gid;
	GPtrArray *volumes; /* struct vr_volume * */
	char *state_dir;
	char *name;
	char *unionfs_bin;
	char *procfs_bin;
	unsigned stop_timeout; /* seconds between forwarding SIGTERM and SIGKILL */
	char **argv;	       /* COMMAND and its arguments (borrowed from main's argv) */
	char *argv_area;       /* main's whole argv, blanked in PID 1 (security.h: init.c) */
	size_t argv_area_len;
	struct vr_security sec;
};

/* Everything one run created, so that clean-up undoes exactly that. */
struct vr_ctx {
	const struct vr_config *cfg;
	char *id;
	char *created; /* ISO 8601, set at the first state write */
	char *dir;     /* state_dir/id */
	int dir_lock;  /* flock'ed fd on dir while this launcher lives (state.c) */
	char *upper;
	char *work;
	char *merged;
	char *lower_view; /* mount point of the host-root view (embedded default) */
	char *lowerdir;	  /* the lowerdir= option handed to veneer-unionfs */
	bool fresh_upper;
	bool dir_created;
	int upper_lock; /* when --upper did not exist at validation */
	pid_t union_pid;
	int union_pidfd;
	bool union_died; /* its exit was seen while the container ran */
	uint64_t union_start;
	char *cgroup_name; /* NULL when no cgroup was created */
	GPtrArray *cgroup_controllers;
	GPtrArray *cgroup_paths;
	char *procfs_mount; /* the veneer-procfs instance used, NULL for none */
	pid_t init_pid;
	int init_pidfd;
	uint64_t init_start;
	int exit_status;
	const char *status;    /* "creating", "running", "exited" */
	uid_t host_uid;	       /* the caller, outside any user namespace */
	char *devcg_path;      /* cgroup2 directory made for the device program alone */
	GPtrArray *hide_paths; /* host directories masked in every container (hide.c) */
	bool hide_registered;
	int hide_fd; /* the registry and its root/ (hide.c), -1 when unusable */
	int hide_root_fd;
	int mntns_fd; /* the container's mount namespace, for later containers' masks */
};

/* ns.c */
int vr_ns_enter_rootless(uid_t outer_uid, gid_t outer_gid);
int vr_ns_clone(unsigned long flags, pid_t *ret_pid);
int vr_ns_loopback_up(void);
int vr_pidfd_open(pid_t pid);
int vr_pidfd_wait(int pidfd, pid_t pid, int timeout_ms, int *ret_status);
int vr_proc_start_time(pid_t pid, uint64_t *ret);
bool vr_proc_matches(pid_t pid, uint64_t start);
bool vr_proc_running(pid_t pid);

/* cgroup.c */
int vr_cgroup_check(const struct vr_config *cfg, bool *ret_usable);
int vr_cgroup_create(struct vr_ctx *ctx);
int vr_cgroup_attach(struct vr_ctx *ctx, pid_t pid);
int vr_cgroup_remove(const char *name, GPtrArray *controllers);
void vr_cgroup_kill_tasks(const char *dir);
bool vr_cgroup_wanted(const struct vr_config *cfg);

/* mounts.c */
int vr_mounts_private_view(struct vr_ctx *ctx);
int vr_mounts_rootfs(struct vr_ctx *ctx);
int vr_mounts_pivot(const char *newroot);
int vr_mount_setattr_ro(const char *path, bool recursive);

/* volumes.c */
int vr_volume_parse(const char *spec, struct vr_volume **ret);
int vr_mount_parse(const char *spec, struct vr_volume **ret, char **ret_err);
int vr_volumes_check_targets(const struct vr_config *cfg);
void vr_volume_free(struct vr_volume *v);
int vr_volumes_prepare(struct vr_ctx *ctx);
int vr_volumes_open(struct vr_ctx *ctx, int *fds);
int vr_volumes_attach(struct vr_ctx *ctx, int *fds);

/* daemons.c */
const char *vr_self_dir(void);
#define VR_UNIONFS_LOG "unionfs.log"
void vr_relay_log(const char *dir);
int vr_find_helper(const char *name, const char *env, const char *override, char **ret);
int vr_unionfs_start(struct vr_ctx *ctx);
int vr_unionfs_stop(pid_t pid, int pidfd, const char *merged);
int vr_procfs_ensure(struct vr_ctx *ctx);
bool vr_procfs_running(const struct vr_config *cfg);

/* lookup.c */
int vr_lookup_command(const struct vr_config *cfg, const char *path_env);

/* init.c */
extern const int vr_forwarded_signals[];
extern const size_t vr_n_forwarded_signals;
void vr_init_run(struct vr_ctx *ctx, int go_fd, int report_fd) __attribute__((noreturn));
const char *vr_env_get(GPtrArray *env, const char *key);
GPtrArray *vr_env_build(const struct vr_config *cfg, const char *hostname);

/* state.c */
char *vr_state_new_id(void);
int vr_state_create_dir(const char *state_dir, const char *id, int *ret_lock);
bool vr_state_creating(const char *state_dir, const char *name);
int vr_state_write(struct vr_ctx *ctx);
int vr_state_list(const char *state_dir);
int vr_state_inspect(const char *state_dir, const char *id);
int vr_state_cleanup(const char *state_dir);
bool vr_state_name_valid(const char *name);

/* run.c */
int vr_run(const struct vr_config *cfg);
int vr_lock_upper(const char *upper, int *ret_fd);
