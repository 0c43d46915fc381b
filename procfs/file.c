/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FUSE operations and render-on-open: each open renders the whole file
 * for the caller's container into a buffer of the handle's own, reads at any
 * offset come from that snapshot (a later read at offset 0, a rewind,
 * renders afresh like the kernel's seq_file), and files use direct_io so the
 * page cache never hands one container's content to another. Handles are
 * looked up by number, not pointer: a handle opened under a previous worker
 * (restart) is unknown here and is re-created on its first read.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "fd-util.h"
#include "log.h"
#include "parse-util.h"
#include "proc-util.h"
#include "procfs.h"

#define VP_ATTR_TIMEOUT 3600.0
#define VP_CGROUP_FDS_MAX 4096
#define VP_PIDS_MAX 1024
/* How often the fds of removed cgroups are closed (each pins its cgroup). */
#define VP_CGROUP_SWEEP_MS 2000

static const char *const vp_host_paths[] = {
	[VP_F_MEMINFO] = "meminfo",
	[VP_F_CPUINFO] = "cpuinfo",
	[VP_F_STAT] = "stat",
	[VP_F_UPTIME] = "uptime",
	[VP_F_LOADAVG] = "loadavg",
	[VP_F_SWAPS] = "swaps",
	[VP_F_DISKSTATS] = "diskstats",
	[VP_F_CPU_ONLINE] = "devices/system/cpu/online",
	[VP_F_CPU_POSSIBLE] = "devices/system/cpu/possible",
	[VP_F_CPU_PRESENT] = "devices/system/cpu/present",
};

/*
 * How long a host file read once serves all containers, in ms. cpuinfo and the
 * CPU lists change only on hotplug; meminfo and stat are kept for a few ms, less
 * than the kernel's own tick-driven counters move in between. Others: never.
 */
static const unsigned vp_host_ttl_ms[] = {
	[VP_F_MEMINFO] = 10,	  [VP_F_CPUINFO] = 1000,      [VP_F_STAT] = 10,
	[VP_F_CPU_ONLINE] = 1000, [VP_F_CPU_POSSIBLE] = 1000, [VP_F_CPU_PRESENT] = 1000,
};

static int vp_read_host(struct vp_fs *fs, enum vp_file file, char **ret)
{
	int dfd = file >= VP_F_CPU_ONLINE ? fs->sysfd : fs->procfd;
	gint64 ttl = (gint64)vp_host_ttl_ms[file] * 1000, now = 0;
	char *text = NULL;
	int r;

	if (ttl > 0) {
		now = g_get_monotonic_time();
		g_mutex_lock(&fs->host_lock);
		if (fs->host_text[file] && now - fs->host_stamp[file] < ttl)
			text = g_strdup(fs->host_text[file]);
		g_mutex_unlock(&fs->host_lock);
		if (text) {
			*ret = text;
			return 0;
		}
	}
	r = vc_read_file_at(dfd, vp_host_paths[file], &text, NULL);
	if (r < 0)
		return r;
	if (ttl > 0) {
		g_mutex_lock(&fs->host_lock);
		g_free(fs->host_text[file]);
		fs->host_text[file] = g_strdup(text);
		fs->host_stamp[file] = now;
		g_mutex_unlock(&fs->host_lock);
	}
	*ret = text;
	return 0;
}

static int vp_host_online(struct vp_fs *fs, GArray **ret)
{
	g_autofree char *t = NULL;
	int r = vp_read_host(fs, VP_F_CPU_ONLINE, &t);

	if (r < 0)
		return r;
	return vc_parse_cpulist(g_strstrip(t), ret);
}

static int vp_render_cpu_file(struct vp_fs *fs, enum vp_file file, struct vp_container *c,
			      const char *host, GString *out, bool *ret_host)
{
	g_autoptr(GArray) online = NULL;
	struct vp_cpu cpu;
	int r;

	r = vp_host_online(fs, &online);
	if (r < 0)
		return r;
	/* Only stat and uptime use the accounting; cpuinfo and the lists need the count. */
	if (file == VP_F_STAT || file == VP_F_UPTIME)
		r = vp_cgroup_read_cpu(fs->cgfiles, fs->layout, c->cgroups, (guint *)online->data,
				       online->len, fs->opts->cpu_quota, &cpu);
	else
		r = vp_cgroup_read_cpu_count(fs->cgfiles, fs->layout, c->cgroups,
					     (guint *)online->data, online->len,
					     fs->opts->cpu_quota, &cpu);
	if (r < 0)
		return r;
	if (!cpu.limited && file != VP_F_UPTIME) {
		*ret_host = true;
		vp_cpu_clear(&cpu);
		return 0;
	}
	switch (file) {
	case VP_F_CPUINFO:
		r = vp_render_cpuinfo(host, &cpu, out);
		break;
	case VP_F_STAT:
		r = vp_render_stat(host, &cpu, out);
		break;
	case VP_F_UPTIME: {
		uint64_t now = vc_proc_boottime_ticks();

		r = vp_render_uptime(now > c->init_start ? now - c->init_start : 0,
				     vc_proc_clk_tck(), &cpu, out);
		break;
	}
	default:
		r = vp_render_cpu_range(&cpu, out);
		break;
	}
	vp_cpu_clear(&cpu);
	return r;
}

/* Render file for container c; *ret_host set when the host's file is the answer. */
static int vp_render_container(struct vp_fs *fs, enum vp_file file, struct vp_container *c,
			       const char *host, GString *out, bool *ret_host)
{
	uint64_t mem_total, swap_total;
	struct vp_mem mem;
	int r;

	*ret_host = false;
	switch (file) {
	case VP_F_MEMINFO:
	case VP_F_SWAPS: {
		g_autofree char *mi = NULL;

		if (file == VP_F_MEMINFO) {
			r = vp_meminfo_host_totals(host, &mem_total, &swap_total);
		} else {
			r = vp_read_host(fs, VP_F_MEMINFO, &mi);
			if (r >= 0)
				r = vp_meminfo_host_totals(mi, &mem_total, &swap_total);
		}
		if (r < 0)
			return r;
		r = vp_cgroup_read_mem(fs->cgfiles, fs->layout, c->cgroups, mem_total, swap_total,
				       &mem);
		if (r < 0)
			return r;
		if (!mem.limited) {
			*ret_host = true;
			return 0;
		}
		return file == VP_F_MEMINFO ? vp_render_meminfo(host, &mem, out)
					    : vp_render_swaps(host, &mem, out);
	}
	case VP_F_UPTIME:
		/* The container's age; a caller in our own pid namespace, or in no cgroup
		 * of its own, gets the host's file. */
		if (c->host || vp_cgroup_all_root(fs->layout, c->cgroups)) {
			*ret_host = true;
			return 0;
		}
		return vp_render_cpu_file(fs, file, c, host, out, ret_host);
	case VP_F_LOADAVG: {
		g_autofree char *dir = NULL;
		g_autofree char *status = NULL;
		g_autoptr(GArray) nspid = NULL;
		struct vp_loadavg l;
		bool v2;

		if (vp_cgroup_task_dir(fs->layout, c->cgroups, &dir, &v2) < 0) {
			*ret_host = true;
			return 0;
		}
		r = vc_proc_read(fs->procfd, c->init, "status", &status, NULL);
		if (r >= 0)
			r = vc_proc_parse_nspid(status, &nspid);
		if (r < 0)
			return r;
		r = vp_sampler_get(fs->sampler, dir, v2, nspid->len, &l);
		if (r < 0)
			return r;
		return vp_render_loadavg(&l, out);
	}
	case VP_F_DISKSTATS: {
		g_autoptr(GArray) devs = NULL;
		bool limited;

		r = vp_cgroup_read_io(fs->cgfiles, fs->layout, c->cgroups, &devs, &limited);
		if (r < 0)
			return r;
		if (!limited) {
			*ret_host = true;
			return 0;
		}
		return vp_render_diskstats(host, devs, out);
	}
	default:
		return vp_render_cpu_file(fs, file, c, host, out, ret_host);
	}
}

int vp_render(struct vp_fs *fs, enum vp_file file, pid_t caller, GString *out)
{
	g_autofree char *host = NULL;
	struct vp_container c;
	bool use_host = true;
	int r;

	r = vp_read_host(fs, file, &host);
	if (r < 0)
		return r;
	/* Anything that goes wrong on the container's side falls back to the host's file:
	 * never an error where the host file would have worked. */
	if (vp_container_resolve(fs, caller, &c) >= 0) {
		gsize len = out->len;

		r = vp_render_container(fs, file, &c, host, out, &use_host);
		if (r < 0) {
			log_debug_errno(r, "rendering %s for pid %d failed, serving the host's",
					vp_host_paths[file], (int)caller);
			g_string_truncate(out, len);
			use_host = true;
		}
		vp_container_clear(&c);
	}
	if (use_host)
		g_string_append(out, host);
	return 0;
}

/* --- handles ------------------------------------------------------------ */

static struct vp_handle *vp_handle_new(fuse_ino_t ino)
{
	struct vp_handle *h = g_new0(struct vp_handle, 1);

	g_atomic_ref_count_init(&h->ref);
	h->ino = ino;
	g_mutex_init(&h->lock);
	h->buf = g_string_sized_new(4096);
	return h;
}

static void vp_handle_unref(gpointer p)
{
	struct vp_handle *h = p;

	if (!h || !g_atomic_ref_count_dec(&h->ref))
		return;
	g_string_free(h->buf, TRUE);
	g_mutex_clear(&h->lock);
	g_free(h);
}

static struct vp_handle *vp_handle_ref(struct vp_handle *h)
{
	g_atomic_ref_count_inc(&h->ref);
	return h;
}

static struct vp_fs *vp_fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* --- operations --------------------------------------------------------- */

static void vp_op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Plain reads and writes only: a replacement worker must behave identically. */
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	conn->max_write = VP_MAX_WRITE;
}

