/* SPDX-License-Identifier: MIT */
/*
 * Hostile memory: an attacker writes random and targeted bytes into a live
 * region while victim processes use every kind of object in it; a watchdog
 * reports any crash, hang or spin of a victim, with a backtrace.
 *
 * The promise under test (README, Guarantees): nothing read from shared
 * memory is trusted, so a corrupted object makes the calls that meet it
 * return a negative errno (usually -EBADMSG), never crash, never hang past
 * the caller's timeout, never spin.  Every victim call takes a timeout of at
 * most VICTIM_TIMEOUT_NS; a victim whose heartbeat stands still for HANG_NS
 * is stuck inside the library.
 *
 * Rounds: each round the parent makes a fresh region with one object of
 * each kind (named, and placed: lock, barrier, queue (power-of-two and
 * exact capacity), pipe, blob, flag, condition (on the named lock),
 * semaphore (bounded, and with SHMQ_SEM_UNDO)), the victims (forked once) move to it (one
 * of them also runs a pool of two workers there, another a scheduler
 * watching a queue), `shmq stat` looks at it from outside, and
 * the parent, as the attacker, overwrites bytes of the live region through
 * its own mapping: mostly inside the objects' control blocks (control words
 * set to 0, ~0, impossible owner ids, indices pushed far, lengths made huge,
 * single bits flipped), sometimes anywhere in the region (header, process
 * table, directory).  Between writes it watches the victims.
 *
 * Environment: HOSTILE_SECONDS (default 5), HOSTILE_SEED (printed at start),
 * HOSTILE_HANG_S (default 3: a stall inside one call of 5 ms timeout that
 * counts as a hang, or as a spin when the victim burnt CPU meanwhile).
 * Exit 0 and "N passed, 0 failed" when no victim crashed, hung or spun.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "core/region_int.h"
#include "sync/cond_int.h"

#define VICTIMS            4
#define VICTIM_TIMEOUT_NS  ((int64_t)5 * 1000 * 1000)
#define ROUND_NS           ((int64_t)400 * 1000 * 1000)
#define NAME_LEN           96
#define MSG_MAX            64
#define LARGE_MAX          512 /* a large put: MSG_MAX + 1 .. + LARGE_MAX bytes */
#define REGION_BYTES       ((size_t)4 << 20)

/* Where a victim is: the call it is inside, for the report. */
enum op {
	OP_IDLE, OP_OPEN, OP_LOCK, OP_UNLOCK, OP_BARRIER, OP_PUT, OP_GET, OP_PUT_BULK,
	OP_GET_BULK, OP_SEND, OP_RECV, OP_PEEK, OP_PLACED, OP_CLOSE, OP_INFO, OP_POOL_CREATE,
	OP_POOL_MAP, OP_POOL_FREE, OP_SCHED, OP_GET_ALLOC, OP_GET_BEGIN, OP_FLAG_SET,
	OP_FLAG_CLEAR, OP_FLAG_WAIT, OP_COND_WAIT, OP_COND_NOTIFY, OP_SEM_ACQUIRE, OP_SEM_RELEASE,
	OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"idle", "open", "lock_acquire", "lock_release", "barrier_wait", "queue_put",
	"queue_get", "queue_put_bulk", "queue_get_bulk", "pipe_send", "pipe_recv",
	"pipe_peek", "placed objects", "close", "region_info", "pool_create", "pool_map",
	"pool_free", "sched_run (a queue watch)", "queue_get_alloc", "queue_get_begin/commit",
	"flag_set", "flag_clear", "flag_wait", "cond_wait", "cond_notify", "sem_acquire",
	"sem_release",
};

/* The test's own board, shared with the victims: never part of the region
 * under attack.  Written by one side each (the parent: round, name, stop;
 * victim i: beat[i], op[i], calls[i], errors[i]). */
struct board {
	_Atomic uint64_t round;
	_Atomic uint32_t stop;
	char name[NAME_LEN]; /* written before round is bumped (release) */
	_Atomic uint64_t beat[VICTIMS];
	_Atomic uint32_t op[VICTIMS];
	_Atomic uint64_t calls[VICTIMS];
	_Atomic uint64_t errors[VICTIMS]; /* calls that returned a negative errno */
	_Atomic uint64_t bad[VICTIMS];    /* returns outside the contract */
};

static struct board *board;

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: the attacker's choices replay from the seed */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

