/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FUSE-over-io_uring transport (see fuse-uring.h). The kernel keeps one
 * queue per possible CPU and hands a request to an idle entry of the queue of
 * the CPU the caller runs on, the entry that went idle last first. Each ring
 * thread here owns one io_uring and one entry of one queue (a header buffer
 * and a payload buffer, registered with FUSE_IO_URING_CMD_REGISTER); it rebuilds
 * the request as /dev/fuse would deliver it, hands it to libfuse, and the reply
 * (through fuse-io.c's writev hook) is copied back into the entry and sent with
 * FUSE_IO_URING_CMD_COMMIT_AND_FETCH, which also waits for the next request. So
 * a caller's requests keep going to the same, still warm thread, and a slow
 * request holds up only its own thread.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <liburing.h>

#include "fuse-uring.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"

/*
 * The protocol (include/uapi/linux/fuse.h, 7.42), which Debian 12's headers
 * lack. The header buffer: the fuse_in_header (out: fuse_out_header), the
 * opcode's fixed argument (fuse_write_in, ...), then the entry's bookkeeping.
 */
#define VC_URING_IN_OUT_SZ 128
#define VC_URING_OP_SZ 128

struct vc_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;  /* the request's unique id, given back in the commit */
	uint32_t payload_sz; /* bytes in the payload buffer, either way */
	uint32_t padding;
	uint64_t reserved;
};

struct vc_uring_req_header {
	char in_out[VC_URING_IN_OUT_SZ];
	char op_in[VC_URING_OP_SZ];
	struct vc_uring_ent_in_out ring_ent_in_out;
};

enum {
	VC_URING_CMD_REGISTER = 1,
	VC_URING_CMD_COMMIT_AND_FETCH = 2,
};

/* In the 80 bytes of command data of a 128-byte SQE. */
struct vc_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

_Static_assert(sizeof(struct vc_uring_req_header) == 288, "fuse_uring_req_header layout");
_Static_assert(sizeof(struct vc_uring_cmd_req) == 24, "fuse_uring_cmd_req layout");

/* FUSE_MIN_READ_BUFFER: the kernel's floor for a payload buffer. */
#define VC_URING_MIN_PAYLOAD 8192
/* user_data of the eventfd read that wakes a ring thread; entries are pointers. */
#define VC_URING_WAKE 1

struct vc_uring_thread;

struct vc_uring_ent {
	struct vc_uring_thread *th;
	struct vc_uring_req_header *hdr; /* registered */
	char *payload;			 /* registered: request payload in, reply payload out */
	/*
	 * The request rebuilt for libfuse: header, fixed argument, payload. A copy,
	 * because a handler may still read its arguments after replying, when the
	 * payload buffer already holds the reply.
	 */
	char *req;
	struct iovec iov[2];
	uint64_t commit_id; /* owner thread only */
	/* The request being handled, 0 while the kernel has the entry. A reply claims it. */
	_Atomic uint64_t unique;
	/* A reply given on another thread waits for the owner to commit it. */
	atomic_bool replied;
};

struct vc_uring_thread {
	struct vc_uring *u;
	pthread_t tid;
	bool started;
	bool registered; /* set by the thread before it reports its registration */
	unsigned qid;
	int evfd;
	uint64_t evbuf;
	struct io_uring ring;
	bool ring_ok;
	struct vc_uring_ent ent;
};

struct vc_uring {
	struct fuse_session *se;
	int devfd;
	int mode;
	unsigned nqueues;
	unsigned per_queue;
	size_t payload_size;
	bool offered;
	bool negotiated;
	atomic_bool active;
	atomic_bool stopping;
	/* Proves io_uring works before INIT; makes the kernel fall back if setup fails later. */
	struct io_uring probe;
	bool probe_ok;
	unsigned nthreads;
	struct vc_uring_thread *threads;
	/*
	 * Test hook (VENEER_URING_FAULT): "setup" fails the last thread's setup,
	 * "register" makes every thread's REGISTER one the kernel refuses, "register1"
	 * only the first thread's: the fallback paths need a real failure to be tested.
	 * "slow-register" waits 200 ms before looking for a refusal, so callers that
	 * were waiting for the rings have requests in the new entries by then.
	 */
	int fault;
	/* Start-up handshake of the threads, protected by lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned done; /* threads through the current phase */
	int err;       /* first failure */
	int phase;     /* VC_URING_PHASE_* the threads may enter */
};

