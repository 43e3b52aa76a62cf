/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the pool creator's supervision of its workers: worker areas (new,
 * retired, recycled), worker starts, the replacement of dead workers and the
 * recovery of their jobs (jobs_recover, jobs_settle), injection, and the end
 * of a job's life (unpin, release, zombie jobs).  It runs inside the
 * creator's pool calls, with the handle's mutex held.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"
#include "ring/deque_int.h"
#include "pool/creator_int.h"
#include "pool/extent_int.h"
#include "pool/job_int.h"
#include "pool/pool_int.h"
#include "pool/pool_layout_int.h"
#include "proc/proc_int.h"

static bool id_is_live_worker(shmq_pool *p, uint32_t id)
{
	for (unsigned i = 0; i < p->nworkers; i++)
		/* SLOT_ID: pairs with worker_init's release store of id */
		if (shmq__load_acquire(&p->h->slots[i].id) == id)
			return p->procs[i] && shmq_proc_is_alive(p->procs[i]);
	return false;
}

int shmq__pool_worker_area_new(shmq_pool *p, uint64_t *off)
{
	void *mem;
	int rc = shmq__region_alloc(p->r, pool_area_size(), &mem);

	if (rc)
		return rc;
	rc = shmq__deque_init(mem, POOL_DEQUE_CAP);
	if (rc)
		return rc;
	*off = shmq__region_off(p->r, mem);
	return 0;
}

int shmq__pool_worker_area_reset(shmq_pool *p, uint64_t off)
{
	void *mem = shmq__region_ptr(p->r, off, pool_area_size());

	if (!mem)
		return -EBADMSG;
	memset(mem, 0, pool_area_size());
	return shmq__deque_init(mem, POOL_DEQUE_CAP);
}

/* Can retired area ra be handed to a new worker?  Only when no live worker
 * can still touch it: none is in a steal window that was open when the area
 * was retired (a window opened later sees the new gen, see
 * steal_window_open), and no live worker runs one of its frames (a thief
 * holds RUNNING(id) until it stores DONE).  A thief stuck in a long subtask
 * keeps the area retired; the next replacement then takes another. */
static bool area_reusable(shmq_pool *p, const struct retired_area *ra)
{
	const struct pool_frame *f;

	for (unsigned j = 0; j < p->nworkers; j++) {
		/* STEAL_WINDOW: pairs with steal_window_close's release store */
		uint32_t now = shmq__load_acquire(&p->h->slots[j].steal_seq);

		if ((ra->seq[j] & 1u) && now == ra->seq[j])
			return false;
	}
	f = shmq__region_ptr(p->r, ra->off + shmq__deque_footprint(POOL_DEQUE_CAP),
			     (uint64_t)POOL_FRAMES * sizeof(*f));
	if (!f)
		return false;
	for (unsigned k = 0; k < POOL_FRAMES; k++) {
		/* FRAME: pairs with sub_run_stolen's claim CAS and its exchange to DONE */
		uint32_t st = shmq__load_acquire(&f[k].state);

		if ((st & 1u) && id_is_live_worker(p, st >> 1))
			return false;
	}
	return true;
}

/* An area for a new worker: a recycled one if one is free again, else new. */
static int worker_area_get(shmq_pool *p, uint64_t *off)
{
	for (size_t i = 0; i < p->nretired; i++) {
		struct retired_area *ra = &p->retired[i];

		/* nobody else touches it any more (area_reusable): format it
		 * as a new area; published to the new worker by its spawn and
		 * to thieves by the seq_cst store of gen */
		if (!area_reusable(p, ra) || shmq__pool_worker_area_reset(p, ra->off))
			continue;
		*off = ra->off;
		shmq__free(ra->seq, p->nworkers * sizeof(*ra->seq));
		p->retired[i] = p->retired[--p->nretired];
		return 0;
	}
	return shmq__pool_worker_area_new(p, off);
}

/* Retire area off of a dead worker, after its slot's new gen was stored.
 * Without memory for the bookkeeping the area is only lost, nothing else. */
