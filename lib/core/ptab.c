/* SPDX-License-Identifier: MIT */
/*
 * Layer 3, regions: the process table.  Who is attached to a region (one
 * slot per attachment: pid, claim generation, start time), and from it every
 * liveness answer the library gives about an owner id: _valid (arithmetic
 * only, core/region_int.h), _listed (one load), _maybe_alive (one kill(2)),
 * _alive (a /proc read), and _ours (two loads: another region open of this
 * process).  The slot's bytes: core/region_layout_int.h.
 *
 * Invariants: a slot's word changes only by CAS; a claim bumps gen (never 0)
 * so a stale id never matches a reused slot; only the attachment that
 * claimed a slot (same gen, same pid) releases it, and a slot whose process
 * is dead may be reclaimed by anyone.  The start time and the pidns record
 * are written only by the slot's holder: the claimer whose CAS took the word
 * (a claim under way holds it under a free word that names its pid), never
 * by one that read the word before and lost it (slot_take).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/cancel_int.h"
#include "core/fd_int.h"
#include "core/ptab_int.h"
#include "core/region_int.h"
#include "core/region_layout_int.h"

#define GEN_MASK ((1u << SHMQ__ID_GEN_BITS) - 1)

/* the test seam of core/ptab_int.h: NULL unless a test sets it */
void (*shmq__ptab_fault)(unsigned slot);

_Static_assert(SHMQ__PTAB_SLOTS <= 1u << SHMQ__ID_SLOT_BITS, "an owner id names every slot");
_Static_assert(SHMQ__ID_SLOT_BITS + SHMQ__ID_GEN_BITS == 31, "owner ids stay below 2^31");

static struct shmq__ptab_slot *slot_of(const shmq_region *r, unsigned i)
{
	return (struct shmq__ptab_slot *)(r->base + r->ptab_off) + i;
}

/* ---- process liveness ---- */

/* What /proc/PID/stat says of a process. */
struct proc_stat {
	char state;         /* field 3 */
	long threads;       /* field 20: threads in its thread group */
	uint64_t starttime; /* field 22: clock ticks after boot */
};

static int proc_stat_read(pid_t pid, struct proc_stat *ps)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd, cs;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	/* no cancellation point: the waits that look here (a pipe's peer, a
	 * lock's holder) are none, and a cancel at the read would leak fd */
	cs = shmq__cancel_off();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		shmq__cancel_restore(cs);
		return -errno;
	}
	do {
		n = read(fd, buf, sizeof(buf) - 1);
	} while (n < 0 && errno == EINTR);
	close(fd);
	shmq__cancel_restore(cs);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (!p || p[1] != ' ' || !p[2])
		return -EIO;
	ps->state = p[2];
	p += 3; /* the space before field 4 */
	/* step to the start of field 22: each step passes one space */
	for (int field = 4; field <= 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EIO;
		p++;
		if (field == 20)
			ps->threads = strtol(p, NULL, 10);
	}
	ps->starttime = strtoull(p, NULL, 10);
	return 0;
}

uint64_t shmq__pid_starttime(pid_t pid)
{
	struct proc_stat ps;

	if (proc_stat_read(pid, &ps))
		return 0;
	return ps.starttime;
}

uint32_t shmq__pidns_self(void)
{
	struct stat st;

	return stat("/proc/self/ns/pid", &st) == 0 ? (uint32_t)st.st_ino : 0;
}

/* Does a slot's pidns record say that the claim of slot word w belongs to
 * a process of a pid namespace other than self (ours)?  Its pid then names
 * nobody here (or somebody else), so no check of it can say the process
 * died: it counts as alive.  Only a record of the claim w names counts;
 * without one (an older library, a claim still under way, /proc silent on
 * either side) the pid is judged as before. */
static bool pidns_foreign(uint64_t rec, uint64_t w, uint32_t self)
{
	uint32_t ns = (uint32_t)(rec >> 32);

	return self && ns && ns != self && (uint32_t)rec == ((uint32_t)(w >> 1) & GEN_MASK);
}

