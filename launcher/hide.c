/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hiding veneer and other containers from a container whose base layer is
 * the host's /: each container registers the host directories that are its
 * own (its directory in the state directory, an --upper or work directory
 * elsewhere, the state directory, the shared procfs mount point) in one
 * registry, /run/veneer-hide: root's entries in its root/, which only root
 * may write; a user's at its top, a sticky world-writable directory, where an
 * entry counts only for directories its owner owns. A container starting
 * masks every registered directory in its own root (an empty read-only
 * tmpfs), and masks its own in every running container it may enter (setns
 * into their mount namespace) before its command runs, so that a container
 * started later is hidden from those started earlier too. The order makes it
 * race-free: B registers, then pushes into every container whose init is
 * registered; A's init scans the registry only after its own pid is
 * registered. So either B's push sees A, or A's scan sees B. A push into a
 * container whose init has not pivoted into its union yet is left to that
 * init, which scans once more after pivot_root. A's mount
 * namespace is entered through the fd A's launcher holds on it
 * (/proc/LAUNCHER/fd/N): PID 1 itself is not dumpable, which a rootless user
 * may not get past.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <json-glib/json-glib.h>
#include <linux/nsfs.h>

#include "cleanup.h"
#include "fd-util.h"
#include "launcher.h"
#include "log.h"
#include "path-util.h"

#define VR_HIDE_DIR "/run/veneer-hide"

/* A directory of the registry: root's, and made by root when missing; never trusted otherwise. */
static int vr_hide_open_dir(int parent, const char *name, mode_t mode)
{
	_cleanup_close_ int fd = -1;
	struct stat st;

	fd = openat(parent, name, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && geteuid() == 0) {
		/* Made private, then opened up: nobody gets in before it is checked. */
		if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST)
			return -errno;
		fd = openat(parent, name, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == 0 &&
		    (st.st_mode & 07777) == 0700 && fchmod(fd, mode) < 0)
			return -errno;
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid != 0 || (st.st_mode & 07777) != mode) {
		log_warning("'%s' in '%s' is not root's directory of mode %o: not used", name,
			    VR_HIDE_DIR, (unsigned)mode);
		return -EPERM;
	}
	return TAKE_FD(fd);
}

/*
 * Both directories of the registry, opened (and checked) once, before a
 * rootless launcher enters its user namespace: there root's files no longer
 * show as root's. The init inherits the fds.
 */
static int vr_hide_open(struct vr_ctx *ctx)
{
	int r;

	if (ctx->hide_fd >= 0)
		return 0;
	r = vr_hide_open_dir(AT_FDCWD, VR_HIDE_DIR, 01777);
	if (r < 0)
		return r;
	ctx->hide_fd = r;
	r = vr_hide_open_dir(ctx->hide_fd, "root", 0755);
	if (r < 0) {
		close(ctx->hide_fd);
		ctx->hide_fd = -1;
		return r;
	}
	ctx->hide_root_fd = r;
	return 0;
}

/* Root's entries go where only root writes. */
static int vr_hide_own_dirfd(const struct vr_ctx *ctx)
{
	return ctx->host_uid == 0 ? ctx->hide_root_fd : ctx->hide_fd;
}

static char *vr_hide_name(const char *dir)
{
	g_autofree char *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, dir, -1);

	return g_strdup_printf("%.24s.json", sum);
}

