/* SPDX-License-Identifier: MIT */
/*
 * Private: layer 2, the MPMC slot ring on raw memory.
 *
 * A bounded multi-producer multi-consumer ring of fixed-size slots (Vyukov's
 * bounded queue, with the claim moved from the index onto the slot so that
 * every claim names its claimer).  Each slot carries one control word (ctl)
 * and one message of at most max_msg bytes.  The ring lives in memory the
 * caller provides (shmq__mpmc_footprint + shmq__mpmc_init) and is reached
 * through a process-private handle (shmq__mpmc_attach), which keeps its own
 * verified copy of the geometry: nothing that decides an address is ever
 * re-read from shared memory.
 *
 * Layout:  [struct shmq__mpmc_shared: 7 lines][slot 0][slot 1]...[slot cap-1]
 *          [u64 claim 0][claim 1]...[claim cap-1] rounded up to 64
 * slot:    { u64 ctl; u32 len; u32 pad; u8 data[max_msg] } rounded up to 64.
 * cap is exactly the capacity asked for (1 .. SHMQ__MPMC_CAP_MAX): a ring of
 * cap slots holds cap messages, no more.
 *
 * Positions.  head and tail are free-running 64-bit positions: tail is the
 * next position producers claim, head the next one consumers claim.
 * Position p lives in slot p % cap during lap p / cap (a shift and a mask
 * when cap is a power of two, a division otherwise; the handle says which).
 * The protocol below needs only that p and p + cap share a slot and that
 * p + cap's lap is p's plus one, which both forms give.  At 10^9 messages
 * per second a 64-bit position wraps after 584 years, so head and tail never
 * wrap in practice and every CAS on them compares full positions (no ABA).
 * That matters more for a capacity that is not a power of two: cap does not
 * divide 2^64, so p % cap and p / cap jump where p wraps (2^64 - 1 is in
 * slot (2^64 - 1) % cap, 0 in slot 0) and a ring that reached 2^64 would
 * break.  It cannot: positions start at 0 (init) and move only by one per
 * claim (index_advance), so they reach 2^64 only after 2^64 claims.  An
 * index overwritten with a value near 2^64 is corrupt memory like any other
 * bad index: its slot is still inside the ring (p % cap < cap, from the
 * handle's copy of cap), and the laps found there are judged as for any
 * overwritten index (-EBADMSG for states no index can meet; garbage in,
 * garbage out otherwise), never an access outside the ring.  For a
 * power-of-two capacity an index set near 2^64 is no corruption: slot and
 * lap go on across the wrap, so every range check on a position is taken
 * modulo 2^64 (a held position is 1 .. capacity + 2 behind head, and the
 * scans behind head start at head - capacity - 2 even across 0).
 * The slot's ctl stores only the low 30 bits of the lap;
 * laps are compared by their signed 30-bit difference, which is exact while
 * no thread acts on a position it read 2^29 laps (>= 2^29 messages) earlier,
 * and even then the decisive CAS on head or tail compares full positions.
 *
 * ctl = owner (31 bits) << 33 | hold (1 bit) << 32 | lap (30 bits) << 2 |
 * state (2 bits); the code reads hold and state as one 3-bit state:
 *
 *   EMPTY(L)           writable for lap L                    owner 0, or
 *                      the producer of lap L - 1 whose claim ended
 *                      unpublished (skipped after its death, or
 *                      withdrawn by put_abort): see shmq__mpmc_put_fate
 *   WRITING(L, p)      claimed by producer p, being filled: ctl EMPTY(L)
 *                      and the slot's claim word CLAIMED(L, p) (Protocol
 *                      PUT_CLAIM below; ctl's own WRITING state is no
 *                      longer written, and read as before where met)
 *   FULL(L, p)         published by p, readable
 *   READING(L, c)      claimed by consumer c, being copied out
 *   HELD(L, c)         claimed by consumer c through a two-phase get
 *                      (READING with the hold bit): read in place
 *   RETURNED(L)        a HELD message given back (abort, or its holder
 *                      died): to be handed out again   owner 0
 *
 * One lap of a slot:  EMPTY(L) -> WRITING(L,p) -> FULL(L,p) -> READING(L,c)
 * -> EMPTY(L+1).  Two-phase:  FULL(L,p) -> HELD(L,c) -> EMPTY(L+1) (commit),
 * or HELD(L,c) -> RETURNED(L) (abort, dead holder) -> HELD(L,c') or
 * READING(L,c') -> ...  A slot stays at lap L while HELD or RETURNED, so
 * the producer of position p + cap waits for it (put_full): the ring never
 * overwrites a message that may still be delivered.  Claims are CASes (a producer's on the slot's claim word, a
 * consumer's on ctl) that write the claimer's owner id in the same atomic
 * step, so a claim is never anonymous.  head and tail
 * advance after the claim, by the claimer or by any peer that finds the slot
 * at the index already claimed ("helping"), so neither index ever waits for a
 * claimer: each lags its slots by at most one position.
 *
 * Redelivery.  head has passed a RETURNED slot, so a get cannot find it at
 * head: the shared count redo (head's line) says how many RETURNED slots may
 * exist, and while it is not zero every get first scans the positions
 * [head - cap - 2, head) in order and takes the first RETURNED one (redo_take).
 * So given-back messages go out before newer ones, lowest position first.
 * redo is raised after a slot becomes RETURNED and lowered after one is
 * taken; a claimer that dies between the two leaves it too high, and a scan
 * that finds nothing sets it back to 0 by a CAS from the value it read before
 * the scan (a slot returned meanwhile raised it after it was marked, so that
 * CAS fails or the slot's own increment follows).
 * The count can also end up too low, with a RETURNED slot nobody scans for:
 * a giver killed between its mark and its increment, and that clearing CAS
 * when the count came back to the value read before the scan (a slot taken
 * and given back again behind the scan: 1 -> 0 -> 1, and the CAS wipes the
 * new increment).  Two looks repair it: a producer that the slot blocks
 * (tail reached p + cap) counts it again (shmq__mpmc_recover), and the
 * audit (shmq__mpmc_audit, chan/queue.c), which a getter runs every slice
 * while it is blocked, so a drained ring gives it out too.  Until then it
 * waits, and newer messages may go out before it.
 * Positions below
 * head - cap - 2 cannot be HELD or RETURNED: such a slot blocks the producer
 * of p + cap, so tail <= p + cap, and head <= tail + 2.
 *
 * Dead holders.  Nothing counts the HELD slots (a count would cost a
 * two-phase get two more locked operations on head's line), so a dead
 * holder's slot is found by looking, three ways, each bounded: a producer
 * that the slot blocks (tail reached p + cap) checks its owner
 * (shmq__mpmc_recover); the audit (shmq__mpmc_audit) looks at up to
 * SHMQ__MPMC_AUDIT_SPAN positions behind head, going on where its last
 * look stopped, and returns the HELD slots of dead owners, once a slice
 * per handle in a blocked getter (a drained ring) and in get_begin (a
 * busy one; chan/queue.c).  So a dead holder's message goes out again
 * within a slice of its death (ceil((cap + 2) / SPAN) slices for larger
 * rings), or once producers lap its slot, whichever comes first; newer
 * messages may go out before it meanwhile.
 *
 * Protocol PUT_CLAIM (layout 7).  A producer's claim is a CAS on the
 * slot's claim word, a u64 of its own in an array after the slots:
 * claim = owner (32 bits) << 32 | lap (30 bits) << 2 | 1, 0 before the
 * slot's first claim.  It takes EMPTY(L) at ctl for lap L by moving the
 * claim word from an older lap (or 0) to CLAIMED(L, self), so a claim
 * still names its claimer in one atomic step, but on a line that only
 * producers write: the consumer right behind the producer polls ctl, and
 * the producer no longer has to take that line away from it to claim and
 * then again to publish (layout 6 wrote WRITING into ctl; its producers
 * spent most of a put waiting for the slot's line, README).  The lap rule
 * keeps a claim from a stale view off a newer lap's word: a word of a
 * later lap than L means the tail moved on (retry with a fresh tail).
 * While ctl is EMPTY(L) its claim word says whether lap L is claimed; the
 * consumer's fast path never reads it (a get at EMPTY returns -EAGAIN as
 * before), only the cold paths do: the -EPIPE decision after shutdown, the
 * sleepers' readable() after shutdown, shmq__mpmc_recover, put_fate,
 * slot_live and block_at.  A claim word never moves back: CLAIMED(L)
 * stays until lap L + 1 is claimed, which needs ctl EMPTY(L + 1), which
 * needs lap L's claim to end (published, skipped or withdrawn), so ctl
 * EMPTY(L) with CLAIMED(L) means exactly "claimed, not yet published".
 *
 * Recovery.  A claim whose owner died is cleared by whoever waits behind it
 * (shmq__mpmc_recover): WRITING(L, dead) -> EMPTY(L+1, dead) (a CAS on
 * ctl from the EMPTY(L) its claim word named dead), the slot is
 * skipped and nothing committed is lost (that put never returned); the
 * owner it keeps tells a skip from a consumption (shmq__mpmc_put_fate); READING(L, dead)
 * -> EMPTY(L+1), the message the dead consumer had taken is gone with it
 * (a plain get is at most once on death); HELD(L, dead) -> RETURNED(L): a
 * two-phase get is at least once.  shmq__mpmc_reap_held looks for dead
 * holders in the whole window behind head on its own (a waiter calls it
 * after it recovered one: the dead process likely held more).
 *
 * Invariants a reader may check: -2 <= tail - head <= cap + 2 at any instant
 * (each index lags by at most one; the margin absorbs the lag); a FULL slot's
 * len <= max_msg.  A violated invariant means the memory was overwritten:
 * -EBADMSG.
 */
