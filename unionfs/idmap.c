/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Owners as the mount shows them (the options podman and buildah pass to a mount_program):
 * uidmapping=/gidmapping= shift the ids stored in the layers to the ids shown, squash_to_*
 * show one owner for everything, xattr_permissions= keeps owner and mode in an xattr
 * instead of the inode, static_nlink shows every directory with one link. Everything
 * between the layers and the kernel's attributes passes through here.
 */
#include <endian.h>
#include <errno.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "fd-util.h"
#include "log.h"
#include "parse-util.h"
#include "xattr-util.h"
#include "unionfs.h"

#define VU_OVERRIDE_PRIV "security.fuseoverlayfs.override_stat"
#define VU_OVERRIDE_USER "user.fuseoverlayfs.override_stat"

/*
 * "A:B:L[:A:B:L...]", as containers/storage builds it (ContainerID:HostID:Size) and
 * fuse-overlayfs reads it: ids A..A+L-1 stored in the layers show as B..B+L-1. Empty
 * fields are skipped, as fuse-overlayfs's strtok() does: the containers/storage of podman
 * 4.3 (Debian 12) writes a ':' before the first range ("uidmapping=:0:1:2000").
 */
static int vu_idmap_parse(const char *opt, const char *s, struct vu_idmap *ret)
{
	g_auto(GStrv) f = g_strsplit(s, ":", -1);
	guint n = 0;

	for (guint i = 0; f[i]; i++) {
		if (f[i][0] == '\0') {
			g_free(f[i]);
			continue;
		}
		f[n++] = f[i];
	}
	f[n] = NULL;
	memset(ret, 0, sizeof(*ret));
	if (n == 0 || n % 3 != 0 || n / 3 > VU_IDMAP_MAX)
		goto bad;
	for (guint i = 0; i < n; i += 3) {
		struct vu_idmap_range *e = &ret->r[ret->n];
		uint64_t v[3];

		for (int k = 0; k < 3; k++)
			if (vc_parse_u64(f[i + k], &v[k]) < 0 || v[k] > UINT32_MAX)
				goto bad;
		if (v[2] == 0 || v[0] + v[2] > (uint64_t)UINT32_MAX + 1 ||
		    v[1] + v[2] > (uint64_t)UINT32_MAX + 1)
			goto bad;
		e->disk = v[0];
		e->view = v[1];
		e->len = v[2];
		/* Both sides one-to-one, or the way back would not be the way there. */
		for (guint j = 0; j < ret->n; j++) {
			const struct vu_idmap_range *o = &ret->r[j];

			if ((e->disk < o->disk + o->len && o->disk < e->disk + e->len) ||
			    (e->view < o->view + o->len && o->view < e->view + e->len)) {
				log_error("%s='%s': ranges %u:%u:%u and %u:%u:%u overlap", opt, s,
					  o->disk, o->view, o->len, e->disk, e->view, e->len);
				return -EINVAL;
			}
		}
		ret->n++;
	}
	return 0;
bad:
	log_error("%s='%s': expected STORED:SHOWN:COUNT[:STORED:SHOWN:COUNT...] (at most %d "
		  "ranges, counts above 0, ids below 2^32)",
		  opt, s, VU_IDMAP_MAX);
	return -EINVAL;
}

static uint32_t vu_idmap_read_overflow(const char *file)
{
	g_autofree char *s = NULL;
	unsigned v;

	if (!g_file_get_contents(file, &s, NULL, NULL) || vc_parse_uint(g_strstrip(s), &v) < 0)
		return 65534;
	return v;
}

