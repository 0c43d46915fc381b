/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-unionfs --export-layer UPPERDIR: an upper directory written as an OCI
 * layer tar (libarchive, PAX): whiteouts (0/0 devices, overlay.whiteout files)
 * become ".wh.NAME", opaque directories get ".wh..wh..opq", overlay.* xattrs
 * stay behind, metacopy files take their data from the lowers given.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <archive.h>
#include <archive_entry.h>

#include "fd-util.h"
#include "log.h"
#include "parse-util.h"
#include "path-util.h"
#include "dir-util.h"
#include "xattr-util.h"
#include "unionfs.h"

struct vu_export {
	struct archive *a;
	struct archive_entry_linkresolver *links;
	GPtrArray *lowers; /* O_PATH fds (as pointers) of the lowers, top first */
	int upper;
};

static bool vu_export_private_xattr(const char *name)
{
	return g_str_has_prefix(name, "trusted.overlay.") ||
	       g_str_has_prefix(name, "user.overlay.");
}

/* overlay.<what> of the O_PATH fd: 1 with value (NUL-terminated) in *ret, 0 if none. */
static int vu_export_ovl_xattr(int fd, const char *what, char **ret)
{
	g_autofree char *t = g_strconcat("trusted.overlay.", what, NULL);
	g_autofree char *u = g_strconcat("user.overlay.", what, NULL);
	size_t len;
	char *v = NULL;
	int r;

	r = vc_fgetxattr_alloc(fd, true, t, &v, &len);
	if (r == -ENODATA || r == -EOPNOTSUPP)
		r = vc_fgetxattr_alloc(fd, true, u, &v, &len);
	if (r == -ENODATA || r == -EOPNOTSUPP)
		return 0;
	if (r < 0)
		return r;
	if (ret) {
		*ret = g_realloc(v, len + 1);
		(*ret)[len] = '\0';
	} else {
		g_free(v);
	}
	return 1;
}

/* The names of the xattrs of an object: read once, asked several times. */
struct vu_xlist {
	char *names;
	size_t len;
};

static int vu_xlist_load(int fd, struct vu_xlist *ret)
{
	int r = vc_flistxattr_alloc(fd, true, &ret->names, &ret->len);

	if (r == -EOPNOTSUPP) {
		ret->names = NULL;
		ret->len = 0;
		return 0;
	}
	return r < 0 ? r : 0;
}

/* Has it overlay.<what>, trusted or user? */
static bool vu_xlist_has(const struct vu_xlist *l, const char *what)
{
	for (size_t i = 0; i < l->len; i += strlen(l->names + i) + 1) {
		const char *n = l->names + i;

		if ((g_str_has_prefix(n, "trusted.overlay.") &&
		     strcmp(n + strlen("trusted.overlay."), what) == 0) ||
		    (g_str_has_prefix(n, "user.overlay.") &&
		     strcmp(n + strlen("user.overlay."), what) == 0))
			return true;
	}
	return false;
}

/* Is it an opaque directory, overlay.opaque=y (x: it only holds xattr whiteouts)? */
static bool vu_xlist_opaque(const struct vu_xlist *l, int fd)
{
	g_autofree char *v = NULL;

	return vu_xlist_has(l, "opaque") && vu_export_ovl_xattr(fd, "opaque", &v) > 0 &&
	       strcmp(v, "y") == 0;
}

static int vu_export_xattrs(struct archive_entry *e, int fd, const struct vu_xlist *l)
{
	const char *list = l->names;
	size_t len = l->len;
	int r;

	for (size_t i = 0; i < len; i += strlen(list + i) + 1) {
		const char *name = list + i;
		g_autofree char *v = NULL;
		size_t vlen;

		if (vu_export_private_xattr(name))
			continue;
		r = vc_fgetxattr_alloc(fd, true, name, &v, &vlen);
		if (r == -ENODATA)
			continue;
		if (r < 0)
			return r;
		archive_entry_xattr_add_entry(e, name, v, vlen);
	}
	return 0;
}