#ifndef SHMQ__MPMC_H
#define SHMQ__MPMC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/wait_int.h"

#define SHMQ__MPMC_MAGIC   0x434d504du /* "MPMC" */
/* Layout versions.  2: line 6, sleep and wake statistics; the capacity is a
 * power of two.  3: the same layout, any capacity (slot p % cap, lap p / cap,
 * see Positions).  For a power of two both read the same, so init writes 2
 * for those (libraries that know only 2 keep opening them) and 3 otherwise
 * (those libraries then refuse with -EPROTO instead of misreading it or
 * calling it corrupt); attach takes 3, and 2 with a power of two. */
#define SHMQ__MPMC_VERSION_POW2 2u
/* 4: the hold bit (ctl bit 32, laps of 30 bits), redo, incarnation and
 * flags.  Written for every capacity; 2 and 3 are refused (-EPROTO): their
 * 31-bit laps would be misread, and a library that knows no hold bit would
 * misread ours as a lap. */
#define SHMQ__MPMC_VERSION_HOLD 4u
/* 5: the sleep words' bit 0 is a wake-pending bit and watchers count in
 * their own words (data_watchers, space_watchers): a version-4 sleeper would
 * sleep on a pending word without clearing it, and a version-4 watch would
 * count as a sleeper that never clears it.  Also flags (line 0) is read: SHMQ_QUEUE_JOINABLE
 * puts the queue's join table after the slots (chan/queue_int.h); and large
 * slots (len with SHMQ__MPMC_LEN_LARGE, see Large slots) with the queue
 * layer's large-heap anchor on line 0.  4 is refused (-EPROTO): its
 * libraries keep no pending bit and no join table, would
 * call a large slot's len corrupt, and never wrote the anchor. */