/* pidns_foreign for slot s, whose word is w, seen from r. */
static bool slot_foreign(const shmq_region *r, const struct shmq__ptab_slot *s, uint64_t w)
{
	/* relaxed: the record checks itself (its gen must be the word's),
	 * nothing else is read through it; pairs with the relaxed store in
	 * slot_record */
	return pidns_foreign(shmq__load_relaxed(&s->pidns), w, r->pidns);
}

/*
 * Pidfds of processes whose start time was found as recorded.  A waiter
 * checks its peers once per slice (a blocked pipe receive every 10 ms), and
 * each check read /proc/PID/stat, which the kernel formats at each open:
 * some 100 µs of CPU here, 1% of a core per blocked receiver.  A process
 * found alive with its recorded start time gets a pidfd, and later looks
 * at it cost an fstat(2) and a poll(2): POLLIN once its thread group has
 * exited (a zombie too), as the /proc check judges it.
 *
 * The descriptors are the library's, close-on-exec, above 2, at most
 * PIDFD_CACHE of them, the least recently used given up for a new one.
 * A program may still close one (closing every descriptor it does not know
 * of), and its number may then name another file: each look first checks
 * that the number still names that pidfd (the device and inode of pidfs,
 * where every process has its own inode), and an entry that fails is
 * dropped without a close, the number no longer ours.  On kernels without
 * pidfs (before 6.9, one inode for every pidfd) nothing is cached.  The
 * lock is only ever tried: a thread that finds it held, or a child forked
 * while another thread held it, reads /proc as before.
 */
#define PIDFD_CACHE 16
#ifndef PIDFS_MAGIC
#define PIDFS_MAGIC 0x50494446
#endif

struct pidfd_entry {
	pid_t pid;          /* 0: free */
	int fd;
	uint64_t starttime;
	dev_t dev;
	ino_t ino;
	uint64_t used;      /* pidfd_tick at the last look: the LRU order */
};

static struct pidfd_entry pidfd_cache[PIDFD_CACHE];
static pthread_mutex_t pidfd_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t pidfd_tick;
static bool pidfd_off; /* no pidfs here: nothing to cache (under pidfd_mu) */

/* The entry's number still names its pidfd? */
static bool pidfd_entry_ours(const struct pidfd_entry *e)
{
	struct stat st;

	return fstat(e->fd, &st) == 0 && st.st_dev == e->dev && st.st_ino == e->ino;
}

/* 1 alive, 0 gone, -1 not known here (no entry, the lock held, the entry
 * lost): the caller reads /proc. */
static int pidfd_cached_alive(pid_t pid, uint64_t starttime)
{
	int rc = -1, cs;

	if (pthread_mutex_trylock(&pidfd_mu))
		return -1;
	/* no cancellation point (poll, close): the waits that look here are
	 * none, and a cancel would leave the lock held */
	cs = shmq__cancel_off();
	for (unsigned i = 0; i < PIDFD_CACHE; i++) {
		struct pidfd_entry *e = &pidfd_cache[i];
		struct pollfd pfd;
		int n;

		if (e->pid != pid || e->starttime != starttime)
			continue;
		if (!pidfd_entry_ours(e)) {
			e->pid = 0; /* closed behind our back: the number is not ours to close */
			break;
		}
		pfd.fd = e->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, 0);
		if (n == 0) {
			e->used = ++pidfd_tick;
			rc = 1;
		} else if (n == 1 && (pfd.revents & POLLIN)) {
			close(e->fd);
			e->pid = 0;
			rc = 0;
		}
		break;
	}
	shmq__cancel_restore(cs);
	pthread_mutex_unlock(&pidfd_mu);
	return rc;
}

