/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Volumes (-v HOST:CTR[:ro|:nocopy]): parsing, Docker's copy-data for a fresh
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
#include "path-util.h"

void vr_volume_free(struct vr_volume *v)
{
	if (!v)
		return;
	g_free(v->host);
	g_free(v->ctr);
	g_free(v);
}

int vr_volume_parse(const char *spec, struct vr_volume **ret)
{
	g_auto(GStrv) parts = g_strsplit(spec, ":", 4);
	struct vr_volume *v;
	guint n = g_strv_length(parts);

	if (n < 2 || n > 3 || parts[0][0] != '/' || parts[1][0] != '/')
		return -EINVAL;
	v = g_new0(struct vr_volume, 1);
	v->host = vc_path_normalize(parts[0]);
	v->ctr = vc_path_normalize(parts[1]);
	if (strcmp(v->ctr, "/") == 0) {
		vr_volume_free(v);
		return -EINVAL;
	}
	if (n == 3) {
		g_auto(GStrv) opts = g_strsplit(parts[2], ",", -1);

		for (guint i = 0; opts[i]; i++) {
			if (strcmp(opts[i], "ro") == 0) {
				v->ro = true;
			} else if (strcmp(opts[i], "rw") == 0) {
				v->ro = false;
			} else if (strcmp(opts[i], "nocopy") == 0) {
				v->nocopy = true;
			} else {
				vr_volume_free(v);
				return -EINVAL;
			}
		}
	}
	*ret = v;
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
