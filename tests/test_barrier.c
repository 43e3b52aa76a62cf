/* SPDX-License-Identifier: MIT */
/* Barriers: generations across processes with distinct indices, timeout,
 * abort, reset, a party killed mid-wait, threads, placement, corruption. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "testutil.h"

#include "core/atomic_int.h"
#include "sync/lock_int.h"
#include "core/region_int.h"

#define SMALL ((size_t)1 << 20)
#define MS    ((int64_t)1000000)

static int setup(void **state)
{
	return tu_region_setup(state, "barrier", SMALL);
}

/* In a forked child: our own attachment and barrier handle. */
static shmq_barrier *child_barrier(const char *name, shmq_region **r)
{
	shmq_barrier *b;

	*r = tu_child_region(name);
	if (shmq_barrier_open(*r, "b", &b))
		_exit(91);
	return b;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

static void test_create_args(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b, *b2;
	void *mem;

	assert_int_equal(shmq_barrier_create(f->r, "b", 0, &b), -EINVAL);
	assert_int_equal(shmq_barrier_create(f->r, "b", 65536, &b), -EINVAL);
	assert_int_equal(shmq_barrier_create(f->r, "b", 3, &b), 0);
	assert_int_equal(shmq_barrier_create(f->r, "b", 3, &b2), -EEXIST);
	assert_int_equal(shmq_barrier_open(f->r, "b", &b2), 0);
	assert_int_equal(shmq_barrier_parties(b2), 3);
	assert_int_equal(shmq_barrier_n_waiting(b2), 0);
	assert_false(shmq_barrier_broken(b2));
	shmq_barrier_close(b2);
	assert_int_equal(shmq_barrier_open(f->r, "nope", &b2), -ENOENT);
	assert_int_equal(shmq__obj_create(f->r, "blob", SHMQ__OBJ_BLOB, 64, NULL, NULL, &mem), 0);
	assert_int_equal(shmq_barrier_open(f->r, "blob", &b2), -EINVAL);
	shmq_barrier_close(b);
	shmq_barrier_close(NULL);
}

/* ---- generations across processes -------------------------------------- */

#define PARTIES 5
#define GENS    1000

struct gen_log {
	uint32_t arrived[GENS];          /* parties that arrived in each generation */
	uint8_t idx[GENS][PARTIES];      /* each party's index per generation */
};

static int gen_party(shmq_barrier *b, struct gen_log *log, int party)
{
	for (int g = 0; g < GENS; g++) {
		int rc;

		shmq__fetch_add_seq_cst(&log->arrived[g], 1);
		rc = shmq_barrier_wait(b, 20000 * MS);
		if (rc < 0 || rc >= PARTIES)
			return 1;
		/* every party arrived before anyone passed */
		if (shmq__load_seq_cst(&log->arrived[g]) != PARTIES)
			return 2;
		log->idx[g][party] = (uint8_t)rc;
	}
	return 0;
}

static void test_generations_processes(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;
	struct gen_log *log;
	pid_t pids[PARTIES - 1];

	assert_int_equal(shmq_barrier_create(f->r, "b", PARTIES, &b), 0);
	assert_int_equal(shmq__obj_create(f->r, "log", SHMQ__OBJ_BLOB, sizeof(*log), NULL, NULL,
					  (void **)&log), 0);
	for (int p = 1; p < PARTIES; p++) {
		pids[p - 1] = fork();
		assert_true(pids[p - 1] >= 0);
		if (pids[p - 1] == 0) {
			shmq_region *r;
			shmq_barrier *cb = child_barrier(f->name, &r);
			struct gen_log *cl;

			if (shmq__obj_find(r, "log", SHMQ__OBJ_BLOB, (void **)&cl, NULL))
				_exit(92);
			_exit(gen_party(cb, cl, p));
		}
	}
	assert_int_equal(gen_party(b, log, 0), 0);
	for (int p = 1; p < PARTIES; p++)
		assert_int_equal(tu_wait_child(pids[p - 1]), 0);
	for (int g = 0; g < GENS; g++) {
		unsigned seen = 0;

		for (int p = 0; p < PARTIES; p++)
			seen |= 1u << log->idx[g][p];
		assert_int_equal(seen, (1u << PARTIES) - 1); /* a permutation of 0..4 */
	}
	shmq_barrier_close(b);
}

/* ---- threads (TSan checks the barrier's happens-before) ----------------- */

#define TPARTIES 4
#define TGENS    2000

struct tshared {
	shmq_barrier *b;
	uint64_t slots[TPARTIES]; /* plain: written before a wait, read after it */
	int rc[TPARTIES];
};

struct targ {
	struct tshared *sh;
	int me;
};

static void *tparty(void *p)
{
	struct targ *a = p;
	struct tshared *sh = a->sh;

	for (uint64_t g = 1; g <= TGENS; g++) {
		sh->slots[a->me] = g;
		if (shmq_barrier_wait(sh->b, 20000 * MS) < 0) {
			sh->rc[a->me] = 1;
			return NULL;
		}
		for (int i = 0; i < TPARTIES; i++)
			if (sh->slots[i] != g) {
				sh->rc[a->me] = 2;
				return NULL;
			}
		/* nobody writes the next generation's value before all read */
		if (shmq_barrier_wait(sh->b, 20000 * MS) < 0) {
			sh->rc[a->me] = 3;
			return NULL;
		}
	}
	return NULL;
}

static void test_generations_threads(void **state)
{
	struct tu_region *f = *state;
	struct tshared sh = { 0 };
	struct targ a[TPARTIES];
	pthread_t th[TPARTIES];

	assert_int_equal(shmq_barrier_create(f->r, "b", TPARTIES, &sh.b), 0);
	for (int i = 0; i < TPARTIES; i++) {
		a[i] = (struct targ){ .sh = &sh, .me = i };
		assert_int_equal(pthread_create(&th[i], NULL, tparty, &a[i]), 0);
	}
	for (int i = 0; i < TPARTIES; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(sh.rc[i], 0);
	}
	shmq_barrier_close(sh.b);
}

/* ---- timeout, abort, reset ---------------------------------------------- */

static void test_timeout_breaks(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;
	int64_t t0, el;
	pid_t pid;

	assert_int_equal(shmq_barrier_create(f->r, "b", 3, &b), 0);
	/* NOWAIT that would block: no arrival, nothing broken */
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_barrier_n_waiting(b), 0);
	assert_false(shmq_barrier_broken(b));
	/* a child waits without limit; our timeout breaks the barrier and the
	 * child gets -EPIPE long before any timeout of its own */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		_exit(shmq_barrier_wait(cb, 5000 * MS) == -EPIPE ? 0 : 1);
	}
	while (shmq_barrier_n_waiting(b) != 1)
		sleep_ms(1);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_barrier_wait(b, 30 * MS), -ETIMEDOUT);
	el = shmq_now_ns() - t0;
	assert_true(el >= 30 * MS); /* never early */
	assert_int_equal(tu_wait_child(pid), 0);
	assert_true(shmq_barrier_broken(b));
	/* later waits: -EPIPE at once, whatever the timeout */
	assert_int_equal(shmq_barrier_wait(b, SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), -EPIPE);
	assert_int_equal(shmq_barrier_n_waiting(b), 0);
	/* reset: usable again */
	assert_int_equal(shmq_barrier_reset(b), 0);
	assert_false(shmq_barrier_broken(b));
	{
		pid_t kids[2];
		int idx, seen;

		for (int i = 0; i < 2; i++) {
			kids[i] = fork();
			assert_true(kids[i] >= 0);
			if (kids[i] == 0) {
				shmq_region *r;
				shmq_barrier *cb = child_barrier(f->name, &r);

				_exit(10 + shmq_barrier_wait(cb, 10000 * MS));
			}
		}
		idx = shmq_barrier_wait(b, 10000 * MS);
		assert_true(idx >= 0 && idx < 3);
		seen = 1 << idx;
		for (int i = 0; i < 2; i++) {
			int c = tu_wait_child(kids[i]) - 10;

			assert_true(c >= 0 && c < 3);
			seen |= 1 << c;
		}
		assert_int_equal(seen, 7);
	}
	assert_false(shmq_barrier_broken(b));
	shmq_barrier_close(b);
}

