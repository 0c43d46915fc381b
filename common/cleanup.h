/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Scope-based cleanup of file descriptors. Memory uses glib's g_autofree and
 * g_autoptr; glib 2.74 has no g_autofd, so fds get _cleanup_close_ here, and
 * TAKE_FD() hands ownership out of a scope.
 */
#pragma once

#include <errno.h>
#include <unistd.h>
#include <dirent.h>
#include <stdio.h>

static inline void vc_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
	*fd = -1;
}

static inline void vc_closedirp(DIR **d)
{
	if (*d) {
		int saved = errno;
		closedir(*d);
		errno = saved;
	}
}

static inline void vc_fclosep(FILE **f)
{
	if (*f) {
		int saved = errno;
		fclose(*f);
		errno = saved;
	}
}

#define _cleanup_close_ __attribute__((cleanup(vc_closep)))
#define _cleanup_closedir_ __attribute__((cleanup(vc_closedirp)))
#define _cleanup_fclose_ __attribute__((cleanup(vc_fclosep)))

/* Return the fd and leave -1 behind, so the cleanup handler does nothing. */
#define TAKE_FD(fd)              \
	({                       \
		int _fd_ = (fd); \
		(fd) = -1;       \
		_fd_;            \
	})
