/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-unionfs private structures: the filesystem context (layers, node
 * table, fd cache), the node that stands for one name in the merged tree, and
 * the prototypes of every module grouped by file.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <glib.h>
#include <fuse_lowlevel.h>

#include "cleanup.h"
#include "fuse-util.h"

#define VU_NODE_LOCKS 64      /* stripes of node locks */
#define VU_SCAN_ROOT_MAX 4096 /* entries of a layer root read at mount for VU_FD_NOWH */
/* Nodes kept before the least recently used are pruned: ~25 MiB of them (evict.c). */
#ifndef VU_NODE_BUDGET_DEFAULT
#define VU_NODE_BUDGET_DEFAULT 200000
#endif

/* One layer: layers[0] is the upper when there is one, then lowers top to bottom. */
struct vu_layer {
	int fd; /* O_PATH directory fd of the layer root (a private non-recursive clone for lowers)
		 */
	char *path; /* as given on the command line, for messages */
	dev_t dev;
	unsigned fsid;		/* index of its filesystem in vu_fs.xfs (xino.c) */
	atomic_uint root_flags; /* VU_FD_* of the layer root: XWHITEOUTS probed once, NOWH as
				   for vu_fdent.flags */
};

/* Owners shown by the mount (idmap.c): uidmapping=, gidmapping=, squash_*, xattr_permissions=. */
#define VU_IDMAP_MAX 64
struct vu_idmap_range {
	uint32_t disk, view, len; /* ids disk..disk+len-1 in the layers show as view.. */
};
struct vu_idmap {
	unsigned n; /* 0: no mapping, ids show as stored */
	struct vu_idmap_range r[VU_IDMAP_MAX];
};
struct vu_ids_opts {
	char *uidmapping, *gidmapping, *squash_to_uid, *squash_to_gid, *xattr_permissions;
	int squash_to_root, static_nlink;
};
struct vu_ids {
	struct vu_idmap uidmap, gidmap;
	int64_t squash_uid, squash_gid; /* -1: not squashed */
	uint32_t overflow_uid, overflow_gid;
	int xattr_perms; /* 0, 1 (security.*), 2 (user.*) */
	bool static_nlink;
	bool active; /* any of the above but static_nlink */
};

/* Parsed command line, before any of it is acted upon. */
struct vu_params {
	GPtrArray *lowers; /* char*, top first */
	char *upper;
	char *work;
	bool volatile_mode;
	bool no_fsync;
	bool ro;
	double timeout;
	unsigned fd_cache_max;
	unsigned node_budget; /* 0: unlimited */
	int passthrough;      /* VU_PT_* */
	bool metacopy;	      /* -o metacopy=on: metadata-only copy-up, follow metacopy lowers */
	bool noacl;	      /* -o noacl: no POSIX ACLs through the mount */
	struct vu_ids ids;    /* owners shown (idmap.c) */

	int redirect_dir; /* -o redirect_dir=: VU_REDIRECT_* (redirect.c) */
	int xino;	  /* -o xino=: VU_XINO_* (xino.c) */
	bool index;	  /* -o index=on: hard links of lowers survive copy-up (index.c) */
};

/* -o xino=: st_ino over layers on several filesystems (xino.c). */
enum {
	VU_XINO_AUTO = 0, /* as on, unless a lower filesystem has no unique uuid */
	VU_XINO_ON,
	VU_XINO_OFF, /* the layers' own inode numbers, which may collide */
};

/* A filesystem holding layers (xino.c); read-only after setup. */
struct vu_xfs {
	dev_t dev;
	int fd;	       /* O_RDONLY root of a layer on it, for open_by_handle_at() */
	bool present;  /* false: the upper's slot of a mount without an upper */
	bool has_uuid; /* FS_IOC_GETFSUUID answered */
	bool bad_uuid; /* origins on it are neither written nor followed */
	unsigned char uuid[16];
};
struct vu_xino_key {
	int fsid;
	uint64_t ino;
};

