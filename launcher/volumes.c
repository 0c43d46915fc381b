/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Volumes (-v HOST:CTR[:ro|:nocopy], --mount type=bind,...): parsing, the check
 * that no target goes through a symbolic link of the image, Docker's copy-data for a fresh
 * empty HOST directory (done by the launcher through the union mount before
 * the container starts), and the bind mounts, cloned from the host before
 * pivot_root and attached after it so that CTR resolves inside the container.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fd-util.h"
#include "fsutil.h"
#include "launcher.h"
#include "log.h"
#include "parse-util.h"
#include "path-util.h"

void vr_volume_free(struct vr_volume *v)
{
	if (!v)
		return;
	g_free(v->host);
	g_free(v->ctr);
	g_free(v);
}

/* The options after HOST:CTR: ro, rw, nocopy, comma-separated. */
static int vr_volume_options(struct vr_volume *v, const char *opts)
{
	g_auto(GStrv) o = g_strsplit(opts, ",", -1);

	for (guint i = 0; o[i]; i++) {
		if (strcmp(o[i], "ro") == 0)
			v->ro = true;
		else if (strcmp(o[i], "rw") == 0)
			v->ro = false;
		else if (strcmp(o[i], "nocopy") == 0)
			v->nocopy = true;
		else
			return -EINVAL;
	}
	return 0;
}

/* host and ctr absolute, ctr not "/": a volume, else NULL. */
static struct vr_volume *vr_volume_new(const char *host, const char *ctr)
{
	struct vr_volume *v;

	if (host[0] != '/' || ctr[0] != '/')
		return NULL;
	v = g_new0(struct vr_volume, 1);
	v->host = vc_path_normalize(host);
	v->ctr = vc_path_normalize(ctr);
	if (strcmp(v->ctr, "/") == 0) {
		vr_volume_free(v);
		return NULL;
	}
	return v;
}

/* HOST:CTR[:OPTS]; a ':' inside a path is written '\:' (and a '\' before one '\\'), as in lowerdir.
 */
