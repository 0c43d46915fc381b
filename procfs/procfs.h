/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-procfs private structures and prototypes, grouped by the file that
 * owns them. One context struct (struct vp_fs) per worker process; the
 * connection holder (holder.c) is a separate process with its own state.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>
#include <fuse_lowlevel.h>

#include "cgroup-util.h"
#include "fuse-util.h"
#include "pidcache.h"
#include "render.h"

#define VP_DEFAULT_MOUNTPOINT "/var/lib/veneer/procfs"
#define VP_DEFAULT_CGROUP_ROOT "/sys/fs/cgroup"
/* The tree is read-only: small writes keep every request within a journal slot (loop.c). */
#define VP_MAX_WRITE 4096

struct vp_opts {
	char *cgroup_root;	   /* -o cgroup_root= */
	int cpu_quota;		   /* -o cpu_quota=0|1: apply ceil(quota/period) to the CPU count */
	unsigned threads;	   /* -o threads=N request threads */
	unsigned respawn_delay_ms; /* -o respawn_delay=MS, 0: the holder never respawns */
	char *mountpoint;	   /* canonical, absolute */
	struct vc_fuse_cmdline cl; /* -f, -d, --ready-fd, ... */
};

/* nodes.c: the static inode table. */
enum vp_file {
	VP_F_NONE = -1, /* a directory */
	VP_F_MEMINFO,
	VP_F_CPUINFO,
	VP_F_STAT,
	VP_F_UPTIME,
	VP_F_LOADAVG,
	VP_F_SWAPS,
	VP_F_DISKSTATS,
	VP_F_CPU_ONLINE,
	VP_F_CPU_POSSIBLE,
	VP_F_CPU_PRESENT,
	VP_F_COUNT,
};

struct vp_node {
	fuse_ino_t ino;
	fuse_ino_t parent;
	const char *name;
	mode_t mode;
	enum vp_file file;
};

const struct vp_node *vp_node_get(fuse_ino_t ino);
const struct vp_node *vp_node_lookup(fuse_ino_t parent, const char *name);
/* The i-th child of dir (for readdir); NULL past the end. */
const struct vp_node *vp_node_child(fuse_ino_t dir, unsigned i);
void vp_node_stat(const struct vp_node *n, struct stat *st);

/* sampler.c: background load sampling of the containers that read loadavg. */
struct vp_sampler;
int vp_sampler_start(int procfd, struct vp_sampler **ret);
void vp_sampler_stop(struct vp_sampler *s);
/* The load of the tasks below dir (registers dir for sampling on first use). */
int vp_sampler_get(struct vp_sampler *s, const char *dir, bool v2, unsigned ns_depth,
		   struct vp_loadavg *ret);

/* One open file: the rendered snapshot. */
struct vp_handle {
	gatomicrefcount ref;
	fuse_ino_t ino;
	GMutex lock;
	GString *buf; /* protected by lock */
	bool served;  /* protected by lock: a read was answered since the last render */
};

struct vp_fs {
	struct vp_opts *opts;		 /* read-only after start */
	int procfd;			 /* O_PATH /proc, read-only after start */
	int sysfd;			 /* O_PATH /sys, read-only after start */
	uint64_t host_pidns;		 /* our own pid namespace, read-only */
	struct vc_cgroup_layout *layout; /* read-only after start */
	struct vp_sampler *sampler;	 /* thread-safe itself */

	/* Lock order: ns_lock and handle_lock are leaves; never held together. */
	GMutex ns_lock;
	GHashTable *ns_cache; /* protected by ns_lock: pid-ns inode -> struct vp_nsinit (ref) */
	guint ns_sweep_at;    /* protected by ns_lock: size at which dead inits are dropped */
	struct vp_fdcache *cgfiles;    /* thread-safe itself: kept fds of cgroup files */
	struct vp_pidcache *pids;      /* thread-safe itself: caller pid -> pid namespace */
	GMutex host_lock;	       /* a leaf */
	char *host_text[VP_F_COUNT];   /* protected by host_lock: recent host files */
	gint64 host_stamp[VP_F_COUNT]; /* protected by host_lock: when read (monotonic us) */
	GMutex handle_lock;
	GHashTable *handles; /* protected by handle_lock: fh -> struct vp_handle */
	uint64_t next_fh;    /* protected by handle_lock */
};

/* container.c: the calling process -> its container. */
struct vp_container {
	bool host;	     /* in our own pid namespace: init is our pid 1 */
	pid_t init;	     /* init of the caller's pid namespace */
	uint64_t init_start; /* its starttime (ticks after boot) */
	GPtrArray *cgroups;  /* parsed /proc/<init>/cgroup */
};

int vp_container_resolve(struct vp_fs *fs, pid_t caller, struct vp_container *ret);
/* The value destructor of vp_fs.ns_cache. */
void vp_nsinit_unref(gpointer p);
/* Drop the cached namespaces whose init has exited (and the fds they hold). */
void vp_nsinit_sweep(struct vp_fs *fs);
void vp_container_clear(struct vp_container *c);

/* file.c: render one file for a caller; the FUSE operations. */
int vp_render(struct vp_fs *fs, enum vp_file file, pid_t caller, GString *out);
extern const struct fuse_lowlevel_ops vp_ops;
int vp_fs_init(struct vp_fs *fs, struct vp_opts *opts);
void vp_fs_done(struct vp_fs *fs);

/* holder.c: the process that owns the /dev/fuse connection across worker restarts. */
/* False once the kernel ended the connection (unmounted or aborted). */
bool vp_fuse_conn_alive(int fuse_fd);
struct vp_rdv {
	int dirfd;
	char *dir;
};