static void vr_hide_add(GPtrArray *paths, const char *p)
{
	struct stat st;

	if (!p || strcmp(p, "/") == 0 || lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
		return;
	for (guint i = 0; i < paths->len; i++)
		if (vc_path_is_inside(p, paths->pdata[i]))
			return;
	g_ptr_array_add(paths, g_strdup(p));
}

/*
 * A state directory is hidden whole only when it is veneer's alone: nothing in
 * it but containers' directories (not /tmp, not a --state-dir /var).
 */
static bool vr_hide_dedicated(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n = 0;

	if (!d)
		return false;
	while ((de = readdir(d))) {
		g_autofree char *state = NULL;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		state = g_build_filename(dir, de->d_name, "state.json", NULL);
		if (++n > 100000)
			return false;
		/* A container being created (no state yet) holds its directory's lock. */
		if (vr_state_name_valid(de->d_name) && access(state, F_OK) == 0)
			continue;
		if (!vr_state_creating(dir, de->d_name))
			return false;
	}
	return true;
}

/* The host directories that are this container's (or veneer's) and no other's business. */
static GPtrArray *vr_hide_paths(const struct vr_ctx *ctx)
{
	const struct vr_config *cfg = ctx->cfg;
	GPtrArray *paths = g_ptr_array_new_with_free_func(g_free);

	if (vr_hide_dedicated(cfg->state_dir))
		vr_hide_add(paths, cfg->state_dir);
	vr_hide_add(paths, ctx->dir);
	vr_hide_add(paths, ctx->upper);
	vr_hide_add(paths, ctx->work);
	if (ctx->procfs_mount && geteuid() == 0)
		vr_hide_add(paths, ctx->procfs_mount);
	return paths;
}

static int vr_hide_write(struct vr_ctx *ctx)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *name = vr_hide_name(ctx->dir);
	g_autofree char *tmp = g_strdup_printf(".tmp-%s", name);
	g_autofree char *text = NULL;
	_cleanup_close_ int fd = -1;
	uint64_t start = 0;
	int dfd, r;

	r = vr_hide_open(ctx);
	if (r < 0)
		return r;
	dfd = vr_hide_own_dirfd(ctx);
	vr_proc_start_time(getpid(), &start);
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "Dir");
	json_builder_add_string_value(b, ctx->dir);
	json_builder_set_member_name(b, "Uid");
	json_builder_add_int_value(b, ctx->host_uid);
	json_builder_set_member_name(b, "LauncherPid");
	json_builder_add_int_value(b, getpid());
	json_builder_set_member_name(b, "LauncherStartTime");
	json_builder_add_int_value(b, (gint64)start);
	json_builder_set_member_name(b, "Pid");
	json_builder_add_int_value(b, ctx->init_pid);
	json_builder_set_member_name(b, "PidStartTime");
	json_builder_add_int_value(b, (gint64)ctx->init_start);
	json_builder_set_member_name(b, "MntNsFd");
	json_builder_add_int_value(b, ctx->mntns_fd);
	json_builder_set_member_name(b, "HostRoot");
	json_builder_add_boolean_value(b, ctx->cfg->default_layers);
	json_builder_set_member_name(b, "Hide");
	json_builder_begin_array(b);
	for (guint i = 0; i < ctx->hide_paths->len; i++)
		json_builder_add_string_value(b, ctx->hide_paths->pdata[i]);
	json_builder_end_array(b);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	json_generator_set_root(gen, root);
	text = json_generator_to_data(gen, NULL);
	unlinkat(dfd, tmp, 0);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	r = vc_write_all(fd, text, strlen(text));
	if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dfd, tmp, 0);
	return r;
}

/* Before the union starts: what to hide, and the registry entry saying so. */
int vr_hide_register(struct vr_ctx *ctx)
{
	int r;

	ctx->hide_paths = vr_hide_paths(ctx);
	r = vr_hide_write(ctx);
	if (r < 0)
		log_debug("no entry in '%s' (%s): containers running now or later may see '%s'",
			  VR_HIDE_DIR, strerror(-r), ctx->dir);
	else
		ctx->hide_registered = true;
	return 0;
}

/* Once the init exists: its pid, so that later containers push their masks into it. */
int vr_hide_update(struct vr_ctx *ctx)
{
	int r;

	if (!ctx->hide_registered)
		return 0;
	r = vr_hide_write(ctx);
	if (r < 0)
		return log_error_errno(r, "failed to update the entry in '%s'", VR_HIDE_DIR);
	return 0;
}