int vu_ids_params(const struct vu_ids_opts *o, struct vu_ids *ret)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->squash_uid = ret->squash_gid = -1;
	ret->overflow_uid = vu_idmap_read_overflow("/proc/sys/kernel/overflowuid");
	ret->overflow_gid = vu_idmap_read_overflow("/proc/sys/kernel/overflowgid");
	if (o->uidmapping) {
		r = vu_idmap_parse("uidmapping", o->uidmapping, &ret->uidmap);
		if (r < 0)
			return r;
	}
	if (o->gidmapping) {
		r = vu_idmap_parse("gidmapping", o->gidmapping, &ret->gidmap);
		if (r < 0)
			return r;
	}
	if (o->squash_to_root)
		ret->squash_uid = ret->squash_gid = 0;
	if (o->squash_to_uid) {
		unsigned v;

		if (vc_parse_uint(o->squash_to_uid, &v) < 0 || v == (unsigned)-1)
			return log_error_errno(-EINVAL, "squash_to_uid='%s': expected a user id",
					       o->squash_to_uid);
		ret->squash_uid = v;
	}
	if (o->squash_to_gid) {
		unsigned v;

		if (vc_parse_uint(o->squash_to_gid, &v) < 0 || v == (unsigned)-1)
			return log_error_errno(-EINVAL, "squash_to_gid='%s': expected a group id",
					       o->squash_to_gid);
		ret->squash_gid = v;
	}
	ret->static_nlink = o->static_nlink;
	if (o->xattr_permissions) {
		if (strcmp(o->xattr_permissions, "0") == 0)
			ret->xattr_perms = 0;
		else if (strcmp(o->xattr_permissions, "1") == 0)
			ret->xattr_perms = 1;
		else if (strcmp(o->xattr_permissions, "2") == 0)
			ret->xattr_perms = 2;
		else
			return log_error_errno(-EINVAL,
					       "xattr_permissions='%s': expected 0, 1 or 2",
					       o->xattr_permissions);
	}
	ret->active = ret->uidmap.n || ret->gidmap.n || ret->squash_uid >= 0 ||
		      ret->squash_gid >= 0 || ret->xattr_perms;
	return 0;
}

static uint32_t vu_idmap_show(const struct vu_idmap *m, uint32_t id, uint32_t overflow)
{
	if (m->n == 0)
		return id;
	for (guint i = 0; i < m->n; i++)
		if (id >= m->r[i].disk && id - m->r[i].disk < m->r[i].len)
			return m->r[i].view + (id - m->r[i].disk);
	return overflow;
}

static int vu_idmap_store(const struct vu_idmap *m, uint32_t id, uint32_t *ret)
{
	if (m->n == 0) {
		*ret = id;
		return 0;
	}
	for (guint i = 0; i < m->n; i++)
		if (id >= m->r[i].view && id - m->r[i].view < m->r[i].len) {
			*ret = m->r[i].disk + (id - m->r[i].view);
			return 0;
		}
	return -EOVERFLOW;
}

const char *vu_ids_override_name(const struct vu_fs *fs)
{
	switch (fs->params.ids.xattr_perms) {
	case 1:
		return VU_OVERRIDE_PRIV;
	case 2:
		return VU_OVERRIDE_USER;
	default:
		return NULL;
	}
}

bool vu_ids_xattr_hidden(const struct vu_fs *fs, const char *name)
{
	const char *o = vu_ids_override_name(fs);

	return o && strcmp(name, o) == 0;
}

/* The owner and mode kept in the override xattr of fd's object ("uid:gid:octal mode"). */
static int vu_ids_read_override(const struct vu_fs *fs, int fd, struct stat *st)
{
	char buf[64], *end;
	unsigned long v[3];
	const char *p = buf;
	ssize_t n;

	if (!S_ISDIR(st->st_mode) && !S_ISREG(st->st_mode))
		return 0; /* user.* xattrs are for directories and files only */
	n = vc_fgetxattr(fd, true, vu_ids_override_name(fs), buf, sizeof(buf) - 1);
	if (n < 0)
		return n == -ENODATA || n == -EOPNOTSUPP ? 0 : (int)n;
	buf[n] = '\0';
	for (int k = 0; k < 3; k++) {
		errno = 0;
		v[k] = strtoul(p, &end, k == 2 ? 8 : 10);
		if (errno || end == p || *end != (k == 2 ? '\0' : ':'))
			return 0; /* not ours: the inode's values stand */
		p = end + 1;
	}
	st->st_uid = v[0];
	st->st_gid = v[1];
	st->st_mode = (st->st_mode & S_IFMT) | (v[2] & 07777);
	return 0;
}

