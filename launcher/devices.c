/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Devices: the allow list (the OCI defaults null, zero, full, random,
 * urandom, tty, console, ptmx and pts, mknod of anything, plus --device), its
 * enforcement through the v1 devices controller or a BPF_CGROUP_DEVICE
 * program on a cgroup2 directory (devices-bpf.c), and the nodes of /dev that
 * go beyond the defaults: --device, and every host device with --privileged.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "cgroup-util.h"
#include "cleanup.h"
#include "fd-util.h"
#include "launcher.h"
#include "log.h"
#include "path-util.h"

void vr_device_free(struct vr_device *d)
{
	if (!d)
		return;
	g_free(d->host);
	g_free(d->ctr);
	g_free(d);
}

static int vr_device_access(const char *s, unsigned *ret)
{
	unsigned a = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		const char *c = strchr("mrw", *s);
		unsigned bit = c ? 1u << (c - "mrw") : 0; /* VR_DEV_MKNOD, _READ, _WRITE */

		if (!bit || (a & bit))
			return -EINVAL;
		a |= bit;
	}
	*ret = a;
	return 0;
}

/* HOST, HOST:CTR, HOST:rwm or HOST:CTR:rwm; CTR (default HOST) must be below /dev. */
int vr_device_parse(const char *spec, struct vr_device **ret)
{
	g_auto(GStrv) parts = g_strsplit(spec, ":", 4);
	guint n = g_strv_length(parts);
	struct vr_device *d;
	const char *ctr = NULL, *perms = "rwm";

	if (n < 1 || n > 3 || parts[0][0] != '/')
		return -EINVAL;
	if (n == 2 && parts[1][0] != '/')
		perms = parts[1];
	else if (n >= 2)
		ctr = parts[1];
	if (n == 3)
		perms = parts[2];
	d = g_new0(struct vr_device, 1);
	d->host = vc_path_normalize(parts[0]);
	d->ctr = vc_path_normalize(ctr ? ctr : parts[0]);
	if (vr_device_access(perms, &d->access) < 0 || !g_str_has_prefix(d->ctr, "/dev/") ||
	    strcmp(d->ctr, "/dev/pts") == 0 || g_str_has_prefix(d->ctr, "/dev/pts/")) {
		vr_device_free(d);
		return -EINVAL;
	}
	*ret = d;
	return 0;
}

/* HOST must be a device node (symlinks such as /dev/disk/by-id/... followed). */
int vr_device_stat(struct vr_device *d)
{
	struct stat st;

	if (stat(d->host, &st) < 0)
		return -errno;
	if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
		return -ENODEV;
	d->type = S_ISCHR(st.st_mode) ? 'c' : 'b';
	d->major = major(st.st_rdev);
	d->minor = minor(st.st_rdev);
	d->mode = st.st_mode;
	d->uid = st.st_uid;
	d->gid = st.st_gid;
	return 0;
}

static void vr_rule_add(GArray *a, char type, int64_t major, int64_t minor, unsigned access)
{
	struct vr_dev_rule r = {type, major, minor, access};

	g_array_append_val(a, r);
}