#define SHMQ__MPMC_VERSION_PENDING 5u
/* 6: publications (FULL, a freed slot) are release stores, and sleepers
 * and watchers fence remotely (chan/queue.c, Protocol WAKE_PENDING;
 * core/wait_int.h, Asymmetric fences and Protocol FENCED, with the fence
 * words data_fence and space_fence in lines 3 and 4).  5 is refused
 * (-EPROTO): its sleepers run no fence and would miss the wakes of our
 * publishers. */
#define SHMQ__MPMC_VERSION_FENCED 6u
/* 7: Protocol PUT_CLAIM: producers claim through the claim words after the
 * slots (the footprint grows by 8 bytes a slot, rounded to a line), ctl
 * stays EMPTY while a put fills its slot.  6 is refused (-EPROTO): its
 * producers would claim by WRITING in ctl, unseen by ours, and its
 * consumers would take our claimed EMPTY slots for unclaimed ones. */
#define SHMQ__MPMC_VERSION 7u
#define SHMQ__MPMC_CAP_MAX (1u << 24)  /* slots */
#define SHMQ__MPMC_MSG_MAX (1u << 24)  /* bytes per message */
#define SHMQ__MPMC_SLOT_HDR 16u        /* ctl + len + pad */
/* Large slots.  A slot whose len has this bit set carries no message but a
 * descriptor the layer above wrote (chan/queue_int.h, Protocol QLARGE) of
 * len & ~SHMQ__MPMC_LEN_LARGE bytes (8 .. the slot's data bytes), whose
 * first u64 is the real message length.  The ring only routes them: a plain
 * get (try_get, get_claim) leaves one queued with -E2BIG, get_claim_large
 * and hold_claim take it when its real length fits their cap. */
