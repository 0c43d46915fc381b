/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Background load sampling for /proc/loadavg: every 5 s, for each container
 * cgroup that read loadavg in the last 10 minutes, count its runnable and
 * uninterruptible tasks (the cgroup and its descendants) and fold the count
 * into the averages. One thread; readers take a copy under the lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "cleanup.h"
#include "parse-util.h"
#include "proc-util.h"
#include "procfs.h"

#define VP_SAMPLE_USEC (5 * G_USEC_PER_SEC)
#define VP_SAMPLE_EXPIRE_USEC (600 * G_USEC_PER_SEC)
#define VP_SAMPLE_MAX_DEPTH 16

struct vp_load_entry {
	bool v2;
	unsigned ns_depth; /* NSpid entries of a task in the container's pid namespace */
	struct vp_loadavg load;
	gint64 last_used;
};

struct vp_sampler {
	int procfd;
	GThread *thread;
	/* Lock order: a leaf. */
	GMutex lock;
	GCond cond;
	bool stop;	     /* protected by lock */
	GHashTable *entries; /* protected by lock: cgroup dir -> struct vp_load_entry */
};

/* Count the tasks listed in dir and below: running + uninterruptible, all, highest inner pid. */
static void vp_sampler_count(int procfd, const char *dir, bool v2, unsigned ns_depth,
			     unsigned depth, struct vp_loadavg *acc)
{
	g_autofree char *tasks = NULL;
	g_auto(GStrv) ids = NULL;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;

	if (vc_cgroup_read(dir, v2 ? "cgroup.threads" : "tasks", &tasks) >= 0) {
		ids = g_strsplit(tasks, "\n", -1);
		for (guint i = 0; ids[i]; i++) {
			g_autofree char *status = NULL;
			g_autoptr(GArray) nspid = NULL;
			const char *st;
			uint64_t tid;

			if (vc_parse_u64(ids[i], &tid) < 0 ||
			    vc_proc_read(procfd, (pid_t)tid, "status", &status, NULL) < 0)
				continue;
			acc->total++;
			st = strstr(status, "\nState:");
			if (st) {
				st += strlen("\nState:");
				while (*st == ' ' || *st == '\t')
					st++;
				if (*st == 'R' || *st == 'D')
					acc->running++;
			}
			/* Only tasks inside the container's pid namespace name a pid
			 * (not e.g. the host-side parent of its init). */
			if (vc_proc_parse_nspid(status, &nspid) >= 0 && nspid->len == ns_depth) {
				pid_t inner = g_array_index(nspid, pid_t, nspid->len - 1);

				if (inner > acc->last_pid)
					acc->last_pid = inner;
			}
		}
	}
	if (depth >= VP_SAMPLE_MAX_DEPTH)
		return;
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		g_autofree char *sub = NULL;

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		sub = g_build_filename(dir, de->d_name, NULL);
		vp_sampler_count(procfd, sub, v2, ns_depth, depth + 1, acc);
	}
}

static void vp_sampler_sample(struct vp_sampler *s, const char *dir, struct vp_load_entry *e)
{
	struct vp_loadavg now = {{0}};

	vp_sampler_count(s->procfd, dir, e->v2, e->ns_depth, 0, &now);
	memcpy(now.avg, e->load.avg, sizeof(now.avg));
	vp_loadavg_fold(now.avg, now.running);
	e->load = now;
}

static gpointer vp_sampler_thread(gpointer data)
{
	struct vp_sampler *s = data;

	g_mutex_lock(&s->lock);
	while (!s->stop) {
		gint64 deadline = g_get_monotonic_time() + VP_SAMPLE_USEC;
		GHashTableIter it;
		gpointer k, v;

		while (!s->stop && g_cond_wait_until(&s->cond, &s->lock, deadline))
			;
		if (s->stop)
			break;
		g_hash_table_iter_init(&it, s->entries);
		while (g_hash_table_iter_next(&it, &k, &v)) {
			struct vp_load_entry *e = v;

			if (g_get_monotonic_time() - e->last_used > VP_SAMPLE_EXPIRE_USEC) {
				g_hash_table_iter_remove(&it);
				continue;
			}
			/* Reading a few cgroup and /proc files under the lock: readers of
			 * loadavg wait at most one sampling pass. */
			vp_sampler_sample(s, k, e);
		}
	}
	g_mutex_unlock(&s->lock);
	return NULL;
}

int vp_sampler_start(int procfd, struct vp_sampler **ret)
{
	struct vp_sampler *s = g_new0(struct vp_sampler, 1);

	s->procfd = procfd;
	g_mutex_init(&s->lock);
	g_cond_init(&s->cond);
	s->entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	s->thread = g_thread_new("vp-sampler", vp_sampler_thread, s);
	*ret = s;
	return 0;
}

void vp_sampler_stop(struct vp_sampler *s)
{
	g_mutex_lock(&s->lock);
	s->stop = true;
	g_cond_signal(&s->cond);
	g_mutex_unlock(&s->lock);
	g_thread_join(s->thread);
	g_hash_table_unref(s->entries);
	g_cond_clear(&s->cond);
	g_mutex_clear(&s->lock);
	g_free(s);
}

int vp_sampler_get(struct vp_sampler *s, const char *dir, bool v2, unsigned ns_depth,
		   struct vp_loadavg *ret)
{
	struct vp_load_entry *e;

	g_mutex_lock(&s->lock);
	e = g_hash_table_lookup(s->entries, dir);
	if (!e) {
		/* First reader: take a sample now so the task counts are right; the averages
		 * start from 0 like a freshly booted machine's. */
		e = g_new0(struct vp_load_entry, 1);
		e->v2 = v2;
		e->ns_depth = ns_depth;
		vp_sampler_count(s->procfd, dir, v2, ns_depth, 0, &e->load);
		g_hash_table_insert(s->entries, g_strdup(dir), e);
	}
	e->last_used = g_get_monotonic_time();
	*ret = e->load;
	g_mutex_unlock(&s->lock);
	return 0;
}
