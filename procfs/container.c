/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The calling process -> its container: the init of its pid namespace, found
 * once per namespace and cached by the namespace inode with an open fd of the
 * init's /proc/PID/cgroup. That fd pins the process: once it is gone, reads
 * fail with ESRCH, so a dead init or a recycled pid is never trusted. The
 * init's cgroups are read on every open (a pread: a container may be moved);
 * the parsed list is reused while the text stays the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "fd-util.h"
#include "log.h"
#include "macro.h"
#include "proc-util.h"
#include "procfs.h"

#define VP_NS_CACHE_MAX 1024
#define VP_NS_SWEEP_MIN 16

struct vp_nsinit {
	gatomicrefcount ref;
	pid_t init;
	uint64_t start;
	int cgfd; /* /proc/<init>/cgroup, read-only after creation */
	GMutex lock;
	char *cgroup_text;  /* protected by lock: the text cgroups was parsed from */
	GPtrArray *cgroups; /* protected by lock */
};

void vp_nsinit_unref(gpointer p)
{
	struct vp_nsinit *e = p;

	if (!e || !g_atomic_ref_count_dec(&e->ref))
		return;
	if (e->cgfd >= 0)
		close(e->cgfd);
	g_free(e->cgroup_text);
	g_clear_pointer(&e->cgroups, g_ptr_array_unref);
	g_mutex_clear(&e->lock);
	g_free(e);
}

/* A new entry for init: its /proc directory is opened first and then checked to be the
 * process we looked at (same start time), closing the pid-reuse window. */
static int vp_nsinit_new(struct vp_fs *fs, pid_t init, struct vp_nsinit **ret)
{
	char name[DECIMAL_STR_MAX(pid_t) + 1];
	struct vc_proc_stat st, st2;
	g_autofree char *text = NULL;
	struct vp_nsinit *e;
	_cleanup_close_ int fd = -1;
	int cgfd, r;

	r = vc_proc_read_stat(fs->procfd, init, &st);
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "%d", (int)init);
	fd = openat(fs->procfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	r = vc_read_file_at(fd, "stat", &text, NULL);
	if (r >= 0)
		r = vc_proc_parse_stat(text, &st2);
	if (r >= 0 && st2.starttime != st.starttime)
		r = -ESRCH;
	if (r < 0)
		return r == -ENOENT ? -ESRCH : r;
	cgfd = openat(fd, "cgroup", O_RDONLY | O_CLOEXEC);
	if (cgfd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	e = g_new0(struct vp_nsinit, 1);
	g_atomic_ref_count_init(&e->ref);
	e->init = init;
	e->start = st.starttime;
	e->cgfd = cgfd;
	g_mutex_init(&e->lock);
	*ret = e;
	return 0;
}

static struct vp_nsinit *vp_nsinit_lookup(struct vp_fs *fs, uint64_t ns)
{
	struct vp_nsinit *e;

	g_mutex_lock(&fs->ns_lock);
	e = g_hash_table_lookup(fs->ns_cache, &ns);
	if (e)
		g_atomic_ref_count_inc(&e->ref);
	g_mutex_unlock(&fs->ns_lock);
	return e;
}

/*
 * An entry per container seen, each holding an fd: when the table has doubled since
 * the last sweep the entries of containers that ended are dropped first (a constant
 * cost per insertion), besides the periodic vp_nsinit_sweep.
 */
static void vp_nsinit_store(struct vp_fs *fs, uint64_t ns, struct vp_nsinit *e)
{
	bool sweep;

	g_mutex_lock(&fs->ns_lock);
	sweep = g_hash_table_size(fs->ns_cache) >= MAX(fs->ns_sweep_at, VP_NS_SWEEP_MIN);
	g_mutex_unlock(&fs->ns_lock);
	if (sweep)
		vp_nsinit_sweep(fs);
	g_mutex_lock(&fs->ns_lock);
	if (g_hash_table_size(fs->ns_cache) >= VP_NS_CACHE_MAX)
		g_hash_table_remove_all(
			fs->ns_cache); /* bounded (one fd each); refilled on demand */
	g_atomic_ref_count_inc(&e->ref);
	g_hash_table_replace(fs->ns_cache, g_memdup2(&ns, sizeof(ns)), e);
	g_mutex_unlock(&fs->ns_lock);
}

static void vp_nsinit_forget(struct vp_fs *fs, uint64_t ns, struct vp_nsinit *e)
{
	g_mutex_lock(&fs->ns_lock);
	if (g_hash_table_lookup(fs->ns_cache, &ns) == e)
		g_hash_table_remove(fs->ns_cache, &ns);
	g_mutex_unlock(&fs->ns_lock);
}

/* Drop the entries whose init is gone (its pinned cgroup file reads as nothing). The
 * reads run outside the lock, on references: a reader never waits for them. */
void vp_nsinit_sweep(struct vp_fs *fs)
{
	g_autoptr(GArray) keys = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(vp_nsinit_unref);
	GHashTableIter it;
	gpointer k, v;
	guint live = 0;

	g_mutex_lock(&fs->ns_lock);
	g_hash_table_iter_init(&it, fs->ns_cache);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		struct vp_nsinit *e = v;

		g_atomic_ref_count_inc(&e->ref);
		g_ptr_array_add(all, e);
		g_array_append_val(keys, *(uint64_t *)k);
	}
	g_mutex_unlock(&fs->ns_lock);
	for (guint i = 0; i < all->len; i++) {
		struct vp_nsinit *e = all->pdata[i];
		char c;

		if (pread(e->cgfd, &c, 1, 0) == 1)
			live++;
		else
			vp_nsinit_forget(fs, g_array_index(keys, uint64_t, i), e);
	}
	g_mutex_lock(&fs->ns_lock);
	fs->ns_sweep_at = 2 * live;
	g_mutex_unlock(&fs->ns_lock);
}

