/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The state directory: one directory per container holding upper/, work/,
 * merged/ and state.json (id, command, pids, limits, cgroup, and the rootfs
 * as Docker's GraphDriver.Data), written atomically at every step so that
 * --list, --inspect and --cleanup (of a killed launcher's leftovers) can read it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <json-glib/json-glib.h>

#include "cleanup.h"
#include "fsutil.h"
#include "launcher.h"
#include "log.h"

#define VR_STATE_FILE "state.json"
#define VR_STATE_NEW ".new-"

char *vr_state_new_id(void)
{
	unsigned char b[6];
	GString *s = g_string_new("");

	if (getrandom(b, sizeof(b), 0) != sizeof(b)) {
		guint32 r = g_random_int();

		memcpy(b, &r, 4);
		b[4] = (unsigned char)getpid();
		b[5] = (unsigned char)(getpid() >> 8);
	}
	for (size_t i = 0; i < sizeof(b); i++)
		g_string_append_printf(s, "%02x", b[i]);
	return g_string_free(s, FALSE);
}

/*
 * The container's directory, locked (flock) for as long as this launcher
 * lives: --cleanup takes what nobody holds, with or without a state.json.
 * Made under a dot-name, locked, then renamed into place (never over an
 * existing one), so that no unlocked, live directory is ever visible. A
 * --cleanup may remove the dot-name between our mkdir and our lock (it takes
 * any unlocked one, a killed launcher's): then we start again.
 */
int vr_state_create_dir(const char *state_dir, const char *id, int *ret_lock)
{
	g_autofree char *name = g_strconcat(VR_STATE_NEW, id, NULL);
	g_autofree char *dir = g_build_filename(state_dir, id, NULL);
	_cleanup_close_ int sfd = open(state_dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	int r = -ENOENT;

	if (sfd < 0)
		return log_error_errno(-errno, "cannot open state directory '%s'", state_dir);
	for (int attempt = 0; attempt < 10 && r == -ENOENT; attempt++) {
		_cleanup_close_ int fd = -1;

		if (mkdirat(sfd, name, 0711) < 0)
			return log_error_errno(-errno, "failed to create '%s/%s'", state_dir, name);
		fd = openat(sfd, name, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		/* Blocking: another launcher's or --cleanup's probe holds it for a moment at most.
		 */
		if (fd < 0 || flock(fd, LOCK_EX) < 0) {
			r = -errno;
			if (r == -ENOENT)
				continue;
			unlinkat(sfd, name, AT_REMOVEDIR);
			return log_error_errno(r, "cannot lock '%s/%s'", state_dir, name);
		}
		if (renameat2(sfd, name, sfd, id, RENAME_NOREPLACE) == 0) {
			*ret_lock = TAKE_FD(fd);
			return 0;
		}
		r = -errno;
		if (r == -ENOENT)
			continue;
		unlinkat(sfd, name, AT_REMOVEDIR);
		if (r == -EEXIST)
			return log_error_errno(r, "a container named '%s' already exists in '%s'",
					       id, state_dir);
		return log_error_errno(r, "failed to create '%s'", dir);
	}
	return log_error_errno(r, "failed to create '%s'", dir);
}

/* True when a live launcher holds the directory (see vr_state_create_dir). */
static bool vr_state_locked(int dfd)
{
	if (flock(dfd, LOCK_SH | LOCK_NB) == 0) {
		flock(dfd, LOCK_UN);
		return false;
	}
	return errno == EWOULDBLOCK;
}

static bool vr_state_dir_locked(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	return fd >= 0 && vr_state_locked(fd);
}

/*
 * The pid that took the flock on the file (dev, ino), from /proc/locks; 0 when
 * unknown. A flock belongs to the open file, not to that process: the children
 * of a killed launcher that still share its fd (a daemon between fork and exec,
 * the container's init dying of PR_SET_PDEATHSIG) hold it a moment longer.
 */
static pid_t vr_flock_owner(const struct stat *st)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_get_contents("/proc/locks", &text, NULL, NULL))
		return 0;
	lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l; l++) {
		char type[16];
		unsigned int maj, min;
		unsigned long ino;
		int pid;

		/* "1: FLOCK  ADVISORY  WRITE 42 00:1f:1234 0 EOF"; a waiter has "->" after "1:" */
		if (strstr(*l, "->") ||
		    sscanf(*l, "%*d: %15s %*s %*s %d %x:%x:%lu", type, &pid, &maj, &min, &ino) != 5)
			continue;
		if (strcmp(type, "FLOCK") == 0 && maj == major(st->st_dev) &&
		    min == minor(st->st_dev) && ino == st->st_ino)
			return pid > 0 ? pid : 0;
	}
	return 0;
}

/*
 * dir, locked for --cleanup, or -1 while a live launcher holds it. A lock whose
 * launcher is gone is held only by its dying children: wait for them (10 s at
 * most), so that a --cleanup right after a kill -9 finds everything.
 */
static int vr_state_take(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	pid_t owner = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -1;
	for (int i = 0; i < 200; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return TAKE_FD(fd);
		if (errno != EWOULDBLOCK)
			return -1;
		owner = vr_flock_owner(&st);
		if (owner == 0 || vr_proc_running(owner))
			return -1;
		nanosleep(&(struct timespec){.tv_nsec = 50L * 1000 * 1000}, NULL);
	}
	log_warning("'%s' stays: processes of its killed launcher (pid %d) still hold it", dir,
		    (int)owner);
	return -1;
}

/* name in state_dir is a container's directory that a live launcher holds, state or not. */
bool vr_state_creating(const char *state_dir, const char *name)
{
	const char *id = g_str_has_prefix(name, VR_STATE_NEW) ? name + strlen(VR_STATE_NEW) : name;
	g_autofree char *dir = NULL;

	if (!vr_state_name_valid(id))
		return false;
	dir = g_build_filename(state_dir, name, NULL);
	return vr_state_dir_locked(dir);
}

bool vr_state_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!g_ascii_isalnum(name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.')
			return false;
	return true;
}

static void vr_json_str(JsonBuilder *b, const char *key, const char *val)
{
	json_builder_set_member_name(b, key);
	if (val)
		json_builder_add_string_value(b, val);
	else
		json_builder_add_null_value(b);
}

static void vr_json_int(JsonBuilder *b, const char *key, gint64 val)
{
	json_builder_set_member_name(b, key);
	json_builder_add_int_value(b, val);
}

static void vr_json_bool(JsonBuilder *b, const char *key, gboolean val)
{
	json_builder_set_member_name(b, key);
	json_builder_add_boolean_value(b, val);
}

static void vr_state_build_limits(JsonBuilder *b, const struct vr_limits *l)
{
	json_builder_set_member_name(b, "Limits");
	json_builder_begin_object(b);
	vr_json_int(b, "Memory", (gint64)l->memory);
	vr_json_int(b, "NanoCpus", (gint64)(l->cpu_milli * 1000000));
	vr_json_int(b, "CpuPeriod", l->cpu_milli ? (gint64)l->cpu_period : 0);
	vr_json_int(b, "CpuQuota",
		    l->cpu_milli ? (gint64)(l->cpu_milli * l->cpu_period / 1000) : 0);
	vr_json_str(b, "CpusetCpus", l->cpuset_cpus ? l->cpuset_cpus : "");
	vr_json_int(b, "PidsLimit", (gint64)l->pids);
	json_builder_end_object(b);
}

static JsonNode *vr_state_build(struct vr_ctx *ctx)
{
	const struct vr_config *cfg = ctx->cfg;
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(GString) lower = g_string_new("");

	/* LowerDir: the layers as given, ':' separated (overlay's escaping for ':'). */
	for (guint i = 0; i < cfg->layers->len; i++) {
		const char *l = cfg->layers->pdata[i];

		if (i)
			g_string_append_c(lower, ':');
		for (; *l; l++) {
			if (*l == ':' || *l == '\\')
				g_string_append_c(lower, '\\');
			g_string_append_c(lower, *l);
		}
	}
	json_builder_begin_object(b);
	vr_json_str(b, "Id", ctx->id);
	if (!ctx->created) {
		g_autoptr(GDateTime) now = g_date_time_new_now_utc();

		ctx->created = g_date_time_format_iso8601(now);
	}
	vr_json_str(b, "Created", ctx->created);
	vr_json_str(b, "Status", ctx->status);
	if (strcmp(ctx->status, "exited") == 0)
		vr_json_int(b, "ExitCode", ctx->exit_status);
	json_builder_set_member_name(b, "Command");
	json_builder_begin_array(b);
	for (char **a = cfg->argv; *a; a++)
		json_builder_add_string_value(b, *a);
	json_builder_end_array(b);
	vr_json_int(b, "Pid", ctx->init_pid);
	vr_json_int(b, "PidStartTime", (gint64)ctx->init_start);
	{
		uint64_t start = 0;

		vr_proc_start_time(getpid(), &start);
		vr_json_int(b, "LauncherPid", getpid());
		vr_json_int(b, "LauncherStartTime", (gint64)start);
	}
	vr_json_str(b, "Hostname", cfg->hostname ? cfg->hostname : ctx->id);
	vr_json_bool(b, "Rootless", cfg->rootless);
	vr_json_str(b, "Net", cfg->net == VR_NET_NONE ? "none" : "host");
	vr_state_build_limits(b, &cfg->limits);
	json_builder_set_member_name(b, "Cgroup");
	if (ctx->cgroup_name) {
		json_builder_begin_object(b);
		vr_json_str(b, "Name", ctx->cgroup_name);
		json_builder_set_member_name(b, "Paths");
		json_builder_begin_object(b);
		for (guint i = 0; i < ctx->cgroup_controllers->len; i++)
			vr_json_str(b, ctx->cgroup_controllers->pdata[i],
				    ctx->cgroup_paths->pdata[i]);
		json_builder_end_object(b);
		json_builder_end_object(b);
	} else {
		json_builder_add_null_value(b);
	}
	vr_security_state(b, ctx);
	json_builder_set_member_name(b, "GraphDriver");
	json_builder_begin_object(b);
	vr_json_str(b, "Name", "veneer-unionfs");
	json_builder_set_member_name(b, "Data");
	json_builder_begin_object(b);
	vr_json_str(b, "LowerDir", lower->str);
	vr_json_str(b, "UpperDir", ctx->upper);
	vr_json_str(b, "WorkDir", ctx->work);
	vr_json_str(b, "MergedDir", ctx->merged);
	json_builder_end_object(b);
	json_builder_end_object(b);
	vr_json_int(b, "UnionPid", ctx->union_pid);
	vr_json_int(b, "UnionStartTime", (gint64)ctx->union_start);
	vr_json_str(b, "Procfs", ctx->procfs_mount);
	json_builder_set_member_name(b, "Mounts");
	json_builder_begin_array(b);
	for (guint i = 0; i < cfg->volumes->len; i++) {
		const struct vr_volume *v = cfg->volumes->pdata[i];

		json_builder_begin_object(b);
		vr_json_str(b, "Type", "bind");
		vr_json_str(b, "Source", v->host);
		vr_json_str(b, "Destination", v->ctr);
		vr_json_bool(b, "RW", !v->ro);
		vr_json_bool(b, "CopyData", !v->nocopy);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	vr_json_str(b, "StateDir", ctx->dir);
	vr_json_bool(b, "FreshUpper", ctx->fresh_upper);
	vr_json_bool(b, "Keep", cfg->keep);
	json_builder_end_object(b);
	return json_builder_get_root(b);
}

int vr_state_write(struct vr_ctx *ctx)
{
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = vr_state_build(ctx);
	g_autofree char *path = g_build_filename(ctx->dir, VR_STATE_FILE, NULL);
	g_autofree char *tmp = g_build_filename(ctx->dir, VR_STATE_FILE ".tmp", NULL);
	g_autofree char *text = NULL;
	g_autoptr(GError) err = NULL;

	json_generator_set_root(gen, root);
	json_generator_set_pretty(gen, TRUE);
	text = json_generator_to_data(gen, NULL);
	if (!g_file_set_contents_full(tmp, text, -1, G_FILE_SET_CONTENTS_NONE, 0600, &err))
		return log_error_errno(-EIO, "failed to write '%s': %s", tmp, err->message);
	if (rename(tmp, path) < 0)
		return log_error_errno(-errno, "failed to write '%s'", path);
	return 0;
}

static JsonNode *vr_state_read(const char *state_dir, const char *id)
{
	g_autofree char *path = g_build_filename(state_dir, id, VR_STATE_FILE, NULL);
	g_autoptr(JsonParser) p = json_parser_new();

	if (!json_parser_load_from_file(p, path, NULL))
		return NULL;
	if (!JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)))
		return NULL;
	return json_node_copy(json_parser_get_root(p));
}

