/* SPDX-License-Identifier: MIT */
/* Issue 16: joinable queues (SHMQ_QUEUE_JOINABLE, shmq_queue_task_done,
 * shmq_queue_join): every errno, two-phase gets, joiners in several
 * processes, and takers SIGKILLed before their task_done (-EOWNERDEAD). */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "testutil.h"

#include <shmq/introspect.h>

#include "core/introspect_int.h"
#include "core/objkind_int.h"
#include "core/region_int.h"

#define SEC ((int64_t)1000 * 1000 * 1000)
#define MS ((int64_t)1000 * 1000)

static const struct shmq_queue_opts JOPTS = { .capacity = 8, .max_msg = 16,
					      .flags = SHMQ_QUEUE_JOINABLE };

static int setup(void **state)
{
	return tu_region_setup(state, "joinable", (size_t)8 << 20);
}

static void put_n(shmq_queue *q, int n)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(shmq_queue_put(q, "task", 4, SHMQ_NOWAIT), 0);
}

static void get_n(shmq_queue *q, int n)
{
	char buf[16];

	for (int i = 0; i < n; i++)
		assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 4);
}

static void done_n(shmq_queue *q, int n)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(shmq_queue_task_done(q), 0);
}

static void test_errors(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q;

	assert_int_equal(shmq_queue_task_done(NULL), -EINVAL);
	assert_int_equal(shmq_queue_join(NULL, SHMQ_NOWAIT), -EINVAL);
	/* unknown flags, and PID_OWNERS's bit in the opts */
	assert_int_equal(shmq_queue_create(f->r, "j.bad", &(struct shmq_queue_opts){ 4, 8, 0x100 }, &q),
			 -EINVAL);
	assert_int_equal(shmq_queue_create(f->r, "j.bad", &(struct shmq_queue_opts){ 4, 8, SHMQ_QUEUE_PID_OWNERS },
					   &q), -EINVAL);
	assert_int_equal(shmq_queue_footprint(&(struct shmq_queue_opts){ 4, 8, 0x100 }), 0);
	assert_true(shmq_queue_footprint(&JOPTS) >
		    shmq_queue_footprint(&(struct shmq_queue_opts){ 8, 16, 0 }));
	/* not joinable */
	assert_int_equal(shmq_queue_create(f->r, "j.plain", &(struct shmq_queue_opts){ 4, 8, 0 }, &q), 0);
	put_n(q, 1);
	get_n(q, 1);
	assert_int_equal(shmq_queue_task_done(q), -EINVAL);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EINVAL);
	shmq_queue_close(q);
}

static void test_basic(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q, *q2;

	assert_int_equal(shmq_queue_create(f->r, "j.basic", &JOPTS, &q), 0);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), 0); /* nothing put */
	assert_int_equal(shmq_queue_task_done(q), -EINVAL);    /* nothing taken */
	put_n(q, 3);
	assert_int_equal(shmq_queue_task_done(q), -EINVAL); /* put, not taken */
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EAGAIN);
	get_n(q, 3);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EAGAIN);
	done_n(q, 2);
	assert_int_equal(shmq_queue_join(q, 20 * MS), -ETIMEDOUT);
	/* a second handle (another opener) sees the same counts */
	assert_int_equal(shmq_queue_open(f->r, "j.basic", &q2), 0);
	assert_int_equal(shmq_queue_task_done(q2), 0);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_join(q2, SEC), 0);
	assert_int_equal(shmq_queue_task_done(q), -EINVAL); /* one more than taken */
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), 0);
	shmq_queue_close(q2);
	shmq_queue_close(q);
}

/* Two-phase gets count once committed; begun or given back keeps join waiting. */
static void test_two_phase(void **state)
{
	struct tu_region *f = *state;
	const void *msg;
	uint64_t pos;
	shmq_queue *q;

	assert_int_equal(shmq_queue_create(f->r, "j.2pc", &JOPTS, &q), 0);
	put_n(q, 1);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), 4);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_queue_task_done(q), -EINVAL); /* begun is not taken */
	assert_int_equal(shmq_queue_get_abort(q, pos), 0);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EAGAIN); /* given back */
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), 4);
	assert_int_equal(shmq_queue_get_commit(q, pos), 0);
	assert_int_equal(shmq_queue_get_commit(q, pos), -EINVAL); /* counts nothing */
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EAGAIN);
	done_n(q, 1);
	assert_int_equal(shmq_queue_task_done(q), -EINVAL);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), 0);
	shmq_queue_close(q);
}

/* Messages longer than max_msg (through the region's heap) count like small
 * ones, whichever way they are taken: get, get_alloc, get_begin + commit. */