/* pid runs with starttime (just read): keep a pidfd for it. */
static void pidfd_cache_add(pid_t pid, uint64_t starttime)
{
	struct pidfd_entry *e = NULL;
	struct proc_stat ps;
	struct statfs sf;
	struct stat st;
	int fd, cs;

	if (pthread_mutex_trylock(&pidfd_mu))
		return;
	cs = shmq__cancel_off(); /* as in pidfd_cached_alive (close) */
	if (pidfd_off)
		goto out;
	for (unsigned i = 0; i < PIDFD_CACHE; i++) {
		struct pidfd_entry *c = &pidfd_cache[i];

		if (c->pid == pid && c->starttime == starttime)
			goto out; /* another thread added it */
		if (!e || c->pid == 0 || (e->pid != 0 && c->used < e->used))
			e = c;
	}
	fd = shmq__fd_high((int)syscall(SYS_pidfd_open, pid, 0));
	if (fd < 0)
		goto out;
	if (fstatfs(fd, &sf) != 0 || (unsigned long)sf.f_type != PIDFS_MAGIC) {
		pidfd_off = true;
		close(fd);
		goto out;
	}
	/* the pid may have been reused between the caller's read and our
	 * open: the pidfd names the process whose start time is read now */
	if (fstat(fd, &st) != 0 || proc_stat_read(pid, &ps) || ps.starttime != starttime) {
		close(fd);
		goto out;
	}
	if (e->pid != 0 && pidfd_entry_ours(e))
		close(e->fd);
	e->pid = pid;
	e->fd = fd;
	e->starttime = starttime;
	e->dev = st.st_dev;
	e->ino = st.st_ino;
	e->used = ++pidfd_tick;
out:
	shmq__cancel_restore(cs);
	pthread_mutex_unlock(&pidfd_mu);
}

int shmq__pid_alive(pid_t pid, uint64_t starttime)
{
	struct proc_stat ps;
	int rc;

	if (pid <= 0)
		return 0;
	if (starttime) {
		rc = pidfd_cached_alive(pid, starttime);
		if (rc >= 0)
			return rc;
	}
	rc = proc_stat_read(pid, &ps);
	/* No entry: gone, or hidden (a /proc mounted hidepid=2 shows no other
	 * user's processes), which kill(2) tells apart.  No /proc at all, or
	 * no access: kill(2) alone too.  Either way pid reuse goes unseen. */
	if (rc)
		return kill(pid, 0) == 0 || errno == EPERM;
	/* A zombie is dead unless its thread group counts other threads: then
	 * its main thread returned through pthread_exit() and the process
	 * runs on (a dead process's zombie counts itself alone). */
	if (ps.state == 'X' || ps.state == 'x' || (ps.state == 'Z' && ps.threads <= 1))
		return 0;
	if (starttime == 0)
		return 1;
	if (ps.starttime != starttime)
		return 0;
	pidfd_cache_add(pid, starttime);
	return 1;
}

int shmq__pid_stalled(pid_t pid)
{
	struct proc_stat ps;

	if (pid <= 0 || proc_stat_read(pid, &ps))
		return 0;
	/* stopped by a signal or a tracer, or in uninterruptible sleep (a
	 * page fault the kernel is slow to serve) */
	return ps.state == 'T' || ps.state == 't' || ps.state == 'D';
}

int shmq__region_id_alive(const shmq_region *r, uint32_t id)
{
	unsigned slot = shmq__id_slot(id);
	uint32_t gen = id >> SHMQ__ID_SLOT_BITS;
	struct shmq__ptab_slot *s;
	uint64_t w, st;

	if (shmq__region_id_valid(r, id))
		return -EBADMSG;
	s = slot_of(r, slot);
	w = shmq__load_acquire(&s->word); /* pairs with the claim CAS in slot_take */
	if (!(w & 1) || ((w >> 1) & GEN_MASK) != gen)
		return 0;
	if (slot_foreign(r, s, w))
		return 1;
	st = shmq__load_acquire(&s->starttime); /* pairs with the release store in slot_take */
	return shmq__pid_alive((pid_t)(w >> 32), st);
}

/* The process-table word of a valid id's slot, or 0 when the slot does not
 * hold that generation attached. */
static uint64_t id_listed_word(const shmq_region *r, uint32_t id)
{
	/* pairs with the claim CAS in slot_take */
	uint64_t w = shmq__load_acquire(&slot_of(r, shmq__id_slot(id))->word);

	if (!(w & 1) || ((w >> 1) & GEN_MASK) != id >> SHMQ__ID_SLOT_BITS || (pid_t)(w >> 32) <= 0)
		return 0;
	return w;
}