enum {
	VC_URING_FAULT_NONE,
	VC_URING_FAULT_SETUP,
	VC_URING_FAULT_REGISTER,
	VC_URING_FAULT_REGISTER1,
	VC_URING_FAULT_SLOW_REGISTER,
};

enum {
	VC_URING_PHASE_SETUP,	 /* buffers, eventfd, ring */
	VC_URING_PHASE_REGISTER, /* every setup worked: register the entries */
	VC_URING_PHASE_SERVE,	 /* every queue has an entry: serve requests */
	VC_URING_PHASE_GIVE_UP,
};

/* The entry whose request this thread is handling (the usual reply comes from it). */
static __thread struct vc_uring_ent *vc_uring_cur;

int vc_uring_parse_mode(const char *s)
{
	if (strcmp(s, "auto") == 0)
		return VC_URING_AUTO;
	if (strcmp(s, "on") == 0)
		return VC_URING_ON;
	if (strcmp(s, "off") == 0)
		return VC_URING_OFF;
	return -EINVAL;
}

const char *vc_uring_mode_name(int mode)
{
	return mode == VC_URING_ON ? "on" : mode == VC_URING_AUTO ? "auto" : "off";
}

/* The kernel has a queue per possible CPU, numbered from 0. */
static int vc_uring_nqueues(unsigned *ret)
{
	g_autoptr(GArray) cpus = NULL;
	g_autofree char *text = NULL;
	int r;

	if (!g_file_get_contents("/sys/devices/system/cpu/possible", &text, NULL, NULL))
		return -ENOENT;
	r = vc_parse_cpulist(g_strstrip(text), &cpus);
	if (r < 0)
		return r;
	/* A gap in the numbering would leave a queue nobody registers: no rings then. */
	if (cpus->len == 0 || g_array_index(cpus, guint, cpus->len - 1) != cpus->len - 1)
		return -EOPNOTSUPP;
	*ret = cpus->len;
	return 0;
}

static int vc_uring_fault(void)
{
	const char *f = getenv("VENEER_URING_FAULT");

	if (!f)
		return VC_URING_FAULT_NONE;
	if (strcmp(f, "setup") == 0)
		return VC_URING_FAULT_SETUP;
	if (strcmp(f, "register") == 0)
		return VC_URING_FAULT_REGISTER;
	if (strcmp(f, "register1") == 0)
		return VC_URING_FAULT_REGISTER1;
	if (strcmp(f, "slow-register") == 0)
		return VC_URING_FAULT_SLOW_REGISTER;
	return VC_URING_FAULT_NONE;
}

int vc_uring_new(struct fuse_session *se, int mode, unsigned threads_per_queue,
		 struct vc_uring **ret)
{
	struct io_uring_params p = {.flags = IORING_SETUP_SQE128};
	struct vc_uring *u;
	int r;

	*ret = NULL;
	if (mode == VC_URING_OFF)
		return 0;
	u = g_new0(struct vc_uring, 1);
	u->se = se;
	u->devfd = fuse_session_fd(se);
	u->mode = mode;
	u->per_queue = threads_per_queue ? threads_per_queue : 1;
	u->fault = vc_uring_fault();
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->cond, NULL);
	r = vc_uring_nqueues(&u->nqueues);
	if (r < 0) {
		log_debug_errno(r, "io_uring: cannot tell the kernel's queue count");
		vc_uring_free(u);
		return r;
	}
	/* 128-byte SQEs carry the FUSE command (Linux >= 5.19). */
	r = io_uring_queue_init_params(1, &u->probe, &p);
	if (r < 0) {
		log_debug_errno(r, "io_uring: no ring with 128-byte SQEs");
		vc_uring_free(u);
		return r;
	}
	u->probe_ok = true;
	*ret = u;
	return 0;
}

bool vc_uring_amend_init(struct vc_uring *u, uint64_t in_flags, struct fuse_init_out *out)
{
	uint64_t max_pages = 32; /* FUSE_DEFAULT_MAX_PAGES_PER_REQ */
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	if (!u)
		return false;
	u->offered = (in_flags & VC_FUSE_OVER_IO_URING) && (in_flags & FUSE_INIT_EXT);
	if (!u->offered || !(out->flags & FUSE_INIT_EXT))
		return false;
	if (out->flags & FUSE_MAX_PAGES)
		max_pages = out->max_pages;
	/* The kernel refuses a payload buffer smaller than any request or reply can be. */
	u->payload_size = MAX(VC_URING_MIN_PAYLOAD, MAX((size_t)out->max_write, max_pages * page));
	out->flags2 |= (uint32_t)(VC_FUSE_OVER_IO_URING >> 32);
	u->negotiated = true;
	return true;
}

