/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A bounded cache of open fds of cgroup files, keyed by absolute path: a read
 * is one pread at offset 0 (the kernel regenerates a cgroup file on every read
 * from 0) instead of open/read/close. A file of a removed cgroup fails with
 * ENODEV: the fd is dropped and the path opened afresh, so a cgroup recreated
 * under the same name is read from its new files. An fd also pins its cgroup
 * (a removed memcg lingers while a file of it is open), so a sweeper thread
 * closes the fds of removed cgroups every few seconds without a read.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "fd-util.h"
#include "render.h"

/* fds polled per poll() call of a sweep */
#define VP_FDCACHE_SWEEP_BATCH 256

struct vp_fdcache_fd {
	gatomicrefcount ref;
	int fd;
	char *path; /* read-only; the table's key while the fd is in it */
};

struct vp_fdcache {
	unsigned max;
	/* Lock order: sweep_lock and lock are leaves, never held together. */
	GMutex lock;		  /* a leaf lock */
	GHashTable *files;	  /* protected by lock: path -> struct vp_fdcache_fd */
	GThread *sweeper;	  /* read-only after vp_fdcache_start_sweeper */
	unsigned sweep_ms;	  /* read-only after vp_fdcache_start_sweeper */
	void (*also)(void *data); /* read-only after vp_fdcache_start_sweeper */
	void *also_data;
	GMutex sweep_lock;
	GCond sweep_cond;
	bool stop; /* protected by sweep_lock */
};

static void vp_fdcache_fd_unref(gpointer p)
{
	struct vp_fdcache_fd *f = p;

	if (!f || !g_atomic_ref_count_dec(&f->ref))
		return;
	close(f->fd);
	g_free(f->path);
	g_free(f);
}

struct vp_fdcache *vp_fdcache_new(unsigned max)
{
	struct vp_fdcache *c = g_new0(struct vp_fdcache, 1);

	c->max = max;
	g_mutex_init(&c->lock);
	g_mutex_init(&c->sweep_lock);
	g_cond_init(&c->sweep_cond);
	/* keys are the values' own path: replace (never insert) keeps them paired */
	c->files = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, vp_fdcache_fd_unref);
	return c;
}

void vp_fdcache_free(struct vp_fdcache *c)
{
	if (!c)
		return;
	if (c->sweeper) {
		g_mutex_lock(&c->sweep_lock);
		c->stop = true;
		g_cond_signal(&c->sweep_cond);
		g_mutex_unlock(&c->sweep_lock);
		g_thread_join(c->sweeper);
	}
	g_hash_table_unref(c->files);
	g_cond_clear(&c->sweep_cond);
	g_mutex_clear(&c->sweep_lock);
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
	f->path = g_strdup(path);
	g_mutex_lock(&c->lock);
	if (g_hash_table_size(c->files) >= c->max)
		g_hash_table_remove_all(c->files); /* bounded; refilled on demand */
	g_atomic_ref_count_inc(&f->ref);
	g_hash_table_replace(c->files, f->path, f);
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

/*
 * Whether f's cgroup was removed. A kernfs file polls POLLERR once its node is
 * gone (v1 and v2 alike), but also while a change it notifies of (cgroup.events,
 * memory.events) is unread: a POLLERR is confirmed by a one-byte read, which
 * fails with ENODEV only for a removed file.
 */
static bool vp_fdcache_fd_dead(const struct vp_fdcache_fd *f, short revents)
{
	char b;

	if (!(revents & (POLLERR | POLLNVAL)))
		return false;
	while (pread(f->fd, &b, 1, 0) < 0) {
		if (errno != EINTR)
			return errno == ENODEV;
	}
	return false;
}

unsigned vp_fdcache_sweep(struct vp_fdcache *c)
{
	g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(vp_fdcache_fd_unref);
	struct pollfd p[VP_FDCACHE_SWEEP_BATCH];
	GHashTableIter it;
	gpointer v;
	unsigned dropped = 0;

	/* References taken under the lock: an fd polled below is never closed (and its
	 * number reused) meanwhile. At most max of them. */
	g_mutex_lock(&c->lock);
	g_hash_table_iter_init(&it, c->files);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct vp_fdcache_fd *f = v;

		g_atomic_ref_count_inc(&f->ref);
		g_ptr_array_add(all, f);
	}
	g_mutex_unlock(&c->lock);
	for (guint base = 0; base < all->len; base += VP_FDCACHE_SWEEP_BATCH) {
		guint n = MIN(all->len - base, VP_FDCACHE_SWEEP_BATCH);

		for (guint i = 0; i < n; i++) {
			const struct vp_fdcache_fd *f = all->pdata[base + i];

			p[i] = (struct pollfd){.fd = f->fd, .events = POLLIN | POLLPRI};
		}
		/* timeout 0: never waits, registers no wakeups */
		if (poll(p, n, 0) < 0)
			continue;
		for (guint i = 0; i < n; i++) {
			struct vp_fdcache_fd *f = all->pdata[base + i];

			if (vp_fdcache_fd_dead(f, p[i].revents)) {
				vp_fdcache_drop(c, f->path, f);
				dropped++;
			}
		}
	}
	return dropped; /* the fds close as the last reference goes, here or in a reader */
}

static gpointer vp_fdcache_sweeper(gpointer data)
{
	struct vp_fdcache *c = data;

	g_mutex_lock(&c->sweep_lock);
	while (!c->stop) {
		gint64 deadline = g_get_monotonic_time() + (gint64)c->sweep_ms * 1000;

		while (!c->stop && g_cond_wait_until(&c->sweep_cond, &c->sweep_lock, deadline))
			;
		if (c->stop)
			break;
		g_mutex_unlock(&c->sweep_lock);
		vp_fdcache_sweep(c);
		if (c->also)
			c->also(c->also_data);
		g_mutex_lock(&c->sweep_lock);
	}
	g_mutex_unlock(&c->sweep_lock);
	return NULL;
}

void vp_fdcache_start_sweeper(struct vp_fdcache *c, unsigned interval_ms, void (*also)(void *data),
			      void *data)
{
	g_assert(!c->sweeper);
	c->sweep_ms = MAX(interval_ms, 1);
	c->also = also;
	c->also_data = data;
	c->sweeper = g_thread_new("vp-fdsweep", vp_fdcache_sweeper, c);
}
