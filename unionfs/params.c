/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The -o option table (fuse-overlayfs and podman compatible) and the checks of
 * the layers it names. Everything is validated here, before a single file is
 * created or the session exists: bad input means one message and exit 2.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <glib.h>

#include "log.h"
#include "parse-util.h"
#include "path-util.h"
#include "unionfs.h"

struct vu_opts {
	char *lowerdir;
	char *upperdir;
	char *workdir;
	char *fsync;
	char *timeout;
	char *fd_cache;
	char *node_budget;
	char *passthrough;
	char *metacopy;
	char *redirect_dir; /* issue 15 part B */
	char *xino;
	char *index;
	int volatile_mode;
	int ro;
	int noacl;
	int bad;		/* an unknown option was seen (already reported) */
	struct vu_ids_opts ids; /* owners shown (idmap.c) */
};

enum {
	VU_KEY_CONTEXT,
	VU_KEY_PASS,
	VU_KEY_EMPTY,
};

static const struct fuse_opt vu_opt_table[] = {
	{"lowerdir=%s", offsetof(struct vu_opts, lowerdir), 0},
	{"upperdir=%s", offsetof(struct vu_opts, upperdir), 0},
	{"workdir=%s", offsetof(struct vu_opts, workdir), 0},
	{"fsync=%s", offsetof(struct vu_opts, fsync), 0},
	{"timeout=%s", offsetof(struct vu_opts, timeout), 0},
	{"fd_cache=%s", offsetof(struct vu_opts, fd_cache), 0},
	{"node_budget=%s", offsetof(struct vu_opts, node_budget), 0},
	{"passthrough=%s", offsetof(struct vu_opts, passthrough), 0},
	{"metacopy=%s", offsetof(struct vu_opts, metacopy), 0},
	{"redirect_dir=%s", offsetof(struct vu_opts, redirect_dir), 0},
	{"xino=%s", offsetof(struct vu_opts, xino), 0},
	{"index=%s", offsetof(struct vu_opts, index), 0},
	{"volatile", offsetof(struct vu_opts, volatile_mode), 1},
	{"ro", offsetof(struct vu_opts, ro), 1},
	{"noacl", offsetof(struct vu_opts, noacl), 1},
	/* owners shown (idmap.c), as podman passes them to a mount_program */
	{"uidmapping=%s", offsetof(struct vu_opts, ids.uidmapping), 0},
	{"gidmapping=%s", offsetof(struct vu_opts, ids.gidmapping), 0},
	{"squash_to_root", offsetof(struct vu_opts, ids.squash_to_root), 1},
	{"squash_to_uid=%s", offsetof(struct vu_opts, ids.squash_to_uid), 0},
	{"squash_to_gid=%s", offsetof(struct vu_opts, ids.squash_to_gid), 0},
	{"static_nlink", offsetof(struct vu_opts, ids.static_nlink), 1},
	{"xattr_permissions=%s", offsetof(struct vu_opts, ids.xattr_permissions), 0},
	FUSE_OPT_KEY("ro", VU_KEY_PASS),
	FUSE_OPT_KEY("context=", VU_KEY_CONTEXT),
	FUSE_OPT_KEY("fscontext=", VU_KEY_CONTEXT),
	FUSE_OPT_KEY("defcontext=", VU_KEY_CONTEXT),
	FUSE_OPT_KEY("rootcontext=", VU_KEY_CONTEXT),
	FUSE_OPT_KEY("", VU_KEY_EMPTY),
	FUSE_OPT_END,
};

/* Mount options handed on to libfuse / the kernel as they are. */
static const char *const vu_pass_opts[] = {
	"rw",		"noatime",     "atime",
	"relatime",	"strictatime", "nodiratime",
	"allow_other",	"allow_root",  "default_permissions",
	"suid",		"nosuid",      "dev",
	"nodev",	"exec",	       "noexec",
	"sync",		"async",       "dirsync",
	"auto_unmount", "clone_fd",    NULL,
};
static const char *const vu_pass_prefixes[] = {
	"fsname=",   "subtype=", "max_idle_threads=", "max_threads=",
	"max_read=", "uring=",	 "uring_threads=",    NULL,
};

