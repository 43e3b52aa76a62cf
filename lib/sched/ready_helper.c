/* SPDX-License-Identifier: MIT */
/*
 * The readiness helper, shared by the scheduler and by waitsets: the one
 * thread libshmq starts on its own, and only where the kernel cannot wait on
 * a futex word together with file descriptors (the fallback backends, or
 * io_uring without IORING_OP_FUTEX_WAIT, i.e. Linux < 6.7).  It sleeps in
 * futex_waitv(2) on its owner's armed words plus its own control word, and
 * when a watched word changes it writes the owner's wake eventfd and waits
 * for the owner to hand it a new set (so it never spins).  Started by the
 * owner's first word that needs it, stopped when the owner goes.  It blocks
 * every signal.
 *
 * The set lives under the helper's own mutex; the owner publishes a new set
 * with shmq__ready_helper_set, which bumps `gen` and wakes it.  Where it polls
 * (no futex_waitv) the helper reads the words under that mutex too, so a set
 * replaced is never read again once shmq__ready_helper_set returns.
 */
#include "config.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/wait_int.h"
#include "sched/ready_int.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
struct futex_waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t __reserved;
};
#endif

#define HELPER_SLICE_NS 1000000 /* without futex_waitv (or refused): poll the words every 1 ms */

struct shmq__ready_helper {
	pthread_t thread;
	pthread_mutex_t mu;
	uint32_t gen;   /* futex word: bumped on every new set and on stop */
	uint32_t stop;
	uint32_t fired; /* set before writing wake_fd; taken by the loop */
	uint32_t n;
	struct futex_waitv set[SHMQ__READY_HELPER_MAX + 1]; /* [0] is gen */
	int wake_fd;
};

static long helper_waitv(struct futex_waitv *v, unsigned n)
{
	return syscall(SYS_futex_waitv, v, n, 0, NULL, CLOCK_MONOTONIC);
}

/* Kernels < 5.16 (or futex_waitv refused): check the words, nap on gen for
 * a slice.  The words are read under mu and only while gen is still the set's:
 * shmq__ready_helper_set bumps gen under mu, so once it returns no word of
 * the old set is read again, and its owner may unmap them (futex_waitv needs
 * no such care: the kernel reads the words with EFAULT, not SIGSEGV). */
static bool helper_poll_words(struct shmq__ready_helper *h, struct futex_waitv *v, unsigned n)
{
	bool changed = false;

	pthread_mutex_lock(&h->mu);
	if (shmq__load_seq_cst(&h->gen) != (uint32_t)v[0].val) {
		pthread_mutex_unlock(&h->mu);
		return false; /* a new set: the old one's words may be gone */
	}
	for (unsigned i = 1; i < n && !changed; i++)
		changed = shmq__load_seq_cst((uint32_t *)(uintptr_t)v[i].uaddr) != (uint32_t)v[i].val;
	pthread_mutex_unlock(&h->mu);
	if (!changed)
		shmq__futex_wait(&h->gen, (uint32_t)v[0].val, shmq_now_ns() + HELPER_SLICE_NS);
	return changed;
}

/* Wait on one set; true when a watched word changed. */
static bool helper_wait_set(struct shmq__ready_helper *h, struct futex_waitv *v, unsigned n,
			    bool *no_waitv)
{
	long r;

	if (*no_waitv)
		return helper_poll_words(h, v, n);
	r = helper_waitv(v, n);
	if (r == 0)
		return false; /* gen changed: a new set */
	if (r > 0)
		return true;
	if (errno == EAGAIN) /* some value differed: gen or a word */
		return shmq__load_seq_cst(&h->gen) == (uint32_t)v[0].val;
	if (errno == EFAULT)
		return true; /* a word's memory went away: let the loop re-check */
	/* ENOSYS (< 5.16), or refused (a seccomp filter's EPERM, ...): retried,
	 * it would fail at once, round after round; poll the words instead */
	if (errno != EINTR)
		*no_waitv = true;
	return false;
}

static void helper_signal(struct shmq__ready_helper *h)
{
	uint64_t one = 1;

	/* published before the eventfd write; the loop takes it after reading it */
	shmq__store_seq_cst(&h->fired, 1);
	while (write(h->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void *helper_main(void *arg)
{
	struct shmq__ready_helper *h = arg;
	struct futex_waitv v[SHMQ__READY_HELPER_MAX + 1];
	bool no_waitv = false;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	for (;;) {
		unsigned n;
		uint32_t g;

		pthread_mutex_lock(&h->mu);
		if (h->stop) {
			pthread_mutex_unlock(&h->mu);
			return NULL;
		}
		g = shmq__load_seq_cst(&h->gen);
		n = h->n + 1;
		memcpy(v, h->set, n * sizeof(v[0]));
		pthread_mutex_unlock(&h->mu);
		v[0].val = g;
		if (n == 1) {
			shmq__futex_wait(&h->gen, g, SHMQ__NO_DEADLINE);
			continue;
		}
		if (!helper_wait_set(h, v, n, &no_waitv))
			continue;
		helper_signal(h);
		/* Wait for the loop's next set (it always republishes after a fire). */
		while (shmq__load_seq_cst(&h->gen) == g)
			shmq__futex_wait(&h->gen, g, SHMQ__NO_DEADLINE);
	}
}

int shmq__ready_helper_start(int wake_fd, struct shmq__ready_helper **out)
{
	struct shmq__ready_helper *h = shmq__calloc(1, sizeof(*h));
	int rc;

	if (!h)
		return -ENOMEM;
	h->wake_fd = wake_fd;
	h->set[0].uaddr = (uint64_t)(uintptr_t)&h->gen;
	h->set[0].flags = FUTEX_32;
	if ((rc = -pthread_mutex_init(&h->mu, NULL)) < 0)
		goto fail;
	if ((rc = -pthread_create(&h->thread, NULL, helper_main, h)) < 0) {
		pthread_mutex_destroy(&h->mu);
		goto fail;
	}
	*out = h;
	return 0;
fail:
	shmq__free(h, sizeof(*h));
	return rc;
}

static void helper_bump(struct shmq__ready_helper *h)
{
	shmq__fetch_add_seq_cst(&h->gen, 1);
	shmq__futex_wake(&h->gen, 1);
}

void shmq__ready_helper_stop(struct shmq__ready_helper *h)
{
	pthread_mutex_lock(&h->mu);
	h->stop = 1;
	helper_bump(h);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	pthread_mutex_destroy(&h->mu);
	shmq__free(h, sizeof(*h));
}

int shmq__ready_helper_set(struct shmq__ready_helper *h, const struct shmq__ready_word *v,
			   unsigned n)
{
	if (n > SHMQ__READY_HELPER_MAX)
		return -ENOSPC;
	pthread_mutex_lock(&h->mu);
	for (unsigned i = 0; i < n; i++) {
		h->set[i + 1].uaddr = (uint64_t)(uintptr_t)v[i].word;
		h->set[i + 1].val = v[i].expected;
		h->set[i + 1].flags = FUTEX_32; /* shared: the word is in shared memory */
		h->set[i + 1].__reserved = 0;
	}
	h->n = n;
	helper_bump(h);
	pthread_mutex_unlock(&h->mu);
	return 0;
}

bool shmq__ready_helper_fired(struct shmq__ready_helper *h)
{
	/* pairs with helper_signal's store, read after the wake eventfd */
	return shmq__exchange_seq_cst(&h->fired, 0) != 0;
}
