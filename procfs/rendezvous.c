/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Where workers find the holder of a mount point. A directory only we can
 * write (root's /run/veneer-procfs; another user's $XDG_RUNTIME_DIR/veneer-procfs,
 * else /run/user/UID/veneer-procfs), owned by us and mode 0700, so no other
 * user can take a name first or plant one. Each holder listens on
 * "conn-TOKEN" (TOKEN names its FUSE connection, for as long as it lives, also
 * across holder replacements), and "mnt-HASH" (HASH of the mount point) is a
 * symlink to the socket of the holder whose mount sits on the mount point now.
 * An flock of the directory orders the creation, takeover and removal of
 * names; names a killed holder left are swept by the next one to mount or exit. Also here: which
 * mount (mountinfo's id) sits on a mount point.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "procfs.h"

/* Are we root of the initial user namespace (the whole uid range mapped to itself)? */
static bool vp_rdv_host_root(void)
{
	g_autofree char *map = NULL;
	unsigned long a, b, c;

	if (geteuid() != 0 || !g_file_get_contents("/proc/self/uid_map", &map, NULL, NULL))
		return false;
	return sscanf(map, "%lu %lu %lu", &a, &b, &c) == 3 && a == 0 && b == 0 && c == 4294967295UL;
}

static char *vp_rdv_dir(void)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (vp_rdv_host_root())
		return g_strdup("/run/veneer-procfs");
	if (xdg && xdg[0] == '/')
		return g_build_filename(xdg, "veneer-procfs", NULL);
	return g_strdup_printf("/run/user/%u/veneer-procfs", (unsigned)getuid());
}

void vp_rdv_close(struct vp_rdv *rdv)
{
	if (rdv->dirfd >= 0)
		close(rdv->dirfd);
	rdv->dirfd = -1;
	g_clear_pointer(&rdv->dir, g_free);
}

int vp_rdv_open(struct vp_rdv *rdv, bool create)
{
	g_autofree char *dir = vp_rdv_dir();
	_cleanup_close_ int fd = -1;
	struct stat st;

	rdv->dirfd = -1;
	rdv->dir = NULL;
	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return log_error_errno(-errno, "could not create the rendezvous directory '%s'",
				       dir);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (!create && errno == ENOENT)
			return -ENOENT;
		return log_error_errno(-errno, "could not open the rendezvous directory '%s'", dir);
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	/* Anybody else who could write here could stand in for the holder. */
	if (st.st_uid != geteuid() || (st.st_mode & 077))
		return log_error_errno(-EPERM,
				       "the rendezvous directory '%s' (uid %u, mode %04o) must be "
				       "owned by uid %u with mode 0700: remove it",
				       dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
				       (unsigned)geteuid());
	rdv->dirfd = TAKE_FD(fd);
	rdv->dir = g_steal_pointer(&dir);
	return 0;
}

int vp_rdv_lock(struct vp_rdv *rdv)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		struct stat st;
		int r;

		if (flock(rdv->dirfd, LOCK_EX) < 0)
			return -errno;
		if (fstat(rdv->dirfd, &st) < 0)
			return -errno;
		if (st.st_nlink > 0)
			return 0;
		/* The last holder removed the directory while we waited: make it again. */
		vp_rdv_close(rdv);
		r = vp_rdv_open(rdv, true);
		if (r < 0)
			return r;
	}
	return -EAGAIN;
}

void vp_rdv_unlock(struct vp_rdv *rdv)
{
	(void)flock(rdv->dirfd, LOCK_UN);
}

char *vp_rdv_mnt_name(const char *mountpoint)
{
	g_autofree char *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, mountpoint, -1);

	return g_strdup_printf("mnt-%.40s", sum);
}

char *vp_rdv_conn_name(const char *token)
{
	return g_strdup_printf("conn-%s", token);
}

int vp_rdv_new_token(char token[VP_TOKEN_LEN + 1])
{
	unsigned char raw[VP_TOKEN_LEN / 2];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -errno;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(token + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

static int vp_rdv_addr(struct vp_rdv *rdv, const char *name, struct sockaddr_un *sa,
		       socklen_t *ret_len)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", rdv->dir, name);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
		return log_error_errno(-ENAMETOOLONG, "the socket path '%s/%s' is too long",
				       rdv->dir, name);
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int vp_rdv_connect(struct vp_rdv *rdv, const char *name, int *ret)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa;
	socklen_t sl = 0;
	int r;

	if (fd < 0)
		return -errno;
	r = vp_rdv_addr(rdv, name, &sa, &sl);
	if (r < 0)
		return r;
	if (connect(fd, (struct sockaddr *)&sa, sl) < 0)
		return -errno;
	*ret = TAKE_FD(fd);
	return 0;
}

int vp_rdv_listen(struct vp_rdv *rdv, const char *name, int *ret)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa;
	socklen_t sl = 0;
	int r;

	if (fd < 0)
		return -errno;
	r = vp_rdv_addr(rdv, name, &sa, &sl);
	if (r < 0)
		return r;
	/* A socket left by a killed holder of this connection (we hold the lock). */
	(void)unlinkat(rdv->dirfd, name, 0);
	if (bind(fd, (struct sockaddr *)&sa, sl) < 0)
		return -errno;
	if (listen(fd, 16) < 0)
		return -errno;
	*ret = TAKE_FD(fd);
	return 0;
}

