/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The container's cgroup, all through libcgroup: "veneer-<id>" in every
 * hierarchy a limit needs (memory, cpu, cpuacct, cpuset, pids; devices for
 * the v1 device allow list), with cgroup v1
 * file names or v2 ones depending on where each controller is mounted;
 * attaching the init, and removal (killing stragglers) on exit or --cleanup.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <libcgroup.h>
#include <linux/magic.h>

#include "launcher.h"
#include "log.h"
#include "parse-util.h"

/* libcgroup keeps its mount table process-wide; this only records that it was read. */
static bool vr_cgroup_inited;

static int vr_cgroup_lib_init(void)
{
	int r;

	if (vr_cgroup_inited)
		return 0;
	r = cgroup_init();
	if (r != 0)
		return log_error_errno(-ENOENT, "libcgroup could not initialise: %s",
				       cgroup_strerror(r));
	vr_cgroup_inited = true;
	return 0;
}

/* Mount point of a controller and whether it is the unified (v2) hierarchy. */
static int vr_cgroup_mount(const char *controller, char **ret_mnt, bool *ret_v2)
{
	char *mnt = NULL;
	struct statfs sfs;
	int r;

	r = cgroup_get_subsys_mount_point(controller, &mnt);
	if (r != 0 || !mnt) {
		free(mnt);
		return -ENOENT;
	}
	*ret_v2 = statfs(mnt, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
	*ret_mnt = g_strdup(mnt);
	free(mnt);
	return 0;
}

bool vr_cgroup_wanted(const struct vr_config *cfg)
{
	const struct vr_limits *l = &cfg->limits;

	/* As root every container gets one, so veneer-procfs can account its CPU time. */
	if (!cfg->rootless)
		return true;
	return l->memory || l->cpu_milli || l->cpuset_cpus || l->pids;
}

/* The controllers this run needs, in creation order. */
static GPtrArray *vr_cgroup_controllers(const struct vr_config *cfg)
{
	GPtrArray *c = g_ptr_array_new();

	if (!cfg->rootless || cfg->limits.memory)
		g_ptr_array_add(c, "memory");
	if (!cfg->rootless || cfg->limits.cpu_milli)
		g_ptr_array_add(c, "cpu");
	if (!cfg->rootless)
		g_ptr_array_add(c, "cpuacct");
	if (cfg->limits.cpuset_cpus)
		g_ptr_array_add(c, "cpuset");
	if (!cfg->rootless || cfg->limits.pids)
		g_ptr_array_add(c, "pids");
	/* The device allow list (devices.c), where the controller is v1. */
	if (cfg->sec.devcg == VR_DEVCG_V1)
		g_ptr_array_add(c, "devices");
	return c;
}

/*
 * Whether the limits can be applied: as root always (when the controllers are
 * mounted); rootless only with a writable, delegated parent cgroup.
 */
int vr_cgroup_check(const struct vr_config *cfg, bool *ret_usable)
{
	g_autoptr(GPtrArray) ctrls = NULL;
	int r;

	*ret_usable = true;
	if (!vr_cgroup_wanted(cfg))
		return 0;
	r = vr_cgroup_lib_init();
	if (r < 0) {
		if (!cfg->rootless)
			return r;
		*ret_usable = false;
		return 0;
	}
	ctrls = vr_cgroup_controllers(cfg);
	for (guint i = 0; i < ctrls->len; i++) {
		g_autofree char *mnt = NULL;
		bool v2;

		if (vr_cgroup_mount(ctrls->pdata[i], &mnt, &v2) < 0) {
			if (strcmp(ctrls->pdata[i], "cpuacct") == 0)
				continue; /* accounting only; v2 has it in cpu */
			if (cfg->rootless) {
				*ret_usable = false;
				return 0;
			}
			return log_error_errno(-ENOENT, "cgroup controller '%s' is not mounted",
					       (const char *)ctrls->pdata[i]);
		}
		if (cfg->rootless && access(mnt, W_OK | X_OK) < 0) {
			*ret_usable = false;
			return 0;
		}
	}
	return 0;
}

static int vr_cgroup_set(struct cgroup_controller *ct, const char *name, const char *value)
{
	int r = cgroup_add_value_string(ct, name, value);

	if (r != 0)
		return log_error_errno(-EINVAL, "libcgroup refused %s=%s: %s", name, value,
				       cgroup_strerror(r));
	return 0;
}

static int vr_cgroup_fill(struct vr_ctx *ctx, struct cgroup *cg, const char *controller, bool v2)
{
	const struct vr_limits *l = &ctx->cfg->limits;
	struct cgroup_controller *ct = cgroup_add_controller(cg, controller);
	char buf[64];

	if (!ct)
		return log_error_errno(-ENOMEM, "libcgroup could not add controller '%s'",
				       controller);
	if (strcmp(controller, "memory") == 0 && l->memory) {
		snprintf(buf, sizeof(buf), "%" PRIu64, l->memory);
		return vr_cgroup_set(ct, v2 ? "memory.max" : "memory.limit_in_bytes", buf);
	}
	if (strcmp(controller, "cpu") == 0 && l->cpu_milli) {
		uint64_t quota = l->cpu_milli * l->cpu_period / 1000;
		int r;

		if (v2) {
			snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64, quota, l->cpu_period);
			return vr_cgroup_set(ct, "cpu.max", buf);
		}
		snprintf(buf, sizeof(buf), "%" PRIu64, l->cpu_period);
		r = vr_cgroup_set(ct, "cpu.cfs_period_us", buf);
		if (r < 0)
			return r;
		snprintf(buf, sizeof(buf), "%" PRIu64, quota);
		return vr_cgroup_set(ct, "cpu.cfs_quota_us", buf);
	}
	if (strcmp(controller, "cpuset") == 0 && l->cpuset_cpus) {
		g_autofree char *mnt = NULL;
		g_autofree char *mems_path = NULL;
		g_autofree char *mems = NULL;
		bool dummy;
		int r;

		r = vr_cgroup_set(ct, "cpuset.cpus", l->cpuset_cpus);
		if (r < 0 || v2)
			return r;
		/* v1 needs memory nodes before a task may join: the root's. */
		if (vr_cgroup_mount("cpuset", &mnt, &dummy) < 0)
			return -ENOENT;
		mems_path = g_build_filename(mnt, "cpuset.mems", NULL);
		if (!g_file_get_contents(mems_path, &mems, NULL, NULL))
			return log_error_errno(-EIO, "cannot read '%s'", mems_path);
		return vr_cgroup_set(ct, "cpuset.mems", g_strstrip(mems));
	}
	if (strcmp(controller, "pids") == 0 && l->pids) {
		snprintf(buf, sizeof(buf), "%" PRIu64, l->pids);
		return vr_cgroup_set(ct, "pids.max", buf);
	}
	return 0;
}