static void test_large(void **state)
{
	struct tu_region *f = *state;
	char big[1000], buf[1000];
	const void *msg;
	void *m = NULL;
	uint64_t pos;
	shmq_queue *q;

	memset(big, 'L', sizeof(big));
	assert_int_equal(shmq_queue_create(f->r, "j.large", &JOPTS, &q), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(shmq_queue_put(q, big, sizeof(big), SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), (ssize_t)sizeof(big));
	assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), (ssize_t)sizeof(big));
	free(m);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), (ssize_t)sizeof(big));
	assert_int_equal(shmq_queue_get_commit(q, pos), 0);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EAGAIN);
	done_n(q, 3);
	assert_int_equal(shmq_queue_task_done(q), -EINVAL); /* one more than taken */
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), 0);
	shmq_queue_close(q);
}

/* A blocked joiner wakes on the last task_done of another process. */
static void test_join_wakes(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q;
	pid_t pid;

	assert_int_equal(shmq_queue_create(f->r, "j.wake", &JOPTS, &q), 0);
	put_n(q, 4);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r = tu_child_region(f->name);
		shmq_queue *cq;
		char buf[16];

		if (shmq_queue_open(r, "j.wake", &cq))
			_exit(91);
		for (int i = 0; i < 4; i++) {
			if (shmq_queue_get(cq, buf, sizeof(buf), 5 * SEC) != 4)
				_exit(92);
			tu_sleep_ns(5 * MS);
			if (shmq_queue_task_done(cq))
				_exit(93);
		}
		_exit(0);
	}
	assert_int_equal(shmq_queue_join(q, 10 * SEC), 0);
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_queue_task_done(q), -EINVAL);
	shmq_queue_close(q);
}

/* A statistic of the queue name, as shmq stat shows it. */
static uint64_t queue_stat(struct tu_region *f, const char *name, const char *key)
{
	struct shmq__obj_stat st;
	const struct shmq__stat_kv *kv;
	uint64_t size;
	void *mem;

	assert_int_equal(shmq__obj_find(f->r, name, SHMQ__OBJ_QUEUE, &mem, &size), 0);
	memset(&st, 0, sizeof(st));
	assert_int_equal(shmq__obj_describe(f->r, SHMQ__OBJ_QUEUE, mem, size, &st), 0);
	assert_non_null(kv = shmq__stat_get(&st, key));
	return kv->u;
}

/* A joiner SIGKILLed in its sleep leaves its sleeper count behind; the
 * task_done calls after it make at most one futex wake between them, not
 * one each for ever ("no system call unless somebody is joining"). */
static void test_dead_joiner_costs_no_wakes(void **state)
{
	struct tu_region *f = *state;
	uint64_t wakes;
	shmq_queue *q;
	pid_t pid;

	assert_int_equal(shmq_queue_create(f->r, "j.deadjoin", &JOPTS, &q), 0);
	put_n(q, 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r = tu_child_region(f->name);
		shmq_queue *cq;

		if (shmq_queue_open(r, "j.deadjoin", &cq))
			_exit(91);
		shmq_queue_join(cq, SHMQ_FOREVER);
		_exit(92);
	}
	/* asleep: it entered a futex wait (each slice enters one more) */
	for (int i = 0; i < 2000 && queue_stat(f, "j.deadjoin", "join_waits") < 2; i++)
		tu_sleep_ns(MS);
	assert_true(queue_stat(f, "j.deadjoin", "join_waits") >= 2);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	wakes = queue_stat(f, "j.deadjoin", "join_wakes");
	get_n(q, 1);
	done_n(q, 1);
	for (int i = 0; i < 20; i++) {
		put_n(q, 1);
		get_n(q, 1);
		done_n(q, 1);
	}
	assert_true(queue_stat(f, "j.deadjoin", "join_wakes") <= wakes + 1);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), 0);
	shmq_queue_close(q);
}

