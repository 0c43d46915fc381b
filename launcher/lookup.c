/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * COMMAND is looked up before anything is created: along the container's
 * PATH, in the volumes, the upper layer and every lower layer, each resolved
 * as its own root (openat2 RESOLVE_IN_ROOT, so /bin -> usr/bin works and no
 * symlink escapes). Not found: 127; found but not executable: 126. The init
 * checks again at exec time for what cannot be seen here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "config.h"
#if HAVE_OPENAT2_H
#include <linux/openat2.h>
#endif

#include "cleanup.h"
#include "launcher.h"
#include "log.h"
#include "path-util.h"

#define VR_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum vr_found {
	VR_FOUND_NONE,
	VR_FOUND_WHITEOUT,
	VR_FOUND_NOEXEC,
	VR_FOUND_EXEC,
};

static enum vr_found vr_classify(const struct stat *st)
{
	if (S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0))
		return VR_FOUND_WHITEOUT;
	if (S_ISREG(st->st_mode) && (st->st_mode & 0111))
		return VR_FOUND_EXEC;
	return VR_FOUND_NOEXEC;
}

/* path (absolute, in the container) resolved inside one layer root. */
static enum vr_found vr_find_in_root(const char *root, const char *path)
{
#if HAVE_OPENAT2_H
	_cleanup_close_ int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (rootfd < 0)
		return VR_FOUND_NONE;
	fd = (int)syscall(SYS_openat2, rootfd, path + 1, &how, sizeof(how));
	if (fd < 0) {
		/* The last component may be a whiteout, which O_PATH opens fine; others: absent. */
		return VR_FOUND_NONE;
	}
	if (fstat(fd, &st) < 0)
		return VR_FOUND_NONE;
	return vr_classify(&st);
#else
	g_autofree char *p = g_build_filename(root, path, NULL);
	struct stat st;

	if (stat(p, &st) < 0)
		return VR_FOUND_NONE;
	return vr_classify(&st);
#endif
}

static enum vr_found vr_find_path(const struct vr_config *cfg, const char *path)
{
	struct stat st;

	for (guint i = 0; i < cfg->volumes->len; i++) {
		const struct vr_volume *v = cfg->volumes->pdata[i];

		if (vc_path_is_inside(path, v->ctr)) {
			g_autofree char *h = g_build_filename(v->host, path + strlen(v->ctr), NULL);

			if (stat(h, &st) < 0)
				return VR_FOUND_NONE;
			return vr_classify(&st);
		}
	}
	if (cfg->upper) {
		enum vr_found f = vr_find_in_root(cfg->upper, path);

		if (f == VR_FOUND_WHITEOUT)
			return VR_FOUND_NONE;
		if (f != VR_FOUND_NONE)
			return f;
	}
	for (guint i = 0; i < cfg->layers->len; i++) {
		enum vr_found f = vr_find_in_root(cfg->layers->pdata[i], path);

		if (f == VR_FOUND_WHITEOUT)
			return VR_FOUND_NONE;
		if (f != VR_FOUND_NONE)
			return f;
	}
	return VR_FOUND_NONE;
}

int vr_lookup_command(const struct vr_config *cfg, const char *path_env)
{
	const char *cmd = cfg->argv[0];
	const char *path = path_env ? path_env : vr_env_get(cfg->env, "PATH");
	enum vr_found best = VR_FOUND_NONE;
	g_autofree char *where = NULL;

	if (!path)
		path = VR_DEFAULT_PATH;
	if (cmd[0] == '\0') {
		fprintf(stderr, "veneer-run: empty COMMAND\n");
		return VR_EXIT_USAGE;
	}
	if (strchr(cmd, '/')) {
		g_autofree char *joined =
			cmd[0] == '/'
				? g_strdup(cmd)
				: g_build_filename(cfg->workdir ? cfg->workdir : "/", cmd, NULL);
		g_autofree char *abs = vc_path_normalize(joined);

		best = vr_find_path(cfg, abs);
		where = g_strdup_printf("'%s'", abs);
	} else {
		g_auto(GStrv) dirs = g_strsplit(path, ":", -1);

		for (guint i = 0; dirs[i] && best != VR_FOUND_EXEC; i++) {
			g_autofree char *cand = NULL;
			g_autofree char *norm = NULL;
			enum vr_found f;

			if (dirs[i][0] != '/')
				continue;
			cand = g_build_filename(dirs[i], cmd, NULL);
			norm = vc_path_normalize(cand);
			f = vr_find_path(cfg, norm);
			if (f > best)
				best = f;
		}
		where = g_strdup_printf("the container's PATH (%s)", path);
	}
	switch (best) {
	case VR_FOUND_EXEC:
		return 0;
	case VR_FOUND_NOEXEC:
		fprintf(stderr, "veneer-run: COMMAND '%s' in %s is not an executable file\n", cmd,
			where);
		return VR_EXIT_CANNOT_EXEC;
	default:
		fprintf(stderr, "veneer-run: COMMAND '%s' not found in %s of the root filesystem\n",
			cmd, where);
		return VR_EXIT_NOT_FOUND;
	}
}