/* The allow list of a confined container: OCI's defaults, its console, --device. */
GArray *vr_devices_rules(const struct vr_config *cfg)
{
	GArray *a = g_array_new(FALSE, FALSE, sizeof(struct vr_dev_rule));
	struct stat st;

	/* mknod of any node: creating one grants nothing, opening it is what counts. */
	vr_rule_add(a, 'c', -1, -1, VR_DEV_MKNOD);
	vr_rule_add(a, 'b', -1, -1, VR_DEV_MKNOD);
	vr_rule_add(a, 'c', 1, 3, VR_DEV_RWM);	  /* null */
	vr_rule_add(a, 'c', 1, 5, VR_DEV_RWM);	  /* zero */
	vr_rule_add(a, 'c', 1, 7, VR_DEV_RWM);	  /* full */
	vr_rule_add(a, 'c', 1, 8, VR_DEV_RWM);	  /* random */
	vr_rule_add(a, 'c', 1, 9, VR_DEV_RWM);	  /* urandom */
	vr_rule_add(a, 'c', 5, 0, VR_DEV_RWM);	  /* tty */
	vr_rule_add(a, 'c', 5, 1, VR_DEV_RWM);	  /* console */
	vr_rule_add(a, 'c', 5, 2, VR_DEV_RWM);	  /* ptmx */
	vr_rule_add(a, 'c', 136, -1, VR_DEV_RWM); /* pts/N */
	/* The terminal veneer-run was started on is the container's /dev/console. */
	if (isatty(STDIN_FILENO) && fstat(STDIN_FILENO, &st) == 0 && S_ISCHR(st.st_mode))
		vr_rule_add(a, 'c', major(st.st_rdev), minor(st.st_rdev), VR_DEV_RWM);
	for (guint i = 0; i < cfg->sec.devices->len; i++) {
		const struct vr_device *d = cfg->sec.devices->pdata[i];

		vr_rule_add(a, d->type, d->major, d->minor, d->access);
	}
	return a;
}

/*
 * v1 where the devices controller is (the container's cgroup is v1 there),
 * else a BPF program in the unified hierarchy; VENEER_DEVICE_CGROUP=v1|v2
 * chooses on a hybrid host. None for --privileged and rootless (no cgroup;
 * the kernel refuses device nodes in a user namespace's mounts anyway).
 */
enum vr_devcg vr_devices_mode(const struct vr_config *cfg)
{
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = NULL;
	const char *force = getenv("VENEER_DEVICE_CGROUP");
	const struct vc_cgroup_hier *v1 = NULL, *v2 = NULL;

	if (cfg->rootless || cfg->sec.privileged)
		return VR_DEVCG_NONE;
	if (vc_cgroup_layout_load("/sys/fs/cgroup", &l) >= 0) {
		const struct vc_cgroup_hier *h = vc_cgroup_layout_find(l, "devices");

		v1 = h && h->version == VC_CGROUP_V1 ? h : NULL;
		v2 = vc_cgroup_layout_v2(l);
	}
	if (force && strcmp(force, "v2") == 0 && v2)
		return VR_DEVCG_BPF;
	if (force && strcmp(force, "v1") == 0 && v1)
		return VR_DEVCG_V1;
	return v1 ? VR_DEVCG_V1 : v2 ? VR_DEVCG_BPF : VR_DEVCG_NONE;
}

static int vr_devices_v1(struct vr_ctx *ctx, GArray *rules)
{
	const char *dir = NULL;
	_cleanup_close_ int dfd = -1;
	int r;

	for (guint i = 0; ctx->cgroup_controllers && i < ctx->cgroup_controllers->len; i++)
		if (strcmp(ctx->cgroup_controllers->pdata[i], "devices") == 0)
			dir = ctx->cgroup_paths->pdata[i];
	if (!dir)
		return log_error_errno(-ENOENT, "the container has no devices cgroup");
	dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dfd < 0)
		return log_error_errno(-errno, "cannot open '%s'", dir);
	r = vc_write_file_at(dfd, "devices.deny", "a");
	for (guint i = 0; r >= 0 && i < rules->len; i++) {
		const struct vr_dev_rule *d = &g_array_index(rules, struct vr_dev_rule, i);
		char line[80], maj[24] = "*", min[24] = "*", acc[4] = "";
		size_t k = 0;

		if (d->major >= 0)
			snprintf(maj, sizeof(maj), "%" G_GINT64_FORMAT, d->major);
		if (d->minor >= 0)
			snprintf(min, sizeof(min), "%" G_GINT64_FORMAT, d->minor);
		if (d->access & VR_DEV_READ)
			acc[k++] = 'r';
		if (d->access & VR_DEV_WRITE)
			acc[k++] = 'w';
		if (d->access & VR_DEV_MKNOD)
			acc[k++] = 'm';
		snprintf(line, sizeof(line), "%c %s:%s %s", d->type, maj, min, acc);
		r = vc_write_file_at(dfd, "devices.allow", line);
		if (r < 0)
			return log_error_errno(r, "failed to allow '%s' in '%s'", line, dir);
	}
	if (r < 0)
		return log_error_errno(r, "failed to deny all devices in '%s'", dir);
	return 0;
}