void vu_ids_fixup(struct vu_fs *fs, struct vu_node *node, struct stat *st)
{
	const struct vu_ids *ids = &fs->params.ids;

	if (ids->static_nlink && S_ISDIR(st->st_mode))
		st->st_nlink = 1;
	if (!ids->active)
		return;
	if (ids->xattr_perms) {
		struct vu_fdref d = VU_FDREF_INIT;

		if (vu_node_fd(fs, node, atomic_load(&node->top), &d) == 0) {
			vu_ids_read_override(fs, d.fd, st);
			vu_fdref_put(&d);
		}
	}
	st->st_uid = ids->squash_uid >= 0
			     ? (uid_t)ids->squash_uid
			     : vu_idmap_show(&ids->uidmap, st->st_uid, ids->overflow_uid);
	st->st_gid = ids->squash_gid >= 0
			     ? (gid_t)ids->squash_gid
			     : vu_idmap_show(&ids->gidmap, st->st_gid, ids->overflow_gid);
}

int vu_ids_store(const struct vu_fs *fs, uid_t *uid, gid_t *gid)
{
	const struct vu_ids *ids = &fs->params.ids;
	uint32_t v;
	int r;

	if (*uid != (uid_t)-1) {
		r = vu_idmap_store(&ids->uidmap, *uid, &v);
		if (r < 0)
			return r;
		*uid = v;
	}
	if (*gid != (gid_t)-1) {
		r = vu_idmap_store(&ids->gidmap, *gid, &v);
		if (r < 0)
			return r;
		*gid = v;
	}
	return 0;
}

/* The stored ids of a new object's owner: mapped back, or the overflow ids (dir.c). */
void vu_ids_store_new(const struct vu_fs *fs, uid_t *uid, gid_t *gid)
{
	const struct vu_ids *ids = &fs->params.ids;
	uint32_t v;

	*uid = vu_idmap_store(&ids->uidmap, *uid, &v) == 0 ? v : ids->overflow_uid;
	*gid = vu_idmap_store(&ids->gidmap, *gid, &v) == 0 ? v : ids->overflow_gid;
}

/*
 * A POSIX ACL (system.posix_acl_access/default, the kernel's xattr form: a version word,
 * then {tag, perm, id} entries, little endian) names users and groups, and with
 * uidmapping=/gidmapping= their ids are shifted as owners are, both ways: an entry naming
 * a stored id the mapping lacks shows the overflow id, and an ACL naming a shown id it
 * lacks is refused with EINVAL, as the kernel refuses an ACL whose ids its namespace cannot
 * hold. Without the shift an ACL set inside a container would name a host user, and one in
 * an image would grant a container user what the layer gave another id. squash_* leave
 * ACLs as stored, as fuse-overlayfs does.
 */
int vu_ids_acl_map(const struct vu_fs *fs, void *value, size_t size, bool to_disk)
{
	const struct vu_ids *ids = &fs->params.ids;
	struct posix_acl_xattr_header hdr;
	struct posix_acl_xattr_entry e;
	char *p = value;

	if (ids->uidmap.n == 0 && ids->gidmap.n == 0)
		return 0;
	if (size < sizeof(hdr) || (size - sizeof(hdr)) % sizeof(e) != 0)
		return -EINVAL;
	memcpy(&hdr, p, sizeof(hdr));
	if (le32toh(hdr.a_version) != POSIX_ACL_XATTR_VERSION)
		return -EOPNOTSUPP;
	for (size_t off = sizeof(hdr); off < size; off += sizeof(e)) {
		const struct vu_idmap *m;
		uint32_t id, overflow;

		memcpy(&e, p + off, sizeof(e));
		switch (le16toh(e.e_tag)) {
		case ACL_USER:
			m = &ids->uidmap;
			overflow = ids->overflow_uid;
			break;
		case ACL_GROUP:
			m = &ids->gidmap;
			overflow = ids->overflow_gid;
			break;
		default:
			continue;
		}
		id = le32toh(e.e_id);
		if (!to_disk)
			id = vu_idmap_show(m, id, overflow);
		else if (vu_idmap_store(m, id, &id) < 0)
			return -EINVAL;
		e.e_id = htole32(id);
		memcpy(p + off, &e, sizeof(e));
	}
	return 0;
}