bool vc_uring_offered(const struct vc_uring *u)
{
	return u && u->offered;
}

bool vc_uring_active(const struct vc_uring *u)
{
	return u && atomic_load(&u->active);
}

static void vc_uring_prep_cmd(struct vc_uring_thread *th, struct io_uring_sqe *sqe, uint32_t op,
			      uint64_t commit_id)
{
	struct vc_uring_cmd_req *cmd = (struct vc_uring_cmd_req *)sqe->cmd;

	memset(sqe, 0, 128); /* liburing 2.3 leaves the second half of a big SQE as it was */
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = th->u->devfd;
	sqe->cmd_op = op;
	sqe->user_data = (uintptr_t)&th->ent;
	if (op == VC_URING_CMD_REGISTER) {
		sqe->addr = (uintptr_t)th->ent.iov;
		sqe->len = 2;
	}
	cmd->commit_id = commit_id;
	cmd->qid = (uint16_t)th->qid;
}

/* Owner thread: queue the commit of the entry's reply (sent with the next wait). */
static int vc_uring_commit(struct vc_uring_thread *th)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&th->ring);

	/* The ring has room for the entry's command and the eventfd read, never more. */
	if (!sqe)
		return log_error_errno(-EIO, "io_uring: no free SQE for a commit");
	vc_uring_prep_cmd(th, sqe, VC_URING_CMD_COMMIT_AND_FETCH, th->ent.commit_id);
	return 0;
}

static int vc_uring_arm_wake(struct vc_uring_thread *th)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&th->ring);

	if (!sqe)
		return -EIO;
	io_uring_prep_read(sqe, th->evfd, &th->evbuf, sizeof(th->evbuf), 0);
	sqe->user_data = VC_URING_WAKE;
	return 0;
}

static struct vc_uring_ent *vc_uring_find(struct vc_uring *u, uint64_t unique)
{
	for (unsigned i = 0; i < u->nthreads; i++)
		if (atomic_load(&u->threads[i].ent.unique) == unique)
			return &u->threads[i].ent;
	return NULL;
}

