/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Layer setup and teardown: opens every layer (lowers through a private,
 * non-recursive, read-only clone of their mount, so that filesystems mounted
 * under a layer stay invisible as with the kernel, and nothing writes a lower),
 * prepares and cleans <workdir>/work (and <workdir>/index, index.c), and probes
 * what the upper filesystem allows (0/0 whiteouts, trusted.* xattrs).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "path-util.h"
#include "dir-util.h"
#include "unionfs.h"

char *vu_tmpname(struct vu_fs *fs)
{
	uint64_t n = atomic_fetch_add(&fs->tmp_seq, 1);

	return g_strdup_printf("#vu%x.%" G_GINT64_MODIFIER "x", (unsigned)getpid(), (guint64)n);
}

/* <workdir>/work holds temporaries only; whatever a crashed mount left there goes. */
static int vu_super_clean_work(int workfd)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r;

	r = vc_opendir_at(workfd, ".", &d);
	if (r < 0)
		return r;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		log_debug("removing stale '%s' from the workdir", de->d_name);
		r = vc_rm_rf_at(dirfd(d), de->d_name);
		if (r < 0)
			return r;
	}
	return 0;
}

static void vu_super_probe(struct vu_fs *fs)
{
	g_autofree char *name = vu_tmpname(fs);
	_cleanup_close_ int fd = -1;

	fs->can_mknod = mknodat(fs->work_fd, name, S_IFCHR | 0600, makedev(0, 0)) == 0;
	if (fs->can_mknod)
		unlinkat(fs->work_fd, name, 0);
	fd = openat(fs->work_fd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0) {
		fs->can_trusted = fsetxattr(fd, "trusted.overlay.probe", "y", 1, 0) == 0;
		unlinkat(fs->work_fd, name, 0);
	}
	log_debug("probes: mknod 0/0 %s, trusted.* xattrs %s", fs->can_mknod ? "yes" : "no",
		  fs->can_trusted ? "yes" : "no");
}

/*
 * A lower's private clone is made read-only: no file opened through it can write
 * the layer, be it the daemon's or a backing file the kernel opens for
 * passthrough (EROFS). Where that is not permitted the clone stays as it is.
 */
static void vu_super_make_ro(int fd, const char *path)
{
	struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};

	if (mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
		log_debug_errno(-errno, "lower '%s' stays writable: no read-only clone", path);
}

static int vu_super_open_layer(struct vu_fs *fs, struct vu_layer *l, const char *path, bool clone)
{
	_cleanup_close_ int fd = -1;
	struct stat st;

	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-errno, "could not open layer '%s'", path);
	if (clone) {
		/* Only this mount, not what is mounted below it: the kernel's view of a layer. */
		int c = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);

		if (c >= 0) {
			close(fd);
			fd = c;
			vu_super_make_ro(fd, path);
		} else {
			log_debug_errno(-errno, "no private clone of '%s'", path);
		}
	}
	if (fstat(fd, &st) < 0)
		return log_error_errno(-errno, "could not stat layer '%s'", path);
	l->fd = TAKE_FD(fd);
	l->dev = st.st_dev;
	l->path = g_strdup(path);
	return 0;
}