static void worker_area_retire(shmq_pool *p, uint64_t off)
{
	struct retired_area *ra;

	if (p->nretired == p->cap_retired) {
		size_t nc = p->cap_retired ? p->cap_retired * 2 : 8;
		struct retired_area *nv = shmq__realloc(p->retired,
							p->cap_retired * sizeof(*nv),
							nc * sizeof(*nv));

		if (!nv)
			return;
		p->retired = nv;
		p->cap_retired = nc;
	}
	ra = &p->retired[p->nretired];
	ra->off = off;
	ra->seq = shmq__malloc(p->nworkers * sizeof(*ra->seq));
	if (!ra->seq)
		return;
	for (unsigned j = 0; j < p->nworkers; j++)
		/* STEAL_WINDOW, seq_cst: Dekker with steal_window_open, after our
		 * store of gen */
		ra->seq[j] = shmq__load_seq_cst(&p->h->slots[j].steal_seq);
	p->nretired++;
}

void shmq__pool_worker_areas_free(shmq_pool *p)
{
	for (size_t i = 0; i < p->nretired; i++)
		shmq__free(p->retired[i].seq, p->nworkers * sizeof(*p->retired[i].seq));
	shmq__free(p->retired, p->cap_retired * sizeof(*p->retired));
	p->retired = NULL;
	p->nretired = p->cap_retired = 0;
}

/* Initialise slot s's life lock for its next worker (Protocol LIFE); the
 * previous worker, if any, has exited.  false when it could not be: then
 * the looks ask the pidfds. */
static bool life_init(struct pool_slot *s)
{
	pthread_mutexattr_t a;
	int rc = pthread_mutexattr_init(&a);

	if (rc)
		return false;
	rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!rc)
		rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!rc)
		rc = pthread_mutex_init(&s->life.m, &a);
	pthread_mutexattr_destroy(&a);
	return rc == 0;
}

/* Give slot i another area (when fresh: the old one is retired) and a new
 * process.  The slot's previous process, if any, has exited. */
int shmq__pool_worker_start(shmq_pool *p, unsigned i, bool fresh)
{
	struct pool_slot *s = &p->h->slots[i];
	uint64_t old = p->area_off[i]; /* the region's copy may be forged */
	/* relaxed: steal_seq's writer, the slot's previous worker, has exited
	 * and been reaped */
	uint32_t seq = shmq__load_relaxed(&s->steal_seq);
	struct worker_arg a;
	uint64_t off;
	int rc;

	if (fresh) {
		rc = worker_area_get(p, &off);
		if (rc)
			return rc;
		p->area_off[i] = off;
		/* relaxed: published to the new worker and to thieves by the
		 * seq_cst store of gen below (Protocol SLOT_ID) */
		shmq__store_relaxed(&s->area_off, off);
	}
	/* relaxed, released by the gen store below: the new worker stores its
	 * own id (SLOT_ID); a dead worker's pin means nothing (CHUNK_PIN) */
	shmq__store_relaxed(&s->id, 0);
	shmq__store_relaxed(&s->claim, 0);
	/* a worker that died in its steal window: close it for it.  relaxed:
	 * released by the gen store below; area_reusable only needs to see
	 * that it moved (Protocol STEAL_WINDOW) */
	if (seq & 1u)
		shmq__store_relaxed(&s->steal_seq, seq + 1);
	/* relaxed: the previous worker's announcement, read back as a hint
	 * only (Protocol LIFE); released by the gen store below */
	shmq__store_relaxed(&s->leaving, 0);
	memset(&a, 0, sizeof(a));
	a.pool_off = p->h_off;
	a.slot = i;
	a.max_tasks = p->max_tasks;
	a.creator_pid = (int32_t)getpid();
	memcpy(a.init, p->init, sizeof(a.init));
	/* published with gen below, as the fields above (SLOT_ID) */
	if (!life_init(s))
		p->no_life = true;
	/* relaxed: only the creator writes gen */
	a.gen = shmq__load_relaxed(&s->gen) + 1;
	if (a.gen == 0)
		a.gen = 1;
	/* STEAL_WINDOW and SLOT_ID, seq_cst: pairs with the loads of gen in
	 * victim_deque (the Dekker, see steal_window_open) and worker_init
	 * (acquire) */
	shmq__store_seq_cst(&s->gen, a.gen);
	if (fresh)
		worker_area_retire(p, old);
	rc = shmq_proc_spawn(p->r, POOL_WORKER_ENTRY, &a, sizeof(a), NULL, &p->procs[i]);
	if (rc) {
		p->procs[i] = NULL;
		return rc;
	}
	/* relaxed: statistics for shmq_pool_worker_stats and the describer,
	 * which read it relaxed; the creator itself keeps p->procs[i] */
	shmq__store_relaxed(&s->pid, shmq_proc_pid(p->procs[i]));
	return 0;
}