int vr_cgroup_create(struct vr_ctx *ctx)
{
	g_autoptr(GPtrArray) ctrls = vr_cgroup_controllers(ctx->cfg);
	g_autofree char *name = g_strdup_printf("veneer-%s", ctx->id);
	struct cgroup *cg;
	bool any_v2 = false;
	int r;

	r = vr_cgroup_lib_init();
	if (r < 0)
		return r;
	cg = cgroup_new_cgroup(name);
	if (!cg)
		return log_error_errno(-ENOMEM, "libcgroup could not allocate cgroup '%s'", name);
	ctx->cgroup_controllers = g_ptr_array_new_with_free_func(g_free);
	ctx->cgroup_paths = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; i < ctrls->len; i++) {
		const char *c = ctrls->pdata[i];
		g_autofree char *mnt = NULL;
		bool v2;

		if (vr_cgroup_mount(c, &mnt, &v2) < 0)
			continue; /* cpuacct on v2 (checked in vr_cgroup_check) */
		/* In v2 all controllers share one directory: list it once. */
		if (v2 && any_v2 && strcmp(c, "cpuacct") == 0)
			continue;
		any_v2 |= v2;
		r = vr_cgroup_fill(ctx, cg, c, v2);
		if (r < 0)
			goto out;
		g_ptr_array_add(ctx->cgroup_controllers, g_strdup(c));
		g_ptr_array_add(ctx->cgroup_paths, g_build_filename(mnt, name, NULL));
	}
	/*
	 * Written ahead: a launcher killed between the mkdir and the next state write
	 * leaves state.json naming the cgroup, so --cleanup removes it.
	 */
	ctx->cgroup_name = g_strdup(name);
	r = vr_state_write(ctx);
	if (r < 0)
		goto out;
	r = cgroup_create_cgroup(cg, 0);
	if (r != 0) {
		log_error("failed to create cgroup '%s': %s", name, cgroup_strerror(r));
		/* Whatever part of it exists goes again. */
		cgroup_delete_cgroup_ext(cg, CGFLAG_DELETE_IGNORE_MIGRATION);
		r = -EIO;
		goto out;
	}
	log_debug("created cgroup '%s'", ctx->cgroup_name);
