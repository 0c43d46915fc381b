/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * POSIX ACLs through the mount. The kernel enforces them (FUSE_CAP_POSIX_ACL): it
 * reads system.posix_acl_* through getxattr, caches them per inode, and a chmod
 * reaches the upper's filesystem, which updates the ACL mask. Left to the daemon:
 * the umask and default-ACL inheritance of new objects (FUSE_CAP_DONT_MASK), the
 * set-group-ID bit an ACL change drops, a layer without ACL support reading as one
 * without ACLs, and a workdir that passes no ACL of its own to what is built there.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir-util.h"
#include "fd-util.h"
#include "log.h"
#include "xattr-util.h"
#include "unionfs.h"

bool vu_acl_is_name(const char *name)
{
	return strcmp(name, VU_ACL_ACCESS) == 0 || strcmp(name, VU_ACL_DEFAULT) == 0;
}

/* -o noacl: the mount has no ACLs, like a filesystem without them (fuse-overlayfs' noacl). */
int vu_acl_check_name(struct vu_fs *fs, const char *name)
{
	return fs->params.noacl && vu_acl_is_name(name) ? -EOPNOTSUPP : 0;
}

/*
 * A layer on a filesystem without ACLs (ramfs, a noacl mount) answers EOPNOTSUPP, with
 * which the kernel would fail every permission check that reads the ACL. Its objects
 * have none, as the kernel overlay reports them: ENODATA.
 */
int vu_acl_fix_get(const char *name, int r)
{
	return r == -EOPNOTSUPP && vu_acl_is_name(name) ? -ENODATA : r;
}

bool vu_acl_in_group(fuse_req_t req, gid_t gid)
{
	g_autofree gid_t *list = NULL;
	int n = 32, k;

	if (fuse_req_ctx(req)->gid == gid)
		return true;
	for (;;) {
		g_free(list);
		list = g_new(gid_t, n);
		k = fuse_req_getgroups(req, n, list);
		if (k < 0)
			return false;
		if (k <= n)
			break;
		n = k;
	}
	for (int i = 0; i < k; i++)
		if (list[i] == gid)
			return true;
	return false;
}

/*
 * Setting an access ACL drops the set-group-ID bit when the caller is neither in the
 * file's group nor privileged (posix_acl_update_mode). The daemon sets the ACL with its
 * own credentials, so the upper's filesystem keeps the bit; the kernel states its
 * verdict as FUSE_SETXATTR_ACL_KILL_SGID, which libfuse 3.14 does not hand on. Decided
 * here as the kernel decides it, uid 0 standing for CAP_FSETID. After the ACL is set:
 * a failed change keeps the bit.
 */
int vu_acl_kill_sgid(fuse_req_t req, struct vu_fs *fs, struct vu_node *node)
{
	struct vu_fdref d = VU_FDREF_INIT;
	char p[VC_PROC_FD_PATH_MAX];
	struct stat st;
	int r;

	if (fuse_req_ctx(req)->uid == 0)
		return 0;
	r = vu_node_fd(fs, node, 0, &d);
	if (r < 0)
		return r;
	if (fstat(d.fd, &st) < 0) {
		r = -errno;
	} else if ((st.st_mode & S_ISGID) && !vu_acl_in_group(req, st.st_gid)) {
		vc_proc_fd_path(d.fd, p);
		r = chmod(p, st.st_mode & 07777 & ~S_ISGID) < 0 ? -errno : 0;
	}
	vu_fdref_put(&d);
	return r;
}

/* As the kernel's workdir: objects built there must inherit nothing (ovl_workdir_create). */
int vu_acl_clean_workdir(struct vu_fs *fs)
{
	static const char *const names[] = {VU_ACL_DEFAULT, VU_ACL_ACCESS};

	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		int r = vc_fremovexattr(fs->work_fd, true, names[i]);

		if (r < 0 && r != -ENODATA && r != -EOPNOTSUPP)
			return r;
	}
	return 0;
}

/*
 * Where and with which mode a new object is made for the caller: *mode loses the
 * caller's umask unless the upper parent pfd has a default ACL, as on the kernel
 * (posix_acl_create); the object then inherits that ACL from the upper's filesystem
 * (the daemon's own umask is 0). In place it is made as name in pfd. Over a whiteout
 * it is built in the workdir, inside a subdirectory given the parent's default ACL
 * when there is one, so that it inherits exactly what it would have in place.
 */
int vu_mkplace_begin(fuse_req_t req, struct vu_fs *fs, int pfd, const char *name,
		     bool over_whiteout, mode_t *mode, struct vu_mkplace *ret)
{
	g_autofree char *dacl = NULL;
	size_t len = 0;
	int r;

	*ret = (struct vu_mkplace){.dirfd = pfd, .name = name, .acldir_fd = -1};
	if (fs->dont_mask && !S_ISLNK(*mode)) {
		r = fs->acl ? vc_fgetxattr_alloc(pfd, true, VU_ACL_DEFAULT, &dacl, &len) : -ENODATA;
		if (r < 0 && r != -ENODATA && r != -EOPNOTSUPP)
			return r;
		if (r < 0)
			*mode &= ~fuse_req_ctx(req)->umask;
	}
	if (!over_whiteout)
		return 0;
	ret->tmp = vu_tmpname(fs);
	ret->dirfd = fs->work_fd;
	ret->name = ret->tmp;
	if (!dacl)
		return 0;
	ret->acldir = vu_tmpname(fs);
	if (mkdirat(fs->work_fd, ret->acldir, 0700) < 0) {
		r = -errno;
		g_clear_pointer(&ret->acldir, g_free);
		goto fail;
	}
	ret->acldir_fd = vc_open_path_at(fs->work_fd, ret->acldir);
	r = ret->acldir_fd < 0 ? ret->acldir_fd
			       : vc_fsetxattr(ret->acldir_fd, true, VU_ACL_DEFAULT, dacl, len, 0);
	if (r < 0)
		goto fail;
	ret->dirfd = ret->acldir_fd;
	return 0;
fail:
	vu_mkplace_done(fs, ret);
	return r;
}

void vu_mkplace_done(struct vu_fs *fs, struct vu_mkplace *mp)
{
	vc_close_nointr(mp->acldir_fd);
	mp->acldir_fd = -1;
	/* Empty once the object was installed; else what a failure left goes with it. */
	if (mp->acldir) {
		int r = vc_rm_rf_at(fs->work_fd, mp->acldir);

		if (r < 0)
			log_debug_errno(r, "could not remove '%s' from the workdir", mp->acldir);
	}
	g_clear_pointer(&mp->acldir, g_free);
	g_clear_pointer(&mp->tmp, g_free);
}

/*
 * Give a new object back the set-ID bits of mode that a chown to its owner (or a
 * mkdir in the workdir) dropped. The permission bits stay as the creation left them:
 * with a default ACL they are its mask, not the requested ones.
 */
int vu_mkplace_fix_mode(int dirfd, const char *name, mode_t mode)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if ((st.st_mode & 07000) == (mode & 07000))
		return 0;
	return fchmodat(dirfd, name, (st.st_mode & 0777) | (mode & 07000), 0) < 0 ? -errno : 0;
}