#define SHMQ__MPMC_LEN_LARGE (UINT32_C(1) << 31)

/* Who owns claims: region owner ids, or plain pids (placement without a region). */
enum shmq__mpmc_owner_kind {
	SHMQ__MPMC_OWNER_REGION = 1,
	SHMQ__MPMC_OWNER_PID = 2,
};

/* The control block, in shared memory. */
struct shmq__mpmc_shared {
	/* line 0: geometry, written once by init; attach verifies and copies it */
	uint32_t magic;
	uint32_t version;
	uint32_t capacity;   /* slots: the messages the ring holds */
	uint32_t max_msg;    /* bytes per message */
	uint32_t slot_size;  /* bytes per slot, a multiple of 64 */
	uint32_t owner_kind; /* enum shmq__mpmc_owner_kind */
	uint64_t footprint;  /* bytes of control block + slots */
	uint64_t incarnation; /* random, set at create (the queue's, see chan/queue_int.h) */
	uint32_t flags;      /* the queue's SHMQ_QUEUE_* create flags */
	uint32_t pad0a;
	/* the queue layer's: region offset of its first large-message chunk,
	 * 0 until one is made (chan/queue_int.h, Protocol QLARGE); written
	 * once by a CAS, never by the ring */
	uint64_t large;
	uint8_t pad0[8];
	/* line 1: producers */
	uint64_t tail;       /* next position to claim for a put */
	uint8_t pad1[56];
	/* line 2: consumers */
	uint64_t head;       /* next position to claim for a get */
	uint64_t redo;       /* RETURNED slots that may exist (see Redelivery) */
	uint8_t pad2[48];
	/* line 3: consumers sleep here; producers bump it when data_sleepers
	 * or data_watchers != 0.  Bit 0 of the word is the wake-pending bit of
	 * the queue's Protocol WAKE_PENDING (chan/queue.c) */
	uint32_t data_word;
	uint32_t data_sleepers;  /* blocking getters (the pending-bit protocol) */
	uint32_t data_watchers;  /* scheduler and waitset watches (woken by every put) */
	uint32_t data_fence;     /* Protocol FENCED's word for both (core/wait_int.h) */
	uint8_t pad3[48];
	/* line 4: producers sleep here; consumers bump it when space_sleepers
	 * or space_watchers != 0 (bit 0 as above) */
	uint32_t space_word;
	uint32_t space_sleepers;
	uint32_t space_watchers;
	uint32_t space_fence;    /* as data_fence */
	uint8_t pad4[48];
	/* line 5: rarely written */
	uint32_t shut;       /* nonzero after shutdown: no more puts */
	uint32_t pad5;
	uint64_t skipped;    /* dead producers' claims skipped */
	uint64_t dropped;    /* dead consumers' claims released (messages lost with them) */
	uint64_t returned;   /* two-phase gets given back: aborts and dead holders */
	uint8_t pad6[32];
	/* line 6: statistics for `shmq stat`, bumped by the blocking layer
	 * (queue.c) only right before a futex system call (core/wait_int.h,
	 * shmq__count_event); puts and gets that neither sleep nor wake anybody
	 * never touch this line.  Free running. */
	uint64_t get_waits;  /* futex waits entered by consumers (data_word) */
	uint64_t put_waits;  /* futex waits entered by producers (space_word) */
	uint64_t get_wakes;  /* futex wakes issued on data_word */
	uint64_t put_wakes;  /* futex wakes issued on space_word */
	uint8_t pad7[32];
};
SHMQ__LINE_ALIGNED_FIELD(struct shmq__mpmc_shared, tail);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__mpmc_shared, head);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__mpmc_shared, data_word);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__mpmc_shared, space_word);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__mpmc_shared, shut);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__mpmc_shared, get_waits);
_Static_assert(offsetof(struct shmq__mpmc_shared, redo) / SHMQ__CACHELINE ==
	       offsetof(struct shmq__mpmc_shared, head) / SHMQ__CACHELINE, "redo shares head's line");