/* -o redirect_dir=, the kernel's redirect modes. */
enum {
	VU_REDIRECT_FOLLOW =
		0, /* follow, create none (the kernel's off with redirect_always_follow) */
	VU_REDIRECT_OFF,
	VU_REDIRECT_NOFOLLOW, /* a redirect met in a lookup is refused: EPERM */
	VU_REDIRECT_ON,	      /* renames of lower directories set redirects */
};

enum {
	VU_PT_AUTO = 0, /* passthrough when the kernel offers it */
	VU_PT_ON,	/* refuse to run without it */
	VU_PT_OFF,
};

/* FUSE passthrough state (passthrough.c). */
struct vu_pt {
	int devfd;		    /* the session's /dev/fuse fd; read-only after setup */
	unsigned max_stack_depth;   /* offered in the INIT reply; read-only after setup */
	bool offered;		    /* the INIT request offered passthrough; setup thread only */
	bool negotiated;	    /* the INIT reply asked for passthrough; setup thread only */
	atomic_bool enabled;	    /* negotiated and usable: opens may pass through */
	atomic_bool *layer_refused; /* per layer: the kernel refused its files as backing */
	pthread_mutex_t lock;	    /* taken before fs->nodes_lock */
	GHashTable *nodes; /* vu_node -> vu_pt_node of nodes with open files; protected by lock */
};

/* A link in fs->node_lru. */
struct vu_lru {
	struct vu_lru *prev, *next;
};

struct vu_fs {
	/* Set up before the session starts, read-only afterwards. */
	struct vu_params params;
	struct vu_layer *layers;
	unsigned nlayers;
	bool has_upper;
	int work_fd;	  /* O_PATH directory <workdir>/work, on the upper's mount */
	int index_fd;	  /* O_PATH directory <workdir>/index with -o index=on, else -1 */
	int handle_fd;	  /* O_RDONLY root of the top lower: open_by_handle_at() wants no O_PATH */
	bool samefs;	  /* every layer on one device: st_ino comes from the origin */
	bool can_mknod;	  /* mknod of a 0/0 whiteout works in the workdir */
	bool can_trusted; /* trusted.* xattrs can be set in the workdir */
	bool can_clone;	  /* FICLONE worked in the probe */
	bool root_creds;  /* the daemon runs as uid 0 and gid 0 */
	struct vu_xfs *xfs; /* the layers' filesystems, [0] the upper's (xino.c) */
	unsigned nxfs;
	unsigned xino_bits;	   /* top bits of st_ino holding the fsid; 0: none */
	pthread_mutex_t xino_lock; /* a leaf lock */
	GHashTable *xino_over;	   /* vu_xino_key -> st_ino given out; protected by xino_lock */
	uint64_t xino_next;	   /* protected by xino_lock */
	/* Set by the INIT request, before any other: read-only afterwards. */
	bool acl;	/* the kernel enforces POSIX ACLs, which it reads through getxattr */
	bool dont_mask; /* the kernel left the umask of new objects to us (acl.c) */
	double timeout;
	struct vu_node *root;
	struct fuse_session *se;      /* set before the loop starts, read-only afterwards */
	atomic_uint_fast64_t tmp_seq; /* names of temporaries in the workdir */
	struct vu_pt pt;

	/* Lock order: nodes_lock, then fdcache_lock. Node locks are taken before either. */
	pthread_mutex_t nodes_lock;
	GHashTable *names;    /* (parent, name) -> node; protected by nodes_lock */
	GHashTable *unhashed; /* nodes not in names, for teardown; protected by nodes_lock */
	GHashTable *links; /* upper st_ino -> node of a hard-linked file; protected by nodes_lock */
	GHashTable *aliases; /* upper st_ino -> GSList of nodes sharing that file (alias.c);
				protected by nodes_lock */
	GHashTable *ilower;  /* -o index=on: st_ino shown -> GSList of the nodes of one
				hard-linked lower file not copied up (index.c); nodes_lock */

	/* A node's lock is node_locks[hash of its address]: see vu_node_lock(). */
	pthread_mutex_t node_locks[VU_NODE_LOCKS];