int shmq__region_id_listed(const shmq_region *r, uint32_t id)
{
	if (shmq__region_id_valid(r, id))
		return -EBADMSG;
	return id_listed_word(r, id) != 0;
}

int shmq__region_id_maybe_alive(const shmq_region *r, uint32_t id)
{
	uint64_t w;

	if (shmq__region_id_valid(r, id))
		return -EBADMSG;
	w = id_listed_word(r, id);
	if (!w)
		return 0;
	if (slot_foreign(r, slot_of(r, shmq__id_slot(id)), w))
		return 1;
	return kill((pid_t)(w >> 32), 0) == 0 || errno != ESRCH;
}

int shmq__region_id_foreign(const shmq_region *r, uint32_t id)
{
	uint64_t w;

	if (shmq__region_id_valid(r, id))
		return -EBADMSG;
	w = id_listed_word(r, id);
	return w && slot_foreign(r, slot_of(r, shmq__id_slot(id)), w);
}

int shmq__region_id_ours(const shmq_region *r, uint32_t id)
{
	uint64_t w;

	if (shmq__region_id_valid(r, id))
		return -EBADMSG;
	if (id == r->self_id)
		return 1;
	w = id_listed_word(r, id);
	if (!w || (pid_t)(w >> 32) != r->pid ||
	    slot_foreign(r, slot_of(r, shmq__id_slot(id)), w))
		return 0;
	/* Our pid: ours unless a process that had it before us left the slot
	 * behind, whose start time differs (without /proc both are 0, and the
	 * pid alone decides).  Both were stored before the attachments they
	 * belong to were handed out; pairs with the release store of
	 * starttime in slot_take. */
	return shmq__load_acquire(&slot_of(r, shmq__id_slot(id))->starttime) ==
	       shmq__load_acquire(&slot_of(r, shmq__id_slot(r->self_id))->starttime);
}

/* A free word that names a pid: that process holds the slot while it claims
 * it (slot_take).  Every reader takes it for free, and no reader reads the
 * start time of a free slot. */
static bool word_claiming(uint64_t w)
{
	return !(w & 1) && (w >> 32) != 0;
}

/* A claim under way (word_claiming(w)) whose claimer died: its pidns record
 * for the claim's gen, written before it could be judged, names our pid
 * namespace, and its pid is gone.  Without that record, or with one of
 * another namespace, its pid tells us nothing: the claim counts as live. */
static bool claim_dead(const shmq_region *r, const struct shmq__ptab_slot *s, uint64_t w)
{
	/* relaxed: the record checks itself (its gen must be the word's);
	 * pairs with the relaxed store in slot_record */
	uint64_t rec = shmq__load_relaxed(&s->pidns);

	if ((uint32_t)rec != ((uint32_t)(w >> 1) & GEN_MASK) || (uint32_t)(rec >> 32) != r->pidns)
		return false;
	return !shmq__pid_alive((pid_t)(w >> 32), 0);
}

static bool ptab_word_dead(const shmq_region *r, uint64_t w, const struct shmq__ptab_slot *s)
{
	if (word_claiming(w))
		return claim_dead(r, s, w);
	if (!(w & 1))
		return true;
	if (slot_foreign(r, s, w))
		return false;
	/* pairs with the release store of starttime in slot_take */
	return !shmq__pid_alive((pid_t)(w >> 32), shmq__load_acquire(&s->starttime));
}

/* The pidns record of our claim gen of slot s (see slot_foreign). */
static void slot_record(const shmq_region *r, struct shmq__ptab_slot *s, uint32_t gen)
{
	/* relaxed: pairs with the relaxed loads in slot_foreign and claim_dead;
	 * the gen in it tells a reader whether it is ours yet */
	shmq__store_relaxed(&s->pidns, (uint64_t)r->pidns << 32 | gen);
}