int vp_rdv_point(struct vp_rdv *rdv, const char *mnt_name, const char *conn_name)
{
	g_autofree char *tmp = g_strdup_printf("%s.%d.tmp", mnt_name, (int)getpid());
	char old[64];
	ssize_t n = readlinkat(rdv->dirfd, mnt_name, old, sizeof(old) - 1);

	(void)unlinkat(rdv->dirfd, tmp, 0);
	if (symlinkat(conn_name, rdv->dirfd, tmp) < 0 ||
	    renameat(rdv->dirfd, tmp, rdv->dirfd, mnt_name) < 0) {
		int r = -errno;

		(void)unlinkat(rdv->dirfd, tmp, 0);
		return r;
	}
	/* The previous target, if nobody listens there any more (a killed holder's). */
	if (n > 0) {
		int fd = -1;

		old[n] = '\0';
		if (strcmp(old, conn_name) != 0 && strchr(old, '/') == NULL &&
		    vp_rdv_connect(rdv, old, &fd) == -ECONNREFUSED)
			(void)unlinkat(rdv->dirfd, old, 0);
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

/*
 * Under the lock: names that lead nowhere, left when a holder was killed together with
 * its workers (nobody listens on its socket any more, and its link dangles).
 */
void vp_rdv_sweep(struct vp_rdv *rdv)
{
	_cleanup_close_ int fd = openat(rdv->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	g_autoptr(GPtrArray) links = g_ptr_array_new_with_free_func(g_free);
	DIR *d;
	struct dirent *e;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d)
		return;
	TAKE_FD(fd);
	while ((e = readdir(d))) {
		int c = -1;

		if (g_str_has_prefix(e->d_name, "mnt-"))
			g_ptr_array_add(links, g_strdup(e->d_name));
		else if (g_str_has_prefix(e->d_name, "conn-") &&
			 vp_rdv_connect(rdv, e->d_name, &c) == -ECONNREFUSED)
			(void)unlinkat(rdv->dirfd, e->d_name, 0);
		if (c >= 0)
			close(c);
	}
	closedir(d);
	for (guint i = 0; i < links->len; i++) {
		struct stat st;

		if (fstatat(rdv->dirfd, links->pdata[i], &st, 0) < 0 && errno == ENOENT)
			(void)unlinkat(rdv->dirfd, links->pdata[i], 0);
	}
}

void vp_rdv_remove(struct vp_rdv *rdv, const char *mnt_name, const char *conn_name)
{
	char target[64];
	ssize_t n;

	if (vp_rdv_lock(rdv) < 0)
		return;
	(void)unlinkat(rdv->dirfd, conn_name, 0);
	n = readlinkat(rdv->dirfd, mnt_name, target, sizeof(target) - 1);
	if (n > 0) {
		target[n] = '\0';
		if (strcmp(target, conn_name) == 0)
			(void)unlinkat(rdv->dirfd, mnt_name, 0);
	}
	vp_rdv_sweep(rdv);
	/* The last one out removes the directory (ENOTEMPTY otherwise); see vp_rdv_lock. */
	(void)rmdir(rdv->dir);
	vp_rdv_unlock(rdv);
}

/* mountinfo escapes blanks, tabs, newlines and backslashes as \ooo. */
static void vp_unescape_octal(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

int vp_mount_id_at(const char *mountpoint, uint64_t want, uint64_t *ret)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;
	uint64_t found = 0;

	if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, NULL))
		return -EIO;
	lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l; l++) {
		g_auto(GStrv) f = g_strsplit(*l, " ", 0);
		const char *fstype = NULL;
		uint64_t id;

		if (g_strv_length(f) < 10)
			continue;
		for (guint i = 6; f[i]; i++)
			if (strcmp(f[i], "-") == 0) {
				fstype = f[i + 1];
				break;
			}
		if (!fstype || strcmp(fstype, "fuse.veneer-procfs") != 0)
			continue;
		vp_unescape_octal(f[4]);
		if (strcmp(f[4], mountpoint) != 0)
			continue;
		id = g_ascii_strtoull(f[0], NULL, 10);
		if (want && id == want) {
			*ret = id;
			return 0;
		}
		found = id; /* the last one: the top of a stack */
	}
	if (want || !found)
		return -ENOENT;
	*ret = found;
	return 0;
}