bool shmq__pool_inject(shmq_pool *p, unsigned j, uint64_t nchunks)
{
	struct pool_hdr *h = p->h;

	/* release: the RANGE word before the pending bit; pairs with
	 * inject_take's acq_rel exchange of inject (Protocol INJECT) */
	shmq__store_release(&h->jobs[j].inject, word_range(j, 0, nchunks));
	/* INJECT, seq_cst: seen by inject_take's acquire load of pending */
	shmq__fetch_or_seq_cst(&h->pending[j / 64], 1ull << (j % 64));
	/* One worker, also for a range: it splits the range and wakes the
	 * next with each half it pushes (range_run).  Woken from here at once,
	 * while this caller still runs on its CPU, they were queued together
	 * on the other CPUs (Protocol PLACE, worker.c). */
	return shmq__pool_idle_wake(h, true, 1) > 0;
}

/* An imap job's chunk c failed for good: each of its elements says so.
 * After the CAS that made it DONE, with p->mu held, as every reader of the
 * statuses in this process (imap.c) holds it. */
static void chunk_statuses_fail(shmq_pool *p, const struct job_priv *jp, uint64_t c)
{
	uint64_t lo = c * jp->chunksize;
	int32_t *st;

	if (!jp->status_off)
		return;
	st = shmq__region_ptr(p->r, jp->status_off, jp->n_elems * 4);
	for (uint64_t i = lo; st && i < lo + jp->chunksize && i < jp->n_elems; i++)
		/* relaxed: read under p->mu by imap.c, in this process */
		shmq__store_relaxed(&st[i], (int32_t)-EOWNERDEAD);
}

/* Chunk c failed for good: its elements' results in the staging area are
 * what an earlier job left there (the arena is reused), not this job's:
 * zero them, so the caller's out gets no other job's bytes.  With p->mu
 * held, after the CAS that made the chunk DONE: no worker writes it now. */
static void chunk_results_clear(shmq_pool *p, const struct job_priv *jp, uint64_t c)
{
	uint64_t lo = c * jp->chunksize, n;
	uint8_t *out;

	if (!jp->out_stage || !jp->out_size || lo >= jp->n_elems)
		return;
	n = jp->n_elems - lo < jp->chunksize ? jp->n_elems - lo : jp->chunksize;
	out = shmq__region_ptr(p->r, jp->out_stage + lo * jp->out_size, n * jp->out_size);
	if (out)
		memset(out, 0, n * jp->out_size);
}

/* After worker dead_id died: its chunks run again (or fail after
 * CHUNK_TRIES deaths), and every active job's range is injected anew, which
 * also covers the RANGE words lost with its deque. */
static void jobs_recover(shmq_pool *p, uint32_t dead_id)
{
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++) {
		struct pool_job *job = pool_job(p, j);
		struct job_priv *jp = &p->jobs[j];
		uint64_t nchunks = jp->nchunks; /* never the region's copy */
		uint32_t *chunks;

		/* JOB_DONE: pairs with job_finish's seq_cst CAS of done */
		if (!jp->used || jp->lost || shmq__load_acquire(&job->done) != JOB_RUNNING)
			continue;
		chunks = shmq__region_ptr(p->r, jp->chunks_off, nchunks * 4);
		if (!chunks)
			continue;
		for (uint64_t c = 0; dead_id && c < nchunks; c++) {
			uint32_t s = dead_id;

			/* CHUNK_STATE: pairs with chunk_claim's acq_rel CAS */
			if (shmq__load_acquire(&chunks[c]) != dead_id)
				continue;
			if (!jp->tries) {
				jp->tries = shmq__calloc(nchunks, 1);
				jp->ntries = jp->tries ? nchunks : 0;
			}
			/* the dead worker's chunk, failed or back to PENDING,
			 * against a late CAS of its own: pairs with the CASes of
			 * chunk_claim and shmq__pool_chunk_run (Protocol
			 * CHUNK_STATE) */
			if (jp->tries && ++jp->tries[c] >= CHUNK_TRIES) {
				if (shmq__cas_acq_rel(&chunks[c], &s, CHUNK_DONE)) {
					chunk_statuses_fail(p, jp, c);
					chunk_results_clear(p, jp, c);
					job_err_record(job, c * jp->chunksize, -EOWNERDEAD);
					job_chunk_done(job, nchunks);
				}
			} else {
				/* pairs with chunk_claim's CAS, which may claim
				 * the chunk again (Protocol CHUNK_STATE) */
				shmq__cas_acq_rel(&chunks[c], &s, CHUNK_PENDING);
			}
		}
		if (dead_id && !jp->orphaned) {
			jp->orphaned = true;
			p->norphaned++;
		}
		jp->last_done = UINT64_MAX; /* the next settle looks */
		/* pairs with job_finish's seq_cst CAS of done (Protocol
		 * JOB_DONE); a zombie was canceled (shmq_async_free) */
		if (shmq__load_acquire(&job->done) == JOB_RUNNING && !jp->zombie)
			shmq__pool_inject(p, j, nchunks);
	}
}