/*
 * Move slot s from word w (free, a dead process's, or a dead claimer's) to
 * mine (pid, gen, used).  A reader that sees mine must never read the start
 * time of the slot's last owner with it (it would judge our pid by it: a
 * mismatch, dead), so that is cleared first, while the slot is still free to
 * every reader.  And only a claimer that holds the slot may clear it: a
 * claimer that read the slot free and then lost it to another would clear
 * the winner's start time (a CAS from the value it read does not stop it
 * when the winner's is the same: two threads of one process, two processes
 * started in one clock tick), and the winner's pid would go unjudged.  So
 * a slot whose start time needs clearing is first held (word_claiming):
 * one CAS from w makes one claimer its holder, which alone writes the start
 * time and the pidns record, then claims the word.  A slot with no start
 * time to clear (a fresh one: a creator's slot 0 among them) is claimed in
 * one CAS, and nothing is written to it by a claimer that lost it.  false:
 * somebody else took the slot first.
 */
static bool slot_take(shmq_region *r, struct shmq__ptab_slot *s, uint64_t w, uint64_t mine,
		      uint64_t st)
{
	/* relaxed: read after the caller's load_acquire of w; a start time
	 * stored after that follows a claim, which the CAS below then fails on */
	uint64_t old_st = shmq__load_relaxed(&s->starttime);
	uint64_t held = mine & ~(uint64_t)1;
	uint32_t gen = (uint32_t)(mine >> 1) & GEN_MASK;

	if (!(w & 1) && !old_st) {
		/* acq_rel: the acquire pairs with the cas_release in
		 * shmq__ptab_release, so the old owner's writes happen before
		 * ours; the release pairs with the load_acquire of the word in
		 * shmq__region_id_alive and id_listed_word, though pid and gen
		 * travel in the word itself (starttime follows, with its own
		 * release) */
		if (!shmq__cas_acq_rel(&s->word, &w, mine))
			return false;
		slot_record(r, s, gen);
	} else {
		/* acquire: pairs with the cas_release in shmq__ptab_release, as above */
		if (!shmq__cas_acquire(&s->word, &w, held))
			return false;
		/* relaxed: ordered before our claim by the release of the CAS
		 * below.  A CAS, not a store: a claimer of an older library
		 * does not know a held slot from a free one */
		old_st = shmq__load_relaxed(&s->starttime);
		if (old_st)
			shmq__cas_relaxed(&s->starttime, &old_st, 0);
		slot_record(r, s, gen);
		/* release: pairs with the load_acquire of the word in
		 * shmq__region_id_alive and id_listed_word: the cleared start
		 * time and our record come before the claim.  Fails when a
		 * claimer took our hold for a dead one's (claim_dead) */
		if (!shmq__cas_release(&s->word, &held, mine))
			return false;
	}
	/* relaxed: informational (shmq__region_ptab_get); nothing is decided on it */
	shmq__store_relaxed(&s->attached_ns, (uint64_t)shmq_now_ns());
	shmq__store_release(&s->starttime, st); /* pairs with shmq__region_id_alive's load_acquire */
	return true;
}

int shmq__ptab_claim(shmq_region *r)
{
	pid_t pid = getpid();
	uint64_t st = shmq__pid_starttime(pid);

	r->pidns = shmq__pidns_self();
	for (unsigned pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < r->ptab_slots; i++) {
			struct shmq__ptab_slot *s = slot_of(r, i);
			uint64_t w = shmq__load_acquire(&s->word); /* pairs with the CASes in slot_take */
			uint32_t gen;

			if (pass == 0 ? (w & 1) || word_claiming(w) : !ptab_word_dead(r, w, s))
				continue;
			if (shmq__ptab_fault)
				shmq__ptab_fault(i);
			gen = (((uint32_t)(w >> 1)) + 1) & GEN_MASK;
			if (gen == 0)
				gen = 1;
			if (!slot_take(r, s, w, (uint64_t)(uint32_t)pid << 32 | (uint64_t)gen << 1 | 1, st))
				continue;
			r->self_id = i | gen << SHMQ__ID_SLOT_BITS;
			r->pid = pid;
			return 0;
		}
	}
	return -ENOSPC;
}