ssize_t vc_uring_reply(struct vc_uring *u, const struct iovec *iov, int count)
{
	const struct fuse_out_header *oh = iov[0].iov_base;
	struct vc_uring_ent *e = vc_uring_cur;
	struct fuse_out_header *dst;
	uint64_t unique = oh->unique;
	bool own = true;
	size_t n = 0;

	if (!u || unique == 0 || iov[0].iov_len != sizeof(*oh))
		return -ENOENT;
	if (!e || atomic_load(&e->unique) != unique) {
		e = vc_uring_find(u, unique);
		own = false;
	}
	/* Exactly one reply commits an entry. */
	if (!e || !atomic_compare_exchange_strong(&e->unique, &unique, 0))
		return -ENOENT;
	dst = (struct fuse_out_header *)e->hdr->in_out;
	*dst = *oh;
	for (int i = 1; i < count; i++) {
		if (iov[i].iov_len > u->payload_size - n) {
			/* Cannot happen: the kernel sized the buffers for its largest reply. */
			log_error("io_uring: a %zu-byte reply does not fit the payload buffer",
				  n + iov[i].iov_len);
			dst->error = -EIO;
			n = 0;
			break;
		}
		memmove(e->payload + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	dst->len = sizeof(*oh) + n;
	e->hdr->ring_ent_in_out.payload_sz = n;
	if (own) {
		if (vc_uring_commit(e->th) < 0)
			return -EIO;
	} else {
		/* Only the owner touches its ring: hand the commit over. */
		atomic_store(&e->replied, true);
		if (eventfd_write(e->th->evfd, 1) < 0)
			return -errno;
	}
	return (ssize_t)(sizeof(*oh) + n);
}

/* A request arrived in the thread's entry: rebuild it and let libfuse handle it. */
static void vc_uring_handle(struct vc_uring_thread *th)
{
	struct vc_uring_ent *e = &th->ent;
	struct vc_uring *u = th->u;
	struct fuse_in_header in;
	size_t psz = e->hdr->ring_ent_in_out.payload_sz, opsz;

	memcpy(&in, e->hdr->in_out, sizeof(in));
	e->commit_id = e->hdr->ring_ent_in_out.commit_id;
	atomic_store(&e->unique, in.unique);
	/* in.len covers the header, the fixed argument and the payload, as on /dev/fuse. */
	if (in.unique == 0 || psz > u->payload_size || in.len < sizeof(in) + psz ||
	    in.len - sizeof(in) - psz > VC_URING_OP_SZ) {
		struct fuse_out_header oh = {.len = sizeof(oh), .error = -EIO, .unique = in.unique};
		struct iovec iov = {.iov_base = &oh, .iov_len = sizeof(oh)};

		log_error("io_uring: malformed request (opcode %u, length %u, payload %zu)",
			  in.opcode, in.len, psz);
		vc_uring_cur = e;
		if (in.unique == 0 || vc_uring_reply(u, &iov, 1) < 0)
			atomic_store(&u->stopping, true);
		vc_uring_cur = NULL;
		return;
	}
	opsz = in.len - sizeof(in) - psz;
	memcpy(e->req, &in, sizeof(in));
	memcpy(e->req + sizeof(in), e->hdr->op_in, opsz);
	memcpy(e->req + sizeof(in) + opsz, e->payload, psz);
	vc_uring_cur = e;
	fuse_session_process_buf(u->se, &(struct fuse_buf){.mem = e->req, .size = in.len});
	vc_uring_cur = NULL;
}

/* Buffers, eventfd and ring of one thread. */
static int vc_uring_thread_setup(struct vc_uring_thread *th)
{
	struct io_uring_params p = {.flags = IORING_SETUP_SQE128};
	struct vc_uring_ent *e = &th->ent;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *mem;
	int r;

	if (th->u->fault == VC_URING_FAULT_SETUP && th == &th->u->threads[th->u->nthreads - 1])
		return -ENOMEM;
	th->evfd = eventfd(0, EFD_CLOEXEC);
	if (th->evfd < 0)
		return -errno;
	/* The entry's command and the eventfd read take two SQEs at most; room to spare. */
	r = io_uring_queue_init_params(4, &th->ring, &p);
	if (r < 0)
		return r;
	th->ring_ok = true;
	e->th = th;
	r = posix_memalign(&mem, page, sizeof(*e->hdr));
	if (r != 0)
		return -r;
	e->hdr = mem;
	memset(e->hdr, 0, sizeof(*e->hdr));
	r = posix_memalign(&mem, page, th->u->payload_size);
	if (r != 0)
		return -r;
	e->payload = mem;
	e->req = malloc(sizeof(struct fuse_in_header) + VC_URING_OP_SZ + th->u->payload_size);
	if (!e->req)
		return -ENOMEM;
	e->iov[0] = (struct iovec){.iov_base = e->hdr, .iov_len = sizeof(*e->hdr)};
	e->iov[1] = (struct iovec){.iov_base = e->payload, .iov_len = th->u->payload_size};
	return 0;
}

/* Register the entry; an error the kernel gives at once is in the CQ after the submit. */
static int vc_uring_thread_register(struct vc_uring_thread *th)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&th->ring);
	struct io_uring_cqe *cqe;
	int r;

	if (!sqe)
		return -EIO;
	vc_uring_prep_cmd(th, sqe, VC_URING_CMD_REGISTER, 0);
	if (th->u->fault == VC_URING_FAULT_REGISTER ||
	    (th->u->fault == VC_URING_FAULT_REGISTER1 && th == &th->u->threads[0]))
		sqe->len = 0; /* not the two buffers: the kernel refuses it */
	r = vc_uring_arm_wake(th);
	if (r < 0)
		return r;
	r = io_uring_submit(&th->ring);
	if (r < 0)
		return r;
	if (th->u->fault == VC_URING_FAULT_SLOW_REGISTER)
		usleep(200 * 1000);
	/*
	 * A refused REGISTER has completed by now. A completion without error is a
	 * request the entry already got (callers were waiting for the rings): it stays
	 * in the CQ for the loop.
	 */
	if (io_uring_peek_cqe(&th->ring, &cqe) == 0 && cqe->user_data != VC_URING_WAKE &&
	    cqe->res < 0) {
		r = cqe->res;
		io_uring_cqe_seen(&th->ring, cqe);
		return r;
	}
	return 0;
}

/*
 * Report this thread's result of the current phase and wait for the decision on
 * the next: returns true when the thread goes on to phase next.
 */
static bool vc_uring_settle(struct vc_uring *u, int r, int next)
{
	int phase;

	pthread_mutex_lock(&u->lock);
	if (r < 0 && u->err == 0)
		u->err = r;
	u->done++;
	pthread_cond_broadcast(&u->cond);
	while (u->phase < next)
		pthread_cond_wait(&u->cond, &u->lock);
	phase = u->phase;
	pthread_mutex_unlock(&u->lock);
	return phase == next;
}