/* At the end of a container (or by --cleanup): its entry, wherever it is. */
void vr_hide_unregister(const char *dir)
{
	g_autofree char *name = vr_hide_name(dir);
	g_autofree char *user = g_build_filename(VR_HIDE_DIR, name, NULL);
	g_autofree char *root = g_build_filename(VR_HIDE_DIR, "root", name, NULL);

	if (unlink(user) < 0 && geteuid() == 0)
		unlink(root);
}

/*
 * The host uid of a file's owner as stat shows it here: inside a rootless
 * launcher's user namespace only the caller's own files can be told (they
 * show as root), every other owner is unknown (-1).
 */
static uid_t vr_hide_host_uid(const struct vr_ctx *ctx, uid_t seen)
{
	if (geteuid() == ctx->host_uid)
		return seen; /* not in a user namespace of ours (yet) */
	return seen == 0 ? ctx->host_uid : (uid_t)-1;
}

struct vr_hide_entry {
	char *dir;
	uid_t uid;
	pid_t launcher;
	uint64_t launcher_start;
	pid_t pid;
	int mntns_fd; /* in the launcher */
	bool host_root;
	bool trusted; /* from root's directory */
	GPtrArray *hide;
};

static void vr_hide_entry_free(struct vr_hide_entry *e)
{
	g_free(e->dir);
	if (e->hide)
		g_ptr_array_unref(e->hide);
	g_free(e);
}

/*
 * One registry file. In root's directory it is root's; at the top its owner
 * must be the uid it names (seen from a user namespace, only the caller's own
 * show as root and count).
 */
static struct vr_hide_entry *vr_hide_read(const struct vr_ctx *ctx, int dfd, const char *name,
					  bool trusted)
{
	g_autoptr(JsonParser) p = json_parser_new();
	g_autofree char *text = NULL;
	_cleanup_close_ int fd = -1;
	struct vr_hide_entry *e;
	JsonObject *o;
	JsonArray *a;
	struct stat st;
	uid_t owner;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 65536)
		return NULL;
	text = g_malloc0((gsize)st.st_size + 1);
	if (vc_read_all(fd, text, (size_t)st.st_size) != st.st_size)
		return NULL;
	if (!json_parser_load_from_data(p, text, st.st_size, NULL) ||
	    !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)))
		return NULL;
	owner = vr_hide_host_uid(ctx, st.st_uid);
	o = json_node_get_object(json_parser_get_root(p));
	if ((!trusted && (uid_t)json_object_get_int_member_with_default(o, "Uid", -1) != owner) ||
	    !json_object_has_member(o, "Hide") ||
	    !JSON_NODE_HOLDS_ARRAY(json_object_get_member(o, "Hide")))
		return NULL;
	e = g_new0(struct vr_hide_entry, 1);
	e->trusted = trusted;
	e->uid = trusted ? 0 : owner;
	e->dir = g_strdup(json_object_get_string_member_with_default(o, "Dir", ""));
	e->launcher = (pid_t)json_object_get_int_member_with_default(o, "LauncherPid", 0);
	e->launcher_start =
		(uint64_t)json_object_get_int_member_with_default(o, "LauncherStartTime", 0);
	e->pid = (pid_t)json_object_get_int_member_with_default(o, "Pid", 0);
	e->mntns_fd = (int)json_object_get_int_member_with_default(o, "MntNsFd", -1);
	e->host_root = json_object_get_boolean_member_with_default(o, "HostRoot", FALSE);
	e->hide = g_ptr_array_new_with_free_func(g_free);
	a = json_object_get_array_member(o, "Hide");
	for (guint i = 0; i < json_array_get_length(a); i++) {
		const char *path = json_array_get_string_element(a, i);
		g_autofree char *norm = path && path[0] == '/' ? vc_path_normalize(path) : NULL;

		if (norm && strcmp(norm, "/") != 0 && strcmp(norm, path) == 0)
			g_ptr_array_add(e->hide, g_steal_pointer(&norm));
	}
	return e;
}