/* Several processes join at once; all return 0 after the last task_done. */
static void test_join_many(void **state)
{
	struct tu_region *f = *state;
	int ready[2];
	pid_t kid[3];
	shmq_queue *q;
	char c;

	assert_int_equal(shmq_queue_create(f->r, "j.many", &JOPTS, &q), 0);
	put_n(q, 2);
	get_n(q, 2);
	assert_int_equal(pipe(ready), 0);
	for (int i = 0; i < 3; i++) {
		kid[i] = fork();
		assert_true(kid[i] >= 0);
		if (kid[i] == 0) {
			shmq_region *r = tu_child_region(f->name);
			shmq_queue *cq;
			int rc;

			if (shmq_queue_open(r, "j.many", &cq))
				_exit(91);
			if (shmq_queue_join(cq, SHMQ_NOWAIT) != -EAGAIN)
				_exit(92);
			if (write(ready[1], "r", 1) != 1)
				_exit(93);
			rc = shmq_queue_join(cq, 10 * SEC);
			_exit(rc == 0 ? 0 : 94);
		}
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(read(ready[0], &c, 1), 1);
	tu_sleep_ns(20 * MS); /* let them sleep (not needed for the result) */
	done_n(q, 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(tu_wait_child(kid[i]), 0);
	close(ready[0]);
	close(ready[1]);
	shmq_queue_close(q);
}

/* A child that takes n messages, says so on fd, and waits to be killed or
 * told (a byte on cmd) to call task_done for them. */
static pid_t taker(struct tu_region *f, const char *name, int n, int fd, int cmd)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r = tu_child_region(f->name);
		shmq_queue *cq;
		char buf[16], c;

		if (shmq_queue_open(r, name, &cq))
			_exit(91);
		for (int i = 0; i < n; i++)
			if (shmq_queue_get(cq, buf, sizeof(buf), 5 * SEC) != 4)
				_exit(92);
		if (write(fd, "t", 1) != 1)
			_exit(93);
		if (read(cmd, &c, 1) != 1)
			_exit(94);
		for (int i = 0; i < n; i++)
			if (shmq_queue_task_done(cq))
				_exit(95);
		_exit(0);
	}
	return pid;
}

/* Messages taken by a process killed before task_done: join says so. */
static void test_dead_taker(void **state)
{
	struct tu_region *f = *state;
	struct shmq__obj_stat st;
	const struct shmq__stat_kv *kv;
	int p[2], cmd[2];
	uint64_t size;
	shmq_queue *q;
	void *mem;
	char c;
	pid_t pid;

	assert_int_equal(shmq_queue_create(f->r, "j.dead", &JOPTS, &q), 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(cmd), 0);
	put_n(q, 3);
	pid = taker(f, "j.dead", 2, p[1], cmd[0]);
	assert_int_equal(read(p[0], &c, 1), 1);
	/* one still queued: waiting for it, not for the taker */
	assert_int_equal(shmq_queue_join(q, 20 * MS), -ETIMEDOUT);
	get_n(q, 1);
	done_n(q, 1);
	assert_int_equal(shmq_queue_join(q, 20 * MS), -ETIMEDOUT); /* the taker lives */
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq_queue_join(q, 2 * SEC), -EOWNERDEAD);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EOWNERDEAD);
	/* shmq stat shows the counters */
	assert_int_equal(shmq__obj_find(f->r, "j.dead", SHMQ__OBJ_QUEUE, &mem, &size), 0);
	memset(&st, 0, sizeof(st));
	assert_int_equal(shmq__obj_describe(f->r, SHMQ__OBJ_QUEUE, mem, size, &st), 0);
	assert_int_equal(st.status, 0);
	assert_non_null(kv = shmq__stat_get(&st, "joinable"));
	assert_int_equal(kv->u, 1);
	assert_non_null(kv = shmq__stat_get(&st, "join_taken"));
	assert_int_equal(kv->u, 2);
	assert_non_null(kv = shmq__stat_get(&st, "join_dead_taken"));
	assert_int_equal(kv->u, 2);
	/* anyone may finish the dead one's tasks */
	done_n(q, 2);
	assert_int_equal(shmq_queue_task_done(q), -EINVAL);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), 0);
	close(p[0]);
	close(p[1]);
	close(cmd[0]);
	close(cmd[1]);
	shmq_queue_close(q);
}

/* A joiner already asleep when the taker dies returns -EOWNERDEAD (the
 * suite's 2 s bound for "promptly"); a live taker and a dead one: join
 * waits for the live one, then reports the dead one's. */
static void test_dead_and_live(void **state)
{
	struct tu_region *f = *state;
	int p[2], cmd[2];
	shmq_queue *q;
	pid_t dead, live, killer;
	char c;

	assert_int_equal(shmq_queue_create(f->r, "j.mix", &JOPTS, &q), 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(cmd), 0);
	put_n(q, 3);
	dead = taker(f, "j.mix", 1, p[1], cmd[0]);
	assert_int_equal(read(p[0], &c, 1), 1);
	live = taker(f, "j.mix", 2, p[1], cmd[0]);
	assert_int_equal(read(p[0], &c, 1), 1);
	/* kill the first while we sleep in join: the live one keeps us waiting */
	killer = fork();
	assert_true(killer >= 0);
	if (killer == 0) {
		tu_sleep_ns(50 * MS);
		kill(dead, SIGKILL);
		_exit(0);
	}
	assert_int_equal(shmq_queue_join(q, 300 * MS), -ETIMEDOUT);
	assert_int_equal(tu_wait_child(killer), 0);
	assert_int_equal(tu_wait_child(dead), 128 + SIGKILL);
	/* the live one finishes: only the dead one's take is left */
	assert_int_equal(write(cmd[1], "go", 1), 1);
	assert_int_equal(shmq_queue_join(q, 2 * SEC), -EOWNERDEAD);
	assert_int_equal(tu_wait_child(live), 0);
	close(p[0]);
	close(p[1]);
	close(cmd[0]);
	close(cmd[1]);
	shmq_queue_close(q);
}