static int vu_export_write(struct vu_export *x, struct archive_entry *e, int datafd,
			   const char *path)
{
	struct archive_entry *sparse = NULL;
	char buf[65536];

	archive_entry_linkify(x->links, &e, &sparse);
	if (!e)
		return 0; /* a hard link whose other names come later: written then */
	if (archive_write_header(x->a, e) != ARCHIVE_OK)
		return log_error_errno(-EIO, "'%s': %s", path, archive_error_string(x->a));
	if (datafd >= 0 && archive_entry_size(e) > 0 && !archive_entry_hardlink(e)) {
		ssize_t n;

		while ((n = read(datafd, buf, sizeof(buf))) > 0)
			if (archive_write_data(x->a, buf, n) != n)
				return log_error_errno(-EIO, "'%s': %s", path,
						       archive_error_string(x->a));
		if (n < 0)
			return log_error_errno(-errno, "could not read '%s'", path);
	}
	return 0;
}

/* An empty regular file named NAME under dir: an OCI whiteout or opaque marker. */
static int vu_export_marker(struct vu_export *x, const char *dir, const char *name)
{
	g_autofree char *p = *dir ? g_strconcat(dir, "/", name, NULL) : g_strdup(name);
	struct archive_entry *e = archive_entry_new();
	int r;

	archive_entry_set_pathname(e, p);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0);
	archive_entry_set_size(e, 0);
	r = archive_write_header(x->a, e) == ARCHIVE_OK ? 0 : -EIO;
	if (r < 0)
		log_error("'%s': %s", p, archive_error_string(x->a));
	archive_entry_free(e);
	return r;
}

/*
 * The data of metacopy file path (rel: from the layer roots): the first lower holding
 * the name its redirect gives, or its own, that is not metadata only itself.
 */
static int vu_export_mc_data(struct vu_export *x, int fd, const char *rel, int *ret)
{
	g_autofree char *redirect = NULL;
	g_autofree char *want = NULL;
	int r;

	if (!x->lowers || x->lowers->len == 0)
		return log_error_errno(-EINVAL,
				       "'%s' is a metacopy file: its data is in a lower layer, "
				       "give -o lowerdir=",
				       rel);
	r = vu_export_ovl_xattr(fd, "redirect", &redirect);
	if (r < 0)
		return r;
	if (redirect && redirect[0] == '/') {
		want = g_strdup(redirect + 1);
	} else if (redirect) {
		const char *slash = strrchr(rel, '/');

		want = slash ? g_strdup_printf("%.*s/%s", (int)(slash - rel), rel, redirect)
			     : g_strdup(redirect);
	} else {
		want = g_strdup(rel);
	}
	for (guint i = 0; i < x->lowers->len; i++) {
		int lfd = GPOINTER_TO_INT(x->lowers->pdata[i]);
		_cleanup_close_ int o = vc_open_beneath(lfd, want, O_PATH | O_NOFOLLOW, 0);
		struct stat st;

		if (o < 0 || fstat(o, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (vu_export_ovl_xattr(o, "metacopy", NULL) > 0)
			continue;
		*ret = vc_open_beneath(lfd, want, O_RDONLY | O_NOFOLLOW, 0);
		if (*ret < 0)
			return log_error_errno(*ret, "could not open the data of '%s'", rel);
		return 0;
	}
	return log_error_errno(-ENOENT, "'%s' is a metacopy file whose data '%s' is in no lowerdir",
			       rel, want);
}

static int vu_export_dir(struct vu_export *x, int pathfd, const char *rel, bool xwhiteouts,
			 bool opaque);

static int vu_export_one(struct vu_export *x, int dirfd, const char *dir, const char *name,
			 bool xwhiteouts)
{
	g_autofree char *rel = *dir ? g_strconcat(dir, "/", name, NULL) : g_strdup(name);
	_cleanup_close_ int fd = -1, data = -1;
	g_autofree char *names = NULL;
	struct archive_entry *e = NULL;
	struct vu_xlist xl;
	struct stat st;
	int r;

	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return log_error_errno(-errno, "could not open '%s'", rel);
	r = vu_xlist_load(fd, &xl);
	if (r < 0)
		return log_error_errno(r, "could not list the xattrs of '%s'", rel);
	names = xl.names;
	/* Whiteouts: a 0/0 device, or an empty file marked so in a directory marked so. */
	if ((S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) ||
	    (xwhiteouts && S_ISREG(st.st_mode) && st.st_size == 0 &&
	     vu_xlist_has(&xl, "whiteout"))) {
		g_autofree char *wh = g_strconcat(VU_OCI_PREFIX, name, NULL);

		return vu_export_marker(x, dir, wh);
	}
	if (S_ISSOCK(st.st_mode)) {
		log_info("'%s': a socket, not exported", rel);
		return 0;
	}
	if (S_ISDIR(st.st_mode) && vu_xlist_has(&xl, "redirect"))
		return log_error_errno(-EINVAL,
				       "'%s' is a directory renamed with redirect_dir=on: an OCI "
				       "layer cannot say where its lower contents went",
				       rel);
	if (S_ISREG(st.st_mode)) {
		if (vu_xlist_has(&xl, "metacopy")) {
			struct stat dst;

			r = vu_export_mc_data(x, fd, rel, &data);
			if (r < 0)
				return r;
			if (fstat(data, &dst) < 0)
				return -errno;
			st.st_size = dst.st_size;
		} else {
			data = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (data < 0)
				return log_error_errno(-errno, "could not open '%s'", rel);
		}
	}
	e = archive_entry_new();
	archive_entry_set_pathname(e, rel);
	archive_entry_copy_stat(e, &st);
	if (!S_ISREG(st.st_mode))
		archive_entry_set_size(e, 0);
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX + 1];
		ssize_t n = readlinkat(fd, "", target, PATH_MAX);

		if (n < 0) {
			r = log_error_errno(-errno, "could not read the symlink '%s'", rel);
			goto out;
		}
		target[n] = '\0';
		archive_entry_set_symlink(e, target);
	}
	r = vu_export_xattrs(e, fd, &xl);
	if (r < 0) {
		log_error_errno(r, "could not read the xattrs of '%s'", rel);
		goto out;
	}
	r = vu_export_write(x, e, data, rel);
	if (r < 0 || !S_ISDIR(st.st_mode))
		goto out;
	{
		bool opaque = vu_xlist_opaque(&xl, fd);

		if (opaque)
			r = vu_export_marker(x, rel, VU_OCI_OPAQUE);
		/* The kernel's xattr whiteouts count only where the directory says so. */
		if (r == 0)
			r = vu_export_dir(x, fd, rel,
					  vu_xlist_has(&xl, "opaque") ||
						  vu_xlist_has(&xl, "whiteouts"),
					  opaque);
	}
out:
	archive_entry_free(e);
	return r;
}