static int64_t env_int(const char *name, int64_t dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoll(v, NULL, 10) : dflt;
}

/* ---- victims ---- */

struct objs {
	shmq_region *r;
	shmq_lock *lock, *plock;
	shmq_barrier *barrier;
	shmq_queue *q, *q5;
	shmq_pipe *pipe;
	shmq_flag *flag;
	shmq_cond *cond;   /* used with lock */
	shmq_sem *sem[2];  /* "sem" (max SEM_MAX), "sem-undo" (SHMQ_SEM_UNDO) */
	shmq_pool *pool;   /* victim POOL_VICTIM only */
	shmq_sched *sched; /* victim SCHED_VICTIM only: a watch on "queue" */
	bool held;
};

#define POOL_VICTIM  2
#define SCHED_VICTIM 3
#define SEM_MAX      3

/* The pool's task: squares, and reads no more than its input. */
static int square(const void *in, void *out)
{
	uint32_t x;

	memcpy(&x, in, sizeof(x));
	x *= x;
	memcpy(out, &x, sizeof(x));
	return 0;
}
SHMQ_TASK(square);

/* The watch's action: drain what is there, never block. */
static void drain(void *arg)
{
	char buf[MSG_MAX];
	shmq_queue *q = arg;

	for (int k = 0; k < 64 && shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT) >= 0; k++)
		;
}

static void enter(unsigned i, enum op op)
{
	/* relaxed: a progress report, read by the watchdog as a snapshot */
	atomic_store_explicit(&board->op[i], op, memory_order_relaxed);
}

/* Say which call broke the contract, and with what, as it happens. */
static void report_bad(unsigned i, long long rc)
{
	/* relaxed: our own slot, set by enter() before the call */
	unsigned op = atomic_load_explicit(&board->op[i], memory_order_relaxed);

	printf("hostile: victim %u: %s returned %lld, outside the contract\n", i,
	       op < OP_COUNT ? op_names[op] : "?", rc);
	fflush(stdout);
}

/* Account one returned call: rc must be a length within bound or a negative
 * errno; anything else breaks the contract. */