	pthread_mutex_t fdcache_lock;
	GHashTable *fdcache;  /* (node, layer) -> vu_fdent; protected by fdcache_lock */
	GQueue lru;	      /* of vu_fdent, most recent at head; protected by fdcache_lock */
	unsigned fdcache_max; /* read-only after setup */

	/* The node budget (evict.c). */
	struct vu_lru node_lru;	    /* every node but the root; protected by nodes_lock */
	size_t nnodes;		    /* in node_lru; protected by nodes_lock */
	unsigned node_max;	    /* 0: no budget; read-only after setup */
	uint64_t offered;	    /* node ids sent to be pruned; protected by nodes_lock */
	atomic_ulong nameidx_built; /* directories given a name index (nameidx.c) */
	atomic_ulong layer_probes;  /* layers asked for a name by lookups (namei.c) */
	bool evict_kicked;	    /* evict_cond was signalled; protected by nodes_lock */
	bool evict_stop;	    /* protected by nodes_lock */
	pthread_cond_t evict_cond;  /* waited on with nodes_lock */
	pthread_t evict_thread;	    /* started and joined by the main thread */
	bool evict_running;	    /* main thread only */
};

/*
 * One name of the merged tree. Its FUSE inode number is its address (root: FUSE_ROOT_ID).
 * Kept small (a million of them for a big tree): no lock of its own, the name inline.
 */
struct vu_node {
	/* protected by fs->nodes_lock (rename, unlink and forget change them) */
	struct vu_node *parent; /* holds a reference */
	char *name;		/* inl, or a heap copy when a rename needed more room */
	uint64_t nlookup;	/* kernel references */
	ino_t link_ino;		/* upper st_ino: key in fs->links and/or fs->aliases, 0 if none */
	unsigned gen;		/* bumped whenever parent, name or hashed change */
	unsigned refs;		/* internal references: children, open handles, callers */
	int pinned_fd;		/* O_PATH fd kept once unlinked while still referenced */
	bool hashed;		/* present in fs->names, else in fs->unhashed */
	/* in fs->aliases: other nodes may stand for the same upper file; written under
	 * nodes_lock, read without it */
	atomic_bool aliased;

	/*
	 * Copy-up and other changes of where the node lives are serialised by
	 * vu_node_lock(); parent before child.
	 */
	atomic_bool
		opaque_lower; /* a non-directory shadows lower names: whiteout needed on removal */
	atomic_bool metacopy; /* the object at top is metadata only; its data is in a lower
			       * (metacopy.c); written under the node lock */
	atomic_bool impure;   /* directories: the upper one is marked overlay.impure (origin.c) */
	/* -o index=on (index.c): the upper object is an index entry, whose link count is
	 * kept in overlay.nlink; via_index: not linked under this node's name yet (its
	 * upper fd is the entry in <workdir>/index). Written under the node lock. */
	atomic_bool indexed;
	atomic_bool via_index;
	bool in_ilower;		 /* in fs->ilower; protected by fs->nodes_lock */
	unsigned short inl_size; /* bytes of inl; fixed */
	atomic_int top;		 /* layer holding the visible object; written under the node lock */
	atomic_int bottom; /* directories: the last layer merged in; written under the node lock */
	mode_t type;	   /* S_IFMT; fixed */
	atomic_ulong ino;  /* st_ino reported; changes only when a hard-linked lower is copied up */

	GSList *fdents; /* this node's cache entries; protected by fs->fdcache_lock */
	/* directories of a deep lower stack: set once (nameidx.c), freed with the node */
	_Atomic(struct vu_nameidx *) nameidx;
	struct vu_lru lru; /* in fs->node_lru; protected by fs->nodes_lock */
	char inl[];	   /* the name as first given; fixed storage */
};

/* A cached O_PATH fd of one node in one layer. */
struct vu_fdent {
	struct vu_node *node; /* key; fixed */
	int layer;	      /* key; fixed */
	int fd;		      /* fixed */
	unsigned flags;	      /* VU_FD_*; XWHITEOUTS fixed, NOWH protected by fdcache_lock */
	unsigned users;	      /* protected by fdcache_lock */
	bool dead;	      /* evicted while in use; protected by fdcache_lock */
	GList link;	      /* in fs->lru; protected by fdcache_lock */
};