/*
 * The cgroup2 directory for the program: the container's own cgroup when it
 * is in the unified hierarchy (a pure v2 host), else veneer-<id> made there
 * for this alone (a hybrid host), which the init joins besides its v1 cgroups.
 */
static int vr_devices_bpf(struct vr_ctx *ctx, GArray *rules)
{
	_cleanup_cgroup_layout_ struct vc_cgroup_layout *l = NULL;
	const struct vc_cgroup_hier *v2;
	_cleanup_close_ int dfd = -1;
	g_autofree char *dir = NULL;
	int r;

	r = vc_cgroup_layout_load("/sys/fs/cgroup", &l);
	v2 = r >= 0 ? vc_cgroup_layout_v2(l) : NULL;
	if (!v2)
		return log_error_errno(-ENOENT, "no cgroup2 hierarchy for the device program");
	for (guint i = 0; ctx->cgroup_paths && i < ctx->cgroup_paths->len; i++)
		if (g_str_has_prefix(ctx->cgroup_paths->pdata[i], v2->mount) &&
		    ((const char *)ctx->cgroup_paths->pdata[i])[strlen(v2->mount)] == '/')
			dir = g_strdup(ctx->cgroup_paths->pdata[i]);
	if (!dir) {
		dir = g_strdup_printf("%s/veneer-%s", v2->mount, ctx->id);
		/* Written ahead, as vr_cgroup_create: --cleanup removes it after a kill. */
		ctx->devcg_path = g_strdup(dir);
		r = vr_state_write(ctx);
		if (r < 0 || mkdir(dir, 0755) < 0) {
			if (r >= 0)
				r = log_error_errno(-errno, "failed to create cgroup '%s'", dir);
			g_clear_pointer(&ctx->devcg_path, g_free);
			return r;
		}
	}
	dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dfd < 0)
		return log_error_errno(-errno, "cannot open '%s'", dir);
	r = vr_devbpf_attach(dfd, (const struct vr_dev_rule *)(void *)rules->data, rules->len);
	if (r < 0)
		return r;
	log_debug("device program attached to '%s'", dir);
	return 0;
}

/* Before the init runs: the allow list in place on the cgroup it will join. */
int vr_devices_cgroup_setup(struct vr_ctx *ctx)
{
	g_autoptr(GArray) rules = NULL;

	if (ctx->cfg->sec.devcg == VR_DEVCG_NONE)
		return 0;
	rules = vr_devices_rules(ctx->cfg);
	if (ctx->cfg->sec.devcg == VR_DEVCG_V1)
		return vr_devices_v1(ctx, rules);
	return vr_devices_bpf(ctx, rules);
}

/* The init joins a cgroup2 directory made only for the program. */
int vr_devices_cgroup_attach(struct vr_ctx *ctx, pid_t pid)
{
	g_autofree char *procs = NULL;
	char buf[16];
	int r;

	if (!ctx->devcg_path)
		return 0;
	procs = g_build_filename(ctx->devcg_path, "cgroup.procs", NULL);
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	r = vc_write_file_at(AT_FDCWD, procs, buf);
	if (r < 0)
		return log_error_errno(r, "failed to move pid %d into '%s'", (int)pid,
				       ctx->devcg_path);
	return 0;
}

/* Remove the directory of vr_devices_bpf (the program goes with it), killing stragglers. */
int vr_devices_cgroup_remove(const char *path)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			break;
		vr_cgroup_kill_tasks(path);
		nanosleep(&(struct timespec){.tv_nsec = 20L * 1000 * 1000}, NULL);
	}
	return log_error_errno(-errno, "could not remove cgroup '%s'", path);
}