/*
 * The values libfuse and the kernel would refuse only once the session exists or at
 * mount(2), after the workdir was prepared: a type or a size must be there.
 */
static bool vu_pass_value_ok(const char *arg)
{
	const char *eq = strchr(arg, '=');
	unsigned v;

	if (g_str_has_prefix(arg, "subtype=") && eq[1] == '\0') {
		log_error("subtype='': expected a name");
		return false;
	}
	if (g_str_has_prefix(arg, "max_read=") && (vc_parse_uint(eq + 1, &v) < 0 || v == 0)) {
		log_error("max_read='%s': expected a number of bytes above 0", eq + 1);
		return false;
	}
	return true;
}

/* -o NAME=on|off, when given. */
static int vu_params_onoff(const char *name, const char *value, bool *ret)
{
	if (!value)
		return 0;
	if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
		log_error("%s='%s': expected on or off", name, value);
		return -EINVAL;
	}
	*ret = strcmp(value, "on") == 0;
	return 0;
}

/* Stop at the first bad option: one message. */
static int vu_bad(struct vu_opts *o)
{
	o->bad = 1;
	return -1;
}

static int vu_opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct vu_opts *o = data;

	switch (key) {
	case VU_KEY_CONTEXT:
		log_debug("ignoring SELinux option '%s'", arg);
		return 0;
	case VU_KEY_EMPTY:
		return 0;
	case VU_KEY_PASS:
		return 1;
	case FUSE_OPT_KEY_NONOPT:
		return 1;
	case FUSE_OPT_KEY_OPT:
		if (arg[0] == '-')
			return 1; /* -f, -d, --ready-fd=...: handled by vc_fuse_parse_cmdline */
		for (size_t i = 0; vu_pass_opts[i]; i++)
			if (strcmp(arg, vu_pass_opts[i]) == 0)
				return 1;
		for (size_t i = 0; vu_pass_prefixes[i]; i++)
			if (g_str_has_prefix(arg, vu_pass_prefixes[i]))
				return vu_pass_value_ok(arg) ? 1 : vu_bad(o);
		log_error("unknown option '%s'", arg);
		return vu_bad(o);
	default:
		return 1;
	}
}

/*
 * libfuse splits -o groups at every comma and drops backslashes before our
 * table sees a value. Two things must be taken from the raw text first:
 * lowerdir= keeps its "\:" escapes (a colon inside a layer path), and a
 * quoted SELinux label such as context="...:s0:c1,c2" (podman) has a comma.
 * The raw lowerdir value is returned; the quoted labels are cut out.
 */
static char *vu_params_prescan(struct fuse_args *args)
{
	char *lower = NULL;

	for (int i = 1; i < args->argc; i++) {
		char *a = args->argv[i];
		GString *out;
		const char *p;

		if (strcmp(a, "-o") == 0 && i + 1 < args->argc)
			a = args->argv[++i];
		else if (strncmp(a, "-o", 2) == 0)
			a += 2;
		else
			continue;
		out = g_string_new(NULL);
		for (p = a; *p;) {
			const char *end = p, *ctx;
			bool quoted = false;

			/* one option: up to an unescaped, unquoted comma */
			while (*end && (quoted || *end != ',')) {
				if (*end == '\\' && end[1])
					end++;
				else if (*end == '"')
					quoted = !quoted;
				end++;
			}
			if (g_str_has_prefix(p, "lowerdir=")) {
				GString *v = g_string_new(NULL);

				for (const char *q = p + strlen("lowerdir="); q < end; q++) {
					if (*q == '\\' && q + 1 < end && q[1] == ',')
						q++;
					g_string_append_c(v, *q);
				}
				g_free(lower);
				lower = g_string_free(v, false);
			}
			ctx = strstr(p, "context=\"");
			if (ctx && ctx < end) {
				log_debug("ignoring SELinux option '%.*s'", (int)(end - p), p);
			} else {
				if (out->len)
					g_string_append_c(out, ',');
				g_string_append_len(out, p, end - p);
			}
			p = *end ? end + 1 : end;
		}
		/* Never longer than before: rewritten in place (argv belongs to main). */
		strcpy(a, out->str);
		g_string_free(out, true);
	}
	return lower;
}

