/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The node budget. Every node but the root sits in one list, most recently
 * looked up first. Beyond fs->node_max nodes a thread of its own asks the kernel
 * to prune the dentries of the oldest nodes nothing of ours holds; the kernel
 * drops only dentries nobody uses (as under memory pressure) and its FORGETs free
 * the nodes. Request handlers never wait for it.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fuse-abi.h"
#include "log.h"
#include "macro.h"
#include "unionfs.h"

#define VU_EVICT_BATCH 1024 /* node ids per notification */
#define VU_EVICT_STEP 128   /* node ids picked per hold of nodes_lock */

void vu_evict_init(struct vu_fs *fs)
{
	pthread_condattr_t a;

	fs->node_lru.prev = fs->node_lru.next = &fs->node_lru;
	fs->nnodes = 0;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->evict_cond, &a);
	pthread_condattr_destroy(&a);
}

static void vu_lru_unlink(struct vu_lru *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
}

static void vu_lru_push_head(struct vu_fs *fs, struct vu_lru *l)
{
	l->next = fs->node_lru.next;
	l->prev = &fs->node_lru;
	fs->node_lru.next->prev = l;
	fs->node_lru.next = l;
}

/* A new node; nodes_lock held. */
void vu_evict_added(struct vu_fs *fs, struct vu_node *node)
{
	vu_lru_push_head(fs, &node->lru);
	fs->nnodes++;
	if (fs->node_max && fs->nnodes > fs->node_max && !fs->evict_kicked) {
		fs->evict_kicked = true;
		pthread_cond_signal(&fs->evict_cond);
	}
}

/* The kernel looked node up again; nodes_lock held. */
void vu_evict_touch(struct vu_fs *fs, struct vu_node *node)
{
	if (fs->node_lru.next == &node->lru)
		return;
	vu_lru_unlink(&node->lru);
	vu_lru_push_head(fs, &node->lru);
}

/* node is about to be freed; nodes_lock held. */
void vu_evict_removed(struct vu_fs *fs, struct vu_node *node)
{
	vu_lru_unlink(&node->lru);
	fs->nnodes--;
}

/*
 * Up to max node ids, oldest first, of nodes only the kernel holds: no children,
 * no open handles, no caller in flight (refs == 0). Every node looked at moves to
 * the head, so the next round starts where this one stopped. nodes_lock held.
 */
static unsigned vu_evict_pick(struct vu_fs *fs, uint64_t *ids, unsigned max)
{
	unsigned n = 0, seen = 0;

	while (n < max && seen < 4 * max && fs->node_lru.prev != &fs->node_lru) {
		struct vu_node *node = container_of(fs->node_lru.prev, struct vu_node, lru);

		seen++;
		vu_lru_unlink(&node->lru);
		vu_lru_push_head(fs, &node->lru);
		if (node->refs == 0 && node->nlookup > 0)
			ids[n++] = vu_node_ino(fs, node);
	}
	return n;
}

static int vu_evict_notify(struct vu_fs *fs, const uint64_t *ids, unsigned n)
{
	struct vu_prune_out arg = {.count = n};
	struct fuse_out_header oh = {
		.len = sizeof(oh) + sizeof(arg) + n * sizeof(*ids),
		.error = VU_NOTIFY_PRUNE,
		.unique = 0,
	};
	struct iovec iov[3] = {
		{.iov_base = &oh, .iov_len = sizeof(oh)},
		{.iov_base = &arg, .iov_len = sizeof(arg)},
		{.iov_base = (void *)ids, .iov_len = n * sizeof(*ids)},
	};
	ssize_t w = writev(fuse_session_fd(fs->se), iov, 3);

	if (w < 0)
		return -errno;
	return w == (ssize_t)oh.len ? 0 : -EIO;
}

static void vu_evict_wait(struct vu_fs *fs, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&fs->evict_cond, &fs->nodes_lock, &ts);
}