static void vp_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	const struct vp_node *n = vp_node_lookup(parent, name);
	struct fuse_entry_param e;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = n->ino;
	e.generation = 1;
	e.attr_timeout = VP_ATTR_TIMEOUT;
	e.entry_timeout = VP_ATTR_TIMEOUT;
	vp_node_stat(n, &e.attr);
	fuse_reply_entry(req, &e);
}

static void vp_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	const struct vp_node *n = vp_node_get(ino);
	struct stat st;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	vp_node_stat(n, &st);
	fuse_reply_attr(req, &st, VP_ATTR_TIMEOUT);
}

static void vp_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	const struct vp_node *d = vp_node_get(ino);
	g_autofree char *buf = NULL;
	size_t used = 0;

	if (!d || !S_ISDIR(d->mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	buf = g_malloc(size);
	/* Offsets: 0 ".", 1 "..", 2+i the i-th child. */
	for (off_t i = off;; i++) {
		const struct vp_node *n = NULL;
		struct stat st;
		const char *name;
		size_t len;

		memset(&st, 0, sizeof(st));
		if (i == 0) {
			name = ".";
			st.st_ino = d->ino;
			st.st_mode = S_IFDIR;
		} else if (i == 1) {
			name = "..";
			st.st_ino = d->parent;
			st.st_mode = S_IFDIR;
		} else {
			n = vp_node_child(ino, (unsigned)(i - 2));
			if (!n)
				break;
			name = n->name;
			st.st_ino = n->ino;
			st.st_mode = n->mode;
		}
		len = fuse_add_direntry(req, buf + used, size - used, name, &st, i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
}

static int vp_handle_render(struct vp_fs *fs, struct vp_handle *h, pid_t caller)
{
	const struct vp_node *n = vp_node_get(h->ino);

	g_string_truncate(h->buf, 0);
	h->served = false;
	return vp_render(fs, n->file, caller, h->buf);
}

static void vp_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vp_fs *fs = vp_fs_of(req);
	const struct vp_node *n = vp_node_get(ino);
	struct vp_handle *h;
	int r;

	if (!n || n->file == VP_F_NONE) {
		fuse_reply_err(req, n ? EISDIR : ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	h = vp_handle_new(ino);
	r = vp_handle_render(fs, h, fuse_req_ctx(req)->pid);
	if (r < 0) {
		vp_handle_unref(h);
		fuse_reply_err(req, -r);
		return;
	}
	g_mutex_lock(&fs->handle_lock);
	fi->fh = ++fs->next_fh;
	g_hash_table_insert(fs->handles, g_memdup2(&fi->fh, sizeof(fi->fh)), h);
	g_mutex_unlock(&fs->handle_lock);
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->noflush = 1; /* nothing to flush: close() costs no FLUSH round trip */
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* The opener was interrupted: forget the handle, no release will come. */
		g_mutex_lock(&fs->handle_lock);
		g_hash_table_remove(fs->handles, &fi->fh);
		g_mutex_unlock(&fs->handle_lock);
	}
}

static void vp_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct vp_fs *fs = vp_fs_of(req);
	const struct vp_node *n = vp_node_get(ino);
	struct vp_handle *h;
	bool fresh = false;
	int r = 0;

	if (!n || n->file == VP_F_NONE) {
		fuse_reply_err(req, EBADF);
		return;
	}
	g_mutex_lock(&fs->handle_lock);
	h = g_hash_table_lookup(fs->handles, &fi->fh);
	if (!h) {
		/* Opened under an earlier worker: adopt the handle number. */
		h = vp_handle_new(ino);
		g_hash_table_insert(fs->handles, g_memdup2(&fi->fh, sizeof(fi->fh)), h);
		fresh = true;
	}
	vp_handle_ref(h);
	g_mutex_unlock(&fs->handle_lock);

	g_mutex_lock(&h->lock);
	if (fresh || (off == 0 && h->served))
		r = vp_handle_render(fs, h, fuse_req_ctx(req)->pid);
	if (r < 0) {
		g_mutex_unlock(&h->lock);
		vp_handle_unref(h);
		fuse_reply_err(req, -r);
		return;
	}
	h->served = true;
	if (off < 0 || (size_t)off >= h->buf->len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, h->buf->str + off, MIN(size, h->buf->len - (size_t)off));
	g_mutex_unlock(&h->lock);
	vp_handle_unref(h);
}

static void vp_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vp_fs *fs = vp_fs_of(req);

	g_mutex_lock(&fs->handle_lock);
	g_hash_table_remove(fs->handles, &fi->fh);
	g_mutex_unlock(&fs->handle_lock);
	fuse_reply_err(req, 0);
}

static void vp_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;

	memset(&st, 0, sizeof(st));
	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

const struct fuse_lowlevel_ops vp_ops = {
	.init = vp_op_init,
	.lookup = vp_op_lookup,
	.getattr = vp_op_getattr,
	.readdir = vp_op_readdir,
	.open = vp_op_open,
	.read = vp_op_read,
	.release = vp_op_release,
	.statfs = vp_op_statfs,
};

/* The sweeper's other duty: the fds held for callers and containers that ended. */
static void vp_fs_sweep(void *data)
{
	struct vp_fs *fs = data;

	vp_nsinit_sweep(fs);
	vp_pidcache_sweep(fs->pids);
}

int vp_fs_init(struct vp_fs *fs, struct vp_opts *opts)
{
	int r;

	memset(fs, 0, sizeof(*fs));
	fs->opts = opts;
	fs->procfd = fs->sysfd = -1;
	g_mutex_init(&fs->ns_lock);
	g_mutex_init(&fs->handle_lock);
	g_mutex_init(&fs->host_lock);
	fs->ns_cache = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, vp_nsinit_unref);
	/* Two dozen files per container at most: a few thousand fds, far below the limit. */
	fs->pids = vp_pidcache_new(VP_PIDS_MAX);
	fs->cgfiles = vp_fdcache_new(VP_CGROUP_FDS_MAX);
	vp_fdcache_start_sweeper(fs->cgfiles, VP_CGROUP_SWEEP_MS, vp_fs_sweep, fs);
	fs->handles = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, vp_handle_unref);
	/* Handle numbers unique across workers, so a new one never mistakes an old handle
	 * for one of its own: start from the time in ns. */
	fs->next_fh = (uint64_t)g_get_real_time() * 1000;
	fs->procfd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->procfd < 0)
		return log_error_errno(-errno, "could not open /proc");
	fs->sysfd = open("/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->sysfd < 0)
		return log_error_errno(-errno, "could not open /sys");
	r = vc_proc_pidns_ino(fs->procfd, 0, &fs->host_pidns);
	if (r < 0)
		return log_error_errno(r, "could not read our pid namespace");
	r = vc_cgroup_layout_load(opts->cgroup_root, &fs->layout);
	if (r < 0)
		return log_error_errno(r, "no cgroup hierarchy mounted below cgroup_root '%s'",
				       opts->cgroup_root);
	r = vp_sampler_start(fs->procfd, &fs->sampler);
	if (r < 0)
		return log_error_errno(r, "could not start the load sampler");
	return 0;
}

void vp_fs_done(struct vp_fs *fs)
{
	if (fs->sampler)
		vp_sampler_stop(fs->sampler);
	g_clear_pointer(&fs->layout, vc_cgroup_layout_free);
	/* The sweeper first: it also sweeps ns_cache and pids. */
	g_clear_pointer(&fs->cgfiles, vp_fdcache_free);
	g_clear_pointer(&fs->ns_cache, g_hash_table_unref);
	g_clear_pointer(&fs->pids, vp_pidcache_free);
	for (unsigned i = 0; i < VP_F_COUNT; i++)
		g_clear_pointer(&fs->host_text[i], g_free);
	g_clear_pointer(&fs->handles, g_hash_table_unref);
	if (fs->procfd >= 0)
		close(fs->procfd);
	if (fs->sysfd >= 0)
		close(fs->sysfd);
	g_mutex_clear(&fs->ns_lock);
	g_mutex_clear(&fs->handle_lock);
	g_mutex_clear(&fs->host_lock);
}