/* A worker that dies between marking a chunk DONE and counting it
 * (chunk_run) leaves a job whose count stops one short: every chunk DONE,
 * and nobody left to finish the job.  For jobs that lost a worker, the
 * creator looks at the chunk states itself whenever the count stood still
 * since its last look, and finishes a job whose chunks are all DONE. */
static void jobs_settle(shmq_pool *p)
{
	if (p->norphaned == 0)
		return; /* no worker died under a job still here */
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++) {
		struct pool_job *job = pool_job(p, j);
		struct job_priv *jp = &p->jobs[j];
		uint64_t nchunks = jp->nchunks; /* never the region's copy */
		uint32_t running = JOB_RUNNING;
		uint64_t counted;
		uint32_t *chunks;
		uint64_t c;

		/* JOB_DONE: pairs with job_finish's seq_cst CAS of done */
		if (!jp->used || jp->lost || !jp->orphaned ||
		    shmq__load_acquire(&job->done) != JOB_RUNNING)
			continue;
		/* relaxed: a progress hint; the chunk states below decide */
		counted = shmq__load_relaxed(&job->done_chunks);
		if (counted != jp->last_done) {
			jp->last_done = counted; /* still moving: look next time */
			continue;
		}
		chunks = shmq__region_ptr(p->r, jp->chunks_off, nchunks * 4);
		if (!chunks)
			continue;
		/* CHUNK_STATE, acquire: pairs with shmq__pool_chunk_run's acq_rel
		 * CAS to DONE, after which that chunk's results are visible to us */
		for (c = 0; c < nchunks && shmq__load_acquire(&chunks[c]) == CHUNK_DONE; c++)
			;
		if (c < nchunks)
			continue;
		/* JOB_DONE, seq_cst: as job_finish's CAS (its sleepers' Dekker) */
		if (shmq__cas_seq_cst(&job->done, &running, JOB_DONE))
			shmq__wake_word(&job->done, &job->done_sleepers, INT_MAX);
	}
}

/* What a worker whose initializer failed left in its slot: the status when
 * it is a plausible negative errno (the slot is writable by anyone attached),
 * else -ECHILD.  relaxed: written before the worker exited, and we reaped it. */
static int init_error(struct pool_slot *s)
{
	int32_t st = shmq__load_relaxed(&s->init_status);

	return st < 0 && st >= -4095 ? st : -ECHILD;
}

/* Are all workers running?  Most passes find them so, and a pass may sit
 * in a submission's way (job_submit), while the worker it woke waits for
 * the caller's CPU.  Each worker's life lock and leaving word answer without
 * a system call (Protocol LIFE); when one does not, and every
 * LIFE_FULL_EVERY-th look, one poll over their pidfds answers for all, where
 * asking each is a waitid per worker.  false: look at each. */
static bool workers_all_running(shmq_pool *p)
{
	bool full = p->no_life || ++p->looks % LIFE_FULL_EVERY == 0;
	bool held = true;

	for (unsigned i = 0; i < p->nworkers; i++) {
		const struct pool_slot *s = &p->h->slots[i];
		uint32_t word, leaving;

		if (!p->procs[i])
			return false;
		/* relaxed: Protocol LIFE, hints; a stale or forged word costs
		 * a poll, or delays a replacement to the next full look */
		word = shmq__load_relaxed(&s->life.word);
		leaving = shmq__load_relaxed(&s->leaving);
		held &= !leaving && (word & (FUTEX_TID_MASK | FUTEX_OWNER_DIED)) ==
			(uint32_t)shmq_proc_pid(p->procs[i]);
	}
	if (held && !full)
		return true;
	if (shmq__procs_running(p->procs, p->nworkers) == 1)
		return true;
	if (held)
		p->late_looks++; /* the words said running: a full look found it */
	return false;
}

