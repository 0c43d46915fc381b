/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The worker's request loop, with a journal: a fixed pool of threads each
 * reads its requests straight into its slot of a shared memfd and clears the
 * slot after the reply. If the worker dies, the holder gives the memfd to the
 * next worker, which replays the slots that are still set (holder.c). The read
 * lands in the memfd itself because a SIGKILL that arrives while the kernel
 * hands a thread a request ends the thread on its way back from read(): the
 * request is then in the memfd, or it is still queued in the kernel. Replaying
 * is safe because every operation here is idempotent on a read-only tree, and
 * a reply to a request that was already answered is dropped by the kernel
 * (unknown unique id). The main thread waits for a signal, the holder's
 * RETIRE, or the end of the connection.
 */
#include <errno.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "notify.h"
#include "proc-title.h"
#include "procfs.h"

#define VP_JOURNAL_MAGIC 0x766a7232U /* "vjr2": requests read in place */
/*
 * A slot takes the largest request the kernel may send us: it refuses a read()
 * smaller than FUSE_MIN_READ_BUFFER (8 KiB) or than a WRITE of max_write
 * (vp_op_init: VP_MAX_WRITE), and fails a larger request with EIO (E2BIG for
 * a SETXATTR), which a read-only tree refuses anyway.
 */
#define VP_JOURNAL_SLOT (12 * 1024)
#define VP_JOURNAL_SLOTS 64

/* Set while the kernel's fuse_in_header.len in data is not 0. */
struct vp_journal_slot {
	_Alignas(8) char data[VP_JOURNAL_SLOT];
};

G_STATIC_ASSERT(VP_JOURNAL_SLOT >= 8192 && VP_JOURNAL_SLOT >= sizeof(struct fuse_in_header) +
								      sizeof(struct fuse_write_in) +
								      VP_MAX_WRITE);

struct vp_journal {
	uint32_t magic;
	uint32_t nslots;
	uint64_t pad;
	struct vp_journal_slot slots[VP_JOURNAL_SLOTS];
};

struct vp_loop;

struct vp_loop_thread {
	struct vp_loop *loop;
	pthread_t tid;
	unsigned slot;
	struct fuse_buf buf; /* owned by the thread while it runs, freed after join */
};

struct vp_loop {
	struct fuse_session *se;
	struct vp_opts *opts;
	int journal_fd;
	struct vp_journal *journal; /* shared memory; slot i written only by thread i */
	int exit_efd;		    /* a thread writes here when the connection ends */
	atomic_bool stopping;	    /* the main thread stops the request threads */
	unsigned nthreads;
	struct vp_loop_thread *threads;
};

static void vp_loop_wake(int sig)
{
}

static _Atomic uint32_t *vp_slot_mark(struct vp_journal_slot *slot)
{
	return (_Atomic uint32_t *)(void *)slot->data; /* fuse_in_header.len */
}

static bool vp_loop_replayable(const struct fuse_in_header *in, size_t len)
{
	/* Interrupts refer to requests of the dead worker; INIT/DESTROY are never replayed. */
	return len >= sizeof(*in) && len <= VP_JOURNAL_SLOT && in->opcode != FUSE_INTERRUPT &&
	       in->opcode != FUSE_INIT && in->opcode != FUSE_DESTROY;
}

/*
 * One request into the slot: > 0 its length, 0 the connection ended, -EINTR to
 * look at the stop flag, -EINVAL when the connection wants larger reads (set up
 * by an older binary with a larger max_write), else an error.
 */
static int vp_loop_read_slot(struct vp_loop *l, struct vp_journal_slot *slot)
{
	for (;;) {
		ssize_t n;

		atomic_store_explicit(vp_slot_mark(slot), 0, memory_order_release);
		n = read(fuse_session_fd(l->se), slot->data, sizeof(slot->data));
		if (n >= (ssize_t)sizeof(struct fuse_in_header))
			return (int)n;
		if (n >= 0)
			return -EPROTO;
		switch (errno) {
		case ENOENT: /* interrupted while we read it: the next one */
			continue;
		case EINTR:
		case EAGAIN:
			return -EINTR;
		case ENODEV: /* unmounted */
			fuse_session_exit(l->se);
			return 0;
		default:
			return -errno;
		}
	}
}

