/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the pool's describer for the shmq tool (core/introspect_int.h): a
 * snapshot of a pool's shared block, read only.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/introspect_int.h"
#include "core/region_int.h"
#include "ring/deque_int.h"
#include "pool/pool_layout_int.h"

#define DESCRIBE_CHUNK_BUDGET (1u << 20) /* chunk words read per look */
#define DESCRIBE_WORKER_KEYS  6u

struct slot_look {
	int32_t pid;
	uint32_t id, restarts;
	bool alive;
	uint64_t tasks, steals, area_off;
};

static const char *pool_state_name(uint32_t st)
{
	switch (st) {
	case POOL_RUNNING: return "running";
	case POOL_CLOSING: return "closing";
	case POOL_EXIT: return "exited";
	case POOL_TERMINATE: return "terminated";
	default: return "corrupt";
	}
}

/* Is the worker of a slot alive?  Its owner id once it attached, else the
 * pid its creator started (still starting, or dead before attaching). */
static bool look_alive(shmq_region *r, const struct slot_look *l, struct shmq__obj_stat *st)
{
	int alive;

	if (l->id) {
		alive = shmq__region_id_alive(r, l->id);
		if (alive < 0)
			st->status = -EBADMSG;
		return alive == 1;
	}
	return l->pid > 0 && shmq__pid_alive(l->pid, 0) == 1;
}

/* Words waiting on the deque of an area (a snapshot), or -1 if unreadable.
 * relaxed: nothing is read through these words but a count, and every value
 * is checked before use, so no ordering against the deque's owner is needed. */
static int64_t look_queued(shmq_region *r, uint64_t area_off, struct shmq__obj_stat *st)
{
	const struct shmq__deque_ctl *c = shmq__region_ptr(r, area_off, pool_area_size());
	int64_t n;

	if (!c)
		return -1;
	if (shmq__load_relaxed(&c->magic) != SHMQ__DEQUE_MAGIC ||
	    shmq__load_relaxed(&c->capacity) != POOL_DEQUE_CAP) {
		st->status = -EBADMSG;
		return -1;
	}
	n = (int64_t)(shmq__load_relaxed(&c->bottom) - shmq__load_relaxed(&c->top));
	/* read apart, the two may disagree a little: clamp, flag only nonsense */
	if (n < -(int64_t)POOL_DEQUE_CAP || n > 2 * (int64_t)POOL_DEQUE_CAP) {
		st->status = -EBADMSG;
		return -1;
	}
	return n < 0 ? 0 : n > (int64_t)POOL_DEQUE_CAP ? POOL_DEQUE_CAP : n;
}

/* Elements of one active job waiting (chunk not claimed) and running
 * (claimed, not done), from its chunk words; *budget bounds the words read,
 * chunks past it count as waiting.  relaxed: a snapshot - the geometry is
 * checked against itself and the region before chunks_off is followed, and
 * a chunk word is only classified, no result is read behind it. */
static void look_job(shmq_region *r, const struct pool_job *job, uint64_t *queued,
		     uint64_t *running, uint64_t *budget, struct shmq__obj_stat *st)
{
	uint64_t n = shmq__load_relaxed(&job->n), cs = shmq__load_relaxed(&job->chunksize);
	uint64_t nchunks = shmq__load_relaxed(&job->nchunks);
	const uint32_t *chunks;

	if (n == 0 || cs == 0 || nchunks == 0 || nchunks > RANGE_MAX || (n - 1) / cs + 1 != nchunks) {
		st->status = -EBADMSG;
		return;
	}
	chunks = shmq__region_ptr(r, shmq__load_relaxed(&job->chunks_off), nchunks * 4);
	if (!chunks || ((uintptr_t)chunks & 3u)) {
		st->status = -EBADMSG;
		return;
	}
	for (uint64_t c = 0; c < nchunks; c++) {
		uint64_t elems = c + 1 < nchunks ? cs : n - c * cs;
		uint32_t w = CHUNK_PENDING;

		if (*budget) {
			(*budget)--;
			w = shmq__load_relaxed(&chunks[c]);
		}
		if (w == CHUNK_PENDING)
			*queued += elems;
		else if (w != CHUNK_DONE)
			*running += elems;
	}
}

/* A snapshot of the pool in mem for the shmq tool.  relaxed: every load is
 * a statistic or a value checked before use (magic, version, nworkers, the
 * offsets); nothing is ordered against the pool's writers, a reader that
 * races them reports a slightly stale figure. */
