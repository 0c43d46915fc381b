/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A bounded cache of open fds of cgroup files, keyed by absolute path: a read
 * is one pread at offset 0 (the kernel regenerates a cgroup file on every read
 * from 0) instead of open/read/close. A file of a removed cgroup fails with
 * ENODEV: the fd is dropped and the path opened afresh, so a cgroup recreated
 * under the same name is read from its new files.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fd-util.h"
#include "render.h"

struct vp_fdcache_fd {
	gatomicrefcount ref;
	int fd;
};

struct vp_fdcache {
	unsigned max;
	GMutex lock;	   /* a leaf lock */
	GHashTable *files; /* protected by lock: path -> struct vp_fdcache_fd */
};

static void vp_fdcache_fd_unref(gpointer p)
{
	struct vp_fdcache_fd *f = p;

	if (!f || !g_atomic_ref_count_dec(&f->ref))
		return;
	close(f->fd);
	g_free(f);
}

struct vp_fdcache *vp_fdcache_new(unsigned max)
{
	struct vp_fdcache *c = g_new0(struct vp_fdcache, 1);

	c->max = max;
	g_mutex_init(&c->lock);
	c->files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, vp_fdcache_fd_unref);
	return c;
}

void vp_fdcache_free(struct vp_fdcache *c)
{
	if (!c)
		return;
	g_hash_table_unref(c->files);
	g_mutex_clear(&c->lock);
	g_free(c);
}

/* The kept fd of path (a reference), opening and keeping it when there is none. */
static int vp_fdcache_get(struct vp_fdcache *c, const char *path, struct vp_fdcache_fd **ret)
{
	struct vp_fdcache_fd *f;
	int fd;

	g_mutex_lock(&c->lock);
	f = g_hash_table_lookup(c->files, path);
	if (f)
		g_atomic_ref_count_inc(&f->ref);
	g_mutex_unlock(&c->lock);
	if (f) {
		*ret = f;
		return 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	f = g_new(struct vp_fdcache_fd, 1);
	g_atomic_ref_count_init(&f->ref);
	f->fd = fd;
	g_mutex_lock(&c->lock);
	if (g_hash_table_size(c->files) >= c->max)
		g_hash_table_remove_all(c->files); /* bounded; refilled on demand */
	g_atomic_ref_count_inc(&f->ref);
	g_hash_table_replace(c->files, g_strdup(path), f);
	g_mutex_unlock(&c->lock);
	*ret = f;
	return 0;
}

/* Forget path's fd if it is still f. */
static void vp_fdcache_drop(struct vp_fdcache *c, const char *path, struct vp_fdcache_fd *f)
{
	g_mutex_lock(&c->lock);
	if (g_hash_table_lookup(c->files, path) == f)
		g_hash_table_remove(c->files, path);
	g_mutex_unlock(&c->lock);
}

int vp_pread_all(int fd, char **ret)
{
	g_autofree char *buf = NULL;
	size_t len = 0, cap = 4096;

	buf = g_malloc(cap);
	for (;;) {
		ssize_t n = pread(fd, buf + len, cap - len - 1, (off_t)len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		len += (size_t)n;
		if (n == 0 || len < cap - 1)
			break;
		if (cap >= 16 * 1024 * 1024)
			return -EFBIG;
		cap *= 2;
		buf = g_realloc(buf, cap);
	}
	buf[len] = '\0';
	*ret = g_steal_pointer(&buf);
	return 0;
}

int vp_fdcache_read(struct vp_fdcache *c, const char *path, char **ret)
{
	if (!c)
		return vc_read_file_at(AT_FDCWD, path, ret, NULL);
	for (int attempt = 0;; attempt++) {
		struct vp_fdcache_fd *f = NULL;
		int r = vp_fdcache_get(c, path, &f);

		if (r < 0)
			return r;
		r = vp_pread_all(f->fd, ret);
		if (r < 0)
			vp_fdcache_drop(c, path, f); /* removed cgroup (ENODEV) or worse: reopen */
		vp_fdcache_fd_unref(f);
		if (r >= 0 || attempt > 0)
			return r;
	}
}

unsigned vp_fdcache_size(struct vp_fdcache *c)
{
	unsigned n;

	g_mutex_lock(&c->lock);
	n = g_hash_table_size(c->files);
	g_mutex_unlock(&c->lock);
	return n;
}