enum {
	VU_FD_XWHITEOUTS = 1 << 0, /* directory in a lower marked overlay.opaque=x */
	/*
	 * The real directory holds no OCI ".wh." entries, so a name missing there needs no
	 * ".wh.NAME" probe. Learned from a full listing, or set where we made the directory
	 * (mkdir, copy-up: empty); cleared before we write a ".wh." file into it. Layers are
	 * not changed behind the mount's back (as with overlayfs), so it stays true.
	 */
	VU_FD_NOWH = 1 << 1,
};

/* A borrowed fd; vu_fdref_put gives it back. */
struct vu_fdref {
	struct vu_fs *fs;
	struct vu_fdent *ent; /* NULL when fd is not cached (layer roots, pinned fds) */
	int fd;
	unsigned flags;
};

/* What a lookup found for one name in a directory. */
struct vu_found {
	int top; /* -1: nothing visible */
	int bottom;
	struct stat st;	    /* of the object in layer top */
	ino_t ino;	    /* st_ino to report */
	bool lower_exists;  /* the name is visible in some layer below top (a whiteout is needed) */
	int upper_whiteout; /* VU_WH_* found in the upper, for create-over-whiteout */
	bool metacopy;	    /* the object at top is metadata only (st_blocks: its data's) */
	bool indexed;	    /* -o index=on: top is an index entry (index.c) */
	bool via_index;	    /* ... reached through <workdir>/index only; bottom: its lower */
};

enum {
	VU_WH_NONE = 0,
	VU_WH_CHR, /* char device 0/0 */
	VU_WH_OCI, /* .wh.NAME next to it */
	VU_WH_XATTR,
};

enum {
	VU_WH_NOREPLACE,   /* nothing is at the name in the upper */
	VU_WH_REPLACE,	   /* replace the upper non-directory atomically */
	VU_WH_REPLACE_DIR, /* replace an emptied upper directory */
};

/* Read-only, on the root only: "nodes=N budget=B offered=P indexed=I probes=L\n" (evict.c). */
#define VU_XATTR_STATS "trusted.veneer.nodes"

#define VU_OCI_PREFIX ".wh."
#define VU_OCI_OPAQUE ".wh..wh..opq"

static inline bool vu_is_upper(const struct vu_fs *fs, int layer)
{
	return fs->has_upper && layer == 0;
}

/* params.c */
int vu_params_parse(struct fuse_args *args, struct vu_params *ret);
int vu_params_check(struct vu_params *p, const char *mountpoint);
void vu_params_done(struct vu_params *p);
void vu_params_help(void);

/* idmap.c */
int vu_ids_params(const struct vu_ids_opts *o, struct vu_ids *ret);
void vu_ids_fixup(struct vu_fs *fs, struct vu_node *node, struct stat *st);
int vu_ids_store(const struct vu_fs *fs, uid_t *uid, gid_t *gid);
int vu_ids_acl_map(const struct vu_fs *fs, void *value, size_t size, bool to_disk);
void vu_ids_store_new(const struct vu_fs *fs, uid_t *uid, gid_t *gid);
bool vu_ids_squashed(const struct vu_fs *fs);
int vu_ids_set_owner(struct vu_fs *fs, int fd, uid_t uid, gid_t gid, bool mode_set, mode_t mode);
const char *vu_ids_override_name(const struct vu_fs *fs);
bool vu_ids_xattr_hidden(const struct vu_fs *fs, const char *name);
int vu_ids_keep_owner(struct vu_fs *fs, int fd, const struct stat *st);
int vu_ids_chown_new(struct vu_fs *fs, int dirfd, const char *name, uid_t uid, gid_t gid,
		     mode_t mode);