_Static_assert(sizeof(struct shmq__mpmc_shared) == 7 * SHMQ__CACHELINE, "mpmc control block");

struct shmq__mpmc_slot {
	uint64_t ctl;
	uint32_t len;
	uint32_t pad;
	uint8_t data[];
};
_Static_assert(sizeof(struct shmq__mpmc_slot) == SHMQ__MPMC_SLOT_HDR, "mpmc slot header");

/* Liveness of an owner id: 1 alive, 0 dead, -EBADMSG for an impossible id.
 * quick: make no system call; 1 then means "may be alive" (only the full
 * check, at most once a slice, may decide that a listed owner is dead). */
typedef int (*shmq__mpmc_alive_fn)(void *ctx, uint32_t id, bool quick);

/* The process-private handle: a verified copy of the geometry. */
struct shmq__mpmc {
	struct shmq__mpmc_shared *sh;
	uint8_t *slots;
	uint64_t *claims;          /* the claim words (Protocol PUT_CLAIM) */
	uint64_t mask;             /* capacity - 1; used when pow2 */
	uint32_t capacity;
	uint32_t cap_log2;         /* used when pow2 */
	bool pow2;                 /* capacity is a power of two: shift and mask */
	uint32_t slot_size;
	uint32_t max_msg;
	uint32_t self;             /* owner id written into our claims (nonzero) */
	uint32_t flags;            /* the queue's create flags, read once at attach */
	bool strong;               /* no remote fences: publish with seq_cst */
	shmq__mpmc_alive_fn alive;
	void *alive_ctx;
	/* shmq__mpmc_held_behind's cursor: the head of its last scan times 2,
	 * plus 1 when that scan found a hold (one word, so that threads
	 * sharing the handle replace the pair whole; relaxed, a hint) */
	uint64_t held_scan;
};

/* What a try call that returned -EAGAIN was blocked by: the slot at pos
 * and the ctl value it held.  Feed it to shmq__mpmc_recover. */
struct shmq__mpmc_block {
	uint64_t pos;
	uint64_t ctl;
};

/* Bytes needed for a ring of capacity slots (1 .. SHMQ__MPMC_CAP_MAX) of
 * max_msg bytes each; 0 if either is out of range. */
uint64_t shmq__mpmc_footprint(uint32_t capacity, uint32_t max_msg);

/* Lay a ring out in mem (size bytes, 64-byte aligned).  Single caller, before
 * anyone attaches.  -EINVAL for bad geometry or a too small size. */
int shmq__mpmc_init(void *mem, uint64_t size, uint32_t capacity, uint32_t max_msg,
		    uint32_t owner_kind);

/* Record the queue's create flags (SHMQ_QUEUE_*) in a ring just laid out by
 * shmq__mpmc_init, before anyone attaches.  attach copies them into the
 * handle; what they mean is the queue's business (chan/queue.c). */
void shmq__mpmc_set_flags(void *mem, uint32_t flags);

