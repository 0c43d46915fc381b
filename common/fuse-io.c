/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The session's custom io (libfuse 3.14's only hook into its device traffic):
 * the INIT handshake happens here, right after the mount, so the INIT reply can
 * ask for what libfuse 3.14 does not know (the daemon's init_reply hook, e.g.
 * passthrough; FUSE over io_uring); afterwards every reply passes through
 * vc_fuse_io_writev, which sends the replies to ring requests into their ring
 * entries (fuse-uring.c) and the rest to /dev/fuse.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "fd-util.h"
#include "fuse-io.h"
#include "log.h"
#include "macro.h"

/*
 * The custom io callbacks get the session's userdata, which is the daemon's: the
 * one session of a process keeps its io state here.
 */
static struct vc_fuse_io *vc_io;

static ssize_t vc_fuse_io_read(int fd, void *buf, size_t len, void *userdata)
{
	return read(fd, buf, len);
}

static ssize_t vc_fuse_io_splice_receive(int fdin, off_t *offin, int fdout, off_t *offout,
					 size_t len, unsigned int flags, void *userdata)
{
	return splice(fdin, offin, fdout, offout, len, flags);
}

/* The INIT reply: the daemon's and the transport's additions. */
static ssize_t vc_fuse_io_init_reply(struct vc_fuse_io *io, int fd, struct iovec *iov, int count)
{
	const struct fuse_out_header *oh = iov[0].iov_base;
	struct fuse_init_out out;
	struct iovec v[2];

	io->expect_init = false;
	if (count != 2 || oh->error != 0 || iov[1].iov_len != sizeof(out))
		return writev(fd, iov, count);
	memcpy(&out, iov[1].iov_base, sizeof(out));
	if (io->hooks && io->hooks->init_reply)
		io->hooks->init_reply(io->userdata, &io->init_in, &out);
	io->uring_asked = vc_uring_amend_init(io->uring, io->init_flags, &out);
	v[0] = iov[0];
	v[1] = (struct iovec){.iov_base = &out, .iov_len = sizeof(out)};
	return writev(fd, v, 2);
}

static ssize_t vc_fuse_io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct vc_fuse_io *io = vc_io;
	ssize_t r;

	if (unlikely(io->expect_init))
		return vc_fuse_io_init_reply(io, fd, iov, count);
	if (io->uring_asked) {
		r = vc_uring_reply(io->uring, iov, count);
		if (r != -ENOENT) {
			if (r >= 0)
				return r;
			errno = (int)-r;
			return -1;
		}
	}
	return writev(fd, iov, count);
}

/*
 * libfuse splices large data replies from a pipe when the daemon wants
 * FUSE_CAP_SPLICE_WRITE (vc_fuse_io_init drops it when rings are in use): a
 * reply to a ring request is read out of the pipe and copied into its entry.
 */
static ssize_t vc_fuse_io_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
				      unsigned int flags, void *userdata)
{
	struct vc_fuse_io *io = vc_io;
	g_autofree char *buf = NULL;
	struct iovec iov[2];
	ssize_t r;

	if (!io->uring_asked || len < sizeof(struct fuse_out_header))
		return splice(fdin, offin, fdout, offout, len, flags);
	buf = malloc(len);
	if (!buf)
		return -1;
	r = vc_read_all(fdin, buf, len);
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	if ((size_t)r != len) {
		errno = EIO;
		return -1;
	}
	iov[0] = (struct iovec){.iov_base = buf, .iov_len = sizeof(struct fuse_out_header)};
	iov[1] = (struct iovec){.iov_base = buf + iov[0].iov_len, .iov_len = len - iov[0].iov_len};
	return vc_fuse_io_writev(fdout, iov, 2, userdata);
}

static const struct fuse_custom_io vc_fuse_io_ops = {
	.writev = vc_fuse_io_writev,
	.read = vc_fuse_io_read,
	.splice_receive = vc_fuse_io_splice_receive,
	.splice_send = vc_fuse_io_splice_send,
};