int vu_params_parse(struct fuse_args *args, struct vu_params *ret)
{
	struct vu_opts o = {0};
	g_autofree char *raw_lower = vu_params_prescan(args);
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	ret->timeout = 3600.0;
	ret->fd_cache_max = 4096;
	ret->node_budget = VU_NODE_BUDGET_DEFAULT;
	if (fuse_opt_parse(args, &o, vu_opt_table, vu_opt_proc) < 0) {
		r = -EINVAL;
		goto out;
	}
	if (o.bad) {
		r = -EINVAL;
		goto out;
	}
	if (o.lowerdir) {
		const char *v = raw_lower ? raw_lower : o.lowerdir;

		r = vc_split_escaped(v, ':', &ret->lowers);
		if (r < 0) {
			log_error("lowerdir='%s': an empty layer path", v);
			goto out;
		}
	}
	ret->upper = o.upperdir ? g_strdup(o.upperdir) : NULL;
	ret->work = o.workdir ? g_strdup(o.workdir) : NULL;
	ret->volatile_mode = o.volatile_mode;
	ret->ro = o.ro;
	ret->noacl = o.noacl;
	if (o.fsync) {
		if (strcmp(o.fsync, "0") == 0) {
			ret->no_fsync = true;
		} else if (strcmp(o.fsync, "1") != 0) {
			log_error("fsync='%s': expected 0 or 1", o.fsync);
			r = -EINVAL;
			goto out;
		}
	}
	if (o.timeout) {
		uint64_t v;

		r = vc_parse_decimal_scaled(o.timeout, 1000, &v);
		if (r < 0 || v > 86400000) {
			log_error("timeout='%s': expected seconds between 0 and 86400", o.timeout);
			r = -EINVAL;
			goto out;
		}
		ret->timeout = v / 1000.0;
	}
	if (o.fd_cache) {
		unsigned v;

		r = vc_parse_uint(o.fd_cache, &v);
		if (r < 0 || v < 64 || v > 16384) {
			log_error("fd_cache='%s': expected a number between 64 and 16384",
				  o.fd_cache);
			r = -EINVAL;
			goto out;
		}
		ret->fd_cache_max = v;
	}
	if (o.node_budget) {
		unsigned v;

		r = vc_parse_uint(o.node_budget, &v);
		if (r < 0 || (v != 0 && (v < 64 || v > 1u << 30))) {
			log_error("node_budget='%s': expected 0 (no budget) or a number of nodes "
				  "between 64 and 1073741824",
				  o.node_budget);
			r = -EINVAL;
			goto out;
		}
		ret->node_budget = v;
	}
	if (o.passthrough) {
		static const char *const names[] = {
			[VU_PT_AUTO] = "auto",
			[VU_PT_ON] = "on",
			[VU_PT_OFF] = "off",
		};

		r = -EINVAL;
		for (int i = 0; i < (int)G_N_ELEMENTS(names); i++)
			if (strcmp(o.passthrough, names[i]) == 0) {
				ret->passthrough = i;
				r = 0;
			}
		if (r < 0) {
			log_error("passthrough='%s': expected auto, on or off", o.passthrough);
			goto out;
		}
	}
	r = vu_params_onoff("metacopy", o.metacopy, &ret->metacopy);
	if (r < 0)
		goto out;
	r = vu_ids_params(&o.ids, &ret->ids);
	if (r < 0)
		goto out;
	r = vu_params_redirect(o.redirect_dir, o.metacopy != NULL, ret);
	if (r < 0)
		goto out;
	r = vu_params_xino(o.xino, ret);
	if (r < 0)
		goto out;
	r = vu_params_onoff("index", o.index, &ret->index);
	if (r < 0)
		goto out;
out:
	free(o.xino);
	free(o.index);
	free(o.ids.uidmapping);
	free(o.ids.gidmapping);
	free(o.ids.squash_to_uid);
	free(o.ids.squash_to_gid);
	free(o.ids.xattr_permissions);
	free(o.redirect_dir);
	free(o.metacopy);
	free(o.lowerdir);
	free(o.upperdir);
	free(o.workdir);
	free(o.fsync);
	free(o.timeout);
	free(o.fd_cache);
	free(o.node_budget);
	free(o.passthrough);
	return r;
}