static void account(unsigned i, long long rc, long long max_len)
{
	/* relaxed: counters for the final report, read after the victims exit */
	atomic_fetch_add_explicit(&board->calls[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&board->beat[i], 1, memory_order_relaxed);
	if (rc < 0) {
		atomic_fetch_add_explicit(&board->errors[i], 1, memory_order_relaxed);
		if (rc < -4095) {
			atomic_fetch_add_explicit(&board->bad[i], 1, memory_order_relaxed);
			report_bad(i, rc);
		}
	} else if (rc > max_len) {
		atomic_fetch_add_explicit(&board->bad[i], 1, memory_order_relaxed);
		report_bad(i, rc);
	}
	enter(i, OP_IDLE);
}

static void objs_close(unsigned i, struct objs *o)
{
	if (o->sched) {
		enter(i, OP_SCHED);
		shmq_sched_destroy(o->sched);
	}
	if (o->pool) {
		enter(i, OP_POOL_FREE);
		shmq_pool_terminate(o->pool);
		shmq_pool_free(o->pool);
	}
	enter(i, OP_CLOSE);
	if (o->held && o->lock)
		shmq_lock_release(o->lock);
	shmq_lock_close(o->lock);
	shmq_lock_close(o->plock);
	shmq_barrier_close(o->barrier);
	shmq_queue_close(o->q);
	shmq_queue_close(o->q5);
	shmq_pipe_close(o->pipe);
	shmq_flag_close(o->flag);
	shmq_cond_close(o->cond);
	shmq_sem_close(o->sem[0]);
	shmq_sem_close(o->sem[1]);
	shmq_region_close(o->r);
	memset(o, 0, sizeof(*o));
	account(i, 0, 0);
}

static void objs_open(unsigned i, struct objs *o, const char *name)
{
	void *mem;
	size_t size;

	enter(i, OP_OPEN);
	if (shmq_region_open(name, &o->r)) {
		o->r = NULL;
		account(i, -1, 0);
		return;
	}
	account(i, shmq_lock_open(o->r, "lock", &o->lock), 0);
	account(i, shmq_barrier_open(o->r, "barrier", &o->barrier), 0);
	account(i, shmq_queue_open(o->r, "queue", &o->q), 0);
	account(i, shmq_queue_open(o->r, "queue5", &o->q5), 0);
	if (i < 2)
		account(i, shmq_pipe_open(o->r, "pipe", (int)i, &o->pipe), 0);
	account(i, shmq_flag_open(o->r, "flag", &o->flag), 0);
	account(i, shmq_cond_open(o->r, "cond", &o->cond), 0);
	account(i, shmq_sem_open(o->r, "sem", &o->sem[0]), 0);
	account(i, shmq_sem_open(o->r, "sem-undo", &o->sem[1]), 0);
	enter(i, OP_PLACED);
	if (shmq_region_find(o->r, "placed-lock", &mem, &size) == 0)
		account(i, shmq_lock_attach(o->r, mem, &o->plock), 0);
	if (i == POOL_VICTIM) {
		enter(i, OP_POOL_CREATE);
		account(i, shmq_pool_create(o->r, &(struct shmq_pool_opts){ .workers = 2 }, &o->pool), 0);
	}
	if (i == SCHED_VICTIM && o->q) {
		enter(i, OP_SCHED);
		if (shmq_sched_create(NULL, &o->sched) == 0 &&
		    shmq_sched_watch_queue(o->sched, o->q, drain, o->q) != 0) {
			shmq_sched_destroy(o->sched);
			o->sched = NULL;
		}
		account(i, 0, 0);
	}
}

/* The gets that can meet a message carried through the region's heap:
 * get_alloc, and get_begin, whose message is read where it lies and then
 * committed or aborted.  Either may return up to the region's size. */
static void victim_get_large(unsigned i, shmq_queue *q, uint64_t x)
{
	int64_t t = (x & 4) ? SHMQ_NOWAIT : VICTIM_TIMEOUT_NS;
	const void *msg;
	uint64_t pos;
	long long rc;

	if (x & 16) {
		void *a = NULL;

		enter(i, OP_GET_ALLOC);
		account(i, shmq_queue_get_alloc(q, &a, t), (long long)REGION_BYTES);
		free(a);
		return;
	}
	enter(i, OP_GET_BEGIN);
	rc = shmq_queue_get_begin(q, &msg, &pos, t);
	account(i, rc, (long long)REGION_BYTES);
	if (rc < 0)
		return;
	enter(i, OP_GET_BEGIN);
	{
		const volatile uint8_t *p = msg;
		uint8_t sum = 0;

		for (long long k = 0; k < rc; k++) /* a pointer outside the region faults here */
			sum ^= p[k];
		(void)sum;
	}
	account(i, (x & 32) ? shmq_queue_get_abort(q, pos) : shmq_queue_get_commit(q, pos), 0);
}

/* A flag: set, clear or wait (0 or a negative errno, nothing else). */
static void victim_flag(unsigned i, struct objs *o, uint64_t x)
{
	switch ((x >> 8) % 3) {
	case 0:
		enter(i, OP_FLAG_SET);
		account(i, shmq_flag_set(o->flag), 0);
		break;
	case 1:
		enter(i, OP_FLAG_CLEAR);
		account(i, shmq_flag_clear(o->flag), 0);
		(void)shmq_flag_is_set(o->flag);
		break;
	default:
		enter(i, OP_FLAG_WAIT);
		account(i, shmq_flag_wait(o->flag, (x & 4) ? SHMQ_NOWAIT : VICTIM_TIMEOUT_NS), 0);
		break;
	}
}

/* A condition on the named lock: a wait (holding the lock, which it holds
 * again on return) or a notify, which wakes no more waiters than can wait. */
static void victim_cond(unsigned i, struct objs *o, uint64_t x)
{
	long long rc;

	if (x & 16) {
		enter(i, OP_COND_NOTIFY);
		rc = (x & 32) ? shmq_cond_notify_all(o->cond) : shmq_cond_notify(o->cond, 1 + (x >> 8) % 4);
		account(i, rc, (x & 32) ? SHMQ__COND_SLOTS : 1 + (long long)((x >> 8) % 4));
		return;
	}
	if (!o->lock)
		return;
	enter(i, OP_LOCK);
	rc = shmq_lock_acquire(o->lock, VICTIM_TIMEOUT_NS);
	account(i, rc, 0);
	if (rc != 0 && rc != -EOWNERDEAD)
		return;
	o->held = true;
	enter(i, OP_COND_WAIT);
	rc = shmq_cond_wait(o->cond, o->lock, (x & 4) ? SHMQ_NOWAIT : VICTIM_TIMEOUT_NS);
	account(i, rc, 0);
	enter(i, OP_UNLOCK);
	/* held again whatever the outcome, but a word under attack may say
	 * otherwise: -EPERM or -EBADMSG then, both errnos */
	account(i, shmq_lock_release(o->lock), 0);
	o->held = false;
}

/* A semaphore (x & 2: the SHMQ_SEM_UNDO one): acquire, then release what
 * was taken, or release one unit unasked (-EOVERFLOW when full). */
static void victim_sem(unsigned i, struct objs *o, uint64_t x)
{
	shmq_sem *s = o->sem[(x >> 1) & 1];
	long long rc;

	if (!s)
		return;
	if ((x >> 8) % 4 == 0) {
		enter(i, OP_SEM_RELEASE);
		account(i, shmq_sem_release(s, 1 + (unsigned)(x >> 10) % 2), 0);
		return;
	}
	enter(i, OP_SEM_ACQUIRE);
	rc = shmq_sem_acquire(s, (x & 4) ? SHMQ_NOWAIT : VICTIM_TIMEOUT_NS);
	account(i, rc, 0);
	if (rc == 0) {
		enter(i, OP_SEM_RELEASE);
		account(i, shmq_sem_release(s, 1), 0);
	}
	(void)shmq_sem_value(s);
}

static void victim_step(unsigned i, struct objs *o, uint64_t *x)
{
	char buf[MSG_MAX], big[4][MSG_MAX];
	static char large[MSG_MAX + LARGE_MAX];
	struct iovec v[4];
	size_t lens[4];
	const void *msg;
	size_t len;
	long long rc;

	*x = *x * 6364136223846793005u + 1442695040888963407u;
	if (o->pool && (*x >> 40) % 4 == 0) {
		uint32_t in[16], out[16];

		for (unsigned k = 0; k < 16; k++)
			in[k] = k;
		enter(i, OP_POOL_MAP);
		account(i, shmq_pool_map(o->pool, "square", in, sizeof(in[0]), out, sizeof(out[0]), 16,
					 200 * 1000 * 1000), 0);
		return;
	}
	if (o->sched && (*x >> 40) % 4 == 0) {
		enter(i, OP_SCHED);
		account(i, shmq_sched_run(o->sched, false) >= -1 ? 0 : -1, 0);
		return;
	}
	switch ((*x >> 33) % 13) {
	case 0:
		if (!o->lock)
			break;
		enter(i, OP_LOCK);
		rc = shmq_lock_acquire(o->lock, VICTIM_TIMEOUT_NS);
		o->held = rc == 0 || rc == -EOWNERDEAD;
		account(i, rc, 0);
		if (o->held) {
			enter(i, OP_UNLOCK);
			account(i, shmq_lock_release(o->lock), 0);
			o->held = false;
		}
		break;
	case 1:
		if (!o->plock)
			break;
		enter(i, OP_LOCK);
		rc = shmq_lock_acquire(o->plock, SHMQ_NOWAIT);
		account(i, rc, 0);
		if (rc == 0 || rc == -EOWNERDEAD) {
			enter(i, OP_UNLOCK);
			account(i, shmq_lock_release(o->plock), 0);
		}
		break;
	case 2:
		if (!o->barrier)
			break;
		enter(i, OP_BARRIER);
		rc = shmq_barrier_wait(o->barrier, VICTIM_TIMEOUT_NS);
		/* an index in [0, parties) of this handle: it opened the barrier
		 * from a region under attack, so its parties may not be the 2 of
		 * the create (a parties word rewritten before the open is a valid
		 * barrier of that many; nothing tells it from one made so) */
		account(i, rc, (long long)shmq_barrier_parties(o->barrier) - 1);
		if (rc == -EPIPE && (*x & 1))
			shmq_barrier_reset(o->barrier);
		break;
	case 3:
	case 4:
		if (!o->q)
			break;
		enter(i, OP_PUT);
		memset(large, (int)i, sizeof(large));
		/* one in eight through the region's heap */
		len = (*x & 0x70) == 0x70 ? MSG_MAX + 1 + (*x >> 8) % LARGE_MAX : (*x >> 8) % MSG_MAX;
		account(i, shmq_queue_put((*x & 2) && o->q5 ? o->q5 : o->q, large, len,
					  (*x & 4) ? SHMQ_NOWAIT : VICTIM_TIMEOUT_NS), 0);
		break;
	case 5:
		if (!o->q)
			break;
		if (*x & 8) {
			victim_get_large(i, (*x & 2) && o->q5 ? o->q5 : o->q, *x);
			break;
		}
		enter(i, OP_GET);
		account(i, shmq_queue_get((*x & 2) && o->q5 ? o->q5 : o->q, buf, sizeof(buf),
					  (*x & 4) ? SHMQ_NOWAIT : VICTIM_TIMEOUT_NS), MSG_MAX);
		break;
	case 6:
		if (!o->q)
			break;
		for (unsigned k = 0; k < 4; k++)
			v[k] = (struct iovec){ big[k], (*x >> (8 + k)) % MSG_MAX };
		enter(i, OP_PUT_BULK);
		account(i, shmq_queue_put_bulk(o->q, v, 4, VICTIM_TIMEOUT_NS), 4);
		for (unsigned k = 0; k < 4; k++)
			v[k] = (struct iovec){ big[k], MSG_MAX };
		enter(i, OP_GET_BULK);
		account(i, shmq_queue_get_bulk(o->q, v, lens, 4, VICTIM_TIMEOUT_NS), 4);
		break;
	case 7:
		if (!o->pipe)
			break;
		enter(i, OP_SEND);
		account(i, shmq_pipe_send(o->pipe, buf, (*x >> 8) % MSG_MAX,
					  (*x & 4) ? SHMQ_NOWAIT : VICTIM_TIMEOUT_NS), 0);
		break;
	case 8:
		if (!o->pipe)
			break;
		enter(i, OP_RECV);
		account(i, shmq_pipe_recv(o->pipe, buf, sizeof(buf),
					  (*x & 4) ? SHMQ_NOWAIT : VICTIM_TIMEOUT_NS), MSG_MAX);
		enter(i, OP_PEEK);
		rc = shmq_pipe_peek(o->pipe, &msg, &len, SHMQ_NOWAIT);
		account(i, rc, 0);
		if (rc == 0)
			shmq_pipe_consume(o->pipe);
		break;
	case 10:
		if (o->flag)
			victim_flag(i, o, *x);
		break;
	case 11:
		if (o->cond)
			victim_cond(i, o, *x);
		break;
	case 12:
		victim_sem(i, o, *x);
		break;
	default: {
		struct shmq_region_info info;

		if (!o->r)
			break;
		enter(i, OP_INFO);
		account(i, shmq_region_info(o->r, &info), 0);
		break;
	}
	}
}

static int victim(unsigned i)
{
	struct objs o = { 0 };
	uint64_t seen = 0, x = (uint64_t)getpid() * 0x9e3779b97f4a7c15u;
	char name[NAME_LEN];

	/* acquire: pairs with the parent's release store of round after name */
	while (!atomic_load_explicit(&board->stop, memory_order_acquire)) {
		uint64_t round = atomic_load_explicit(&board->round, memory_order_acquire);

		if (round != seen) {
			if (o.r)
				objs_close(i, &o);
			memcpy(name, board->name, sizeof(name));
			name[NAME_LEN - 1] = '\0';
			seen = round;
			objs_open(i, &o, name);
		}
		victim_step(i, &o, &x);
		/* relaxed: a heartbeat also when the step found nothing to do */
		atomic_fetch_add_explicit(&board->beat[i], 1, memory_order_relaxed);
	}
	if (o.r)
		objs_close(i, &o);
	return 0;
}

/* ---- the attacker ---- */

struct target {
	uint8_t *mem;
	size_t size;
};

struct arena {
	shmq_region *r;
	struct target t[12];
	unsigned nt;
	uint8_t *base; /* the whole mapping */
	size_t size;
	uint64_t writes;
};

static void target_add(struct arena *a, void *mem, size_t size)
{
	if (mem && size && a->nt < sizeof(a->t) / sizeof(a->t[0]))
		a->t[a->nt++] = (struct target){ mem, size };
}

static void target_named(struct arena *a, const char *name, uint32_t type)
{
	void *mem;
	uint64_t size;

	if (shmq__obj_find(a->r, name, type, &mem, &size) == 0)
		target_add(a, mem, (size_t)size);
}

static int round_setup(struct arena *a, const char *name)
{
	struct shmq_region_opts ro = { .size = REGION_BYTES };
	struct shmq_queue_opts qo = { .capacity = 8, .max_msg = MSG_MAX };
	struct shmq_queue_opts q5 = { .capacity = 5, .max_msg = MSG_MAX };
	shmq_lock *l;
	shmq_barrier *b;
	shmq_queue *q;
	shmq_pipe *pa, *pb;
	shmq_flag *f;
	shmq_cond *c;
	shmq_sem *s;
	void *mem;
	int rc;

	memset(a, 0, sizeof(*a));
	rc = shmq_region_create(name, &ro, &a->r);
	if (rc)
		return rc;
	if ((rc = shmq_lock_create(a->r, "lock", &l)) || (rc = shmq_barrier_create(a->r, "barrier", 2, &b)) ||
	    (rc = shmq_queue_create(a->r, "queue", &qo, &q)))
		return rc;
	shmq_lock_close(l);
	shmq_barrier_close(b);
	shmq_queue_close(q);
	if ((rc = shmq_queue_create(a->r, "queue5", &q5, &q)))
		return rc;
	shmq_queue_close(q);
	if ((rc = shmq_pipe_create(a->r, "pipe", &(struct shmq_pipe_opts){ .capacity = 4096 }, &pa, &pb)))
		return rc;
	shmq_pipe_close(pa); /* the victims hold the ends */
	shmq_pipe_close(pb);
	if ((rc = shmq_flag_create(a->r, "flag", &f)))
		return rc;
	shmq_flag_close(f);
	if ((rc = shmq_cond_create(a->r, "cond", &c)))
		return rc;
	shmq_cond_close(c);
	if ((rc = shmq_sem_create(a->r, "sem", 2, &(struct shmq_sem_opts){ .max = SEM_MAX }, &s)))
		return rc;
	shmq_sem_close(s);
	if ((rc = shmq_sem_create(a->r, "sem-undo", 2,
				  &(struct shmq_sem_opts){ .max = SEM_MAX, .flags = SHMQ_SEM_UNDO }, &s)))
		return rc;
	shmq_sem_close(s);
	if ((rc = shmq_region_alloc(a->r, "placed-lock", shmq_lock_footprint(), &mem)) ||
	    (rc = shmq_lock_init(mem)))
		return rc;
	target_add(a, mem, shmq_lock_footprint());
	target_named(a, "lock", SHMQ__OBJ_LOCK);
	target_named(a, "barrier", SHMQ__OBJ_BARRIER);
	target_named(a, "queue", SHMQ__OBJ_QUEUE);
	target_named(a, "queue5", SHMQ__OBJ_QUEUE);
	target_named(a, "pipe", SHMQ__OBJ_PIPE);
	target_named(a, "flag", SHMQ__OBJ_FLAG);
	target_named(a, "cond", SHMQ__OBJ_COND);
	target_named(a, "sem", SHMQ__OBJ_SEM);
	target_named(a, "sem-undo", SHMQ__OBJ_SEM);
	a->base = a->r->base;
	a->size = a->r->size;
	return 0;
}

/* One hostile write: a value chosen to break an invariant, at a place
 * chosen to be read. */
static void strike(struct arena *a)
{
	static const uint64_t nasty[] = {
		0, ~UINT64_C(0), 1, 0x7fffffff, UINT64_C(0x7fffffff) << 33 | 1, 1u << 20,
		UINT64_C(1) << 62, 0x80000000u, 5, 1024, UINT64_C(0xffffffff) << 32,
	};
	uint64_t r = rnd(), v;
	uint8_t *p;
	size_t span, off;

	if (a->nt && r % 16 != 0) { /* mostly the objects, most of it their first lines */
		const struct target *t = &a->t[(r >> 4) % a->nt];

		span = (r >> 12) % 4 ? (t->size < 256 ? t->size : 256) : t->size;
		p = t->mem;
	} else { /* sometimes anywhere: header, process table, directory, pool */
		span = (r >> 12) % 2 ? 64 * 1024 : a->size;
		p = a->base;
	}
	if (span > a->size - (size_t)(p - a->base))
		span = a->size - (size_t)(p - a->base);
	if (span < 8)
		return;
	off = (size_t)(rnd() % (span - 7)) & ~(size_t)7;
	v = rnd();
	switch (v % 4) {
	case 0: /* a value that breaks invariants */
		v = nasty[(v >> 8) % (sizeof(nasty) / sizeof(nasty[0]))];
		break;
	case 1: { /* one bit flipped */
		uint64_t cur;

		memcpy(&cur, p + off, 8);
		v = cur ^ UINT64_C(1) << ((v >> 8) % 64);
		break;
	}
	case 2: { /* an index or a count pushed far */
		uint64_t cur;

		memcpy(&cur, p + off, 8);
		v = cur + ((v >> 8) % 2 ? 1u << 16 : (uint64_t)-1);
		break;
	}
	default: /* random */
		break;
	}
	/* relaxed stores: the attack races the victims' atomics on purpose */
	if ((rnd() & 1) == 0)
		__atomic_store_n((uint64_t *)(void *)(p + off), v, __ATOMIC_RELAXED);
	else
		__atomic_store_n((uint32_t *)(void *)(p + off), (uint32_t)v, __ATOMIC_RELAXED);
	a->writes++;
}

/* ---- the watchdog ---- */

static uint64_t cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	/* after the comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return ut + st;
}

static void backtrace_of(pid_t pid)
{
	char cmd[256];

	fflush(stdout);
	snprintf(cmd, sizeof(cmd),
		 "command -v gdb >/dev/null 2>&1 && gdb -q -batch -p %d -ex 'thread apply all bt' 2>&1 | "
		 "grep -E '^(#|Thread)' | head -40 || { echo '(no gdb) wchan:'; cat /proc/%d/wchan; echo; }",
		 (int)pid, (int)pid);
	if (system(cmd) == -1)
		perror("hostile: system");
}

/* Victim i has not moved for since_ns (its CPU ticks were cpu0 then): say
 * whether it spins or sleeps, where, and show its stack. */
static void report_stuck(unsigned i, pid_t pid, int64_t since_ns, uint64_t cpu0)
{
	uint64_t cpu = cpu_ticks(pid) - cpu0;
	long hz = sysconf(_SC_CLK_TCK);
	double stuck = (double)since_ns / 1e9, burnt = (double)cpu / (double)hz;

	/* relaxed: a snapshot of where it is */
	printf("hostile: victim %u (pid %d) %s inside %s for %.1f s (%.1f s of CPU)\n", i, (int)pid,
	       burnt > stuck / 10 ? "SPINS" : "HANGS", /* a sleeper burns next to nothing */
	       op_names[atomic_load_explicit(&board->op[i], memory_order_relaxed) % OP_COUNT], stuck, burnt);
	backtrace_of(pid);
}

/* The shmq tool on the round's region, as an operator would run it while
 * the region is under attack: it may fail, it must not crash or hang. */
static pid_t tool_start(const char *name)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execl("./tools/shmq", "shmq", "stat", name, (char *)NULL);
		_exit(0); /* not built here (a VPATH run from elsewhere): nothing to test */
	}
	return pid;
}

