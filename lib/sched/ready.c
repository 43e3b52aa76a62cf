/* SPDX-License-Identifier: MIT */
/*
 * The io_uring half of the shared readiness mechanism (sched/ready_int.h):
 * the probe and the two SQEs liburing 2.3 has no helpers for.
 */
#include "config.h"

#include <errno.h>
#include <sys/wait.h>
#include <poll.h>

#include "sched/ready_int.h"

#define FUTEX2_SIZE_U32_ 0x02u /* FUTEX2_SIZE_U32; no FUTEX2_PRIVATE: shared memory */
#define FUTEX_BITSET_MATCH_ANY_ 0xffffffffu
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

void shmq__ready_probe(struct io_uring *ring, struct shmq__ready_caps *caps)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(ring);

	caps->has_futex = false;
	caps->has_waitid = false;
	if (!p)
		return;
	caps->has_futex = io_uring_opcode_supported(p, SHMQ__OP_FUTEX_WAIT);
	caps->has_waitid = io_uring_opcode_supported(p, SHMQ__OP_WAITID);
	io_uring_free_probe(p);
}

int shmq__ready_ring_try(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int rc;

	if (!sqe)
		return -EAGAIN; /* a new ring has room */
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 0);
	do
		rc = io_uring_submit_and_wait(ring, 1);
	while (rc == -EINTR);
	if (rc < 0)
		return rc;
	if (io_uring_peek_cqe(ring, &cqe) == 0)
		io_uring_cqe_seen(ring, cqe); /* its owner never sees it */
	return 0;
}

void shmq__ready_prep_word(struct io_uring_sqe *sqe, const uint32_t *word, uint32_t expected)
{
	/* IORING_OP_FUTEX_WAIT: fd = futex2 flags, addr = word, addr2 = the
	 * expected value, addr3 = the wake bitset. */
	io_uring_prep_rw(SHMQ__OP_FUTEX_WAIT, sqe, (int)FUTEX2_SIZE_U32_, word, 0, expected);
	sqe->addr3 = FUTEX_BITSET_MATCH_ANY_;
}

void shmq__ready_prep_exit(struct io_uring_sqe *sqe, int pidfd, siginfo_t *info, bool waitid)
{
	if (waitid) {
		/* waitid(P_PIDFD, pidfd, info, WEXITED | WNOWAIT): does not reap */
		io_uring_prep_rw(SHMQ__OP_WAITID, sqe, pidfd, NULL, P_PIDFD, 0);
		sqe->file_index = WEXITED | WNOWAIT;
		sqe->addr2 = (uint64_t)(uintptr_t)info;
	} else {
		io_uring_prep_poll_add(sqe, pidfd, POLLIN);
	}
}