/* Verify the geometry in mem against size and fill the handle m.
 * -EBADMSG for an inconsistent control block, -EPROTO for another version,
 * -EINVAL when owner_kind differs from the one the ring was made for. */
int shmq__mpmc_attach(struct shmq__mpmc *m, void *mem, uint64_t size, uint32_t owner_kind,
		      uint32_t self, shmq__mpmc_alive_fn alive, void *alive_ctx);

/*
 * Non-blocking calls; any number of threads and processes at once.
 *
 * try_put: 0, -EAGAIN (full; *blk says which slot blocks), -EMSGSIZE (len >
 * max_msg), -EPIPE (shut down), -EBADMSG.
 * try_get: the message length, -EAGAIN (nothing published at head; *blk),
 * -EMSGSIZE (the next message is longer than cap; it stays queued), -E2BIG (a large slot is next: it stays,
 * see Large slots), -EPIPE (shut down and drained), -EBADMSG.
 */
int shmq__mpmc_try_put(struct shmq__mpmc *m, const void *msg, size_t len,
		       struct shmq__mpmc_block *blk);
ssize_t shmq__mpmc_try_get(struct shmq__mpmc *m, void *buf, size_t cap,
			   struct shmq__mpmc_block *blk);

/* Zero-copy halves of a put, for the bulk calls: claim a slot (same returns
 * as try_put), fill shmq__mpmc_slot_data, then publish exactly once. */
int shmq__mpmc_put_claim(struct shmq__mpmc *m, uint64_t *pos, struct shmq__mpmc_block *blk);
static inline void *shmq__mpmc_slot_data(struct shmq__mpmc *m, uint64_t pos)
{
	/* inline: a get_begin's one look at its slot (the handle's verified
	 * geometry, as slot_at in ring/mpmc.c) */
	uint64_t i = m->pow2 ? pos & m->mask : pos % m->capacity;

	return m->slots + i * m->slot_size + sizeof(struct shmq__mpmc_slot);
}

/*
 * Copy a message of len bytes (msg may be NULL when len is 0) into the data
 * of the slot at data, claimed by the caller and not yet published.  The
 * first 8 bytes go in one atomic store (zero-padded: every slot has 48 bytes
 * of data at least): a consumer whose view of the slot is a lap old may read
 * that word as a large slot's length (ring/mpmc.c, len_refuse) while we
 * write it, and drops what it read once it sees the slot moved on; the
 * store keeps that read from racing with a plain write.  The rest is a
 * plain copy, which no consumer reads before its claim.
 */
static SHMQ__ALWAYS_INLINE void shmq__mpmc_slot_fill(void *data, const void *msg, size_t len)
{
	uint64_t first = 0;

	/* a copy of constant size for the common case: one load, no call */
	if (SHMQ__LIKELY(len >= sizeof(first)))
		__builtin_memcpy(&first, msg, sizeof(first));
	else if (len)
		__builtin_memcpy(&first, msg, len);
	/* relaxed: published by put_publish's release of FULL; a stale
	 * consumer's relaxed load of it (len_refuse) is checked by ctl_unchanged */
	shmq__store_relaxed((uint64_t *)data, first);
	if (len > sizeof(first))
		__builtin_memcpy((uint8_t *)data + sizeof(first), (const uint8_t *)msg + sizeof(first),
				 len - sizeof(first));
}
/* order_sc: a sleeper check follows (chan/queue.c, Protocol WAKE_PENDING):
 * publish with a release store and a compiler barrier, or with a seq_cst
 * store when the handle is strong (core/wait_int.h, Asymmetric fences).
 * Otherwise release, and the caller fences once afterwards
 * (shmq__mpmc_publish_fence). */
void shmq__mpmc_put_publish(struct shmq__mpmc *m, uint64_t pos, uint32_t len, bool order_sc);

/* After a batch of publications made without order_sc, before the sleeper
 * check: a seq_cst fence when the handle is strong, else a compiler
 * barrier (the sleepers' remote fences supply the CPU half). */