/* Owner: commit what other threads replied. */
static void vc_uring_take_replies(struct vc_uring_thread *th)
{
	if (atomic_exchange(&th->ent.replied, false))
		(void)vc_uring_commit(th);
}

static void *vc_uring_thread_main(void *arg)
{
	struct vc_uring_thread *th = arg;
	struct vc_uring *u = th->u;
	char name[16];
	cpu_set_t cpus;
	bool done = false;
	int r;

	snprintf(name, sizeof(name), "fuse-ring-%u", th->qid);
	pthread_setname_np(pthread_self(), name);
	/* Its queue gets the requests of callers on that CPU: stay there (a cpuset may refuse). */
	CPU_ZERO(&cpus);
	CPU_SET(th->qid, &cpus);
	(void)sched_setaffinity(0, sizeof(cpus), &cpus);

	r = vc_uring_thread_setup(th);
	if (!vc_uring_settle(u, r, VC_URING_PHASE_REGISTER))
		return NULL;
	r = vc_uring_thread_register(th);
	th->registered = r >= 0;
	if (!vc_uring_settle(u, r, VC_URING_PHASE_SERVE) || r < 0)
		return NULL;

	while (!done && !atomic_load(&u->stopping)) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		r = io_uring_submit_and_wait(&th->ring, 1);
		if (r < 0 && r != -EINTR) {
			log_error_errno(r, "io_uring: waiting for requests failed");
			break;
		}
		io_uring_for_each_cqe(&th->ring, head, cqe)
		{
			n++;
			if (cqe->user_data == VC_URING_WAKE) {
				if (vc_uring_arm_wake(th) < 0)
					done = true;
				vc_uring_take_replies(th);
			} else if (cqe->res == 0) {
				vc_uring_handle(th);
			} else if (cqe->res == -EINTR || cqe->res == -EAGAIN) {
				/* Not taken: ask again. */
				struct io_uring_sqe *sqe = io_uring_get_sqe(&th->ring);

				if (sqe)
					vc_uring_prep_cmd(th, sqe, VC_URING_CMD_COMMIT_AND_FETCH,
							  th->ent.commit_id);
			} else {
				/* -ENOTCONN, -ECANCELED: the connection or the ring is going. */
				if (cqe->res != -ENOTCONN && cqe->res != -ECANCELED)
					r = log_error_errno(cqe->res, "io_uring: queue %u failed",
							    th->qid);
				else
					log_debug_errno(cqe->res, "io_uring: queue %u entry ended",
							th->qid);
				done = true;
			}
		}
		io_uring_cq_advance(&th->ring, n);
	}
	/*
	 * Requests of this CPU would wait for an entry forever: end the daemon as a
	 * signal does (the /dev/fuse loop is woken by it).
	 */
	if (r < 0 && r != -EINTR && !atomic_load(&u->stopping))
		kill(getpid(), SIGTERM);
	/* Replies given meanwhile still reach the kernel. */
	vc_uring_take_replies(th);
	io_uring_submit(&th->ring);
	return NULL;
}

/*
 * Set up went wrong after INIT asked for io_uring: requests wait for a ready
 * ring. A REGISTER the kernel refuses makes it give up on io_uring and serve the
 * waiting requests through /dev/fuse.
 */
static void vc_uring_force_fallback(struct vc_uring *u)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;

	if (!u->probe_ok || !(sqe = io_uring_get_sqe(&u->probe)))
		return;
	memset(sqe, 0, 128);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = u->devfd;
	sqe->cmd_op = VC_URING_CMD_REGISTER;
	sqe->len = 0; /* not the two buffers: -EINVAL */
	if (io_uring_submit_and_wait(&u->probe, 1) >= 0 && io_uring_peek_cqe(&u->probe, &cqe) == 0)
		io_uring_cqe_seen(&u->probe, cqe);
}

/* Let the waiting threads into phase next (ok), or make them give up. */
static int vc_uring_decide(struct vc_uring *u, int next, bool ok)
{
	pthread_mutex_lock(&u->lock);
	u->done = 0;
	u->phase = ok ? next : VC_URING_PHASE_GIVE_UP;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
	return ok ? 0 : -EIO;
}