/* Timeouts of several lengths are honoured: never early, at most 10% + 2 ms
 * late beyond the OS's own lateness (retried: the machine may be busy). */
static void test_timeout_accuracy(void **state)
{
	static const int64_t ts[] = { 1 * MS, 5 * MS, 20 * MS };
	struct tu_region *f = *state;
	shmq_barrier *b;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	for (unsigned i = 0; i < SHMQ__ARRAY_SIZE(ts); i++) {
		bool ok = false;

		for (int attempt = 0; attempt < 5 && !ok; attempt++) {
			int64_t t0 = shmq_now_ns(), el, slack = ts[i] + ts[i] / 10 + 2 * MS;

			assert_int_equal(shmq_barrier_wait(b, ts[i]), -ETIMEDOUT);
			el = shmq_now_ns() - t0;
			assert_true(el >= ts[i]); /* never early */
			ok = el <= slack || el <= slack + tu_os_lateness(ts[i]);
			assert_int_equal(shmq_barrier_reset(b), 0);
		}
		assert_true(ok);
	}
	shmq_barrier_close(b);
}

static void test_abort(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;
	pid_t pid;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		_exit(shmq_barrier_wait(cb, 5000 * MS) == -EPIPE ? 0 : 1);
	}
	while (shmq_barrier_n_waiting(b) != 1)
		sleep_ms(1);
	assert_int_equal(shmq_barrier_abort(b), 0);
	assert_int_equal(tu_wait_child(pid), 0);
	assert_true(shmq_barrier_broken(b));
	assert_int_equal(shmq_barrier_wait(b, SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_barrier_reset(b), 0);
	/* after the reset, two parties pass with indices 0 and 1 */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		_exit(10 + shmq_barrier_wait(cb, 10000 * MS));
	}
	{
		int rc = shmq_barrier_wait(b, 10000 * MS);
		int crc = tu_wait_child(pid) - 10;

		assert_true(rc >= 0 && crc >= 0);
		assert_int_equal(rc + crc, 1);
	}
	shmq_barrier_close(b);
}