static inline void shmq__mpmc_publish_fence(const struct shmq__mpmc *m)
{
	if (m->strong)
		shmq__fence_seq_cst();
	else
		shmq__signal_fence();
}

/* Zero-copy halves of a get: claim the message at head (*len gets its length;
 * same returns as try_get), read it at shmq__mpmc_slot_data, then release. */
int shmq__mpmc_get_claim(struct shmq__mpmc *m, size_t cap, uint64_t *pos, uint32_t *len,
			 struct shmq__mpmc_block *blk);

/* As get_claim, but a large slot whose real length fits cap is claimed too
 * (*len then has SHMQ__MPMC_LEN_LARGE); a longer one stays, -EMSGSIZE
 * with *len set to its length (UINT32_MAX when longer). */
int shmq__mpmc_get_claim_large(struct shmq__mpmc *m, size_t cap, uint64_t *pos, uint32_t *len,
			       struct shmq__mpmc_block *blk);
/* The len word of the slot at pos, for its claimer (a large flag, and the
 * descriptor's bytes, are checked by the caller). */
uint32_t shmq__mpmc_slot_len(struct shmq__mpmc *m, uint64_t pos);
/* Does the slot of pos still carry position pos (its lap, any state but
 * unclaimed EMPTY: claimed by a producer, published, or claimed by a consumer)?
 * A seq_cst snapshot for Protocol QLARGE's sweep. */
bool shmq__mpmc_slot_live(struct shmq__mpmc *m, uint64_t pos);

/*
 * Two-phase get.  hold_claim: as get_claim (RETURNED slots first, in
 * position order), but the slot becomes HELD by us and stays so until
 * hold_end; its data stays in place at shmq__mpmc_slot_data.  hold_end:
 * commit (the slot is freed, EMPTY of the next lap) or give it back
 * (RETURNED); -EINVAL, changing nothing, unless pos is HELD by our owner id
 * (never claimed, ended already, or another owner's).  Any thread; the
 * owner id is per process, so any thread of the holder may end a hold.
 */
int shmq__mpmc_hold_claim(struct shmq__mpmc *m, uint64_t *pos, uint32_t *len,
			  struct shmq__mpmc_block *blk);
int shmq__mpmc_hold_end(struct shmq__mpmc *m, uint64_t pos, bool commit);
/* hold_end's commit for a slot-sized message, in one call: -E2BIG, changing
 * nothing, when our held slot is large (the layer above frees its block,
 * then calls hold_end); otherwise as hold_end. */
int shmq__mpmc_hold_commit(struct shmq__mpmc *m, uint64_t pos);

/* Turn the HELD slots behind head whose owner is dead (full liveness check)
 * into RETURNED ones.  The number returned, or -EBADMSG for an owner no
 * claimer can have. */
int shmq__mpmc_reap_held(struct shmq__mpmc *m);

/* The look for what no get would find at head (see Redelivery and Dead
 * holders): a RETURNED slot that redo does not count, and HELD slots whose
 * owner is dead (full liveness check, once per owner), which it turns into
 * RETURNED ones.  At most SHMQ__MPMC_AUDIT_SPAN positions of the window
 * behind head, the newest first: those below head - *from (0, or outside
 * the window: below head); *from gets how far below head the next audit
 * goes on (0 once it reached the window's start).  1 when it made
 * something takable (redo went from 0 to 1, or a dead holder's slot was
 * returned: wake the getters), 0, or -EBADMSG for an owner no claimer can
 * have. */
#define SHMQ__MPMC_AUDIT_SPAN 1024u
int shmq__mpmc_audit(struct shmq__mpmc *m, uint64_t *from);
void shmq__mpmc_get_release(struct shmq__mpmc *m, uint64_t pos, bool order_sc);

/* Is a two-phase get open behind head (a HELD or RETURNED slot among the
 * last min(capacity + 2, SHMQ__MPMC_AUDIT_SPAN) positions)?  Relaxed
 * loads, a hint: a watcher that finds the get side blocked keeps looking
 * (the audit, each slice) while a holder may still die unannounced.
 * Incremental: a slot behind head gets the hold bit only at its claim,
 * made at head (or from a RETURNED slot, which has it already), so after
 * a scan that found none only the positions head passed since can hold
 * one; a watcher's look costs the gets since its last, not the span. */