/* layer-xattr.c */
#define VU_XATTR_LAYER "user.veneer.layer"
char *vu_layer_xattr_value(struct vu_fs *fs, struct vu_node *node);
bool vu_layer_xattr_reply(fuse_req_t req, struct vu_fs *fs, struct vu_node *node, const char *name,
			  size_t size);

/* export.c: veneer-unionfs --export-layer */
int vu_export_main(int argc, char **argv);

/* xino.c */
int vu_params_xino(const char *value, struct vu_params *p);
int vu_xino_setup(struct vu_fs *fs);
void vu_xino_teardown(struct vu_fs *fs);
bool vu_xino_same_dev(const struct vu_fs *fs);
int vu_xino_fsid_of_dev(const struct vu_fs *fs, dev_t dev);
ino_t vu_xino_map(struct vu_fs *fs, dev_t dev, ino_t ino);

/* super.c */
int vu_super_setup(struct vu_fs *fs);
void vu_super_teardown(struct vu_fs *fs);
char *vu_tmpname(struct vu_fs *fs);

/* node.c */
struct vu_node *vu_node_new_root(struct vu_fs *fs);
struct vu_node *vu_node_of(struct vu_fs *fs, fuse_ino_t ino);
fuse_ino_t vu_node_ino(struct vu_fs *fs, struct vu_node *node);
struct vu_node *vu_node_find(struct vu_fs *fs, struct vu_node *parent, const char *name);
struct vu_node *vu_node_get(struct vu_fs *fs, struct vu_node *parent, const char *name,
			    const struct vu_found *f, bool count_lookup);
void vu_node_ref(struct vu_fs *fs, struct vu_node *node);
void vu_node_lookup_inc(struct vu_fs *fs, struct vu_node *node);
void vu_node_add_link(struct vu_fs *fs, struct vu_node *node, ino_t upper_ino);
bool vu_node_is_at(struct vu_fs *fs, struct vu_node *node, struct vu_node *parent,
		   const char *name);
void vu_node_unref(struct vu_fs *fs, struct vu_node *node);
void vu_node_forget(struct vu_fs *fs, struct vu_node *node, uint64_t n);
struct vu_node *vu_node_parent(struct vu_fs *fs, struct vu_node *node, char **ret_name);
void vu_node_unhash(struct vu_fs *fs, struct vu_node *node);
int vu_node_detach(struct vu_fs *fs, struct vu_node *node);
bool vu_node_hashed(struct vu_fs *fs, struct vu_node *node);
void vu_node_rehash(struct vu_fs *fs, struct vu_node *node);
void vu_node_move(struct vu_fs *fs, struct vu_node *node, struct vu_node *newparent,
		  const char *newname);
void vu_node_exchange(struct vu_fs *fs, struct vu_node *a, struct vu_node *b);
int vu_node_fd(struct vu_fs *fs, struct vu_node *node, int layer, struct vu_fdref *ret);
void vu_fdref_put(struct vu_fdref *ref);
void vu_fdref_set_flags(struct vu_fdref *ref, int layer, unsigned flags);
void vu_node_fd_clear_flags(struct vu_fs *fs, struct vu_node *node, int layer, unsigned flags);
void vu_node_fd_forget(struct vu_fs *fs, struct vu_node *node, int layer);
void vu_nodes_teardown(struct vu_fs *fs);
void vu_node_lock(struct vu_fs *fs, struct vu_node *node);
void vu_node_unlock(struct vu_fs *fs, struct vu_node *node);
void vu_node_lock2(struct vu_fs *fs, struct vu_node *a, struct vu_node *b);
void vu_node_unlock2(struct vu_fs *fs, struct vu_node *a, struct vu_node *b);
#define _cleanup_fdref_ __attribute__((cleanup(vu_fdref_put)))
#define VU_FDREF_INIT                                         \
	{                                                     \
		.fs = NULL, .ent = NULL, .fd = -1, .flags = 0 \
	}