static int vu_export_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The entries of the directory (an O_PATH fd) rel, sorted: the same tar every time.
 * xwhiteouts: it may hold xattr whiteouts; opaque: its marker was written.
 */
static int vu_export_dir(struct vu_export *x, int pathfd, const char *rel, bool xwhiteouts,
			 bool opaque)
{
	_cleanup_closedir_ DIR *d = NULL;
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	struct dirent *de;
	bool opaque_file = false;
	int r;

	r = vc_opendir_at(pathfd, ".", &d);
	if (r < 0)
		return log_error_errno(r, "could not list '%s'", *rel ? rel : ".");
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			g_ptr_array_add(names, g_strdup(de->d_name));
	qsort(names->pdata, names->len, sizeof(char *), vu_export_cmp);
	for (guint i = 0; i < names->len; i++) {
		const char *name = names->pdata[i];

		/* Already OCI (veneer's fallback on an upper without 0/0 devices). */
		if (strcmp(name, VU_OCI_OPAQUE) == 0) {
			opaque_file = true;
			continue;
		}
		r = vu_export_one(x, dirfd(d), rel, name, xwhiteouts);
		if (r < 0)
			return r;
	}
	/* Written once, also when the directory carries the xattr as well. */
	if (opaque_file && !opaque)
		return vu_export_marker(x, rel, VU_OCI_OPAQUE);
	return 0;
}

static void vu_export_usage(FILE *f)
{
	fprintf(f, "usage: veneer-unionfs --export-layer UPPERDIR [--output FILE] "
		   "[-o lowerdir=L1[:L2...]]\n"
		   "    write UPPERDIR as an OCI layer tar (PAX) to FILE (default: stdout);\n"
		   "    lowerdir= is needed when it has metacopy files\n");
}