unsigned shmq__pool_late_looks(shmq_pool *p)
{
	unsigned n;

	pthread_mutex_lock(&p->mu);
	n = p->late_looks;
	pthread_mutex_unlock(&p->mu);
	return n;
}

/* Did the system refuse a replacement for want of a resource that may come
 * back (processes, memory, descriptors)?  Then the slot stays empty and the
 * next look tries again, SPAWN_TRIES times in a row before the pool breaks
 * with that error; the live workers go on meanwhile. */
static bool spawn_refusal(int rc)
{
	return rc == -EAGAIN || rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE;
}

/* Replace dead workers.  Called with p->mu held. */
void shmq__pool_supervise(shmq_pool *p)
{
	uint32_t st = p->state;
	bool each;

	p->last_supervise = shmq_now_ns();
	/* the workers' copy of the state, which anyone attached can write: a
	 * forged value is put back (workers it sent away are replaced below).
	 * relaxed: only compared with our own record; the store is seq_cst
	 * (Protocol POOL_STATE) */
	if (shmq__load_relaxed(&p->h->state) != st)
		shmq__store_seq_cst(&p->h->state, st);
	if (st >= POOL_EXIT)
		return;
	each = !workers_all_running(p);
	for (unsigned i = 0; each && i < p->nworkers; i++) {
		struct pool_slot *s = &p->h->slots[i];
		uint32_t dead_id;
		int rc;

		if (p->procs[i] && shmq_proc_is_alive(p->procs[i]))
			continue;
		/* SLOT_ID: pairs with worker_init's release store of id */
		dead_id = shmq__load_acquire(&s->id);
		if (p->procs[i]) {
			int code = shmq_proc_exitcode(p->procs[i]);

			/* the program never calls shmq_dispatch(): no restart
			 * can ever start a worker */
			if (code == SHMQ_EXIT_NODISPATCH)
				pool_broken_set(p, -ECHILD);
			/* the initializer failed: so would every restart */
			if (code == POOL_EXIT_INIT) {
				p->init_failed = true;
				if (!p->broken)
					pool_broken_set(p, init_error(s));
			}
			shmq_proc_close(p->procs[i]);
			p->procs[i] = NULL;
		}
		if (p->broken == -ECHILD || p->init_failed)
			continue;
		/* a slot whose last replacement the system refused started no
		 * worker that could have died before it started */
		if (!p->spawn_fails[i])
			p->start_fails[i] = dead_id ? 0 : p->start_fails[i] + 1;
		if (p->start_fails[i] >= START_TRIES) {
			pool_broken_set(p, -ECHILD); /* workers die before they start */
			continue;
		}
		rc = shmq__pool_worker_start(p, i, true);
		if (rc == 0) {
			p->spawn_fails[i] = 0;
			/* relaxed: a statistic only the creator writes, read
			 * relaxed by shmq_pool_worker_stats and the describer */
			shmq__store_relaxed(&s->restarts, shmq__load_relaxed(&s->restarts) + 1);
		} else if (!spawn_refusal(rc) || ++p->spawn_fails[i] >= SPAWN_TRIES) {
			if (!p->broken)
				pool_broken_set(p, rc);
		}
		jobs_recover(p, dead_id);
	}
	jobs_settle(p);
}

void shmq__pool_supervise_maybe(shmq_pool *p)
{
	pthread_mutex_lock(&p->mu);
	if (shmq_now_ns() - p->last_supervise >= SUPERVISE_EVERY_NS)
		shmq__pool_supervise(p);
	pthread_mutex_unlock(&p->mu);
}

/* Make sure no worker is between its check of job j and a chunk CAS, or
 * between a DONE mark and its count (Protocol CHUNK_PIN), then let j be
 * reused.  The pin is held for nanoseconds, a preempted worker's for a time
 * slice or so; the claim word, though, is region memory anyone may write.
 * So the wait ends at the caller's deadline (-ETIMEDOUT: try again later),
 * and a pin seen for CLAIM_STUCK_NS on a live worker is taken for a forged
 * one (-EBADMSG: the caller must never reuse the slot) - unless that worker
 * is stalled (stopped by a signal or a debugger, or in uninterruptible
 * sleep): then the pin is its own and goes once it runs again, and waiting
 * here, p->mu held, would only keep the caller's other threads out:
 * -EAGAIN, not finished, look again later.  Called with p->mu held. */