static int vu_super_mnt_id(const char *path, int *ret)
{
	union {
		struct file_handle fh;
		unsigned char raw[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} h;

	h.fh.handle_bytes = MAX_HANDLE_SZ;
	return name_to_handle_at(AT_FDCWD, path, &h.fh, ret, 0) < 0 ? -errno : 0;
}

/*
 * The upper and the workdir through one private clone of the mount they share
 * (renames between them need one mount), so that what is mounted below the upper
 * stays invisible as with lowers. Falls back to plain opens where that cannot be done.
 */
static int vu_super_open_upper(struct vu_fs *fs, const char *upper, const char *work,
			       int *ret_upper, int *ret_work)
{
	g_autofree char *anc = g_strdup(upper);
	_cleanup_close_ int c = -1, u = -1, w = -1;
	int mu, mw, ma;

	/* The deepest common ancestor, component-wise. */
	while (!vc_path_is_inside(work, anc)) {
		char *slash = strrchr(anc, '/');

		if (slash == anc) {
			anc[1] = '\0';
			break;
		}
		*slash = '\0';
	}
	if (vu_super_mnt_id(upper, &mu) == 0 && vu_super_mnt_id(work, &mw) == 0 &&
	    vu_super_mnt_id(anc, &ma) == 0 && mu == mw && mu == ma)
		c = open_tree(AT_FDCWD, anc, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (c >= 0) {
		size_t n = strcmp(anc, "/") == 0 ? 1 : strlen(anc) + 1;

		u = vc_open_beneath(c, upper[n - 1] ? upper + n : ".", O_PATH | O_DIRECTORY, 0);
		w = vc_open_beneath(c, work[n - 1] ? work + n : ".", O_PATH | O_DIRECTORY, 0);
	}
	if (u < 0 || w < 0) {
		log_debug("no private clone for upperdir '%s'", upper);
		vc_close_nointr(u);
		vc_close_nointr(w);
		u = open(upper, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (u < 0)
			return log_error_errno(-errno, "could not open upperdir '%s'", upper);
		w = open(work, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (w < 0)
			return log_error_errno(-errno, "could not open workdir '%s'", work);
	}
	*ret_upper = TAKE_FD(u);
	*ret_work = TAKE_FD(w);
	return 0;
}

int vu_super_setup(struct vu_fs *fs)
{
	struct vu_params *p = &fs->params;
	unsigned nl = p->lowers->len;
	_cleanup_close_ int wfd = -1;
	int r;

	fs->has_upper = p->upper != NULL;
	fs->nlayers = nl + (fs->has_upper ? 1 : 0);
	fs->layers = g_new0(struct vu_layer, fs->nlayers);
	for (unsigned i = 0; i < fs->nlayers; i++)
		fs->layers[i].fd = -1;
	fs->work_fd = -1;
	fs->index_fd = -1;
	fs->handle_fd = -1;
	fs->timeout = p->timeout;
	fs->root_creds = geteuid() == 0 && getegid() == 0;
	fs->fdcache_max = p->fd_cache_max;
	fs->node_max = p->node_budget;

	if (fs->has_upper) {
		struct stat st;
		int ufd = -1;

		r = vu_super_open_upper(fs, p->upper, p->work, &ufd, &wfd);
		if (r < 0)
			return r;
		fs->layers[0].fd = ufd;
		fs->layers[0].path = g_strdup(p->upper);
		if (fstat(ufd, &st) < 0)
			return log_error_errno(-errno, "could not stat upperdir '%s'", p->upper);
		fs->layers[0].dev = st.st_dev;
		if (mkdirat(wfd, "work", 0700) < 0 && errno != EEXIST)
			return log_error_errno(-errno, "could not create '%s/work'", p->work);
		fs->work_fd = openat(wfd, "work", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fs->work_fd < 0)
			return log_error_errno(-errno, "could not open '%s/work'", p->work);
		r = vu_super_clean_work(fs->work_fd);
		if (r < 0)
			return log_error_errno(r, "could not clean '%s/work'", p->work);
		r = vu_acl_clean_workdir(fs);
		if (r < 0)
			return log_error_errno(r, "could not remove the ACLs of '%s/work'",
					       p->work);
		vu_super_probe(fs);
		/* The kernel refuses metacopy=on with userxattr: its markers are trusted.* only. */
		if (p->metacopy && !fs->can_trusted)
			return log_error_errno(
				-EINVAL, "metacopy=on needs trusted.* xattrs in upperdir '%s'",
				p->upper);
	}
	for (unsigned i = 0; i < nl; i++) {
		r = vu_super_open_layer(fs, &fs->layers[i + (fs->has_upper ? 1 : 0)],
					p->lowers->pdata[i], true);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < fs->nlayers; i++) {
		unsigned flags = 0;

		if (!vu_is_upper(fs, i))
			vu_whiteout_dir_opaque(fs, i, fs->layers[i].fd, &flags);
		/* A root without ".wh." entries spares every miss there the OCI probe. */
		if (vu_whiteout_dir_scan(fs->layers[i].fd, VU_SCAN_ROOT_MAX) > 0)
			flags |= VU_FD_NOWH;
		atomic_store(&fs->layers[i].root_flags, flags);
	}
	fs->samefs = true;
	for (unsigned i = 1; i < fs->nlayers; i++)
		if (fs->layers[i].dev != fs->layers[0].dev)
			fs->samefs = false;
	r = vu_xino_setup(fs);
	if (r < 0)
		return r;
	{
		int lower0 = fs->has_upper ? 1 : 0;

		fs->handle_fd =
			openat(fs->layers[lower0].fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	r = vu_index_setup(fs, wfd);
	if (r < 0)
		return r;
	fs->root = vu_node_new_root(fs);
	return 0;
}

void vu_super_teardown(struct vu_fs *fs)
{
	vu_nodes_teardown(fs);
	for (unsigned i = 0; fs->layers && i < fs->nlayers; i++) {
		vc_close_nointr(fs->layers[i].fd);
		g_free(fs->layers[i].path);
	}
	g_clear_pointer(&fs->layers, g_free);
	vc_close_nointr(fs->work_fd);
	fs->work_fd = -1;
	vc_close_nointr(fs->index_fd);
	fs->index_fd = -1;
	g_clear_pointer(&fs->ilower, g_hash_table_destroy);
	vc_close_nointr(fs->handle_fd);
	fs->handle_fd = -1;
	vu_xino_teardown(fs);
}