/* One registry directory's entries but ours; stale ones whose directory is gone go. */
static void vr_hide_scan(const struct vr_ctx *ctx, int dfd, bool trusted, GPtrArray *out)
{
	g_autofree char *own = vr_hide_name(ctx->dir);
	_cleanup_closedir_ DIR *d = NULL;
	int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	struct dirent *de;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		struct vr_hide_entry *e;

		if (de->d_name[0] == '.' || !g_str_has_suffix(de->d_name, ".json") ||
		    strcmp(de->d_name, own) == 0)
			continue;
		e = vr_hide_read(ctx, dirfd(d), de->d_name, trusted);
		if (!e)
			continue;
		if (e->dir[0] == '/' && access(e->dir, F_OK) < 0 && errno == ENOENT &&
		    !vr_proc_matches(e->launcher, e->launcher_start) &&
		    (geteuid() == 0 || e->uid == ctx->host_uid)) {
			unlinkat(dirfd(d), de->d_name, 0);
			vr_hide_entry_free(e);
			continue;
		}
		g_ptr_array_add(out, e);
	}
}

static GPtrArray *vr_hide_entries(const struct vr_ctx *ctx)
{
	GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)vr_hide_entry_free);

	if (ctx->hide_fd >= 0) {
		vr_hide_scan(ctx, ctx->hide_root_fd, true, out);
		vr_hide_scan(ctx, ctx->hide_fd, false, out);
	}
	return out;
}

/*
 * In the init, before pivot_root (rootfd: the union): this container's own
 * directories and every registered one, when the owner of the entry owns the
 * directory (or is root), so that no user can hide what is not theirs.
 * Rootless, only root's entries and the caller's own can be told apart.
 */