static gint64 vr_obj_int(JsonObject *o, const char *key)
{
	JsonNode *n = json_object_get_member(o, key);

	return n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_int(n) : 0;
}

static const char *vr_obj_str(JsonObject *o, const char *key)
{
	JsonNode *n = json_object_get_member(o, key);

	return n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_string(n) : NULL;
}

static bool vr_state_running(JsonObject *o)
{
	return vr_proc_matches((pid_t)vr_obj_int(o, "LauncherPid"),
			       (uint64_t)vr_obj_int(o, "LauncherStartTime"));
}

static gint vr_state_cmp(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Container ids in the state directory, sorted. */
static GPtrArray *vr_state_ids(const char *state_dir)
{
	GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
	_cleanup_closedir_ DIR *d = opendir(state_dir);
	struct dirent *de;

	if (!d)
		return ids;
	while ((de = readdir(d))) {
		g_autofree char *f = NULL;

		if (!vr_state_name_valid(de->d_name))
			continue;
		f = g_build_filename(state_dir, de->d_name, VR_STATE_FILE, NULL);
		if (access(f, F_OK) == 0)
			g_ptr_array_add(ids, g_strdup(de->d_name));
	}
	g_ptr_array_sort(ids, vr_state_cmp);
	return ids;
}

static void vr_print_node(JsonNode *node)
{
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autofree char *text = NULL;

	json_generator_set_root(gen, node);
	json_generator_set_pretty(gen, TRUE);
	text = json_generator_to_data(gen, NULL);
	printf("%s\n", text);
}

/* The stored state plus "Running", computed now. */
static JsonNode *vr_state_live(const char *state_dir, const char *id)
{
	JsonNode *n = vr_state_read(state_dir, id);

	if (n) {
		JsonObject *o = json_node_get_object(n);

		json_object_set_boolean_member(o, "Running", vr_state_running(o));
	}
	return n;
}

int vr_state_list(const char *state_dir)
{
	g_autoptr(GPtrArray) ids = vr_state_ids(state_dir);
	g_autoptr(JsonArray) arr = json_array_new();
	g_autoptr(JsonNode) root = json_node_new(JSON_NODE_ARRAY);

	for (guint i = 0; i < ids->len; i++) {
		JsonNode *n = vr_state_live(state_dir, ids->pdata[i]);

		if (n)
			json_array_add_element(arr, n);
	}
	json_node_set_array(root, arr);
	vr_print_node(root);
	return 0;
}

int vr_state_inspect(const char *state_dir, const char *id)
{
	g_autoptr(JsonNode) n = NULL;

	if (!vr_state_name_valid(id) || !(n = vr_state_live(state_dir, id))) {
		fprintf(stderr, "veneer-run: no container '%s' in '%s'\n", id, state_dir);
		return VR_EXIT_NO_CONTAINER;
	}
	vr_print_node(n);
	return 0;
}

/* Stop a process recorded in the state when it is still the same process. */
static void vr_state_kill(JsonObject *o, const char *pid_key, const char *start_key, int sig)
{
	pid_t pid = (pid_t)vr_obj_int(o, pid_key);
	int pidfd;

	if (!vr_proc_matches(pid, (uint64_t)vr_obj_int(o, start_key)))
		return;
	pidfd = vr_pidfd_open(pid);
	if (pidfd < 0)
		return;
	if (sig == SIGKILL) {
		kill(pid, SIGKILL);
		vr_pidfd_wait(pidfd, pid, 10000, NULL);
	} else {
		vr_unionfs_stop(pid, pidfd, NULL);
	}
	close(pidfd);
	/* Belt and braces: not done before /proc shows it gone (or a zombie of another parent). */
	for (int i = 0; i < 200 && vr_proc_running(pid); i++)
		nanosleep(&(struct timespec){.tv_nsec = 50L * 1000 * 1000}, NULL);
	if (vr_proc_running(pid))
		log_warning("pid %d (%s) is still running", (int)pid, pid_key);
}

static int vr_state_cleanup_one(const char *state_dir, const char *id, JsonObject *o)
{
	g_autofree char *dir = g_build_filename(state_dir, id, NULL);
	JsonObject *data = NULL;
	JsonNode *cg = json_object_get_member(o, "Cgroup");
	bool fresh = json_object_get_boolean_member_with_default(o, "FreshUpper", FALSE);
	bool keep = json_object_get_boolean_member_with_default(o, "Keep", FALSE);
	int r = 0;

	vr_state_kill(o, "Pid", "PidStartTime", SIGKILL);
	vr_state_kill(o, "UnionPid", "UnionStartTime", SIGTERM);
	vr_relay_log(dir);
	if (cg && JSON_NODE_HOLDS_OBJECT(cg)) {
		JsonObject *c = json_node_get_object(cg);
		JsonNode *paths = json_object_get_member(c, "Paths");
		g_autoptr(GPtrArray) ctrls = g_ptr_array_new_with_free_func(g_free);

		if (paths && JSON_NODE_HOLDS_OBJECT(paths)) {
			g_autoptr(GList) names =
				json_object_get_members(json_node_get_object(paths));

			for (GList *l = names; l; l = l->next)
				g_ptr_array_add(ctrls, g_strdup(l->data));
		}
		if (vr_obj_str(c, "Name"))
			r = vr_cgroup_remove(vr_obj_str(c, "Name"), ctrls);
	}
	if (json_object_has_member(o, "Security")) {
		JsonObject *sec = json_object_get_object_member(o, "Security");
		const char *devcg = sec ? vr_obj_str(sec, "DeviceCgroup") : NULL;

		if (devcg && vr_devices_cgroup_remove(devcg) < 0)
			r = -EBUSY;
	}
	if (json_object_has_member(o, "GraphDriver")) {
		JsonObject *gd = json_object_get_object_member(o, "GraphDriver");

		if (gd && json_object_has_member(gd, "Data"))
			data = json_object_get_object_member(gd, "Data");
	}
	/* Only what veneer-run made goes: never a user's --upper or a volume. */
	{
		g_autofree char *work = g_build_filename(dir, "work", NULL);
		g_autofree char *merged = g_build_filename(dir, "merged", NULL);
		g_autofree char *lower = g_build_filename(dir, "lower", NULL);
		g_autofree char *upper = g_build_filename(dir, "upper", NULL);
		g_autofree char *state = g_build_filename(dir, VR_STATE_FILE, NULL);
		const char *recorded_upper = data ? vr_obj_str(data, "UpperDir") : NULL;
		const char *recorded_work = data ? vr_obj_str(data, "WorkDir") : NULL;
		g_autofree char *beside = g_strdup_printf(".veneer-work-%s", id);

		vr_rm_rf(work);
		/* A work dir beside an --upper on another file system (see vr_work_path). */
		if (recorded_work && g_str_has_suffix(recorded_work, beside))
			vr_rm_rf(recorded_work);
		rmdir(merged);
		rmdir(lower);
		if (fresh && !keep && recorded_upper && strcmp(recorded_upper, upper) == 0)
			vr_rm_rf(upper);
		if (!keep || !fresh) {
			unlink(state);
			vr_hide_unregister(dir);
		}
		rmdir(dir);
	}
	printf("%s\n", id);
	return r;
}

static const char *const vr_state_trees[] = {"work", "upper"};
static const char *const vr_state_points[] = {"merged", "lower"};
static const char *const vr_state_files[] = {VR_UNIONFS_LOG, VR_STATE_FILE ".tmp"};

/* Nothing in dir but what a launcher makes there. */
static bool vr_state_only_ours(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return false;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		bool ours = strcmp(n, ".") == 0 || strcmp(n, "..") == 0;

		for (size_t i = 0; i < G_N_ELEMENTS(vr_state_trees); i++)
			ours = ours || strcmp(n, vr_state_trees[i]) == 0;
		for (size_t i = 0; i < G_N_ELEMENTS(vr_state_points); i++)
			ours = ours || strcmp(n, vr_state_points[i]) == 0;
		for (size_t i = 0; i < G_N_ELEMENTS(vr_state_files); i++)
			ours = ours || strcmp(n, vr_state_files[i]) == 0;
		if (!ours)
			return false;
	}
	return true;
}

