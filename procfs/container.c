/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The calling process -> its container: the init of its pid namespace (found
 * once per namespace, cached by the namespace inode and re-validated by the
 * init's start time, so a recycled pid is never trusted) and that init's
 * cgroups, read fresh on every open because a container may be moved.
 */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "proc-util.h"
#include "procfs.h"

#define VP_NS_CACHE_MAX 4096

struct vp_nsinit {
	pid_t init;
	uint64_t start;
};

static int vp_container_find_init(struct vp_fs *fs, pid_t caller, uint64_t ns, pid_t *ret_init,
				  uint64_t *ret_start)
{
	struct vc_proc_stat st;
	struct vp_nsinit *e;
	pid_t init;
	int r;

	g_mutex_lock(&fs->ns_lock);
	e = g_hash_table_lookup(fs->ns_cache, &ns);
	if (e) {
		init = e->init;
		*ret_start = e->start;
	}
	g_mutex_unlock(&fs->ns_lock);
	if (e) {
		uint64_t ino;

		/* Still the same process, still in that namespace? */
		if (vc_proc_read_stat(fs->procfd, init, &st) >= 0 && st.starttime == *ret_start &&
		    vc_proc_pidns_ino(fs->procfd, init, &ino) >= 0 && ino == ns) {
			*ret_init = init;
			return 0;
		}
	}
	r = vc_proc_find_ns_init(fs->procfd, caller, &init);
	if (r < 0)
		return r;
	r = vc_proc_read_stat(fs->procfd, init, &st);
	if (r < 0)
		return r;
	g_mutex_lock(&fs->ns_lock);
	if (g_hash_table_size(fs->ns_cache) >= VP_NS_CACHE_MAX)
		g_hash_table_remove_all(fs->ns_cache); /* bounded; refilled on demand */
	e = g_new(struct vp_nsinit, 1);
	e->init = init;
	e->start = st.starttime;
	g_hash_table_replace(fs->ns_cache, g_memdup2(&ns, sizeof(ns)), e);
	g_mutex_unlock(&fs->ns_lock);
	*ret_init = init;
	*ret_start = st.starttime;
	return 0;
}

int vp_container_resolve(struct vp_fs *fs, pid_t caller, struct vp_container *ret)
{
	g_autofree char *text = NULL;
	uint64_t ns = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->init = 1;
	/* pid 0: the caller is not visible from our pid namespace; treat it as the host. */
	if (caller > 0) {
		r = vc_proc_pidns_ino(fs->procfd, caller, &ns);
		if (r < 0)
			return r;
	}
	if (caller <= 0 || ns == fs->host_pidns) {
		ret->host = true;
	} else {
		r = vp_container_find_init(fs, caller, ns, &ret->init, &ret->init_start);
		if (r < 0)
			return log_debug_errno(r, "no init found for pid %d", (int)caller);
	}
	r = vc_proc_read(fs->procfd, ret->init, "cgroup", &text, NULL);
	if (r < 0)
		return r;
	r = vc_cgroup_parse_proc(text, &ret->cgroups);
	if (r < 0)
		return r;
	return 0;
}

void vp_container_clear(struct vp_container *c)
{
	g_clear_pointer(&c->cgroups, g_ptr_array_unref);
}