/* reset while a party waits: that party gets -EPIPE, then the barrier works. */
static void test_reset_while_waiting(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;
	pid_t pid;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		if (shmq_barrier_wait(cb, 5000 * MS) != -EPIPE)
			_exit(1);
		/* then meet the parent in the next generation */
		_exit(shmq_barrier_wait(cb, 10000 * MS) >= 0 ? 0 : 2);
	}
	while (shmq_barrier_n_waiting(b) != 1)
		sleep_ms(1);
	assert_int_equal(shmq_barrier_reset(b), 0);
	assert_false(shmq_barrier_broken(b));
	assert_true(shmq_barrier_wait(b, 10000 * MS) >= 0);
	assert_int_equal(tu_wait_child(pid), 0);
	shmq_barrier_close(b);
}

/* A party killed while it waits: its arrival still counts for the current
 * generation; in the next one the survivors are held only until their own
 * timeout, which breaks the barrier for all of them. */
static void test_party_killed(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;
	pid_t victim, other;
	int64_t t0, el;
	int rc;

	assert_int_equal(shmq_barrier_create(f->r, "b", 3, &b), 0);
	victim = fork();
	assert_true(victim >= 0);
	if (victim == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		shmq_barrier_wait(cb, SHMQ_FOREVER);
		pause(); /* never arrives again */
		_exit(0);
	}
	while (shmq_barrier_n_waiting(b) != 1)
		sleep_ms(1);
	kill(victim, SIGKILL);
	assert_int_equal(tu_wait_child(victim), 128 + SIGKILL);
	other = fork();
	assert_true(other >= 0);
	if (other == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);
		int64_t s0;

		if (shmq_barrier_wait(cb, 10000 * MS) < 0) /* completes with the dead one */
			_exit(1);
		s0 = shmq_now_ns();
		rc = shmq_barrier_wait(cb, 200 * MS);
		if (shmq_now_ns() - s0 > 2000 * MS)
			_exit(2);
		_exit(rc == -EPIPE ? 10 : rc == -ETIMEDOUT ? 11 : 3);
	}
	assert_true(shmq_barrier_wait(b, 10000 * MS) >= 0);
	t0 = shmq_now_ns();
	rc = shmq_barrier_wait(b, 100 * MS);
	el = shmq_now_ns() - t0;
	assert_true(rc == -ETIMEDOUT || rc == -EPIPE);
	assert_true(el <= 2000 * MS);
	{
		int crc = tu_wait_child(other);

		assert_true(crc == 10 || crc == 11);
		/* at least one of us timed out; a waiter that saw the break first got -EPIPE */
		assert_true(rc == -ETIMEDOUT || crc == 11);
	}
	assert_true(shmq_barrier_broken(b));
	shmq_barrier_close(b);
}

static void test_one_party_and_nowait(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;

	assert_int_equal(shmq_barrier_create(f->r, "b", 1, &b), 0);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), 0);
		assert_int_equal(shmq_barrier_wait(b, SHMQ_FOREVER), 0);
	}
	shmq_barrier_close(b);
}

/* ---- placement, corruption ------------------------------------------------ */

static void test_placement_and_corruption(void **state)
{
	struct tu_region *f = *state;
	uint8_t *mem;
	struct shmq__barrier_shm *s;
	shmq_barrier *b;
	size_t fp = shmq_barrier_footprint();

	assert_true(fp % 64 == 0);
	assert_int_equal(shmq__obj_create(f->r, "placed", SHMQ__OBJ_BLOB, fp, NULL, NULL,
					  (void **)&mem), 0);
	assert_int_equal(shmq_barrier_attach(mem, &b), -EBADMSG);
	assert_int_equal(shmq_barrier_init(mem, 0), -EINVAL);
	assert_int_equal(shmq_barrier_init(mem + 2, 2), -EINVAL);
	assert_int_equal(shmq_barrier_init(mem, 1), 0);
	assert_int_equal(shmq_barrier_attach(mem, &b), 0);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), 0);
	s = (struct shmq__barrier_shm *)mem;
	/* a count at or above parties */
	s->word = 7;
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), -EBADMSG);
	assert_int_equal(shmq_barrier_reset(b), 0);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), 0);
	shmq_barrier_close(b);
	/* parties out of range, wrong magic */
	s->parties = 0;
	assert_int_equal(shmq_barrier_attach(mem, &b), -EBADMSG);
	s->parties = 70000;
	assert_int_equal(shmq_barrier_attach(mem, &b), -EBADMSG);
	s->parties = 2;
	s->magic ^= 1;
	assert_int_equal(shmq_barrier_attach(mem, &b), -EBADMSG);
}

int main(void)
{
	alarm(240); /* a hang fails the program instead of stalling the suite */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_args, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_generations_processes, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_generations_threads, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_timeout_breaks, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_timeout_accuracy, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_reset_while_waiting, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_party_killed, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_one_party_and_nowait, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_placement_and_corruption, setup, tu_region_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