/*
 * A container directory without a state.json that no launcher holds: a
 * launcher killed between creating it and writing the state, or one that
 * could not finish its teardown (its union mount was busy). What veneer
 * makes there goes; anything else stays, and so does the directory.
 */
static void vr_state_cleanup_stateless(const char *state_dir, const char *name)
{
	g_autofree char *dir = g_build_filename(state_dir, name, NULL);
	const char *id = g_str_has_prefix(name, VR_STATE_NEW) ? name + strlen(VR_STATE_NEW) : name;

	for (size_t i = 0; i < G_N_ELEMENTS(vr_state_trees); i++) {
		g_autofree char *p = g_build_filename(dir, vr_state_trees[i], NULL);

		vr_rm_rf(p);
	}
	/* Mount vr_state_points: never recursed into (one could still be mounted, elsewhere). */
	for (size_t i = 0; i < G_N_ELEMENTS(vr_state_points); i++) {
		g_autofree char *p = g_build_filename(dir, vr_state_points[i], NULL);

		umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW);
		rmdir(p);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(vr_state_files); i++) {
		g_autofree char *p = g_build_filename(dir, vr_state_files[i], NULL);

		unlink(p);
	}
	vr_hide_unregister(dir);
	if (rmdir(dir) < 0) {
		log_warning_errno(-errno, "could not remove '%s'", dir);
		return;
	}
	printf("%s\n", id);
}