/* alias.c */
void vu_nodelist_add(GHashTable *t, gpointer key, struct vu_node *node);
void vu_nodelist_remove(GHashTable *t, gpointer key, struct vu_node *node);
void vu_alias_init(struct vu_fs *fs);
void vu_alias_add_locked(struct vu_fs *fs, struct vu_node *node, ino_t upper_ino);
void vu_alias_join_locked(struct vu_fs *fs, struct vu_node *node, const struct stat *st);
void vu_alias_remove_locked(struct vu_fs *fs, struct vu_node *node);
void vu_alias_changed(struct vu_fs *fs, struct vu_node *node);
double vu_attr_timeout(struct vu_fs *fs, struct vu_node *node, const struct stat *st);

/* evict.c */
void vu_evict_init(struct vu_fs *fs);
void vu_evict_added(struct vu_fs *fs, struct vu_node *node);
void vu_evict_touch(struct vu_fs *fs, struct vu_node *node);
void vu_evict_removed(struct vu_fs *fs, struct vu_node *node);
int vu_evict_start(struct vu_fs *fs);
void vu_evict_stop(struct vu_fs *fs);
char *vu_evict_stats(struct vu_fs *fs);

/* index.c: -o index=on, the kernel's inode index in <workdir>/index */
#define VU_NLINK_XATTR "trusted.overlay.nlink"
int vu_index_setup(struct vu_fs *fs, int wfd);
bool vu_index_wanted(const struct vu_fs *fs, const struct stat *lower_st);
bool vu_index_node_wanted(struct vu_fs *fs, struct vu_node *node);
void vu_index_data_copied(struct vu_fs *fs, struct vu_node *node);
bool vu_index_holds(struct vu_fs *fs, const unsigned char *fb, int n, ino_t upper_ino);
int vu_index_probe(struct vu_fs *fs, int dirfd, const char *name, struct vu_found *f, int *ret_fd);
int vu_index_open(struct vu_fs *fs, struct vu_node *node, int *ret_fd);
void vu_index_fix_nlink(struct vu_fs *fs, struct vu_node *node, struct stat *st);
bool vu_index_is_entry(struct vu_fs *fs, int fd, const struct stat *st);
int vu_index_copy_up(struct vu_fs *fs, struct vu_node *node, struct vu_node *parent,
		     const char *name, int srcfd, const struct stat *st, int dst, const char *tmp,
		     bool *ret_meta);
int vu_index_link_up(struct vu_fs *fs, struct vu_node *node, struct vu_node *parent,
		     const char *name);
int vu_index_name_of(struct vu_fs *fs, struct vu_node *node, char **ret);
void vu_index_removed(struct vu_fs *fs, const char *idxname);
void vu_index_node_added_locked(struct vu_fs *fs, struct vu_node *node, const struct stat *st);
void vu_index_node_freed_locked(struct vu_fs *fs, struct vu_node *node);

/* origin.c */
int vu_origin_encode(struct vu_fs *fs, int srcfd, const struct stat *st, unsigned char *fb);
int vu_origin_ino_at(struct vu_fs *fs, int dirfd, const char *name, ino_t *ret);
void vu_origin_set(struct vu_fs *fs, int srcfd, int dstfd, const struct stat *st);
bool vu_origin_has(struct vu_fs *fs, int fd);
int vu_origin_mark_impure(struct vu_fs *fs, struct vu_node *dir, int dirfd);
bool vu_origin_dir_impure(struct vu_fs *fs, struct vu_node *dir, int dirfd);
bool vu_origin_fix_dir(struct vu_fs *fs, struct vu_node *parent, const char *name,
		       const struct vu_found *f);

/* nameidx.c: the lower layers [first, last] holding NAME or .wh.NAME in a directory */
struct vu_nameidx {
	int first, last;   /* the lower range listed; fixed */
	GHashTable *names; /* name -> GArray of int layers, ascending; fixed once published */
};
const struct vu_nameidx *vu_nameidx_get(struct vu_fs *fs, struct vu_node *dir, int first, int last);
const GArray *vu_nameidx_layers(const struct vu_nameidx *idx, const char *name);
void vu_nameidx_free(struct vu_nameidx *idx);