bool shmq__mpmc_held_behind(struct shmq__mpmc *m);

/* The slots behind head (positions [head - capacity - 2, head)) still in
 * use: HELD or RETURNED ones and READING ones of a live owner add to
 * *busy, READING ones of a dead owner to *dead (quick: the liveness look
 * without a system call, see shmq__mpmc_recover).  0, or -EBADMSG for an
 * owner no claimer can have.  For a joiner (chan/queue_join.c). */
int shmq__mpmc_behind_head(struct shmq__mpmc *m, uint64_t head, bool quick, uint64_t *busy,
			   uint64_t *dead);

/*
 * If blk names a WRITING or READING claim whose owner is dead, clear the
 * claim (see Recovery above).  A blk of EMPTY at its position's lap (what a
 * get blocked there reports) is looked up in the slot's claim word: a
 * producer's claim not yet published (Protocol PUT_CLAIM).  1 recovered, 0 nothing to do (the owner
 * lives, or the slot moved on), -EBADMSG for an owner no claimer can have
 * (zero, or an id the owner kind never issues).  quick: the look a waiter
 * takes the first time a claim blocks it: no system call, so only an owner
 * that is surely gone (for region owners: no longer in the process table)
 * is recovered; a waiter that stayed blocked by the same claim for a sleep
 * slice calls it again with quick false, the full liveness check.
 */
int shmq__mpmc_recover(struct shmq__mpmc *m, const struct shmq__mpmc_block *blk, bool quick);

/*
 * What became of position pos, claimed for a put by a producer that may have
 * died since (libshmq-bridge's exactly-once IN, chan/queue_int.h):
 * 1 published (readable, being read or held, or consumed), 0 never
 * published (the claim was skipped after its producer died, withdrawn at a
 * shutdown, or is still WRITING by a dead owner: a dead producer never
 * publishes), -EAGAIN WRITING by a live owner (it may still publish),
 * -ESTALE undecidable (the slot's next lap was claimed since, so the slot no
 * longer says), -EBADMSG for a state no claimed position can meet (the slot
 * never reached pos's lap, or an impossible owner).  Exact while pos's slot
 * is at pos's lap or EMPTY of the next one: a consumed slot is EMPTY with
 * owner 0, a skipped or withdrawn one EMPTY naming its producer (Recovery,
 * put_abort), each written in the one atomic step that ends the lap.
 */
int shmq__mpmc_put_fate(struct shmq__mpmc *m, uint64_t pos);

/*
 * Sleeper re-checks, with seq_cst loads, after the caller counted itself in
 * and ran its remote fence (the Dekker handshake with the publications and
 * the sleeper counts, chan/queue.c):
 * would a get (put) not block right now?  True also after shutdown (but a
 * get stays blocked by a put claimed at head before the shutdown, until it
 * is published or recovered), and when an index lags (the caller retries
 * and learns more).
 */
bool shmq__mpmc_readable(struct shmq__mpmc *m);
bool shmq__mpmc_writable(struct shmq__mpmc *m);

/* The slot a get (tail false) or a put (tail true) would claim next, as a
 * block for shmq__mpmc_recover: what a watcher that found the side blocked
 * hands it at its liveness re-check. */
void shmq__mpmc_block_at(struct shmq__mpmc *m, bool tail, struct shmq__mpmc_block *blk);

/* Messages queued: tail - head clamped to [0, capacity].  Any thread. */
size_t shmq__mpmc_len(const struct shmq__mpmc *m);

/* -EBADMSG if head and tail violate the lag invariant, else 0. */
int shmq__mpmc_check(const struct shmq__mpmc *m);

/* Stop puts (idempotent).  Returns 0. */
int shmq__mpmc_shutdown(struct shmq__mpmc *m);
bool shmq__mpmc_is_shut(const struct shmq__mpmc *m);

#endif /* SHMQ__MPMC_H */