static void *vp_loop_thread_main(void *data)
{
	struct vp_loop_thread *t = data;
	struct vp_loop *l = t->loop;
	struct vp_journal_slot *slot = &l->journal->slots[t->slot];
	bool in_place = true;

	/*
	 * Not fuse_session_exited(): libfuse drops a request it read once the session
	 * is marked exited, and its reader then waits for an answer forever (a sent
	 * request cannot be interrupted). Our own flag stops us between requests.
	 */
	while (!atomic_load(&l->stopping) && !fuse_session_exited(l->se)) {
		void *mem;
		int r;

		if (in_place) {
			r = vp_loop_read_slot(l, slot);
			if (r == -EINVAL) {
				log_notice(
					"the connection's reads are larger than a journal slot: "
					"journaling by copy (restart the mount to read in place)");
				in_place = false;
				continue;
			}
			mem = slot->data;
		} else {
			/* A kill between this read and the copy loses the request. */
			r = fuse_session_receive_buf(l->se, &t->buf);
			if (r > 0 && vp_loop_replayable(t->buf.mem, (size_t)r))
				memcpy(slot->data, t->buf.mem, (size_t)r); /* header.len = r: set */
			mem = t->buf.mem;
		}
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r <= 0)
			break; /* 0: exited (ENODEV = unmounted); < 0: error */
		fuse_session_process_buf(l->se, &(struct fuse_buf){.mem = mem, .size = (size_t)r});
		atomic_store_explicit(vp_slot_mark(slot), 0, memory_order_release);
	}
	if (l->exit_efd >= 0) {
		uint64_t one = 1;

		(void)!write(l->exit_efd, &one, sizeof(one));
	}
	return NULL;
}