int shmq__pool_job_unpin(shmq_pool *p, unsigned j, int64_t deadline)
{
	struct pool_job *job = pool_job(p, j);
	int64_t stuck_at = 0, now;

	/* CHUNK_PIN, seq_cst: Dekker with chunk_claim's (and
	 * shmq__pool_chunk_run's) store of claim and load of state */
	shmq__store_seq_cst(&job->state, JOB_RETIRING);
	for (unsigned i = 0; i < p->nworkers; i++) {
		for (unsigned spin = 0; shmq__load_seq_cst(&p->h->slots[i].claim) == j + 1; spin++) {
			/* a running worker holds its pin for some instructions:
			 * look a few times before the system calls */
			if (spin < CLAIM_RELAX) {
				shmq__cpu_relax();
				continue;
			}
			if (!p->procs[i] || !shmq_proc_is_alive(p->procs[i]))
				break;
			if (spin >= CLAIM_RELAX + CLAIM_SPIN) {
				now = shmq_now_ns();
				if (deadline != SHMQ__NO_DEADLINE && now >= deadline)
					return -ETIMEDOUT;
				if (!stuck_at || now >= stuck_at) {
					if (shmq__pid_stalled(shmq_proc_pid(p->procs[i])))
						return -EAGAIN;
					if (stuck_at)
						return -EBADMSG;
					stuck_at = now + CLAIM_STUCK_NS;
				}
			}
			sched_yield();
		}
	}
	return 0;
}

void shmq__pool_job_release(shmq_pool *p, unsigned j)
{
	struct job_priv *jp = &p->jobs[j];

	/* take back a word no worker took; pairs with inject_take's acq_rel
	 * exchange, so exactly one side gets a word (Protocol INJECT); after
	 * job_unpin no worker acts on it any more */
	shmq__exchange_acq_rel(&pool_job(p, j)->inject, 0);
	/* pairs with chunk_claim's seq_cst load of state, which refuses a job
	 * that is not ACTIVE; nothing is published through FREE - the next job's
	 * fields go out with job_submit's seq_cst store of ACTIVE (Protocol
	 * JOB_PUBLISH) */
	shmq__store_release(&pool_job(p, j)->state, JOB_FREE);
	if (jp->alloc_size)
		shmq__extent_free(&p->arena, jp->alloc_off, jp->alloc_size);
	shmq__free(jp->tries, jp->ntries);
	if (jp->zombie)
		p->nzombies--;
	if (jp->orphaned)
		p->norphaned--;
	memset(jp, 0, sizeof(*jp));
	p->released++;
}

/* A cancelled job whose async was freed: reusable once no live worker runs
 * one of its chunks.  Tried until deadline (see shmq__pool_job_unpin). */
bool shmq__pool_zombie_reap(shmq_pool *p, unsigned j, int64_t deadline)
{
	struct pool_job *job = pool_job(p, j);
	struct job_priv *jp = &p->jobs[j];
	uint64_t nchunks = jp->nchunks; /* never the region's copy */
	uint32_t *chunks = shmq__region_ptr(p->r, jp->chunks_off, nchunks * 4);
	int rc;

	if (jp->lost)
		return false;
	rc = shmq__pool_job_unpin(p, j, deadline);
	if (rc) {
		jp->lost = rc == -EBADMSG;
		return false;
	}
	/* JOB_DONE: pairs with job_finish's seq_cst CAS of done */
	if (shmq__load_acquire(&job->done) == JOB_RUNNING && chunks) {
		for (uint64_t c = 0; c < nchunks; c++) {
			/* CHUNK_STATE: pairs with chunk_claim's CAS */
			uint32_t s = shmq__load_acquire(&chunks[c]);

			if (s != CHUNK_PENDING && s != CHUNK_DONE && id_is_live_worker(p, s))
				return false;
		}
	}
	shmq__pool_job_release(p, j);
	return true;
}

void shmq__pool_zombies_reap(shmq_pool *p, int64_t deadline)
{
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++)
		if (p->jobs[j].used && p->jobs[j].zombie)
			shmq__pool_zombie_reap(p, j, deadline);
}
