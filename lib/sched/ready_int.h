/* SPDX-License-Identifier: MIT */
/*
 * Private: the readiness mechanism the scheduler's watches and waitsets
 * (lib/embed) share.  A watched queue, pipe end or async result is a futex
 * word in shared memory (core/watch_int.h); a process is its pidfd; either
 * is waited on in one io_uring together with everything else:
 *   - a word: IORING_OP_FUTEX_WAIT (Linux >= 6.7), armed with the value the
 *     owner loaded before it checked the condition, while the owner is
 *     counted in the word's sleepers (so every publish changes the word and
 *     wakes: a publish between the load and the arm ends the wait at once);
 *   - a process: IORING_OP_WAITID with WNOWAIT on the pidfd (>= 6.7; the
 *     exit status stays for shmq_proc_join), else IORING_OP_POLL_ADD;
 * and where the kernel refuses io_uring or its futex op, the helper thread
 * (ready_helper.c) waits on the words with futex_waitv and writes the
 * owner's eventfd, which sits in the owner's epoll set with the pidfds.
 */
#ifndef SHMQ__READY_INT_H
#define SHMQ__READY_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

/* The kernel's uapi values, for headers older than Linux 6.7. */
#define SHMQ__OP_WAITID     50 /* IORING_OP_WAITID */
#define SHMQ__OP_FUTEX_WAIT 51 /* IORING_OP_FUTEX_WAIT */

struct shmq__ready_caps {
	bool has_futex;  /* IORING_OP_FUTEX_WAIT */
	bool has_waitid; /* IORING_OP_WAITID */
};

/* What the ring's kernel supports (all false when it cannot say). */
void shmq__ready_probe(struct io_uring *ring, struct shmq__ready_caps *caps);

/* One NOP through a new ring, its completion consumed: a kernel may let a
 * ring be made and refuse to enter it (a seccomp filter on io_uring_enter
 * alone), and its owner must learn that when it can still take its
 * fallback.  0, or what io_uring_enter returned. */
int shmq__ready_ring_try(struct io_uring *ring);

/* Stage a wait for *word to differ from expected (a shared word: no
 * FUTEX2_PRIVATE).  The completion says nothing about the condition: re-check. */
void shmq__ready_prep_word(struct io_uring_sqe *sqe, const uint32_t *word, uint32_t expected);

/* Stage a wait for pidfd's process to exit, without reaping it: WAITID with
 * WNOWAIT writing *info when waitid, else a POLL_ADD (a pidfd turns readable
 * at exit). */
void shmq__ready_prep_exit(struct io_uring_sqe *sqe, int pidfd, siginfo_t *info, bool waitid);

/* The helper thread: at most SHMQ__READY_HELPER_MAX words per helper. */
#define SHMQ__READY_HELPER_MAX 127 /* futex_waitv takes 128 words; one is its own */

struct shmq__ready_word {
	const uint32_t *word;
	uint32_t expected;
};

struct shmq__ready_helper;

/* Start a helper that writes wake_fd (an eventfd) when a word of its set
 * changes; it then waits for the next set.  0 or -errno. */
int shmq__ready_helper_start(int wake_fd, struct shmq__ready_helper **out);
void shmq__ready_helper_stop(struct shmq__ready_helper *h);
/* Replace the set (n <= SHMQ__READY_HELPER_MAX, else -ENOSPC and the set is
 * unchanged).  After the helper fired, the owner must publish a set again
 * (the same words with fresh values, or none) for it to wait again.  Once it
 * returns, the helper reads no word of the old set again: the owner may
 * unmap them (the wait for the helper is its read of at most
 * SHMQ__READY_HELPER_MAX words, under the helper's mutex). */
int shmq__ready_helper_set(struct shmq__ready_helper *h, const struct shmq__ready_word *v,
			   unsigned n);
/* True once if the helper saw a word change since the last call. */
bool shmq__ready_helper_fired(struct shmq__ready_helper *h);

#endif