int vr_hide_apply(const struct vr_ctx *ctx, int rootfd)
{
	g_autoptr(GPtrArray) entries = NULL;
	int r;

	if (!ctx->cfg->default_layers)
		return 0;
	/* The registry itself names every container's directories. */
	r = vr_mask_at(rootfd, VR_HIDE_DIR, true);
	if (r < 0)
		return r;
	for (guint i = 0; ctx->hide_paths && i < ctx->hide_paths->len; i++) {
		r = vr_mask_at(rootfd, ctx->hide_paths->pdata[i], true);
		if (r < 0)
			return r;
	}
	entries = vr_hide_entries(ctx);
	for (guint i = 0; i < entries->len; i++) {
		const struct vr_hide_entry *e = entries->pdata[i];

		for (guint j = 0; j < e->hide->len; j++) {
			const char *p = e->hide->pdata[j];
			struct stat st;

			if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
				continue;
			/* A user's entry hides only what is theirs (rootless: shown as root's). */
			if (!e->trusted && vr_hide_host_uid(ctx, st.st_uid) != e->uid)
				continue;
			r = vr_mask_at(rootfd, p, true);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/*
 * In the init, right after pivot_root (before the volumes): the registry once
 * more. A container that registered after our first scan found us not pivoted
 * yet and left its masks to us (vr_hide_push_child). Paths under a mask are
 * hidden already (-EXDEV: skipped).
 */
int vr_hide_apply_late(const struct vr_ctx *ctx)
{
	g_autoptr(GPtrArray) entries = NULL;
	_cleanup_close_ int rootfd = -1;

	if (!ctx->cfg->default_layers)
		return 0;
	rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return log_error_errno(-errno, "cannot open the new root");
	entries = vr_hide_entries(ctx);
	for (guint i = 0; i < entries->len; i++) {
		const struct vr_hide_entry *e = entries->pdata[i];

		for (guint j = 0; j < e->hide->len; j++) {
			const char *p = e->hide->pdata[j];
			struct stat st;
			int r;

			if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
				continue;
			if (!e->trusted && vr_hide_host_uid(ctx, st.st_uid) != e->uid)
				continue;
			r = vr_mask_at(rootfd, p, true);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* /proc/PID/NAME of e's launcher, when that is still the process the entry names. */
static int vr_hide_launcher_open(const struct vr_hide_entry *e, const char *name)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/%s", (int)e->launcher, name);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	/* Checked after the open: a reused pid would show another start time now. */
	if (!vr_proc_matches(e->launcher, e->launcher_start))
		return -ESRCH;
	return TAKE_FD(fd);
}

/* In a child: enter the container of e and mask our paths there; exits with 0 or an errno. */
static void vr_hide_push_child(const struct vr_ctx *ctx, const struct vr_hide_entry *e)
{
	g_autofree char *fdname = g_strdup_printf("fd/%d", e->mntns_fd);
	_cleanup_close_ int userns = -1;
	_cleanup_close_ int mntns = vr_hide_launcher_open(e, fdname);
	_cleanup_close_ int rootfd = -1;
	struct stat host_root, root;

	if (mntns == -ESRCH || mntns == -ENOENT)
		_exit(0); /* gone meanwhile */
	if (mntns < 0)
		_exit(-mntns);
	if (ioctl(mntns, NS_GET_NSTYPE) != CLONE_NEWNS)
		_exit(EBADF);
	if (stat("/", &host_root) < 0)
		_exit(errno);
	/* A user's: their rootless container's user namespace first, which they own. */
	if (ctx->host_uid != 0) {
		userns = vr_hide_launcher_open(e, "ns/user");
		if (userns < 0)
			_exit(-userns);
		if (setns(userns, CLONE_NEWUSER) < 0)
			_exit(errno);
	}
	if (setns(mntns, CLONE_NEWNS) < 0)
		_exit(errno);
	rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0 || fstat(rootfd, &root) < 0)
		_exit(errno);
	/*
	 * Its init has not pivoted into its union yet: "/" there is still the host's,
	 * where a mask (of the state directory, say) would cover its own union mount
	 * point. It scans the registry again once it has pivoted (vr_hide_apply_late),
	 * after our entry was written: it hides us itself.
	 */
	if (root.st_dev == host_root.st_dev && root.st_ino == host_root.st_ino)
		_exit(0);
	for (guint i = 0; i < ctx->hide_paths->len; i++) {
		int r = vr_mask_at(rootfd, ctx->hide_paths->pdata[i], true);

		if (r < 0)
			_exit(-r);
	}
	_exit(0);
}

/*
 * Before the union starts (and, rootless, before entering our own user
 * namespace, while we still own the others'): mask our directories in every
 * running container on the host's / that we may enter. Root may enter any;
 * a user only their own rootless ones.
 */
int vr_hide_push(struct vr_ctx *ctx)
{
	g_autoptr(GPtrArray) entries = NULL;

	if (!ctx->hide_registered || ctx->hide_paths->len == 0)
		return 0;
	entries = vr_hide_entries(ctx);
	for (guint i = 0; i < entries->len; i++) {
		const struct vr_hide_entry *e = entries->pdata[i];
		int status = 0;
		pid_t child;

		if (!e->host_root || e->pid <= 0 || e->mntns_fd < 0 ||
		    !vr_proc_matches(e->launcher, e->launcher_start))
			continue;
		if (ctx->host_uid != 0 && (e->trusted || e->uid != ctx->host_uid))
			continue;
		child = fork();
		if (child < 0)
			return log_error_errno(-errno, "cannot fork");
		if (child == 0)
			vr_hide_push_child(ctx, e);
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			log_warning("could not hide this container's directories from container "
				    "'%s' (pid %d): %s",
				    e->dir, (int)e->pid,
				    WIFEXITED(status) ? strerror(WEXITSTATUS(status)) : "killed");
	}
	return 0;
}
