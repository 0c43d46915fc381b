/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Caller pid -> its pid namespace, for processes that read more than once. A
 * process never changes its own pid namespace, and its pid number cannot be
 * given to another process while it lives: an entry is trusted while the
 * pidfd taken with it does not poll readable (the process has not exited). A
 * pid seen once is only noted; the pidfd comes on its second read, so a
 * one-shot reader (cat) pays no more than the /proc walk it always needed.
 * Callers are threads (FUSE passes the calling task's id): a thread's id is
 * just as unique while it lives.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>
#include <glib.h>

#include "macro.h"
#include "parse-util.h"
#include "pidcache.h"
#include "proc-util.h"

#ifdef PIDFD_THREAD
#define VP_PIDFD_THREAD PIDFD_THREAD
#else
#define VP_PIDFD_THREAD O_EXCL /* its value in linux/pidfd.h */
#endif

#define VP_PIDCACHE_SWEEP_MIN 64

struct vp_pidcache_entry {
	gatomicrefcount ref;
	int pidfd;   /* -1: seen once, ns not trusted; read-only */
	uint64_t ns; /* valid while pidfd >= 0 and the process lives; read-only */
};

struct vp_pidcache {
	unsigned max;
	unsigned sweep_at;   /* protected by lock: size at which exited callers are dropped */
	GMutex lock;	     /* a leaf lock */
	GHashTable *entries; /* protected by lock: pid -> struct vp_pidcache_entry */
};

static void vp_pidcache_entry_unref(gpointer p)
{
	struct vp_pidcache_entry *e = p;

	if (!e || !g_atomic_ref_count_dec(&e->ref))
		return;
	if (e->pidfd >= 0)
		close(e->pidfd);
	g_free(e);
}

struct vp_pidcache *vp_pidcache_new(unsigned max)
{
	struct vp_pidcache *c = g_new0(struct vp_pidcache, 1);

	c->max = max;
	g_mutex_init(&c->lock);
	c->entries =
		g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, vp_pidcache_entry_unref);
	return c;
}

void vp_pidcache_free(struct vp_pidcache *c)
{
	if (!c)
		return;
	g_hash_table_unref(c->entries);
	g_mutex_clear(&c->lock);
	g_free(c);
}

unsigned vp_pidcache_size(struct vp_pidcache *c)
{
	unsigned n;

	g_mutex_lock(&c->lock);
	n = g_hash_table_size(c->entries);
	g_mutex_unlock(&c->lock);
	return n;
}

/* True while the process of pidfd has not exited. */
static bool vp_pidcache_alive(int pidfd)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};

	return poll(&p, 1, 0) == 0;
}

/* A cached caller that has exited (a noted one holds no fd and stays). */
static gboolean vp_pidcache_exited(gpointer key, gpointer value, gpointer data)
{
	struct vp_pidcache_entry *e = value;

	(void)key;
	(void)data;
	return e->pidfd >= 0 && !vp_pidcache_alive(e->pidfd);
}

static unsigned vp_pidcache_sweep_locked(struct vp_pidcache *c)
{
	unsigned n = g_hash_table_foreach_remove(c->entries, vp_pidcache_exited, NULL);

	c->sweep_at = 2 * g_hash_table_size(c->entries);
	return n;
}

unsigned vp_pidcache_sweep(struct vp_pidcache *c)
{
	unsigned n;

	g_mutex_lock(&c->lock);
	n = vp_pidcache_sweep_locked(c);
	g_mutex_unlock(&c->lock);
	return n;
}

/*
 * A pidfd of the task that sent a request: FUSE names the calling thread, which is
 * not always a process's leader. PIDFD_THREAD (Linux 6.9) takes any thread; older
 * kernels refuse the flag and, for a non-leader, a plain pidfd (EINVAL): that
 * caller stays uncached.
 */
static int vp_pidcache_pidfd(pid_t pid)
{
	int fd = pidfd_open(pid, VP_PIDFD_THREAD);

	if (fd < 0 && errno == EINVAL)
		fd = pidfd_open(pid, 0);
	return fd;
}

int vp_pidcache_ns(struct vp_pidcache *c, int procfd, pid_t pid, uint64_t *ret_ns)
{
	struct vp_pidcache_entry *e;
	bool seen = false;
	int pidfd = -1, r;
	uint64_t ns;

	g_mutex_lock(&c->lock);
	e = g_hash_table_lookup(c->entries, GINT_TO_POINTER(pid));
	if (e)
		g_atomic_ref_count_inc(&e->ref);
	g_mutex_unlock(&c->lock);
	if (e) {
		if (e->pidfd >= 0 && vp_pidcache_alive(e->pidfd)) {
			*ret_ns = e->ns;
			vp_pidcache_entry_unref(e);
			return 0;
		}
		seen = e->pidfd < 0;
		if (!seen) {
			/* exited: the pid may be another process's now */
			g_mutex_lock(&c->lock);
			if (g_hash_table_lookup(c->entries, GINT_TO_POINTER(pid)) == e)
				g_hash_table_remove(c->entries, GINT_TO_POINTER(pid));
			g_mutex_unlock(&c->lock);
		}
		vp_pidcache_entry_unref(e);
	}

	/* The pidfd first: if its task still lives after the namespace was read,
	 * /proc/PID was that task. */
	if (seen)
		pidfd = vp_pidcache_pidfd(pid);
	r = vc_proc_pidns_ino(procfd, pid, &ns);
	if (r < 0) {
		if (pidfd >= 0)
			close(pidfd);
		return r;
	}
	if (pidfd >= 0 && !vp_pidcache_alive(pidfd)) {
		close(pidfd);
		pidfd = -1;
		seen = false; /* gone already: nothing worth remembering */
	}
	*ret_ns = ns;
	if (pidfd < 0 && seen)
		return 0; /* a thread, or no pidfds here: stays noted */
	e = g_new(struct vp_pidcache_entry, 1);
	g_atomic_ref_count_init(&e->ref);
	e->pidfd = pidfd;
	e->ns = ns;
	g_mutex_lock(&c->lock);
	/* Exited callers' pidfds go whenever the table has doubled since the last sweep. */
	if (g_hash_table_size(c->entries) >= MAX(c->sweep_at, VP_PIDCACHE_SWEEP_MIN))
		vp_pidcache_sweep_locked(c);
	if (g_hash_table_size(c->entries) >= c->max)
		g_hash_table_remove_all(c->entries); /* bounded; refilled on demand */
	g_hash_table_replace(c->entries, GINT_TO_POINTER(pid), e);
	g_mutex_unlock(&c->lock);
	return 0;
}