bool vu_ids_squashed(const struct vu_fs *fs)
{
	return fs->params.ids.squash_uid >= 0 || fs->params.ids.squash_gid >= 0;
}

/*
 * Give fd's object (an O_PATH fd or an open one) the stored owner uid/gid ((uid_t)-1: kept)
 * and, with mode_set, the mode. With xattr_permissions the inode is left alone and the
 * override xattr records them; otherwise a chown and a chmod.
 */
int vu_ids_set_owner(struct vu_fs *fs, int fd, uid_t uid, gid_t gid, bool mode_set, mode_t mode)
{
	struct stat st;
	char p[VC_PROC_FD_PATH_MAX];
	char buf[64];
	int r, n;

	if (!fs->params.ids.xattr_perms) {
		if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
		    fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
			/* squash_*: the owner is not shown, so a refused chown changes nothing */
			if (!vu_ids_squashed(fs) || (errno != EPERM && errno != EINVAL))
				return -errno;
		}
		if (mode_set) {
			vc_proc_fd_path(fd, p);
			if (chmod(p, mode & 07777) < 0)
				return -errno;
		}
		return 0;
	}
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
		/* Nowhere to keep them for a symlink or a device: the inode's own, if it can. */
		if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
		    fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno != EPERM)
			return -errno;
		return 0;
	}
	r = vu_ids_read_override(fs, fd, &st);
	if (r < 0)
		return r;
	if (uid != (uid_t)-1)
		st.st_uid = uid;
	if (gid != (gid_t)-1)
		st.st_gid = gid;
	if (mode_set)
		st.st_mode = (st.st_mode & S_IFMT) | (mode & 07777);
	n = snprintf(buf, sizeof(buf), "%u:%u:%o", (unsigned)st.st_uid, (unsigned)st.st_gid,
		     (unsigned)(st.st_mode & 07777));
	return vc_fsetxattr(fd, true, vu_ids_override_name(fs), buf, n, 0);
}

/* A copy-up: the override keeps the owner and mode of the original (unless copied). */
int vu_ids_keep_owner(struct vu_fs *fs, int fd, const struct stat *st)
{
	char buf[64];
	ssize_t n;

	if (!S_ISDIR(st->st_mode) && !S_ISREG(st->st_mode))
		return 0;
	n = vc_fgetxattr(fd, true, vu_ids_override_name(fs), buf, sizeof(buf));
	if (n >= 0)
		return 0; /* copied with the other xattrs */
	return vu_ids_set_owner(fs, fd, st->st_uid, st->st_gid, true, st->st_mode);
}

/* The owner of an object just made as name in dirfd ("": dirfd itself), stored ids. */
int vu_ids_chown_new(struct vu_fs *fs, int dirfd, const char *name, uid_t uid, gid_t gid,
		     mode_t mode)
{
	bool xp = fs->params.ids.xattr_perms != 0;
	_cleanup_close_ int fd = -1;

	/* A root daemon made it as 0/0 already (no chown, no set-id bits lost). */
	if (!xp && uid == 0 && gid == 0 && geteuid() == 0 && getegid() == 0)
		return 0;
	if (*name == '\0')
		return vu_ids_set_owner(fs, dirfd, uid, gid, xp, mode);
	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return vu_ids_set_owner(fs, fd, uid, gid, xp, mode);
}
