/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the pool's shared layout - the one file the creator and its
 * workers, separate processes, must agree on.  Change a struct here and bump
 * POOL_VERSION: a worker refuses a header of another version (worker_init),
 * and so does the describer of the shmq tool.
 *
 * Shared layout (one block in the region, addressed by offsets):
 *
 *   struct pool_hdr     immutable geometry; state; the idle futex; the
 *                       pending-injection bitmask
 *   struct pool_job[SHMQ_POOL_MAX_JOBS]
 *                       one per map / apply in flight: task, the element
 *                       arrays (offsets), chunk geometry, the chunk-state
 *                       array (offset), the injection word, counters; and
 *                       the inline lines, where a job of one chunk and
 *                       small copies keeps them (an apply_async)
 *   struct pool_slot[nworkers]
 *                       per worker: the area (deque + frames) of its current
 *                       generation, its owner id, its claim pin, statistics
 *   arena               element arrays and chunk states of jobs that do not
 *                       fit their inline lines, handed out by a private
 *                       allocator of the creating process (pool/extent_int.h)
 *   worker areas        per worker generation: a Chase-Lev deque and a stack
 *                       of fork-join frames; a replacement worker gets
 *                       another area, so late writes of orphaned subtasks
 *                       never land in memory still in use.  The dead
 *                       worker's area is retired and recycled for a later
 *                       replacement once no live worker can touch it any
 *                       more (area_reusable), so any number of deaths needs
 *                       a bounded number of areas.
 *
 * Words on the deques (64 bits):
 *   RANGE  kind 1 | job (8) | lo (27) | hi (27): chunks [lo, hi) of a job;
 *          a worker splits it in halves, pushing the upper one, until one
 *          chunk is left, which it claims and runs.
 *   SUB    kind 2 | frame offset / 64 (32) | tag (30): a spawned subtask.
 *
 * Who writes what, by unit:
 *   job.c        the chunk protocol, worker side (claim, run, count, done)
 *   worker.c     the worker process: its loop, stealing, fork-join frames
 *   supervise.c  the creator: worker areas and starts, recovery of dead
 *                workers, settle, zombie jobs
 *   submit.c     the creator: map / map_async / apply_async and completion
 *   pool.c       the creator: create, close, join, terminate, free
 *   describe.c   readers (the shmq tool): a snapshot, loads only
 *
 * The protocols below span those files; each side's comment names its
 * protocol by label, so that `grep PROTOCOL_NAME lib/pool` finds both ends.
 *
 * Protocol JOB_PUBLISH: creator -> workers.  job_submit writes a job's
 * fields (relaxed) while its state is not ACTIVE, then publishes them with a
 * seq_cst store of state = ACTIVE; chunk_claim's seq_cst load of state under
 * the pin (CHUNK_PIN) sees ACTIVE only with every field, which job_view then
 * reads relaxed.  The fields stay stable until job_unpin stores RETIRING.
 *
 * Protocol INJECT: creator -> workers.  inject (supervise.c) stores the job's
 * RANGE word with release, then sets the job's bit in pending[] with a
 * seq_cst fetch_or; inject_take (worker.c) loads pending[] with acquire,
 * clears the bit, then takes the word with an acq_rel exchange.
 *
 * Protocol CHUNK_PIN: workers <-> creator, Dekker.  A worker pins a job
 * (slot->claim = job + 1, seq_cst) before it checks the job's state and CASes
 * a chunk (chunk_claim), and again from marking a chunk DONE until it has
 * counted it and, when that count completed the job, finished it (chunk_run);
 * it unpins with a release store of 0.  job_unpin stores state = RETIRING
 * (seq_cst), then waits, per live worker, for its seq_cst load of claim to
 * differ from job + 1: no worker is then between its check and its CAS, or
 * between its DONE mark and its count or finish, and the job slot may be
 * reused (job_release).
 *
 * Protocol CHUNK_STATE: A chunk word goes PENDING (0) -> the claiming
 * worker's owner id -> DONE, by acq_rel CASes: only the claimer writes the
 * chunk's result slots, so a stale or duplicated RANGE word (after a worker
 * died) never runs a chunk twice at once, and a chunk is counted once.  The
 * CAS to DONE releases the chunk's results; jobs_settle and zombie_reap load
 * chunk words with acquire.  jobs_recover CASes a dead worker's chunks back
 * to PENDING (or to DONE, failed, after CHUNK_TRIES deaths) and re-injects.
 *
 * Protocol JOB_DONE: workers -> creator.  Each DONE chunk is counted with an
 * acq_rel fetch_add of done_chunks (a release sequence over every chunk's
 * results); the one that completes the count CASes done RUNNING -> DONE
 * (seq_cst) and wakes done_sleepers (job_finish).  The creator loads done
 * with acquire (async_check, job_done_wait, jobs_all_done, jobs_recover) and
 * sleeps with the sleeper count of core/wait_int.h (seq_cst both sides).
 * jobs_settle and shmq_pool_terminate finish a job with the same seq_cst CAS.
 *
 * Protocol POOL_STATE: creator -> workers.  Only the creator writes state,
 * seq_cst (close, join, terminate); worker_should_exit loads it with acquire.
 * The creator decides by its own record (shmq_pool.state), never by this
 * word, which anyone attached can write; supervision puts a forged value
 * back.
 *
 * Protocol IDLE_WAKE: A publisher of work bumps work_seq (seq_cst) and wakes
 * the futex if idle_sleepers is non-zero (idle_wake); an idle worker reads
 * work_seq, registers in idle_sleepers (seq_cst), looks for work once more
 * and only then sleeps on work_seq (worker_idle).  wake_pending limits weak
 * wakes to one in flight: idle_wake's acq_rel exchange sets it, the worker's
 * release stores clear it.  Last in, first out: each sleeper waits on its own
 * futex bit (worker_wake_bit) and names itself in last_sleeper, a relaxed
 * hint that it clears again (CAS) once awake; a wake of one wakes that bit
 * first and any sleeper only if it woke nobody.  The worker that slept last
 * runs the next job: its pages and caches are the warm ones, where a plain
 * wake of one takes the longest asleep (futex order).  A wrong hint, stale or
 * forged, costs the second wake call and nothing else.
 *
 * Protocol SLOT_ID: worker_init stores the worker's owner id in its slot with
 * release; the creator loads it with acquire (id_is_live_worker,
 * pool_supervise) to tell a started worker from one that died before it,
 * and a spawner (id_is_slot_owner) to tell a thief from a forged claim.
 * worker_start stores the slot's new gen (seq_cst) after area_off; worker_init
 * loads it with acquire.
 *
 * Protocol STEAL_WINDOW: workers <-> creator, Dekker.  Every access of a
 * worker to another slot's area happens while its steal_seq is odd:
 * steal_window_open bumps it with a seq_cst exchange, then victim_deque loads
 * the victim's gen seq_cst; worker_start stores the new gen seq_cst, then
 * worker_area_retire loads every steal_seq seq_cst.  steal_window_close
 * evens it with a release store, which area_reusable loads with acquire.
 *
 * Protocol PLACE: workers -> workers, hints only.  A worker stores the CPU it
 * runs on + 1 in its slot's cpu when it takes a word and it changed
 * (worker_cpu_publish), and 0 before it sleeps; a worker woken from its idle
 * sleep loads its peers' (worker_place) and, finding one on its own CPU,
 * moves off the CPUs its awake peers publish.  All relaxed: a stale or forged
 * value costs one needless move (two sched_setaffinity calls) per wake-up.
 *
 * Protocol CHUNK_WAKE: workers -> an iterator (imap).  job_chunk_count's
 * seq_cst fetch_add of done_chunks, then its seq_cst load of chunk_sleepers;
 * the iterator (iter_sleep) loads chunk_seq, adds itself to chunk_sleepers
 * (seq_cst), then loads done_chunks (seq_cst): either it sees the new count
 * or the worker sees it and bumps chunk_seq (seq_cst) before the futex wake.
 * Per-element statuses (status_off) are written relaxed by the chunk's
 * claimer before its acq_rel CAS to DONE, which releases them with the
 * results (Protocol CHUNK_STATE).
 *
 * Protocol FRAME: spawner <-> thief.  shmq_pool_spawn fills a frame (relaxed)
 * and publishes it with the deque push's release store; a thief claims it
 * PENDING(tag) -> RUNNING(id) by an acq_rel CAS (sub_run_stolen), runs it,
 * stores its status relaxed and DONE(tag) with a seq_cst exchange, then
 * wakes the spawner (core/wait_int.h); frame_wait loads state with acquire.
 * A spawner that takes its own word back runs the subtask in place; a word
 * that outlived its frame (the tag no longer matches) is dropped.
 *
 * Protocol LIFE: the kernel -> creator, hints only.  worker_start
 * initialises the slot's life lock (a robust, process-shared
 * pthread_mutex_t) before it spawns the worker; worker_init takes it with a
 * trylock and holds it until it dies, so that it sits on the worker's robust
 * list, and the kernel, at the worker's death, however it dies, replaces
 * its TID in the lock word with FUTEX_OWNER_DIED (handle_futex_death).  The
 * creator's look for dead workers (workers_all_running) loads each word
 * relaxed and takes "the word holds exactly this worker's pid" for "still
 * running": no system call.  Any other value, a worker not yet started, or a
 * forged word sends it to the pidfds (one poll), and so does every
 * LIFE_FULL_EVERY-th look, so a forged "running" only delays a replacement.
 * The creator never takes the lock: nothing in the mutex steers it.
 * A worker that leaves on purpose (its max_tasks_per_worker quota reached,
 * its initializer failed, a stale start, the pool ending) returns through
 * shmq_dispatch, which unmaps the region before exit(): the kernel's walk of
 * the robust list at the exit cannot reach the lock, and the word keeps the
 * pid.  So such a worker first stores its slot's leaving word (relaxed, a
 * hint), and a look that sees it nonzero polls too, as for any other word:
 * the pidfd decides.  worker_start clears it before it spawns the next
 * worker (published with gen, as the slot's other fields).  A forged
 * leaving costs a poll per look; a forged 0 delays a replacement to the
 * next full look, as a forged lock word does.
 */
#ifndef SHMQ_POOL_LAYOUT_INT_H
#define SHMQ_POOL_LAYOUT_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <shmq.h>

#include "core/compiler_int.h"
#include "ring/deque_int.h"

#define POOL_MAGIC   0x4c4f4f50u /* "POOL" */
#define POOL_VERSION 8u /* 8: the slot's leaving word (Protocol LIFE) */

#define LIFE_FULL_EVERY 64u /* every so many looks ask the pidfds (Protocol LIFE) */

#define POOL_DEQUE_CAP 4096u
#define POOL_FRAMES    1024u
#define POOL_FRAME_DATA SHMQ_POOL_SPAWN_MAX

#define POOL_RUNNING   0u
#define POOL_CLOSING   1u
#define POOL_EXIT      2u
#define POOL_TERMINATE 3u

#define JOB_FREE     0u
#define JOB_ACTIVE   1u
#define JOB_RETIRING 2u

#define JOB_RUNNING  0u
#define JOB_DONE     1u
#define JOB_CANCELED 2u

#define POOL_INLINE    (2 * SHMQ__CACHELINE) /* a job's inline block (struct pool_job) */
#define POOL_INLINE_IN 16u                    /* where its input copy starts */

#define CHUNK_PENDING 0u
#define CHUNK_DONE    UINT32_MAX

#define WORD_RANGE 1ull
#define WORD_SUB   2ull
#define RANGE_BITS 27
#define RANGE_MAX  ((1ull << RANGE_BITS) - 1)
#define TAG_BITS   30
#define TAG_MASK   ((1u << TAG_BITS) - 1)

/* The entry a worker process runs, and its argument (the creator's
 * worker_start to the worker's pool_worker_main). */
#define POOL_WORKER_ENTRY "shmq.pool.worker"

struct worker_arg {
	uint64_t pool_off;
	uint32_t slot;
	uint32_t gen;
	uint64_t max_tasks;                 /* 0: no limit; else exit after that many */
	int32_t creator_pid;                /* the spawning process, the pool's creator */
	char init[SHMQ_OBJ_NAME_MAX + 1];   /* the initializer task, or "" */
};

/* Exit statuses of a worker process, read by the creator (shmq__pool_supervise). */
#define POOL_EXIT_INIT 5 /* the initializer failed: slot.init_status says how */
/* not a worker's: a child that a task (or the initializer) made with fork()
 * returned from it instead of calling _exit() (worker_forked_check) */
#define POOL_EXIT_FORKED 6

struct pool_job {
	/* lines 0-2: written by the creator while the job is not ACTIVE */
	uint32_t state;     /* JOB_FREE, JOB_ACTIVE, JOB_RETIRING */
	uint32_t canceled;  /* set once by the creator while ACTIVE */
	uint32_t task_idx;
	uint32_t task_hash;
	uint64_t in_off, in_size;
	uint64_t out_off, out_size;
	uint64_t chunks_off; /* uint32_t[nchunks] */
	uint64_t status_off; /* int32_t[n]: each element's status (imap), or 0: none */
	uint64_t n, chunksize, nchunks;
	char task[SHMQ_OBJ_NAME_MAX + 1];
	uint8_t pad1[3 * SHMQ__CACHELINE - 152];
	/* line 3: written by workers */
	uint64_t inject;      /* a RANGE word waiting for a worker, or 0 */
	uint64_t done_chunks;
	uint64_t err;         /* (index << 32) | (uint32_t)status, lowest index; UINT64_MAX: none */
	uint32_t done;        /* JOB_RUNNING, JOB_DONE, JOB_CANCELED: the creator waits on it */
	uint32_t done_sleepers;
	uint32_t chunk_seq;      /* bumped after a chunk is counted while chunk_sleepers */
	uint32_t chunk_sleepers; /* an iterator waiting for the next chunk (imap) */
	uint8_t pad2[SHMQ__CACHELINE - 40];
	/* lines 4-5: the inline block, used instead of an arena block by a job
	 * of one chunk whose copies fit (job_place): the chunk word at 0, the
	 * input copy at POOL_INLINE_IN, the output copy after it (16-aligned).
	 * Written by the creator while the job is not ACTIVE, then the chunk
	 * word and the output by the claimer, as an arena block would be; the
	 * offsets in lines 0-2 point here, so workers need not know.  One
	 * apply_async then touches the job's lines and no arena page. */
	uint8_t inl[POOL_INLINE];
};
SHMQ__LINE_ALIGNED_FIELD(struct pool_job, inject);
SHMQ__LINE_ALIGNED_FIELD(struct pool_job, inl);
_Static_assert(sizeof(struct pool_job) % SHMQ__CACHELINE == 0, "pool_job: whole lines");

struct pool_slot {
	/* line 0: written by the creator */
	uint32_t gen;       /* bumped (release) after area_off changed */
	uint32_t restarts;
	uint64_t area_off;  /* the deque, then the frames */
	int32_t pid;
	uint32_t want;      /* set by thieves that found the deque empty */
	uint8_t pad0[SHMQ__CACHELINE - 24];
	/* line 1: written by the worker */
	uint32_t id;        /* the worker's owner id in the region */
	uint32_t claim;     /* job + 1 while it claims a chunk or counts one done */
	uint64_t tasks;
	uint64_t steals;
	uint32_t steal_seq; /* odd while it may touch another slot's area (the
			     * steal window); free-running, wraps harmlessly:
			     * only compared for equality */
	int32_t init_status; /* the initializer's failure, before POOL_EXIT_INIT */
	uint32_t cpu;       /* the CPU it runs on + 1 while awake, 0 while it
			     * sleeps; a placement hint (Protocol PLACE) */
	uint32_t leaving;   /* non-zero once it is on its way out on purpose
			     * (Protocol LIFE); cleared by the creator */
	uint8_t pad1[SHMQ__CACHELINE - 40];
	/* line 2: the worker's life lock (Protocol LIFE): initialised by the
	 * creator, taken once by the worker, then only read */
	union {
		pthread_mutex_t m;
		uint32_t word; /* glibc's lock word (__data.__lock) */
		uint8_t line[SHMQ__CACHELINE];
	} life;
};
SHMQ__LINE_ALIGNED_FIELD(struct pool_slot, id);
SHMQ__LINE_ALIGNED_FIELD(struct pool_slot, life);
_Static_assert(sizeof(pthread_mutex_t) <= SHMQ__CACHELINE, "pool_slot: the life lock fits a line");
_Static_assert(sizeof(struct pool_slot) == 3 * SHMQ__CACHELINE, "pool_slot: three lines");

struct pool_hdr {
	/* line 0: immutable after create */
	uint32_t magic;
	uint32_t version;
	uint32_t nworkers;
	uint32_t njobs;
	uint32_t deque_cap;
	uint32_t frames;
	uint32_t creator_id;
	uint32_t pad0;
	uint64_t arena_off, arena_size;
	uint8_t pad0b[SHMQ__CACHELINE - 48];
	/* line 1: the pool's state, written by the creator */
	uint32_t state;
	uint8_t pad1[SHMQ__CACHELINE - 4];
	/* line 2: the idle workers' futex */
	uint32_t work_seq;
	uint32_t idle_sleepers;
	uint32_t wake_pending; /* a weak wake was sent and no sleeper has woken since */
	uint32_t last_sleeper; /* slot + 1 of the worker that went to sleep last; a hint */
	uint8_t pad2[SHMQ__CACHELINE - 16];
	/* line 3: jobs whose injection word may be set */
	uint64_t pending[SHMQ_POOL_MAX_JOBS / 64];
	uint8_t pad3[SHMQ__CACHELINE - 8 * (SHMQ_POOL_MAX_JOBS / 64)];
	struct pool_job jobs[SHMQ_POOL_MAX_JOBS];
	struct pool_slot slots[];
};
SHMQ__LINE_ALIGNED_FIELD(struct pool_hdr, state);
SHMQ__LINE_ALIGNED_FIELD(struct pool_hdr, work_seq);
SHMQ__LINE_ALIGNED_FIELD(struct pool_hdr, pending);
SHMQ__LINE_ALIGNED_FIELD(struct pool_hdr, jobs);
SHMQ__LINE_ALIGNED_FIELD(struct pool_hdr, slots);

/* A fork-join frame: a spawned subtask, its input and, once run by a thief,
 * its output. */
struct pool_frame {
	uint32_t state;     /* PENDING(tag), RUNNING(id), DONE(tag) */
	uint32_t sleepers;  /* the spawner sleeping on state */
	int32_t status;     /* written by the thief before DONE */
	uint32_t task_idx;
	uint32_t task_hash;
	uint16_t in_size;
	uint16_t out_size;
	uint8_t pad[8];
	uint8_t data[POOL_FRAME_DATA]; /* input, then output at ALIGN_UP(in_size, 16) */
};
_Static_assert(sizeof(struct pool_frame) == 2 * SHMQ__CACHELINE, "pool_frame: two lines");

static inline uint32_t frame_pending(uint32_t tag) { return tag << 2; }
static inline uint32_t frame_done(uint32_t tag) { return (tag << 2) | 2u; }
static inline uint32_t frame_running(uint32_t id) { return (id << 1) | 1u; }

static inline uint64_t word_range(unsigned job, uint64_t lo, uint64_t hi)
{
	return (WORD_RANGE << 62) | ((uint64_t)job << 54) | (lo << RANGE_BITS) | hi;
}

static inline uint64_t word_sub(uint64_t off, uint32_t tag)
{
	return (WORD_SUB << 62) | ((off / SHMQ__CACHELINE) << TAG_BITS) | tag;
}

static inline size_t pool_hdr_size(unsigned nworkers)
{
	return sizeof(struct pool_hdr) + (size_t)nworkers * sizeof(struct pool_slot);
}

static inline size_t pool_area_size(void)
{
	return shmq__deque_footprint(POOL_DEQUE_CAP) +
	       (size_t)POOL_FRAMES * sizeof(struct pool_frame);
}

#endif /* SHMQ_POOL_LAYOUT_INT_H */