/* The init's cgroups, read now through its pinned file. -ESRCH: the init is gone. */
static int vp_nsinit_cgroups(struct vp_nsinit *e, GPtrArray **ret)
{
	g_autofree char *text = NULL;
	g_autoptr(GPtrArray) pc = NULL;
	int r = vp_pread_all(e->cgfd, &text);

	if (r >= 0 && text[0] == '\0')
		r = -ESRCH; /* never "in no cgroup": a gone process reads as nothing */
	if (r < 0)
		return r == -ENOENT ? -ESRCH : r;
	g_mutex_lock(&e->lock);
	if (e->cgroups && strcmp(e->cgroup_text, text) == 0) {
		*ret = g_ptr_array_ref(e->cgroups);
		g_mutex_unlock(&e->lock);
		return 0;
	}
	g_mutex_unlock(&e->lock);
	r = vc_cgroup_parse_proc(text, &pc);
	if (r < 0)
		return r;
	g_mutex_lock(&e->lock);
	g_free(e->cgroup_text);
	e->cgroup_text = g_steal_pointer(&text);
	g_clear_pointer(&e->cgroups, g_ptr_array_unref);
	e->cgroups = g_ptr_array_ref(pc);
	g_mutex_unlock(&e->lock);
	*ret = g_steal_pointer(&pc);
	return 0;
}

int vp_container_resolve(struct vp_fs *fs, pid_t caller, struct vp_container *ret)
{
	uint64_t ns = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->init = 1;
	/* pid 0: the caller is not visible from our pid namespace; treat it as the host. */
	if (caller > 0) {
		r = vp_pidcache_ns(fs->pids, fs->procfd, caller, &ns);
		if (r < 0)
			return r;
	}
	if (caller <= 0 || ns == fs->host_pidns) {
		ns = fs->host_pidns;
		ret->host = true;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		struct vp_nsinit *e = vp_nsinit_lookup(fs, ns);
		pid_t init = 1;

		if (!e) {
			if (!ret->host) {
				r = vc_proc_find_ns_init(fs->procfd, caller, &init);
				if (r < 0)
					return log_debug_errno(r, "no init found for pid %d",
							       (int)caller);
			}
			r = vp_nsinit_new(fs, init, &e);
			if (r < 0)
				return r;
			vp_nsinit_store(fs, ns, e);
		}
		r = vp_nsinit_cgroups(e, &ret->cgroups);
		if (r >= 0) {
			ret->init = e->init;
			ret->init_start = e->start;
		} else if (r == -ESRCH) {
			vp_nsinit_forget(fs, ns,
					 e); /* dead init; its namespace inode may be reused */
		}
		vp_nsinit_unref(e);
		if (r != -ESRCH)
			return r;
	}
	return -ESRCH;
}

void vp_container_clear(struct vp_container *c)
{
	g_clear_pointer(&c->cgroups, g_ptr_array_unref);
}