/* Answer what a dead worker left in its journal. */
static void vp_loop_replay(struct fuse_session *se, int memfd)
{
	struct vp_journal *j = mmap(NULL, sizeof(*j), PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	unsigned n = 0;

	if (j == MAP_FAILED) {
		log_warning_errno(-errno, "could not map a journal to replay");
		return;
	}
	if (j->magic == VP_JOURNAL_MAGIC) {
		for (unsigned i = 0; i < VP_JOURNAL_SLOTS && i < j->nslots; i++) {
			uint32_t len = atomic_load_explicit(vp_slot_mark(&j->slots[i]),
							    memory_order_acquire);
			g_autofree char *copy = NULL;

			if (len == 0 || !vp_loop_replayable((const void *)j->slots[i].data, len)) {
				atomic_store_explicit(vp_slot_mark(&j->slots[i]), 0,
						      memory_order_release);
				continue;
			}
			copy = g_memdup2(j->slots[i].data, len);
			atomic_store_explicit(vp_slot_mark(&j->slots[i]), 0, memory_order_release);
			fuse_session_process_buf(se, &(struct fuse_buf){.mem = copy, .size = len});
			n++;
		}
	}
	munmap(j, sizeof(*j));
	if (n)
		log_notice("replayed %u request(s) a previous worker left unanswered", n);
}

static int vp_loop_journal_new(struct vp_journal **ret_map, int *ret_fd)
{
	_cleanup_close_ int fd = memfd_create("veneer-procfs-journal", MFD_CLOEXEC);
	struct vp_journal *j;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, sizeof(*j)) < 0)
		return -errno;
	j = mmap(NULL, sizeof(*j), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (j == MAP_FAILED)
		return -errno;
	j->magic = VP_JOURNAL_MAGIC;
	j->nslots = VP_JOURNAL_SLOTS;
	*ret_map = j;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Handle one holder message; returns false when we should stop. */
static bool vp_loop_ctl_event(struct vp_loop *l, struct vp_attach *a)
{
	char buf[VP_MSG_MAX_PAYLOAD];
	int fds[VP_MSG_MAX_FDS];
	enum vp_msg_type type;
	unsigned nfds;
	size_t len;
	int r = vp_ctl_recv(a->ctl, &type, buf, &len, fds, &nfds);

	if (r <= 0) {
		guint before = a->orphans ? a->orphans->len : 0;

		/*
		 * The holder leaves when the last mount is gone: then the connection is
		 * already dead and this worker stops too, quietly.
		 */
		if (!vp_fuse_conn_alive(fuse_session_fd(l->se))) {
			log_debug("the holder left with the connection: stopping");
			return false;
		}
		log_warning("the holder is gone: starting a new one");
		r = vp_holder_replace(l->opts, fuse_session_fd(l->se), a);
		if (r < 0) {
			log_error_errno(r,
					"could not replace the holder: this worker keeps serving, "
					"but a restart can no longer take over the mount");
			if (a->ctl >= 0)
				close(a->ctl);
			a->ctl = -1;
			return true;
		}
		for (guint i = before; i < a->orphans->len; i++)
			vp_loop_replay(l->se, g_array_index(a->orphans, int, i));
		r = vp_holder_send_journal(a->ctl, l->journal_fd);
		if (r < 0)
			log_warning_errno(r, "could not hand our journal to the new holder");
		return true;
	}
	if (type == VP_MSG_REPLAY)
		for (unsigned i = 0; i < nfds; i++)
			vp_loop_replay(l->se, fds[i]);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (type == VP_MSG_RETIRE) {
		log_info("a newer worker took over: retiring");
		return false;
	}
	return true;
}

int vp_loop_run(struct fuse_session *se, struct vp_attach *a, struct vp_opts *opts)
{
	struct vp_loop l = {.se = se, .opts = opts, .exit_efd = -1};
	_cleanup_close_ int sfd = -1, jfd = -1;
	sigset_t mask;
	unsigned started = 0;
	int r = 0;

	/* Before any thread: the comm is per thread and inherited. */
	{
		g_autofree char *title =
			g_strdup_printf("veneer-procfs: worker %s", opts->mountpoint);

		(void)vc_proc_set_title(title, "veneer-procfs");
	}
	l.nthreads = opts->cl.singlethread ? 1 : CLAMP(opts->threads, 1, VP_JOURNAL_SLOTS);
	r = vp_loop_journal_new(&l.journal, &jfd);
	if (r < 0)
		return log_error_errno(r, "could not create the request journal");
	l.journal_fd = jfd;
	l.exit_efd = eventfd(0, EFD_CLOEXEC);
	if (l.exit_efd < 0) {
		r = log_error_errno(-errno, "could not create an eventfd");
		goto out_journal;
	}
	/* Signals go to the main thread's signalfd; request threads inherit the block. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	{
		struct sigaction sa = {.sa_handler = vp_loop_wake}; /* no SA_RESTART */

		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL);
	}
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		r = log_error_errno(-errno, "could not create a signalfd");
		goto out_efd;
	}
	/* What earlier workers left unanswered, before taking new requests. */
	for (guint i = 0; a->orphans && i < a->orphans->len; i++)
		vp_loop_replay(se, g_array_index(a->orphans, int, i));
	l.threads = g_new0(struct vp_loop_thread, l.nthreads);
	for (unsigned i = 0; i < l.nthreads; i++) {
		l.threads[i].loop = &l;
		l.threads[i].slot = i;
		r = -pthread_create(&l.threads[i].tid, NULL, vp_loop_thread_main, &l.threads[i]);
		if (r < 0) {
			log_error_errno(r, "could not start request thread %u", i);
			goto out_threads;
		}
		started++;
	}
	/*
	 * Under systemd: ready, and the service's main process, before the holder
	 * hears of us and retires the older worker (the main process until now; its
	 * exit must not look like the service's end on a reload).
	 */
	vc_notify_ready("worker %d serves '%s'", (int)getpid(), opts->mountpoint);
	/* Serving: the holder may now retire older workers and keeps our journal. */
	if (a->ctl >= 0) {
		r = vp_holder_send_journal(a->ctl, jfd);
		if (r < 0)
			log_warning_errno(r, "could not hand our journal to the holder");
	}
	/* Ready only now: requests are served and the holder knows us. */
	if (opts->cl.ready_fd >= 0) {
		if (write(opts->cl.ready_fd, "READY\n", 6) != 6)
			log_warning_errno(-errno, "could not signal readiness on fd %d",
					  opts->cl.ready_fd);
		close(opts->cl.ready_fd);
		opts->cl.ready_fd = -1;
	}
	for (;;) {
		struct pollfd p[3] = {
			{.fd = sfd, .events = POLLIN},
			{.fd = l.exit_efd, .events = POLLIN},
			{.fd = a->ctl, .events = POLLIN},
		};

		if (poll(p, a->ctl >= 0 ? 3 : 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (p[0].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				log_info("signal %u: the worker exits, the mount stays with its "
					 "holder",
					 si.ssi_signo);
			break;
		}
		if (p[1].revents)
			break; /* the connection ended */
		if (a->ctl >= 0 && p[2].revents && !vp_loop_ctl_event(&l, a))
			break;
	}
	r = 0;
out_threads:
	/*
	 * Stop the threads without pthread_cancel: a signal with a no-op handler
	 * (no SA_RESTART) makes a blocked read() fail with EINTR, and the thread sees
	 * the stopping flag. Re-sent until joined, in case it arrived just before
	 * the read. A thread busy with a request (or whose read just returned one)
	 * answers it first; the session is marked exited only after the joins.
	 */
	atomic_store(&l.stopping, true);
	for (unsigned i = 0; i < started; i++) {
		struct timespec ts;

		for (;;) {
			pthread_kill(l.threads[i].tid, SIGUSR1);
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			if (pthread_timedjoin_np(l.threads[i].tid, NULL, &ts) == 0)
				break;
		}
		free(l.threads[i].buf.mem);
	}
	fuse_session_exit(se);
	g_free(l.threads);
out_efd:
	close(l.exit_efd);
out_journal:
	munmap(l.journal, sizeof(*l.journal));
	return r;
}