/* 0: the tool ended without a crash within bound_ns; 1 otherwise (said). */
static int tool_reap(pid_t pid, int64_t bound_ns)
{
	int64_t deadline = shmq_now_ns() + bound_ns;
	int st;

	if (pid < 0)
		return 0;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (shmq_now_ns() > deadline) {
			printf("hostile: shmq stat (pid %d) is stuck:\n", (int)pid);
			backtrace_of(pid);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return 1;
		}
		usleep(1000);
	}
	if (WIFSIGNALED(st)) {
		printf("hostile: shmq stat died of signal %d\n", WTERMSIG(st));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int64_t seconds = env_int("HOSTILE_SECONDS", 5);
	int64_t hang_ns = env_int("HOSTILE_HANG_S", 3) * 1000000000;
	uint64_t seed = (uint64_t)env_int("HOSTILE_SEED", 0);
	uint64_t last_beat[VICTIMS] = { 0 }, cpu_at_beat[VICTIMS] = { 0 };
	int64_t beat_ns[VICTIMS], end, now;
	pid_t pids[VICTIMS];
	struct arena a = { 0 };
	uint64_t rounds = 0, writes = 0;
	char name[NAME_LEN];
	int failed = 0;

	/* the pool's workers are this program again */
	if (shmq_dispatch(argc, argv) != 0)
		return 99;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!seed)
		seed = (uint64_t)shmq_now_ns() ^ (uint64_t)getpid() << 32;
	rng_state = seed | 1;
	printf("hostile: seed %" PRIu64 " (HOSTILE_SEED), %" PRId64 " s, %d victims\n", seed, seconds,
	       VICTIMS);
	board = mmap(NULL, sizeof(*board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (board == MAP_FAILED)
		return 99;
	snprintf(name, sizeof(name), "/shmq-hostile-%d-0", (int)getpid());
	if (round_setup(&a, name)) {
		printf("hostile: cannot set a round up\n");
		return 99;
	}
	memcpy(board->name, name, sizeof(name));
	/* release: publishes name to the victims' acquire load of round */
	atomic_store_explicit(&board->round, 1, memory_order_release);
	for (unsigned i = 0; i < VICTIMS; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			return 99;
		if (pids[i] == 0)
			_exit(victim(i));
		beat_ns[i] = shmq_now_ns();
	}
	end = shmq_now_ns() + seconds * 1000000000;
	while (!failed && (now = shmq_now_ns()) < end) {
		int64_t round_end = now + ROUND_NS;
		pid_t tool = tool_start(name);

		while (!failed && (now = shmq_now_ns()) < round_end) {
			struct timespec nap = { 0, 50 * 1000 };

			strike(&a);
			nanosleep(&nap, NULL);
			for (unsigned i = 0; i < VICTIMS; i++) {
				/* relaxed: a snapshot of a counter */
				uint64_t b = atomic_load_explicit(&board->beat[i], memory_order_relaxed);
				int st;

				if (waitpid(pids[i], &st, WNOHANG) == pids[i]) {
					printf("hostile: victim %u (pid %d) %s %d inside %s\n", i, (int)pids[i],
					       WIFSIGNALED(st) ? "died of signal" : "exited with",
					       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
					       op_names[atomic_load_explicit(&board->op[i], memory_order_relaxed) % OP_COUNT]);
					pids[i] = -1;
					failed = 1;
					break;
				}
				if (b != last_beat[i]) {
					last_beat[i] = b;
					beat_ns[i] = now;
					cpu_at_beat[i] = cpu_ticks(pids[i]);
				} else if (now - beat_ns[i] > hang_ns) {
					report_stuck(i, pids[i], now - beat_ns[i], cpu_at_beat[i]);
					failed = 1;
					break;
				}
			}
		}
		if (tool_reap(tool, hang_ns))
			failed = 1;
		/* the next round: a fresh region, the old one unlinked (its
		 * memory goes when the last victim has left it) */
		writes += a.writes;
		shmq_region_close(a.r);
		a.r = NULL;
		shmq_region_unlink(name);
		rounds++;
		snprintf(name, sizeof(name), "/shmq-hostile-%d-%" PRIu64, (int)getpid(), rounds);
		if (!failed && round_setup(&a, name)) {
			printf("hostile: cannot set round %" PRIu64 " up\n", rounds);
			failed = 1;
		}
		memcpy(board->name, name, sizeof(name));
		/* release: as above */
		atomic_store_explicit(&board->round, rounds + 1, memory_order_release);
	}
	/* release: the victims' acquire load of stop; they leave within a call */
	atomic_store_explicit(&board->stop, 1, memory_order_release);
	for (unsigned i = 0; i < VICTIMS; i++) {
		int64_t deadline = shmq_now_ns() + hang_ns;
		int st;

		if (pids[i] < 0)
			continue;
		while (waitpid(pids[i], &st, WNOHANG) == 0) {
			if (shmq_now_ns() > deadline) {
				printf("hostile: victim %u does not leave when told to:\n", i);
				report_stuck(i, pids[i], hang_ns, cpu_at_beat[i]);
				kill(pids[i], SIGKILL);
				waitpid(pids[i], &st, 0);
				failed = 1;
				break;
			}
			usleep(1000);
		}
		if (WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st))) {
			printf("hostile: victim %u ended with status %d\n", i, st);
			failed = 1;
		}
	}
	if (a.r) {
		shmq_region_close(a.r);
		shmq_region_unlink(name);
	}
	for (unsigned i = 0; i < VICTIMS; i++) {
		/* relaxed: the victims have exited (waitpid orders it) */
		uint64_t bad = atomic_load_explicit(&board->bad[i], memory_order_relaxed);

		printf("hostile: victim %u: %" PRIu64 " calls, %" PRIu64 " errors, %" PRIu64 " outside the contract\n",
		       i, atomic_load_explicit(&board->calls[i], memory_order_relaxed),
		       atomic_load_explicit(&board->errors[i], memory_order_relaxed), bad);
		if (bad)
			failed = 1;
	}
	printf("hostile: %" PRIu64 " rounds, %" PRIu64 " hostile writes\n", rounds, writes);
	printf("hostile: %d passed, %d failed\n", failed ? 0 : 1, failed);
	return failed;
}
