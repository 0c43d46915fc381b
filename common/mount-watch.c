/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Ending a FUSE session when its mount leaves the daemon's mount namespace.
 * The kernel ends a session only with its superblock, which every mount
 * namespace made while the file system was mounted holds a copy of: after
 * umount here, an unrelated unshare(1), container or service started meanwhile
 * keeps the daemon (and everything it has open) alive for as long as it runs.
 * A thread waits for changes of /proc/self/mountinfo and, once no mount of the
 * superblock is left here, stops the loop as SIGTERM does.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <glib.h>

#include "fd-util.h"
#include "log.h"
#include "mount-watch.h"
#include "parse-util.h"

/* The superblock of mountinfo line l ("ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - TYPE ..."),
 * its mount point (unescaped) and whether its type is fuse.*; false for a malformed line. */
static bool vc_mountinfo_line(const char *l, dev_t *dev, char **mp, bool *fuse)
{
	g_auto(GStrv) f = g_strsplit(l, " ", -1);
	g_auto(GStrv) mm = NULL;
	unsigned maj, min;
	guint n = g_strv_length(f), i;

	if (n < 10)
		return false;
	mm = g_strsplit(f[2], ":", 3);
	if (g_strv_length(mm) != 2 || vc_parse_uint(mm[0], &maj) < 0 ||
	    vc_parse_uint(mm[1], &min) < 0)
		return false;
	for (i = 6; i < n && strcmp(f[i], "-") != 0; i++)
		;
	if (i + 1 >= n)
		return false;
	*dev = makedev(maj, min);
	if (mp)
		*mp = g_strcompress(f[4]); /* blanks and backslashes come as \ooo */
	*fuse = strcmp(f[i + 1], "fuse") == 0 || g_str_has_prefix(f[i + 1], "fuse.");
	return true;
}

int vc_mountinfo_fuse_dev(const char *mountinfo, const char *mountpoint, dev_t *ret)
{
	g_auto(GStrv) lines = g_strsplit(mountinfo, "\n", -1);
	bool found = false;

	/* The last mount on that path is the one on top. */
	for (char **l = lines; *l; l++) {
		g_autofree char *mp = NULL;
		bool fuse;
		dev_t dev;

		if (vc_mountinfo_line(*l, &dev, &mp, &fuse) && fuse &&
		    strcmp(mp, mountpoint) == 0) {
			*ret = dev;
			found = true;
		}
	}
	return found ? 0 : -ENOENT;
}

bool vc_mountinfo_has_dev(const char *mountinfo, dev_t dev)
{
	g_auto(GStrv) lines = g_strsplit(mountinfo, "\n", -1);

	for (char **l = lines; *l; l++) {
		bool fuse;
		dev_t d;

		if (vc_mountinfo_line(*l, &d, NULL, &fuse) && d == dev)
			return true;
	}
	return false;
}

/* Does the kernel end the session's connection within ms? Its fd then polls POLLERR. */
static bool vc_mount_watch_conn_ends(struct fuse_session *se, int ms)
{
	struct pollfd p = {.fd = fuse_session_fd(se), .events = 0};
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r == 1 && (p.revents & POLLERR);
}

static void *vc_mount_watch_main(void *arg)
{
	struct vc_mount_watch *w = arg;
	struct pollfd p[2] = {{.fd = w->mifd, .events = POLLPRI},
			      {.fd = w->stopfd, .events = POLLIN}};

	for (;;) {
		g_autofree char *text = NULL;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_debug_errno(-errno, "mount watch: poll failed");
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & (POLLPRI | POLLERR)))
			continue;
		/* A fresh read: the event is re-armed per open file at poll, not at read. */
		if (vc_read_file_at(AT_FDCWD, "/proc/self/mountinfo", &text, NULL) < 0 ||
		    vc_mountinfo_has_dev(text, w->dev))
			continue;
		/*
		 * An ordinary unmount ends the connection a moment later, and the loop
		 * then ends by itself, after the requests already queued (the last
		 * RELEASEs): only a superblock that copies elsewhere keep is our business.
		 */
		if (vc_mount_watch_conn_ends(w->se, 1000))
			break;
		log_debug("the file system is no longer mounted in this mount namespace: the "
			  "session ends");
		atomic_store(&w->gone, true);
		fuse_session_exit(w->se);
		/* The loop's thread wakes from its wait (or read) and unwinds, as on SIGTERM. */
		pthread_kill(w->loop_thread, SIGTERM);
		break;
	}
	return NULL;
}

int vc_mount_watch_start(struct vc_mount_watch *w, struct fuse_session *se, const char *mountpoint)
{
	g_autofree char *text = NULL, *real = NULL;
	sigset_t all, old;
	int r;

	*w = (struct vc_mount_watch){.mifd = -1, .stopfd = -1, .se = se};
	/*
	 * The path the kernel shows: its parent resolved, never the mount itself, which
	 * would ask this daemon, whose loop does not run yet.
	 */
	{
		g_autofree char *dir = g_path_get_dirname(mountpoint);
		g_autofree char *base = g_path_get_basename(mountpoint);
		g_autofree char *rdir = realpath(dir, NULL);

		if (rdir)
			real = g_build_filename(rdir, base, NULL);
	}
	r = vc_read_file_at(AT_FDCWD, "/proc/self/mountinfo", &text, NULL);
	if (r == 0)
		r = vc_mountinfo_fuse_dev(text, real ? real : mountpoint, &w->dev);
	if (r < 0) {
		/* Then the session ends with its superblock only, as libfuse's do. */
		log_debug_errno(r, "mount watch: the mount at '%s' not found", mountpoint);
		return 0;
	}
	w->mifd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	w->stopfd = eventfd(0, EFD_CLOEXEC);
	if (w->mifd < 0 || w->stopfd < 0) {
		r = -errno;
		goto fail;
	}
	w->loop_thread = pthread_self();
	/* Signals are the loop's: this thread must never take them. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&w->thread, NULL, vc_mount_watch_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto fail;
	w->running = true;
	return 0;
fail:
	vc_mount_watch_stop(w);
	return log_debug_errno(r, "mount watch: not started");
}

void vc_mount_watch_stop(struct vc_mount_watch *w)
{
	if (w->running) {
		uint64_t one = 1;

		if (write(w->stopfd, &one, sizeof(one)) < 0)
			log_debug_errno(-errno, "mount watch: could not wake the thread");
		pthread_join(w->thread, NULL);
		w->running = false;
	}
	vc_close_nointr(w->mifd);
	vc_close_nointr(w->stopfd);
	w->mifd = w->stopfd = -1;
}