/* Resolve a directory given on the command line; the message names the option and path. */
static int vu_params_dir(const char *opt, const char *path, char **ret, dev_t *ret_dev)
{
	char buf[PATH_MAX];
	struct stat st;

	if (!realpath(path, buf))
		return log_error_errno(-errno, "%s '%s'", opt, path);
	if (stat(buf, &st) < 0)
		return log_error_errno(-errno, "%s '%s'", opt, path);
	if (!S_ISDIR(st.st_mode))
		return log_error_errno(-ENOTDIR, "%s '%s'", opt, path);
	if (ret_dev)
		*ret_dev = st.st_dev;
	*ret = g_strdup(buf);
	return 0;
}

static bool vu_params_overlap(const char *a, const char *b)
{
	return vc_path_is_inside(a, b) || vc_path_is_inside(b, a);
}

int vu_params_check(struct vu_params *p, const char *mountpoint)
{
	g_autofree char *upper = NULL, *work = NULL, *mnt = NULL;
	dev_t udev = 0, wdev = 0;
	int r;

	if (!p->lowers || p->lowers->len == 0)
		return log_error_errno(-EINVAL, "missing -o lowerdir=DIR[:DIR...]");
	if (!mountpoint)
		return log_error_errno(-EINVAL, "missing mount point");
	if (!!p->upper != !!p->work)
		return log_error_errno(-EINVAL, "upperdir and workdir must be given together");
	r = vu_params_dir("mount point", mountpoint, &mnt, NULL);
	if (r < 0)
		return r;
	for (guint i = 0; i < p->lowers->len; i++) {
		char *real = NULL;

		r = vu_params_dir("lowerdir", p->lowers->pdata[i], &real, NULL);
		if (r < 0)
			return r;
		g_free(p->lowers->pdata[i]);
		p->lowers->pdata[i] = real;
	}
	if (p->upper) {
		r = vu_params_dir("upperdir", p->upper, &upper, &udev);
		if (r < 0)
			return r;
		r = vu_params_dir("workdir", p->work, &work, &wdev);
		if (r < 0)
			return r;
		if (vu_params_overlap(upper, work))
			return log_error_errno(-EINVAL,
					       "upperdir '%s' and workdir '%s' must not contain "
					       "each other",
					       p->upper, p->work);
		if (udev != wdev)
			return log_error_errno(-EXDEV,
					       "workdir '%s' is on a different filesystem than "
					       "upperdir '%s'",
					       p->work, p->upper);
		for (guint i = 0; i < p->lowers->len; i++) {
			const char *l = p->lowers->pdata[i];

			if (vu_params_overlap(upper, l))
				return log_error_errno(-EINVAL,
						       "upperdir '%s' overlaps lowerdir '%s'",
						       p->upper, l);
			if (vu_params_overlap(work, l))
				return log_error_errno(
					-EINVAL, "workdir '%s' overlaps lowerdir '%s'", p->work, l);
		}
		g_free(p->upper);
		p->upper = g_steal_pointer(&upper);
		g_free(p->work);
		p->work = g_steal_pointer(&work);
	}
	return 0;
}

void vu_params_done(struct vu_params *p)
{
	if (p->lowers)
		g_ptr_array_free(p->lowers, true);
	p->lowers = NULL;
	g_clear_pointer(&p->upper, g_free);
	g_clear_pointer(&p->work, g_free);
}