/* namei.c */
int vu_namei_lookup(struct vu_fs *fs, struct vu_node *parent, const char *name,
		    struct vu_found *ret);
int vu_namei_child(struct vu_fs *fs, struct vu_node *parent, const char *name, bool count,
		   struct vu_node **ret_node, struct vu_found *ret_found);
bool vu_namei_lower_visible(struct vu_fs *fs, struct vu_node *parent, const char *name);

/* inode.c */
int vu_inode_stat(struct vu_fs *fs, struct vu_node *node, struct stat *ret);
void vu_fill_entry(struct vu_fs *fs, struct vu_node *node, const struct stat *st,
		   struct fuse_entry_param *e);
void vu_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void vu_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void vu_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void vu_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void vu_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi);
void vu_op_readlink(fuse_req_t req, fuse_ino_t ino);
void vu_op_access(fuse_req_t req, fuse_ino_t ino, int mask);
void vu_op_statfs(fuse_req_t req, fuse_ino_t ino);

/* dir.c */
void vu_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void vu_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void vu_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void vu_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void vu_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void vu_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void vu_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		  const char *newname, unsigned int flags);
int vu_dir_prepare_create(struct vu_fs *fs, struct vu_node *parent, const char *name,
			  struct vu_node *link, struct vu_found *ret_found);
int vu_dir_install(struct vu_fs *fs, struct vu_node *parent, const char *name, int tmpdirfd,
		   const char *tmpname, const struct vu_found *found);
void vu_dir_mark_new(struct vu_fs *fs, struct vu_node *dir);
int vu_dir_owner(fuse_req_t req, struct vu_fs *fs, struct vu_node *parent, bool in_place,
		 uid_t *uid, gid_t *gid, mode_t *mode);

/* readdir.c */
void vu_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void vu_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void vu_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
void vu_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void vu_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
int vu_dir_is_empty(struct vu_fs *fs, struct vu_node *dir);

/* copy_up.c */
int vu_copy_up(struct vu_fs *fs, struct vu_node *node, bool with_data);
int vu_copy_up_meta(struct vu_fs *fs, struct vu_node *node);

/* metacopy.c */
#define VU_MC_XATTR "trusted.overlay.metacopy"
#define VU_REDIRECT_XATTR "trusted.overlay.redirect"
/* Where the data of a metacopy object was found. */
struct vu_mcdata {
	int layer;	     /* layer of the data file */
	int fd;		     /* O_PATH fd of the data file */
	struct stat st;	     /* of the data file */
	nlink_t first_nlink; /* links of the first lower found below the metacopy object */
};
int vu_mc_check(struct vu_fs *fs, int dirfd, const char *name, const struct stat *st);
int vu_mc_resolve(struct vu_fs *fs, struct vu_node *parent, const char *name, int top, int objfd,
		  struct vu_mcdata *ret);
int vu_mc_node_data(struct vu_fs *fs, struct vu_node *node, struct vu_mcdata *ret);
int vu_mc_set_redirect(struct vu_fs *fs, struct vu_node *node, bool samedir);
int vu_mc_redirect_of(int dirfd, const char *name, char **ret);
int vu_mc_redirect_of_fd(int fd, char **ret);
void vu_mc_follow(char **path, char **cur, char *redirect);
int vu_mc_open_dir(struct vu_fs *fs, int l, const char *path, const char **ret_base,
		   int *ret_owned);

/* redirect.c */
int vu_params_redirect(const char *value, bool metacopy_set, struct vu_params *p);
bool vu_redirect_follows(const struct vu_fs *fs);
int vu_redirect_node_open(struct vu_fs *fs, struct vu_node *node, struct vu_node *parent, int layer,
			  int *ret_fd);
char *vu_redirect_lower_path(struct vu_fs *fs, struct vu_node *node);
int vu_redirect_set(struct vu_fs *fs, struct vu_node *node, bool samedir);

/* file.c */
void vu_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void vu_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		  struct fuse_file_info *fi);
void vu_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void vu_op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
		     struct fuse_file_info *fi);