int vr_volume_parse(const char *spec, struct vr_volume **ret)
{
	g_autoptr(GPtrArray) parts = NULL;
	struct vr_volume *v;

	if (vc_split_escaped(spec, ':', &parts) < 0 || parts->len < 2 || parts->len > 3)
		return -EINVAL;
	v = vr_volume_new(parts->pdata[0], parts->pdata[1]);
	if (!v)
		return -EINVAL;
	if (parts->len == 3 && vr_volume_options(v, parts->pdata[2]) < 0) {
		vr_volume_free(v);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* Docker's --mount CSV: fields split at ',' outside double quotes; "" is a quote inside them. */
static int vr_mount_fields(const char *spec, GPtrArray **ret)
{
	g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GString) cur = g_string_new("");
	bool quoted = false;

	for (const char *p = spec;; p++) {
		if (*p == '\0' && quoted)
			return -EINVAL;
		if (*p == '"') {
			if (quoted && p[1] == '"') {
				g_string_append_c(cur, '"');
				p++;
			} else {
				quoted = !quoted;
			}
			continue;
		}
		if ((*p == ',' && !quoted) || *p == '\0') {
			g_ptr_array_add(out, g_strdup(cur->str));
			g_string_truncate(cur, 0);
			if (*p == '\0')
				break;
			continue;
		}
		g_string_append_c(cur, *p);
	}
	*ret = g_steal_pointer(&out);
	return 0;
}

static int vr_mount_bool(const char *val, bool *ret)
{
	if (!val || strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
		*ret = true;
	else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0)
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

/*
 * --mount type=bind,src=HOST,dst=CTR[,ro]: Docker's spelling, where any path
 * may hold ':' (and, quoted, ','). Keys: type (bind only), source|src,
 * destination|dst|target, readonly|ro[=true|false|1|0], bind-propagation=
 * rprivate (the only one veneer-run gives). As Docker's bind: HOST must exist
 * and nothing is copied into it. *ret_err names what is wrong.
 */
int vr_mount_parse(const char *spec, struct vr_volume **ret, char **ret_err)
{
	g_autoptr(GPtrArray) fields = NULL;
	const char *type = NULL, *src = NULL, *dst = NULL;
	bool ro = false;
	struct vr_volume *v;

	if (vr_mount_fields(spec, &fields) < 0) {
		*ret_err = g_strdup("an unterminated '\"'");
		return -EINVAL;
	}
	for (guint i = 0; i < fields->len; i++) {
		const char *f = fields->pdata[i];
		const char *eq = strchr(f, '=');
		g_autofree char *key = eq ? g_strndup(f, eq - f) : g_strdup(f);
		const char *val = eq ? eq + 1 : NULL;

		if (strcmp(key, "readonly") == 0 || strcmp(key, "ro") == 0) {
			if (vr_mount_bool(val, &ro) < 0) {
				*ret_err = g_strdup_printf("bad value in '%s' (true or false)", f);
				return -EINVAL;
			}
			continue;
		}
		if (!val || !val[0]) {
			*ret_err = g_strdup_printf("'%s' needs a value", key);
			return -EINVAL;
		}
		if (strcmp(key, "type") == 0)
			type = val;
		else if (strcmp(key, "source") == 0 || strcmp(key, "src") == 0)
			src = val;
		else if (strcmp(key, "destination") == 0 || strcmp(key, "dst") == 0 ||
			 strcmp(key, "target") == 0)
			dst = val;
		else if (strcmp(key, "bind-propagation") == 0 && strcmp(val, "rprivate") == 0)
			continue;
		else {
			*ret_err = g_strdup_printf("unknown or unsupported field '%s'", f);
			return -EINVAL;
		}
	}
	if (!type || strcmp(type, "bind") != 0) {
		*ret_err = g_strdup("only type=bind is supported (and required)");
		return -EINVAL;
	}
	if (!src || !dst) {
		*ret_err = g_strdup("src= and dst= are required");
		return -EINVAL;
	}
	v = vr_volume_new(src, dst);
	if (!v) {
		*ret_err = g_strdup("src and dst must be absolute, dst not '/'");
		return -EINVAL;
	}
	v->ro = ro;
	v->nocopy = true;
	v->must_exist = true;
	*ret = v;
	return 0;
}

/* How one name of a path shows at the top of the layers (upper first). */
enum vr_shown {
	VR_SHOWN_NONE,
	VR_SHOWN_DIR,
	VR_SHOWN_OTHER,
	VR_SHOWN_SYMLINK,
};

static enum vr_shown vr_shown_in(const char *root, const char *path, char **ret_target)
{
	g_autofree char *p = g_build_filename(root, path, NULL);
	g_autofree char *dir = g_path_get_dirname(p);
	g_autofree char *base = g_path_get_basename(p);
	g_autofree char *wh = g_strconcat(dir, "/.wh.", base, NULL);
	struct stat st;

	if (lstat(p, &st) < 0)
		return lstat(wh, &st) == 0 ? VR_SHOWN_OTHER : VR_SHOWN_NONE;
	if (S_ISLNK(st.st_mode)) {
		*ret_target = g_file_read_link(p, NULL);
		return VR_SHOWN_SYMLINK;
	}
	if (S_ISCHR(st.st_mode) && st.st_rdev == 0)
		return VR_SHOWN_OTHER; /* a whiteout: absent, created as a directory */
	return S_ISDIR(st.st_mode) ? VR_SHOWN_DIR : VR_SHOWN_OTHER;
}

/*
 * Before anything is created: no directory on the way to a volume's CTR is a
 * symbolic link in the image (the upper layer, the layers, an earlier volume
 * it lies in), which would put the volume somewhere else. Returns 0 or an
 * exit code after the one message.
 */
int vr_volumes_check_targets(const struct vr_config *cfg)
{
	for (guint i = 0; i < cfg->volumes->len; i++) {
		const struct vr_volume *v = cfg->volumes->pdata[i];
		g_autoptr(GPtrArray) roots = g_ptr_array_new_with_free_func(g_free);
		const char *rel = v->ctr;
		const struct vr_volume *in = NULL;
		g_auto(GStrv) names = NULL;
		g_autoptr(GString) sofar = g_string_new("");

		/* Inside an earlier volume: that volume's HOST is the only root. */
		for (guint j = 0; j < i; j++) {
			const struct vr_volume *w = cfg->volumes->pdata[j];

			if (strcmp(w->ctr, v->ctr) != 0 && vc_path_is_inside(v->ctr, w->ctr) &&
			    (!in || strlen(w->ctr) > strlen(in->ctr)))
				in = w;
		}
		if (in) {
			g_ptr_array_add(roots, g_strdup(in->host));
			rel = v->ctr + strlen(in->ctr);
		} else {
			if (cfg->upper && access(cfg->upper, F_OK) == 0)
				g_ptr_array_add(roots, g_strdup(cfg->upper));
			for (guint j = 0; j < cfg->layers->len; j++)
				g_ptr_array_add(roots, g_strdup(cfg->layers->pdata[j]));
		}
		names = g_strsplit(rel, "/", -1);
		for (guint k = 0; names[k]; k++) {
			enum vr_shown shown = VR_SHOWN_NONE;
			g_autofree char *target = NULL;

			if (!names[k][0])
				continue;
			g_string_append_printf(sofar, "/%s", names[k]);
			for (guint j = 0; j < roots->len && shown == VR_SHOWN_NONE; j++)
				shown = vr_shown_in(roots->pdata[j], sofar->str, &target);
			if (shown == VR_SHOWN_SYMLINK) {
				g_autofree char *at = in ? g_strconcat(in->ctr, sofar->str, NULL)
							 : g_strdup(sofar->str);

				fprintf(stderr,
					"veneer-run: volume target '%s': '%s' is a symbolic link "
					"in the image (to '%s'); give the path it points to\n",
					v->ctr, at, target ? target : "?");
				return VR_EXIT_PATH;
			}
			if (shown != VR_SHOWN_DIR)
				break; /* absent (created) or a file (a file volume, or a failure
					  later) */
		}
	}
	return 0;
}

/* Create a missing HOST directory and fill an empty one from the image. */
static int vr_volume_prepare(struct vr_ctx *ctx, int rootfd, struct vr_volume *v)
{
	_cleanup_close_ int hfd = -1;
	_cleanup_close_ int sfd = -1;
	struct stat st;
	int r;

	if (stat(v->host, &st) < 0) {
		if (errno != ENOENT)
			return log_error_errno(-errno, "cannot use volume source '%s'", v->host);
		r = vr_mkdir_p(v->host, 0755);
		if (r < 0)
			return log_error_errno(r, "failed to create volume source '%s'", v->host);
	} else if (!S_ISDIR(st.st_mode)) {
		return 0; /* a file volume: nothing to copy */
	}
	if (v->nocopy)
		return 0;
	hfd = open(v->host, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (hfd < 0)
		return log_error_errno(-errno, "cannot open volume source '%s'", v->host);
	if (!vr_dir_is_empty(hfd))
		return 0;
	sfd = vc_open_beneath(rootfd, v->ctr + 1, O_DIRECTORY | O_RDONLY, 0);
	if (sfd < 0)
		return 0; /* nothing (or no directory) at CTR in the image */
	if (vr_dir_is_empty(sfd))
		return 0;
	log_debug("copying '%s' of the image into the fresh volume '%s'", v->ctr, v->host);
	r = vr_copy_tree(sfd, hfd);
	if (r < 0)
		return log_error_errno(r, "failed to copy '%s' into volume '%s'", v->ctr, v->host);
	/* The volume's root takes CTR's owner and mode too, as Docker does. */
	if (fstat(sfd, &st) == 0) {
		(void)fchown(hfd, st.st_uid, st.st_gid);
		(void)fchmod(hfd, st.st_mode & 07777);
	}
	return 0;
}

int vr_volumes_prepare(struct vr_ctx *ctx)
{
	_cleanup_close_ int rootfd = -1;
	GPtrArray *vols = ctx->cfg->volumes;

	if (vols->len == 0)
		return 0;
	rootfd = open(ctx->merged, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (rootfd < 0)
		return log_error_errno(-errno, "cannot open the union mount '%s'", ctx->merged);
	for (guint i = 0; i < vols->len; i++) {
		int r = vr_volume_prepare(ctx, rootfd, vols->pdata[i]);

		if (r < 0)
			return r;
	}
	return 0;
}

/* Before pivot_root: a detached copy of each HOST tree, read-only when asked. */
int vr_volumes_open(struct vr_ctx *ctx, int *fds)
{
	GPtrArray *vols = ctx->cfg->volumes;

	for (guint i = 0; i < vols->len; i++) {
		struct vr_volume *v = vols->pdata[i];
		struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};

		fds[i] = open_tree(AT_FDCWD, v->host,
				   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (fds[i] < 0)
			return log_error_errno(-errno, "failed to clone volume source '%s'",
					       v->host);
		if (v->ro && mount_setattr(fds[i], "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
					   sizeof(attr)) < 0)
			return log_error_errno(-errno, "failed to make volume '%s' read-only",
					       v->host);
	}
	return 0;
}

/* After pivot_root: attach each tree at CTR, creating the mount point in the image. */
int vr_volumes_attach(struct vr_ctx *ctx, int *fds)
{
	GPtrArray *vols = ctx->cfg->volumes;

	for (guint i = 0; i < vols->len; i++) {
		struct vr_volume *v = vols->pdata[i];
		struct stat st;
		int r;

		if (fstat(fds[i], &st) < 0)
			return -errno;
		if (S_ISDIR(st.st_mode)) {
			r = vr_mkdir_p(v->ctr, 0755);
		} else {
			g_autofree char *parent = g_path_get_dirname(v->ctr);
			int fd;

			r = vr_mkdir_p(parent, 0755);
			if (r >= 0) {
				fd = open(v->ctr, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
				if (fd < 0)
					r = -errno;
				else
					close(fd);
			}
		}
		if (r < 0)
			return log_error_errno(r, "failed to create volume mount point '%s'",
					       v->ctr);
		if (move_mount(fds[i], "", AT_FDCWD, v->ctr, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			return log_error_errno(-errno, "failed to mount volume '%s' on '%s'",
					       v->host, v->ctr);
	}
	return 0;
}
