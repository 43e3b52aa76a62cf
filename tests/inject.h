/* SPDX-License-Identifier: MIT */
/*
 * A test helper: the kernel refusing io_uring submissions for a moment, as it
 * does when it is short of memory, switched on and off by the test.  A
 * seccomp filter with a user-notification listener (Linux >= 5.5) catches
 * the io_uring_enter calls that only submit; a thread of the injector
 * answers them.  The filter stays for the process's life: in a child only.
 * And a plain refusal of one system call (refuse_syscall).
 */
#ifndef SHMQ_TEST_INJECT_H
#define SHMQ_TEST_INJECT_H

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

#include <cmocka.h>

#include "testutil.h"

/* While on, io_uring_enter calls that only submit (no
 * IORING_ENTER_GETEVENTS: liburing's io_uring_submit, which the backends
 * call to make room when their submission queue is full) fail with EAGAIN;
 * the others go through. */
static struct {
	int fd;     /* the filter's listener */
	int on;     /* fail the submissions now */
	int failed; /* submissions failed so far */
} g_inj = { .fd = -1 };

static void *inj_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct seccomp_notif req;
		struct seccomp_notif_resp resp;

		memset(&req, 0, sizeof(req));
		if (ioctl(g_inj.fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
			if (errno == EINTR || errno == ENOENT)
				continue;
			return NULL;
		}
		memset(&resp, 0, sizeof(resp));
		resp.id = req.id;
		if (__atomic_load_n(&g_inj.on, __ATOMIC_SEQ_CST)) {
			resp.error = -EAGAIN;
			__atomic_fetch_add(&g_inj.failed, 1, __ATOMIC_SEQ_CST);
		} else {
			resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		}
		(void)ioctl(g_inj.fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	}
}

/* Install the injector on this thread, for good: in a child only.  true when
 * it is in place. */
static bool inj_install(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 0, 5),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, 0), /* to_submit 0 */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, IORING_ENTER_GETEVENTS, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	pthread_t th;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return false;
	g_inj.fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
				SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (g_inj.fd < 0)
		return false;
	/* the injector's thread inherits the filter, but never enters a ring */
	return pthread_create(&th, NULL, inj_main, NULL) == 0;
}

/* Refuse one system call with errno err in this thread (and the threads it
 * starts) from now on, as a seccomp sandbox does: for good, in a child
 * only.  true when installed. */
static bool refuse_syscall(long nr, int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (uint32_t)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/* Run check in a child with the injector; 77 (skip) where it cannot be put
 * in place. */
static void inj_run(void **state, int (*check)(void **state))
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(inj_install() ? check(state) : 77);
	st = tu_wait_child(pid);
	if (st == 77)
		skip();
	assert_int_equal(st, 0);
}

#endif