/* Names in the state directory that look like containers' but have no state.json. */
static GPtrArray *vr_state_stateless(const char *state_dir)
{
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	_cleanup_closedir_ DIR *d = opendir(state_dir);
	struct dirent *de;

	if (!d)
		return names;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		const char *id = g_str_has_prefix(n, VR_STATE_NEW) ? n + strlen(VR_STATE_NEW) : n;
		g_autofree char *dir = g_build_filename(state_dir, n, NULL);
		g_autofree char *f = g_build_filename(dir, VR_STATE_FILE, NULL);
		struct stat st;

		if (!vr_state_name_valid(id) || lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
		    access(f, F_OK) == 0 || errno != ENOENT)
			continue;
		/* An unheld dot-name may be a launcher's between mkdir and lock: it starts again.
		 */
		if (!vr_state_only_ours(dir))
			continue;
		g_ptr_array_add(names, g_strdup(n));
	}
	g_ptr_array_sort(names, vr_state_cmp);
	return names;
}

int vr_state_cleanup(const char *state_dir)
{
	g_autoptr(GPtrArray) ids = vr_state_ids(state_dir);
	g_autoptr(GPtrArray) stateless = vr_state_stateless(state_dir);
	int r = 0;

	for (guint i = 0; i < ids->len; i++) {
		g_autoptr(JsonNode) n = vr_state_read(state_dir, ids->pdata[i]);
		g_autofree char *dir = g_build_filename(state_dir, ids->pdata[i], NULL);
		JsonObject *o;
		const char *status;
		_cleanup_close_ int lock = -1;

		if (!n)
			continue;
		o = json_node_get_object(n);
		status = vr_obj_str(o, "Status");
		if (vr_state_running(o) || (status && strcmp(status, "exited") == 0) ||
		    (lock = vr_state_take(dir)) < 0)
			continue; /* alive, or finished cleanly (a --keep'd upper) */
		if (vr_state_cleanup_one(state_dir, ids->pdata[i], o) < 0)
			r = VR_EXIT_SETUP;
	}
	for (guint i = 0; i < stateless->len; i++) {
		g_autofree char *dir = g_build_filename(state_dir, stateless->pdata[i], NULL);
		/* Held while we work: a launcher cannot take it meanwhile (it never reuses one). */
		_cleanup_close_ int fd = vr_state_take(dir);

		if (fd < 0)
			continue;
		vr_state_cleanup_stateless(state_dir, stateless->pdata[i]);
	}
	return r;
}