void vu_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void vu_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void vu_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void vu_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		     struct fuse_file_info *fi);
void vu_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);
void vu_op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			   struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			   struct fuse_file_info *fi_out, size_t len, int flags);
int vu_file_fd(struct vu_fs *fs, struct fuse_file_info *fi, struct vu_node *node);

/* passthrough.c */
enum {
	VU_PTM_NONE,	    /* passthrough is off: the handle is opened as without it */
	VU_PTM_CACHED,	    /* through the daemon and the kernel's page cache */
	VU_PTM_PASSTHROUGH, /* the kernel reads and writes the backing file itself */
	VU_PTM_DIRECT,	    /* read/write through the daemon, mmap on another file's backing */
	VU_PTM_STALE,	    /* not opened: the node leaves its name, the open fails with ESTALE */
};
void vu_pt_init_reply(struct vu_fs *fs, const struct fuse_init_in *in, struct fuse_init_out *out);
int vu_pt_session_setup(struct vu_fs *fs, struct fuse_session *se);
void vu_pt_teardown(struct vu_fs *fs);
int vu_pt_open(struct vu_fs *fs, struct fuse_file_info *fi, struct vu_node *node, int layer, int fd,
	       const struct stat *st, int *ret_backing_id);
void vu_pt_release(struct vu_fs *fs, struct vu_node *node, int mode);
int vu_pt_reply_open(fuse_req_t req, const struct fuse_file_info *fi, int backing_id);
int vu_pt_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
		       const struct fuse_file_info *fi, int backing_id);

/* whiteout.c */
bool vu_whiteout_is(struct vu_fs *fs, int layer, int dirfd, unsigned dirflags, const char *name,
		    const struct stat *st);
bool vu_whiteout_oci_exists(int dirfd, const char *name);
int vu_whiteout_dir_scan(int pathfd, size_t max_entries);
bool vu_whiteout_is_private_name(const char *name);
int vu_whiteout_dir_opaque(struct vu_fs *fs, int layer, int dirfd, unsigned *ret_flags);
int vu_whiteout_make(struct vu_fs *fs, struct vu_node *dir, int dirfd, const char *name, int how);
int vu_whiteout_remove(struct vu_fs *fs, int dirfd, const char *name, int kind);
int vu_whiteout_set_opaque(struct vu_fs *fs, int fd);
int vu_whiteout_clear_upper_dir(struct vu_fs *fs, int dirfd);

/* acl.c */
#define VU_ACL_ACCESS "system.posix_acl_access"
#define VU_ACL_DEFAULT "system.posix_acl_default"
/* Is gid the caller's group or one of its supplementary groups? */
bool vu_acl_in_group(fuse_req_t req, gid_t gid);
/* Where a new object is made: in place in the upper parent, or over a whiteout in the workdir. */
struct vu_mkplace {
	int dirfd;	  /* the directory to make it in (not owned) */
	const char *name; /* the name to make it under there */
	char *tmp;	  /* over a whiteout: its name in the workdir, else NULL */
	char *acldir;	  /* a workdir subdirectory carrying the parent's default ACL */
	int acldir_fd;
};
bool vu_acl_is_name(const char *name);
int vu_acl_check_name(struct vu_fs *fs, const char *name);
int vu_acl_fix_get(const char *name, int r);
int vu_acl_kill_sgid(fuse_req_t req, struct vu_fs *fs, struct vu_node *node);
int vu_acl_clean_workdir(struct vu_fs *fs);
int vu_mkplace_begin(fuse_req_t req, struct vu_fs *fs, int pfd, const char *name,
		     bool over_whiteout, mode_t *mode, struct vu_mkplace *ret);
void vu_mkplace_done(struct vu_fs *fs, struct vu_mkplace *mp);
int vu_mkplace_fix_mode(int dirfd, const char *name, mode_t mode);

/* xattr.c */
bool vu_xattr_is_private(const char *name);
int vu_xattr_copy(int srcfd, int dstfd);
void vu_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		    size_t size, int flags);
void vu_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void vu_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void vu_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

static inline struct vu_fs *vu_fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}