void shmq__ptab_release(shmq_region *r)
{
	struct shmq__ptab_slot *s;
	uint64_t w;

	if (!r->self_id)
		return;
	s = slot_of(r, shmq__id_slot(r->self_id));
	/* pairs with the CAS in slot_take that last wrote the word:
	 * ours, or a reclaimer's that took us for dead (the checks below then
	 * fail and we leave its slot alone) */
	w = shmq__load_acquire(&s->word);
	if ((w & 1) && ((w >> 1) & GEN_MASK) == r->self_id >> SHMQ__ID_SLOT_BITS &&
	    (pid_t)(w >> 32) == r->pid)
		/* release: our writes to shared objects happen before the slot
		 * reads free; pairs with the acquiring CAS in slot_take of
		 * the next claimer */
		shmq__cas_release(&s->word, &w, w & ~(UINT64_C(0xffffffff) << 32 | 1));
	r->self_id = 0;
}

int shmq__region_ptab_get(const shmq_region *r, unsigned slot, struct shmq__ptab_entry *e)
{
	struct shmq__ptab_slot *s;
	uint64_t w;

	if (slot >= r->ptab_slots)
		return -EINVAL;
	s = slot_of(r, slot);
	w = shmq__load_acquire(&s->word); /* pairs with the claim CAS in slot_take */
	if (!(w & 1))
		return -ENOENT;
	e->pid = (pid_t)(w >> 32);
	e->gen = (uint32_t)(w >> 1) & GEN_MASK;
	/* pairs with the release store in slot_take */
	e->starttime = shmq__load_acquire(&s->starttime);
	e->attached_ns = shmq__load_relaxed(&s->attached_ns); /* informational */
	return 0;
}

unsigned shmq__ptab_count(const shmq_region *r)
{
	unsigned procs = 0;

	for (unsigned i = 0; i < r->ptab_slots; i++)
		/* relaxed: a statistic (shmq_region_info), stale when read */
		procs += (shmq__load_relaxed(&slot_of(r, i)->word) & 1) != 0;
	return procs;
}

/* ---- a creator that has not written the header yet ---- */

static int slot0_read(int fd, struct shmq__ptab_slot *s)
{
	ssize_t n = pread(fd, s, sizeof(*s), SHMQ__REGION_PTAB_OFF);

	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(*s) ? 0 : -EBADMSG;
}

/* Asked through a new open file description, so no lock of the caller's
 * (which a flock on fd itself would convert, and an unlock drop) is touched. */
int shmq__ptab_creator_locked(int fd)
{
	char path[64];
	int pfd, held, cs;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	/* no cancellation point: one at the close would leave pfd open, and
	 * its shared lock (which fails a replacer's) with it */
	cs = shmq__cancel_off();
	pfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pfd < 0) {
		shmq__cancel_restore(cs);
		return 1;
	}
	/* shared: probes do not exclude each other, only a holder of the
	 * exclusive lock (a creator, or a replacer: region.c) fails it */
	held = flock(pfd, LOCK_SH | LOCK_NB) != 0;
	close(pfd); /* and the lock, if we took it */
	shmq__cancel_restore(cs);
	return held;
}

int shmq__ptab_creator_alive(int fd, uint64_t file_size, bool locked)
{
	struct shmq__ptab_slot a, b;
	int rc;

	if (file_size < SHMQ__REGION_PTAB_OFF + sizeof(a))
		/* not sized yet: nothing to read.  Only a caller that holds the
		 * file's exclusive flock may call it dead: a creator takes its
		 * lock just after shm_open, so it may not hold it yet, and
		 * checks when it has it that nobody unlinked the file. */
		return locked ? 0 : 1;
	/* pread copies bytes, not words: read twice, and believe only a
	 * slot that held still (the creator writes each word once). */
	rc = slot0_read(fd, &a);
	if (!rc)
		rc = slot0_read(fd, &b);
	if (rc)
		return rc;
	if (a.word != b.word || a.starttime != b.starttime)
		return 1; /* moving */
	if (a.word == 0) /* not claimed yet: the creator lives while it holds its lock */
		return locked ? 0 : shmq__ptab_creator_locked(fd);
	if (!(a.word & 1))
		return 0; /* claimed and left: whoever formatted this is gone */
	if (pidns_foreign(a.pidns, a.word, shmq__pidns_self()))
		return 1; /* a creator of another pid namespace: its pid means nothing here */
	return shmq__pid_alive((pid_t)(a.word >> 32), a.starttime);
}