/* One node at name (relative to devfd, parents made): mknod as root, else a bind. */
static int vr_devices_node(const struct vr_ctx *ctx, int devfd, const char *dev, const char *name,
			   const char *host, const struct stat *st)
{
	g_autofree char *parent = g_path_get_dirname(name);
	g_autofree char *dst = g_build_filename(dev, name, NULL);
	int fd;

	if (strcmp(parent, ".") != 0) {
		g_auto(GStrv) comps = g_strsplit(parent, "/", -1);
		g_autoptr(GString) sofar = g_string_new("");

		for (guint i = 0; comps[i]; i++) {
			g_string_append_printf(sofar, "%s%s", i ? "/" : "", comps[i]);
			if (mkdirat(devfd, sofar->str, 0755) < 0 && errno != EEXIST)
				return log_error_errno(-errno, "failed to create '%s/%s'", dev,
						       sofar->str);
		}
	}
	if (!ctx->cfg->rootless) {
		if (mknodat(devfd, name, st->st_mode & (S_IFMT | 07777), st->st_rdev) < 0)
			return log_error_errno(-errno, "failed to create device '%s'", dst);
		if (fchownat(devfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
			return log_error_errno(-errno, "failed to chown '%s'", dst);
		return 0;
	}
	/* No mknod in a user namespace: bind the host's node. */
	fd = openat(devfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_error_errno(-errno, "failed to create '%s'", dst);
	close(fd);
	if (mount(host, dst, NULL, MS_BIND, NULL) < 0)
		return log_error_errno(-errno, "failed to bind '%s' on '%s'", host, dst);
	return 0;
}

/* --privileged: every device node of the host's /dev not already there. */
static int vr_devices_all(const struct vr_ctx *ctx, int devfd, const char *dev, const char *rel,
			  int depth)
{
	g_autofree char *hdir = g_build_filename("/dev", rel, NULL);
	_cleanup_closedir_ DIR *d = opendir(hdir);
	struct dirent *de;

	if (!d || depth > 4)
		return 0;
	while ((de = readdir(d))) {
		g_autofree char *name = g_build_filename(rel, de->d_name, NULL);
		g_autofree char *host = g_build_filename("/dev", name, NULL);
		struct stat st;
		int r;

		/* ptmx: the symlink into the container's own devpts, made after this. */
		if (de->d_name[0] == '.' ||
		    (depth == 0 &&
		     g_strv_contains((const char *const[]){"pts", "shm", "mqueue", "ptmx", NULL},
				     de->d_name)))
			continue;
		if (lstat(host, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			r = vr_devices_all(ctx, devfd, dev, name, depth + 1);
		} else if ((S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) &&
			   faccessat(devfd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
			r = vr_devices_node(ctx, devfd, dev, name, host, &st);
		} else {
			r = 0;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* In the init, on the container's fresh /dev (devfd, at path dev): --device, --privileged. */
int vr_devices_populate(const struct vr_ctx *ctx, int devfd, const char *dev)
{
	GPtrArray *devs = ctx->cfg->sec.devices;

	for (guint i = 0; i < devs->len; i++) {
		const struct vr_device *d = devs->pdata[i];
		struct stat st = {
			.st_mode = (d->type == 'c' ? S_IFCHR : S_IFBLK) | (d->mode & 07777),
			.st_rdev = makedev(d->major, d->minor),
			.st_uid = d->uid,
			.st_gid = d->gid,
		};
		int r;

		if (faccessat(devfd, d->ctr + strlen("/dev/"), F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			return log_error_errno(-EEXIST,
					       "--device: '%s' is already in the "
					       "container's /dev",
					       d->ctr);
		r = vr_devices_node(ctx, devfd, dev, d->ctr + strlen("/dev/"), d->host, &st);
		if (r < 0)
			return r;
	}
	if (ctx->cfg->sec.privileged)
		return vr_devices_all(ctx, devfd, dev, "", 0);
	return 0;
}