void vu_params_help(void)
{
	printf("usage: veneer-unionfs -o lowerdir=L1[:L2...][,upperdir=U,workdir=W] [options] "
	       "MOUNTPOINT\n\n"
	       "Union filesystem options:\n"
	       "    -o lowerdir=L1:L2:...  read-only layers, leftmost on top; '\\:' is a colon\n"
	       "    -o upperdir=DIR        writable layer (kernel overlayfs on-disk format)\n"
	       "    -o workdir=DIR         scratch dir on the upper's filesystem (with upperdir)\n"
	       "    -o volatile            accepted for podman: no syncs are forced\n"
	       "    -o fsync=0|1           0: fsync and fsyncdir return at once\n"
	       "    -o ro                  read-only mount (also without upperdir)\n"
	       "    -o rw                  read-write mount (the default with upperdir)\n"
	       "    -o noatime             do not update access times\n"
	       "    -o allow_other         let other users access the mount\n"
	       "    -o default_permissions kernel permission checks (always on)\n"
	       "    -o context=CTX         SELinux context: accepted and ignored\n"
	       "    -o timeout=SECONDS     kernel entry/attribute cache time (default 3600)\n"
	       "    -o fd_cache=N          cached layer file descriptors (default 4096)\n"
	       "    -o node_budget=N       nodes kept before the kernel is asked to forget the\n"
	       "                           least recently used ones (default %u, 0: no limit)\n"
	       "    -o passthrough=auto|on|off\n"
	       "                           kernel reads/writes open files directly (FUSE\n"
	       "                           passthrough, Linux >= 6.9); auto (default): when the\n"
	       "                           kernel allows it, on: fail without it, off: never\n"
	       "    -o metacopy=on|off     on: chmod/chown/utimes/xattr changes copy up metadata\n"
	       "                           only, data on the first write; follow metacopy\n"
	       "                           files and their redirects (default off)\n"
	       "    -o redirect_dir=on|follow|nofollow|off\n"
	       "                           on: renaming a directory from a lower layer records\n"
	       "                           where its lowers are (trusted.overlay.redirect)\n"
	       "                           instead of failing with EXDEV; follow (default) and\n"
	       "                           off: follow such redirects, create none; nofollow:\n"
	       "                           refuse them (EPERM); metacopy=on implies on\n"
	       "    -o xino=auto|on|off    layers on several filesystems: the top bits of st_ino\n"
	       "                           hold the layer filesystem's index, unique and kept\n"
	       "                           across remounts; auto (default): unless a lower\n"
	       "                           filesystem has no unique uuid; off: the layers' own\n"
	       "                           numbers, which may collide\n"
	       "    -o index=on|off        on: a hard-linked lower file copied up stays one file\n"
	       "                           under all its names (<workdir>/index, as the kernel's\n"
	       "                           index=on; needs upperdir and trusted.* xattrs); the\n"
	       "                           upper is bound to its lowers (default off)\n"
	       "    -o noacl               no POSIX ACLs: the layers' ACLs are neither checked\n"
	       "                           nor shown, setfacl fails (default: as the kernel)\n\n",
	       VU_NODE_BUDGET_DEFAULT);
	/* Owners shown (idmap.c), as podman and fuse-overlayfs name them. */
	printf("Owner options (as podman passes them to a mount_program):\n"
	       "    -o uidmapping=S:M:N[:S:M:N...]\n"
	       "                           user ids S..S+N-1 stored in the layers show as\n"
	       "                           M..M+N-1; others show as the overflow id; chown\n"
	       "                           stores ids mapped back (EOVERFLOW if none), new\n"
	       "                           objects too (the overflow id if none); ACL\n"
	       "                           entries are shifted alike (EINVAL if none)\n"
	       "    -o gidmapping=S:M:N[:S:M:N...]   the same for group ids\n"
	       "    -o squash_to_root      every object shows as owned by 0:0\n"
	       "    -o squash_to_uid=UID   every object shows as owned by user UID\n"
	       "    -o squash_to_gid=GID   every object shows as owned by group GID\n"
	       "    -o static_nlink        directories show a link count of 1\n"
	       "    -o xattr_permissions=0|1|2\n"
	       "                           keep owner and mode in an xattr, not the inode:\n"
	       "                           1: security.fuseoverlayfs.override_stat,\n"
	       "                           2: user.fuseoverlayfs.override_stat (default 0: off)\n"
	       "Layer export:\n"
	       "    veneer-unionfs --export-layer UPPERDIR [--output FILE] [-o lowerdir=L1:...]\n"
	       "                           write UPPERDIR as an OCI layer tar to FILE (default:\n"
	       "                           stdout): whiteouts become .wh.NAME, opaque directories\n"
	       "                           get .wh..wh..opq, overlay xattrs are left out;\n"
	       "                           metacopy files need the lowers\n"
	       "Debugging:\n"
	       "    xattr user.veneer.layer   read-only, not listed: the layer a name comes\n"
	       "                              from, \"upper\" or \"lower:N:PATH\"\n\n");
}