out:
	if (r < 0)
		g_clear_pointer(&ctx->cgroup_name, g_free);
	cgroup_free(&cg);
	return r;
}

int vr_cgroup_attach(struct vr_ctx *ctx, pid_t pid)
{
	struct cgroup *cg;
	int r;

	if (!ctx->cgroup_name)
		return 0;
	cg = cgroup_new_cgroup(ctx->cgroup_name);
	if (!cg)
		return -ENOMEM;
	for (guint i = 0; i < ctx->cgroup_controllers->len; i++)
		cgroup_add_controller(cg, ctx->cgroup_controllers->pdata[i]);
	r = cgroup_attach_task_pid(cg, pid);
	cgroup_free(&cg);
	if (r != 0)
		return log_error_errno(-EIO, "failed to move pid %d into cgroup '%s': %s", (int)pid,
				       ctx->cgroup_name, cgroup_strerror(r));
	return 0;
}

/* Kill whatever still runs in one cgroup directory (a crashed container's leftovers). */
void vr_cgroup_kill_tasks(const char *dir)
{
	g_autofree char *procs_path = g_build_filename(dir, "cgroup.procs", NULL);
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_get_contents(procs_path, &text, NULL, NULL))
		return;
	lines = g_strsplit(text, "\n", -1);
	for (guint i = 0; lines[i]; i++) {
		unsigned pid;

		if (vc_parse_uint(lines[i], &pid) == 0 && pid > 1)
			kill((pid_t)pid, SIGKILL);
	}
}

/*
 * Remove "name" from every listed controller. Tasks still inside are killed
 * first (they can only be the container's), then the removal is retried
 * while the kernel finishes tearing them down.
 */
int vr_cgroup_remove(const char *name, GPtrArray *controllers)
{
	int result = 0;

	if (!name || !controllers)
		return 0;
	if (vr_cgroup_lib_init() < 0)
		return -ENOENT;
	for (guint i = 0; i < controllers->len; i++) {
		const char *c = controllers->pdata[i];
		g_autofree char *mnt = NULL;
		g_autofree char *dir = NULL;
		bool v2;
		int attempt;

		if (vr_cgroup_mount(c, &mnt, &v2) < 0)
			continue;
		dir = g_build_filename(mnt, name, NULL);
		for (attempt = 0; attempt < 100; attempt++) {
			struct cgroup *cg;
			int r;

			if (access(dir, F_OK) < 0)
				break;
			vr_cgroup_kill_tasks(dir);
			cg = cgroup_new_cgroup(name);
			if (!cg)
				return -ENOMEM;
			cgroup_add_controller(cg, c);
			r = cgroup_delete_cgroup_ext(cg, CGFLAG_DELETE_EMPTY_ONLY);
			cgroup_free(&cg);
			if (r == 0 && access(dir, F_OK) < 0)
				break;
			nanosleep(&(struct timespec){.tv_nsec = 20L * 1000 * 1000}, NULL);
		}
		if (access(dir, F_OK) == 0)
			result = log_error_errno(-EBUSY, "could not remove cgroup '%s'", dir);
	}
	return result;
}