/* Wraps the daemon's init: with rings, data replies are copied, never spliced. */
static void vc_fuse_io_init(void *userdata, struct fuse_conn_info *conn)
{
	struct vc_fuse_io *io = vc_io;

	if (io->daemon_init)
		io->daemon_init(userdata, conn);
	if (vc_uring_offered(io->uring))
		conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

void vc_fuse_io_prepare(struct vc_fuse_io *io, struct fuse_lowlevel_ops *ops,
			const struct vc_fuse_hooks *hooks, void *userdata)
{
	memset(io, 0, sizeof(*io));
	io->hooks = hooks;
	io->userdata = userdata;
	io->daemon_init = ops->init;
	ops->init = vc_fuse_io_init;
	vc_io = io;
}

/* 1: the first buffer is an INIT request, whose flags are kept. */
static int vc_fuse_io_take_init(struct vc_fuse_io *io, const struct fuse_buf *buf)
{
	const struct fuse_in_header *ih = buf->mem;

	if ((buf->flags & FUSE_BUF_IS_FD) || buf->size < sizeof(*ih) + sizeof(io->init_in) ||
	    ih->opcode != FUSE_INIT)
		return 0;
	memcpy(&io->init_in, ih + 1, sizeof(io->init_in));
	io->init_flags = io->init_in.flags;
	if (io->init_in.flags & FUSE_INIT_EXT)
		io->init_flags |= (uint64_t)io->init_in.flags2 << 32;
	return 1;
}

int vc_fuse_io_handshake(struct vc_fuse_io *io, struct fuse_session *se, int uring_mode,
			 unsigned uring_threads)
{
	struct fuse_buf buf = {.mem = NULL};
	int r;

	io->se = se;
	r = fuse_session_custom_io(se, &vc_fuse_io_ops, fuse_session_fd(se));
	if (r < 0)
		return log_error_errno(r, "could not hook the FUSE device");
	r = vc_uring_new(se, uring_mode, uring_threads, &io->uring);
	if (r < 0 && uring_mode == VC_URING_ON)
		return log_error_errno(r, "uring=on: io_uring is not usable here");
	/* mount(2) has queued INIT: answer it here, before anything else can come. */
	do
		r = fuse_session_receive_buf(se, &buf);
	while (r == -EINTR || r == -EAGAIN);
	if (r <= 0) {
		free(buf.mem);
		return log_error_errno(r < 0 ? r : -EIO, "no INIT request from the kernel");
	}
	io->expect_init = vc_fuse_io_take_init(io, &buf);
	fuse_session_process_buf(se, &buf);
	free(buf.mem);
	io->expect_init = false;
	if (fuse_session_exited(se))
		return log_error_errno(-EPROTO, "the FUSE INIT handshake failed");
	if (uring_mode == VC_URING_ON && !io->uring_asked)
		return log_error_errno(-EOPNOTSUPP,
				       "uring=on: the kernel does not offer FUSE over io_uring (it "
				       "needs Linux >= 6.14 with CONFIG_FUSE_IO_URING and Y in "
				       "/sys/module/fuse/parameters/enable_uring)");
	return 0;
}

int vc_fuse_io_start(struct vc_fuse_io *io, int uring_mode)
{
	int r;

	if (!io->uring_asked)
		return 0;
	r = vc_uring_start(io->uring);
	if (r < 0) {
		/* The kernel went back to /dev/fuse: replies go there too. */
		io->uring_asked = false;
		if (uring_mode == VC_URING_ON)
			return log_error_errno(r,
					       "uring=on: the io_uring queues could not be set up");
		log_warning_errno(r, "FUSE over io_uring could not be set up; using /dev/fuse");
		return 0;
	}
	log_debug("requests come through io_uring");
	return 0;
}

void vc_fuse_io_stop(struct vc_fuse_io *io)
{
	vc_uring_stop(io->uring);
}

void vc_fuse_io_done(struct vc_fuse_io *io)
{
	g_clear_pointer(&io->uring, vc_uring_free);
	if (vc_io == io)
		vc_io = NULL;
}