/* Placement: joinable needs region owners; the footprint holds the table. */
static void test_placement(void **state)
{
	struct tu_region *f = *state;
	size_t need = shmq_queue_footprint(&JOPTS);
	shmq_queue *q;
	void *mem;

	assert_true(need > 0);
	assert_int_equal(shmq_region_alloc(f->r, "j.placed", need, &mem), 0);
	assert_int_equal(shmq_queue_init(mem, need, &JOPTS, SHMQ_QUEUE_PID_OWNERS), -EINVAL);
	assert_int_equal(shmq_queue_init(mem, need - 64, &JOPTS, 0), -EINVAL);
	assert_int_equal(shmq_queue_init(mem, need, &JOPTS, 0), 0);
	assert_int_equal(shmq_queue_attach(NULL, mem, need, &q), -EINVAL);
	assert_int_equal(shmq_queue_attach(f->r, mem, need - 64, &q), -EBADMSG);
	assert_int_equal(shmq_queue_attach(f->r, mem, need, &q), 0);
	put_n(q, 1);
	get_n(q, 1);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EAGAIN);
	done_n(q, 1);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), 0);
	shmq_queue_close(q);
}

/* A corrupted table is -EBADMSG, for join and task_done. */
static void test_corrupt(void **state)
{
	struct tu_region *f = *state;
	size_t need = shmq_queue_footprint(&JOPTS);
	size_t ring = shmq_queue_footprint(&(struct shmq_queue_opts){ 8, 16, 0 });
	uint64_t *ent, saved[2];
	shmq_queue *q;
	void *mem;

	assert_int_equal(shmq_region_alloc(f->r, "j.corrupt", need, &mem), 0);
	assert_int_equal(shmq_queue_init(mem, need, &JOPTS, 0), 0);
	assert_int_equal(shmq_queue_attach(f->r, mem, need, &q), 0);
	put_n(q, 1);
	get_n(q, 1);
	/* the entries start on the table's third line */
	ent = (uint64_t *)((uint8_t *)mem + ring + 128);
	saved[0] = ent[5];
	saved[1] = ent[6];
	/* id of slot 7, generation 1, filed under slot 5 */
	ent[5] = ((uint64_t)1 << SHMQ__ID_SLOT_BITS | 7) << 32 | 1;
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EBADMSG);
	ent[5] = saved[0];
	ent[6] = 3; /* a count without an owner */
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EBADMSG);
	ent[6] = saved[1];
	done_n(q, 1);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), 0);
	shmq_queue_close(q);
}

/* ABI: a 0.1 binary's 8-byte opts are read as 8 bytes by the LIBSHMQ_1
 * versions (what lies after them is not flags); new binaries get LIBSHMQ_2. */
struct opts_v1 {
	uint32_t capacity;
	uint32_t max_msg;
};
int create_v1(shmq_region *r, const char *name, const struct opts_v1 *o, shmq_queue **out);
size_t footprint_v1(const struct opts_v1 *o);
__asm__(".symver create_v1, shmq_queue_create@LIBSHMQ_1");
__asm__(".symver footprint_v1, shmq_queue_footprint@LIBSHMQ_1");

static void test_abi_v1(void **state)
{
	struct tu_region *f = *state;
	/* an old caller's struct, followed by bytes that would read as flags */
	struct {
		struct opts_v1 o;
		uint32_t garbage;
	} old = { { 4, 8 }, 0xffffffffu };
	shmq_queue *q;

	assert_int_equal(footprint_v1(&old.o), shmq_queue_footprint(&(struct shmq_queue_opts){ 4, 8, 0 }));
	assert_int_equal(footprint_v1(NULL), shmq_queue_footprint(NULL));
	assert_int_equal(shmq_queue_footprint((const struct shmq_queue_opts *)&old), 0);
	assert_int_equal(create_v1(f->r, "j.v1", &old.o, &q), 0);
	assert_int_equal(shmq_queue_join(q, SHMQ_NOWAIT), -EINVAL); /* not joinable */
	shmq_queue_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_two_phase),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_join_wakes),
		cmocka_unit_test(test_join_many),
		cmocka_unit_test(test_dead_joiner_costs_no_wakes),
		cmocka_unit_test(test_dead_taker),
		cmocka_unit_test(test_dead_and_live),
		cmocka_unit_test(test_placement),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_abi_v1),
	};

	return cmocka_run_group_tests(tests, setup, tu_region_teardown);
}