static void *vu_evict_main(void *arg)
{
	struct vu_fs *fs = arg;
	g_autofree uint64_t *ids = g_new(uint64_t, VU_EVICT_BATCH);
	bool probed = false, trim = false;

	pthread_mutex_lock(&fs->nodes_lock);
	while (!fs->evict_stop) {
		size_t low = fs->node_max - fs->node_max / 8;
		unsigned n, want;
		int r;

		if (fs->nnodes <= fs->node_max && trim) {
			/* A burst is over: give the freed nodes' pages back to the system. */
			pthread_mutex_unlock(&fs->nodes_lock);
			malloc_trim(0);
			pthread_mutex_lock(&fs->nodes_lock);
			trim = false;
			continue;
		}
		if (fs->nnodes <= fs->node_max) {
			fs->evict_kicked = false;
			pthread_cond_wait(&fs->evict_cond, &fs->nodes_lock);
			continue;
		}
		/* In small steps, so the workers never wait long for nodes_lock. */
		want = MIN(fs->nnodes - low, (size_t)VU_EVICT_BATCH);
		for (n = 0; n < want;) {
			unsigned k = vu_evict_pick(fs, ids + n, MIN(want - n, VU_EVICT_STEP));

			n += k;
			if (k == 0 || fs->evict_stop)
				break;
			pthread_mutex_unlock(&fs->nodes_lock);
			pthread_mutex_lock(&fs->nodes_lock);
		}
		pthread_mutex_unlock(&fs->nodes_lock);

		if (!probed) {
			/* An empty prune tells whether the kernel knows the notification. */
			r = vu_evict_notify(fs, ids, 0);
			if (r < 0) {
				log_notice("the kernel cannot prune entries (%s): the node budget "
					   "of %u is not enforced",
					   strerror(-r), fs->node_max);
				pthread_mutex_lock(&fs->nodes_lock);
				break;
			}
			probed = true;
		}
		r = n > 0 ? vu_evict_notify(fs, ids, n) : 0;
		pthread_mutex_lock(&fs->nodes_lock);
		if (r < 0) {
			/* Unmounted (ENODEV) or aborted: nothing more to do. */
			log_debug_errno(r, "prune of %u nodes failed", n);
			break;
		}
		fs->offered += n;
		trim = trim || n > 0;
		/*
		 * The FORGETs are queued by now; give the workers time to handle them. When
		 * nothing could be offered (every old node in use), wait longer. A stop signalled
		 * while nodes_lock was dropped for the notification is not waited out.
		 */
		if (!fs->evict_stop)
			vu_evict_wait(fs, n > 0 ? 5 : 1000);
	}
	pthread_mutex_unlock(&fs->nodes_lock);
	return NULL;
}

/* Start the thread once the session exists (before the loop). */
int vu_evict_start(struct vu_fs *fs)
{
	sigset_t all, old;
	int r;

	if (fs->node_max == 0 || fs->evict_running)
		return 0;
	fs->evict_stop = false;
	/* Signals go to the loop's threads, whose reads they must interrupt. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&fs->evict_thread, NULL, vu_evict_main, fs);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return log_error_errno(r, "could not start the node eviction thread");
	fs->evict_running = true;
	return 0;
}

/* Stop the thread (after the loop, the filesystem unmounted). */
void vu_evict_stop(struct vu_fs *fs)
{
	if (!fs->evict_running)
		return;
	pthread_mutex_lock(&fs->nodes_lock);
	fs->evict_stop = true;
	pthread_cond_signal(&fs->evict_cond);
	pthread_mutex_unlock(&fs->nodes_lock);
	pthread_join(fs->evict_thread, NULL);
	fs->evict_running = false;
}

/* The text of the root's trusted.veneer.nodes: live nodes, budget, nodes offered to the kernel so
 * far. */
char *vu_evict_stats(struct vu_fs *fs)
{
	char *s;

	pthread_mutex_lock(&fs->nodes_lock);
	s = g_strdup_printf("nodes=%zu budget=%u offered=%" G_GUINT64_FORMAT
			    " indexed=%lu probes=%lu\n",
			    fs->nnodes, fs->node_max, fs->offered, atomic_load(&fs->nameidx_built),
			    atomic_load(&fs->layer_probes));
	pthread_mutex_unlock(&fs->nodes_lock);
	return s;
}