int vu_export_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"export-layer", required_argument, NULL, 'e'},
		{"output", required_argument, NULL, 'O'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	g_autofree char *tmp = NULL;
	const char *upper = NULL, *out = NULL;
	g_autoptr(GPtrArray) lowerpaths = NULL;
	struct vu_export x = {.upper = -1};
	int c, r = -EINVAL, ret = VC_EXIT_USAGE;
	_cleanup_close_ int ofd = -1;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			upper = optarg;
			break;
		case 'O':
			out = optarg;
			break;
		case 'o':
			if (!g_str_has_prefix(optarg, "lowerdir=")) {
				log_error("--export-layer: unknown option '-o %s' (only lowerdir=)",
					  optarg);
				return VC_EXIT_USAGE;
			}
			if (lowerpaths)
				g_ptr_array_free(lowerpaths, true);
			lowerpaths = NULL;
			if (vc_split_escaped(optarg + strlen("lowerdir="), ':', &lowerpaths) < 0) {
				log_error("lowerdir='%s': an empty layer path", optarg + 9);
				return VC_EXIT_USAGE;
			}
			break;
		case 'h':
			vu_export_usage(stdout);
			return VC_EXIT_OK;
		default:
			vu_export_usage(stderr);
			return VC_EXIT_USAGE;
		}
	}
	if (!upper || optind < argc) {
		vu_export_usage(stderr);
		return VC_EXIT_USAGE;
	}
	x.upper = open(upper, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (x.upper < 0) {
		log_error_errno(-errno, "upperdir '%s'", upper);
		return VC_EXIT_USAGE;
	}
	x.lowers = g_ptr_array_new();
	for (guint i = 0; lowerpaths && i < lowerpaths->len; i++) {
		int fd = open(lowerpaths->pdata[i], O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0) {
			log_error_errno(-errno, "lowerdir '%s'", (char *)lowerpaths->pdata[i]);
			goto out;
		}
		g_ptr_array_add(x.lowers, GINT_TO_POINTER(fd));
	}
	/* Into a temporary next to FILE, renamed at the end: a refusal leaves no file. */
	if (out && strcmp(out, "-") != 0) {
		tmp = g_strdup_printf("%s.tmp%u", out, (unsigned)getpid());
		ofd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (ofd < 0) {
			log_error_errno(-errno, "could not create '%s'", tmp);
			g_clear_pointer(&tmp, g_free);
			goto out;
		}
	}
	x.a = archive_write_new();
	x.links = archive_entry_linkresolver_new();
	archive_write_set_format_pax_restricted(x.a);
	archive_entry_linkresolver_set_strategy(x.links, archive_format(x.a));
	archive_write_add_filter_none(x.a);
	if (archive_write_open_fd(x.a, ofd >= 0 ? ofd : STDOUT_FILENO) != ARCHIVE_OK) {
		log_error("could not write the tar: %s", archive_error_string(x.a));
		ret = VC_EXIT_FAILURE;
		goto out;
	}
	{
		g_autofree char *names = NULL;
		struct vu_xlist xl;

		r = vu_xlist_load(x.upper, &xl);
		names = xl.names;
		if (r == 0)
			r = vu_export_dir(&x, x.upper, "",
					  vu_xlist_has(&xl, "opaque") ||
						  vu_xlist_has(&xl, "whiteouts"),
					  false);
	}
	if (r == 0) {
		struct archive_entry *e = NULL, *sparse = NULL;

		/* Hard links whose other names were never met. */
		for (archive_entry_linkify(x.links, &e, &sparse); e;
		     archive_entry_linkify(x.links, &e, &sparse))
			archive_write_header(x.a, e);
		if (archive_write_close(x.a) != ARCHIVE_OK) {
			log_error("could not write the tar: %s", archive_error_string(x.a));
			r = -EIO;
		}
	}
	ret = r == -EINVAL ? VC_EXIT_USAGE : r < 0 ? VC_EXIT_FAILURE : VC_EXIT_OK;
	if (r == 0 && tmp) {
		if (fsync(ofd) < 0 || rename(tmp, out) < 0) {
			log_error_errno(-errno, "could not write '%s'", out);
			ret = VC_EXIT_FAILURE;
		} else {
			g_clear_pointer(&tmp, g_free);
		}
	}
out:
	if (tmp)
		unlink(tmp);
	if (x.a)
		archive_write_free(x.a);
	if (x.links)
		archive_entry_linkresolver_free(x.links);
	for (guint i = 0; x.lowers && i < x.lowers->len; i++)
		close(GPOINTER_TO_INT(x.lowers->pdata[i]));
	if (x.lowers)
		g_ptr_array_free(x.lowers, true);
	vc_close_nointr(x.upper);
	return ret;
}