void shmq__pool_describe(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	const struct pool_hdr *h = mem;
	struct slot_look looks[SHMQ_POOL_MAX_WORKERS];
	uint64_t tasks = 0, steals = 0, restarts = 0, queued = 0, running = 0;
	uint64_t budget = DESCRIBE_CHUNK_BUDGET;
	unsigned nw, alive = 0, jobs = 0, listed;
	uint32_t state;
	char key[SHMQ__STAT_KEY_MAX];

	/* a snapshot: every load is relaxed, nothing is ordered against it;
	 * reads only (the mapping may be read-only), never waits */
	if (size < sizeof(*h) || shmq__load_relaxed(&h->magic) != POOL_MAGIC ||
	    shmq__load_relaxed(&h->version) != POOL_VERSION) {
		st->status = -EBADMSG;
		return;
	}
	nw = shmq__load_relaxed(&h->nworkers);
	if (nw == 0 || nw > SHMQ_POOL_MAX_WORKERS || pool_hdr_size(nw) > size) {
		st->status = -EBADMSG;
		return;
	}
	for (unsigned i = 0; i < nw; i++) {
		const struct pool_slot *s = &h->slots[i];

		looks[i].pid = shmq__load_relaxed(&s->pid);
		looks[i].id = shmq__load_relaxed(&s->id);
		looks[i].restarts = shmq__load_relaxed(&s->restarts);
		looks[i].tasks = shmq__load_relaxed(&s->tasks);
		looks[i].steals = shmq__load_relaxed(&s->steals);
		looks[i].area_off = shmq__load_relaxed(&s->area_off);
		looks[i].alive = look_alive(r, &looks[i], st);
		alive += looks[i].alive;
		tasks += looks[i].tasks;
		steals += looks[i].steals;
		restarts += looks[i].restarts;
	}
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++) {
		const struct pool_job *job = &h->jobs[j];

		if (shmq__load_relaxed(&job->state) != JOB_ACTIVE ||
		    shmq__load_relaxed(&job->done) != JOB_RUNNING ||
		    shmq__load_relaxed(&job->canceled))
			continue;
		jobs++;
		look_job(r, job, &queued, &running, &budget, st);
	}
	state = shmq__load_relaxed(&h->state);
	if (state > POOL_TERMINATE)
		st->status = -EBADMSG;
	shmq__stat_str(st, "state", pool_state_name(state));
	shmq__stat_bool(st, "closed", state != POOL_RUNNING);
	shmq__stat_u64(st, "workers", nw);
	shmq__stat_u64(st, "workers_alive", alive);
	shmq__stat_u64(st, "jobs", jobs);
	shmq__stat_u64(st, "tasks_queued", queued);
	shmq__stat_u64(st, "tasks_running", running);
	shmq__stat_u64(st, "tasks", tasks);
	shmq__stat_u64(st, "steals", steals);
	shmq__stat_u64(st, "restarts", restarts);
	shmq__stat_u64(st, "sleepers", shmq__load_relaxed(&h->idle_sleepers));
	shmq__stat_owner(st, r, "creator", shmq__load_relaxed(&h->creator_id));
	/* per worker, as many as the fact list holds */
	listed = st->n + 1 < SHMQ__STAT_KEYS ? (SHMQ__STAT_KEYS - st->n - 1) / DESCRIBE_WORKER_KEYS : 0;
	listed = listed < nw ? listed : nw;
	shmq__stat_u64(st, "workers_listed", listed);
	for (unsigned i = 0; i < listed; i++) {
		int64_t q = look_queued(r, looks[i].area_off, st);

		snprintf(key, sizeof(key), "w%u_pid", i);
		shmq__stat_i64(st, key, looks[i].pid);
		snprintf(key, sizeof(key), "w%u_alive", i);
		shmq__stat_bool(st, key, looks[i].alive);
		snprintf(key, sizeof(key), "w%u_tasks", i);
		shmq__stat_u64(st, key, looks[i].tasks);
		snprintf(key, sizeof(key), "w%u_steals", i);
		shmq__stat_u64(st, key, looks[i].steals);
		snprintf(key, sizeof(key), "w%u_restarts", i);
		shmq__stat_u64(st, key, looks[i].restarts);
		snprintf(key, sizeof(key), "w%u_queued", i);
		shmq__stat_i64(st, key, q);
	}
}
