/* SPDX-License-Identifier: MIT */
/*
 * The shmq-bench subcommand table: ONE line per subcommand,
 *
 *     BENCH_SUBCOMMAND(name, "one-line description")
 *
 * where bench_name(struct bench *) is defined in tools/bench_name.c (see
 * tools/bench.h).  `shmq-bench all` runs them in this order.  Each module has
 * its own slot below so that parallel additions touch different lines.
 * No include guard: included once per expansion of BENCH_SUBCOMMAND.
 */

/* core */
BENCH_SUBCOMMAND(limits, "machine limits: cache-line round trip between two cores, memcpy bandwidth")

/* module lock, barrier, thread */
BENCH_SUBCOMMAND(lock, "futex lock: uncontended acquire+release, two processes contending, beside pthread_mutex pshared")
BENCH_SUBCOMMAND(barrier, "barrier: rounds/s for two processes close together and 100 us apart, beside pthread_barrier pshared")

/* module flag, cond, sem */
BENCH_SUBCOMMAND(sync, "flag, cond, sem: uncontended ops, two-process ping-pong awake and 100 us apart, beside pthread_cond/mutex pshared and sem_t")

/* module spsc ring and pipe */
BENCH_SUBCOMMAND(pipe, "shmq_pipe between two pinned processes: msg/s at 8..4096 B, bulk, in-place GB/s, round trips, beside pipe(2), seqpacket, mq, ck_ring")

/* module mpmc ring and queue */
BENCH_SUBCOMMAND(queue, "MPMC queue: 1p1c/2p2c/4p4c processes, busy and blocking, beside ck_ring MPMC, POSIX mq, AF_UNIX seqpacket")

/* module proc and run */
BENCH_SUBCOMMAND(spawn, "spawn-to-exit latency: shmq_proc_spawn vs posix_spawn and fork+execve")
BENCH_SUBCOMMAND(run, "shmq_run: /bin/true latency, capture throughput of head -c 1G /dev/zero")

/* module sched */
BENCH_SUBCOMMAND(sched, "scheduler: enter+cancel at 10^3..10^6 pending, a watched pipe's and queue's pairs inside the watch's action beside unwatched, timer lateness beside bare io_uring and timerfd")

/* module embed (waitsets) */
BENCH_SUBCOMMAND(waitset, "waitset: wake-up round trip through a set of 1 and of 64 queues and through epoll on its fd, beside a blocking queue_get, and through a set of 1 pipe beside a blocking pipe_recv")

/* module deque and pool */
BENCH_SUBCOMMAND(pool, "work-stealing pool: trivial and uneven maps, fib through subtasks, apply_async round trip, beside serial and OpenMP")

/* module bridge (built with libnats: Makefile.am defines SHMQ_BENCH_BRIDGE) */
#ifdef SHMQ_BENCH_BRIDGE
BENCH_SUBCOMMAND(bridge, "NATS JetStream bridge: stream -> queue beside a raw pull consumer acking in batches, 64 B and 4 KiB")
#endif