#define VP_TOKEN_LEN 32 /* hex digits naming one FUSE connection */

/* What a holder tells an attaching worker first (the WELCOME payload, then FUSE_INIT). */
struct vp_conn_id {
	char token[VP_TOKEN_LEN + 1]; /* NUL-terminated */
	char pad[7];
	uint64_t mnt_id; /* mountinfo id of the connection's mount on the mount point; 0: unknown */
};

struct vp_attach {
	int ctl;     /* the control connection to the holder */
	int fuse_fd; /* our copy of /dev/fuse */
	char *init;  /* the recorded FUSE_INIT request; NULL: answer it live */
	size_t init_len;
	GArray *orphans; /* int: journals of dead workers to replay */
	struct vp_conn_id id;
};

/* Attach to the holder of mountpoint, creating holder and mount when there is none. */
int vp_holder_attach(struct vp_opts *opts, struct vp_attach *ret);
/*
 * The holder died while we serve: start a replacement holder from our copy of
 * the connection (exec of ourselves with --internal-holder) and attach to it.
 * New orphan journals are appended to a->orphans for the caller to replay.
 */
int vp_holder_replace(struct vp_opts *opts, int fuse_fd, struct vp_attach *a);
/* The --internal-holder mode: hold fuse_fd with the FUSE_INIT in init_fd. Only returns on error. */
int vp_holder_adopt(struct vp_opts *opts, int fuse_fd, int init_fd);
/* Hand the live FUSE_INIT request to the holder, and our journal memfd. */
int vp_holder_send_init(int ctl, const void *init, size_t len);
int vp_holder_send_journal(int ctl, int memfd);
void vp_attach_clear(struct vp_attach *a);
/* holder.c, for attach.c */
bool vp_peer_trusted(int c);
int vp_holder_exe(char **ret);
char **vp_holder_respawn_argv(struct vp_opts *opts);
int vp_holder_create(struct vp_opts *opts, struct vp_rdv *rdv, char **ret_conn);
/* `veneer-procfs --restart MNT`: the holder of MNT starts a new worker, the old ones retire. */
int vp_holder_restart(struct vp_opts *opts);

/* rendezvous.c: the private directory where workers find holders. */
/* Open (create: make) the directory; refused unless it is ours alone. -ENOENT if absent. */
int vp_rdv_open(struct vp_rdv *rdv, bool create);
void vp_rdv_close(struct vp_rdv *rdv);
/* Exclusive among veneer-procfs processes: creating, taking over, removing names. */
int vp_rdv_lock(struct vp_rdv *rdv);
void vp_rdv_unlock(struct vp_rdv *rdv);
char *vp_rdv_mnt_name(const char *mountpoint);
char *vp_rdv_conn_name(const char *token);
int vp_rdv_new_token(char token[VP_TOKEN_LEN + 1]);
int vp_rdv_connect(struct vp_rdv *rdv, const char *name, int *ret);
/* Under the lock: listen on name (a stale socket there is replaced). */
int vp_rdv_listen(struct vp_rdv *rdv, const char *name, int *ret);
/* Under the lock: mnt_name now leads to conn_name; a dead previous target is removed. */
int vp_rdv_point(struct vp_rdv *rdv, const char *mnt_name, const char *conn_name);
/* Under the lock: remove names of holders that were killed (nobody listens). */
void vp_rdv_sweep(struct vp_rdv *rdv);
/* A holder's end: its socket, the mount point's link if it leads there, the empty directory. */
void vp_rdv_remove(struct vp_rdv *rdv, const char *mnt_name, const char *conn_name);
/* The mountinfo id of a veneer-procfs mount on mountpoint: id want if given, else the top one. */
int vp_mount_id_at(const char *mountpoint, uint64_t want, uint64_t *ret);

/* loop.c: the journaled request loop. */
int vp_loop_run(struct fuse_session *se, struct vp_attach *a, struct vp_opts *opts);

/* holder.c: the control protocol (SOCK_SEQPACKET, one message per packet). */
enum vp_msg_type {
	/* worker -> holder: I want to serve; payload [uint8 1: only if your mount is on MNT] */
	VP_MSG_ATTACH = 1,
	/* holder -> worker: fds [fuse, orphan journals...], payload struct vp_conn_id + INIT */
	VP_MSG_WELCOME,
	VP_MSG_INIT,	  /* worker -> holder: the FUSE_INIT request it answered live */
	VP_MSG_JOURNAL,	  /* worker -> holder: fd [journal memfd], int32 pid; it serves now */
	VP_MSG_RETIRE,	  /* holder -> worker: a newer worker serves, exit without unmounting */
	VP_MSG_REPLAY,	  /* holder -> worker: fds [journals of a worker that died] */
	VP_MSG_ORPHANED,  /* holder -> worker: my mount left the mount point (ATTACH asked) */
	VP_MSG_RESTART,	  /* --restart -> holder: start a new worker */
	VP_MSG_RESTARTED, /* holder -> --restart: int32 pid of the new worker serving, or -errno */
};

#define VP_MSG_MAX_FDS 16
#define VP_MSG_MAX_PAYLOAD 4096

int vp_ctl_send(int fd, enum vp_msg_type type, const void *payload, size_t len, const int *fds,
		unsigned nfds);
/* ret_fds must hold VP_MSG_MAX_FDS; received fds are O_CLOEXEC. 0 on EOF with *ret_type 0. */
int vp_ctl_recv(int fd, enum vp_msg_type *ret_type, void *payload, size_t *ret_len, int *ret_fds,
		unsigned *ret_nfds);