/* Wait for every thread to report the current phase; the first failure, or 0. */
static int vc_uring_wait_reports(struct vc_uring *u)
{
	int r;

	pthread_mutex_lock(&u->lock);
	while (u->done < u->nthreads)
		pthread_cond_wait(&u->cond, &u->lock);
	r = u->err;
	pthread_mutex_unlock(&u->lock);
	return r;
}

/* Every queue has a registered entry: the kernel now sends requests to the rings. */
static bool vc_uring_covered(struct vc_uring *u)
{
	for (unsigned q = 0; q < u->nqueues; q++) {
		bool any = false;

		for (unsigned i = q; i < u->nthreads && !any; i += u->nqueues)
			any = u->threads[i].registered;
		if (!any)
			return false;
	}
	return true;
}

int vc_uring_start(struct vc_uring *u)
{
	int r = 0;

	if (!u || !u->negotiated)
		return 0;
	u->nthreads = u->nqueues * u->per_queue;
	u->threads = g_new0(struct vc_uring_thread, u->nthreads);
	for (unsigned i = 0; i < u->nthreads; i++) {
		struct vc_uring_thread *th = &u->threads[i];

		th->u = u;
		th->qid = i % u->nqueues;
		th->evfd = -1;
	}
	for (unsigned i = 0; i < u->nthreads; i++) {
		r = -pthread_create(&u->threads[i].tid, NULL, vc_uring_thread_main, &u->threads[i]);
		if (r < 0) {
			/* The threads already started give up with the rest. */
			pthread_mutex_lock(&u->lock);
			u->err = r;
			u->nthreads = i;
			pthread_mutex_unlock(&u->lock);
			break;
		}
		u->threads[i].started = true;
	}
	r = vc_uring_wait_reports(u);
	if (r < 0) {
		vc_uring_decide(u, VC_URING_PHASE_REGISTER, false);
		log_debug_errno(r, "io_uring: setting up the rings failed");
		vc_uring_force_fallback(u);
		return r;
	}
	vc_uring_decide(u, VC_URING_PHASE_REGISTER, true);
	r = vc_uring_wait_reports(u);
	/*
	 * Once every queue has an entry the kernel sends requests only to the rings,
	 * so the threads that registered carry on whatever happened to the others.
	 * Short of that a refused REGISTER has sent the kernel back to /dev/fuse.
	 */
	if (!vc_uring_covered(u)) {
		vc_uring_decide(u, VC_URING_PHASE_SERVE, false);
		vc_uring_force_fallback(u);
		return log_debug_errno(r < 0 ? r : -EIO,
				       "io_uring: the kernel refused the queue entries");
	}
	vc_uring_decide(u, VC_URING_PHASE_SERVE, true);
	if (r < 0) {
		log_debug_errno(r, "io_uring: some queue entries were refused");
		for (unsigned i = 0; i < u->nthreads; i++)
			if (u->threads[i].started && !u->threads[i].registered) {
				pthread_join(u->threads[i].tid, NULL);
				u->threads[i].started = false;
			}
	}
	atomic_store(&u->active, true);
	log_debug("io_uring: %u queues x %u threads, %zu-byte payloads", u->nqueues, u->per_queue,
		  u->payload_size);
	return 0;
}

void vc_uring_stop(struct vc_uring *u)
{
	if (!u || !u->threads)
		return;
	atomic_store(&u->stopping, true);
	for (unsigned i = 0; i < u->nthreads; i++)
		if (u->threads[i].evfd >= 0)
			(void)eventfd_write(u->threads[i].evfd, 1);
	for (unsigned i = 0; i < u->nthreads; i++)
		if (u->threads[i].started) {
			pthread_join(u->threads[i].tid, NULL);
			u->threads[i].started = false;
		}
	atomic_store(&u->active, false);
}

void vc_uring_free(struct vc_uring *u)
{
	if (!u)
		return;
	vc_uring_stop(u);
	for (unsigned i = 0; u->threads && i < u->nthreads; i++) {
		struct vc_uring_thread *th = &u->threads[i];

		/* Closing the ring cancels the registered entry before its buffers go. */
		if (th->ring_ok)
			io_uring_queue_exit(&th->ring);
		if (th->evfd >= 0)
			close(th->evfd);
		free(th->ent.hdr);
		free(th->ent.payload);
		free(th->ent.req);
	}
	g_free(u->threads);
	if (u->probe_ok)
		io_uring_queue_exit(&u->probe);
	pthread_cond_destroy(&u->cond);
	pthread_mutex_destroy(&u->lock);
	g_free(u);
}
