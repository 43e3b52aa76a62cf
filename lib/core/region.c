/* SPDX-License-Identifier: MIT */
/*
 * Layer 3: regions.  A shm_open or memfd mapping with a verified header, a
 * process table, a directory of named objects and a bump allocator.
 *
 * Layout (all offsets from the base; see core/region_int.h):
 *
 *   0      struct region_hdr     immutable after creation, checksummed
 *   64     struct region_ctl     mutable: heap top, directory lock, counts
 *   4096   proc table            ptab_slots x struct ptab_slot (32 bytes)
 *   ...    directory             dir_entries x struct dir_entry (128 bytes)
 *   heap   page aligned; blocks of 64-byte multiples, never freed
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"

#define REGION_MAGIC   UINT64_C(0x31474552514d4853) /* "SHMQREG1" little endian */
#define REGION_VERSION 1u
#define REGION_PAGE    4096u
#define PTAB_OFF       REGION_PAGE
#define DIR_ENTRY_SIZE 128u
#define DIR_MIN        64u
#define DIR_MAX        4096u
#define DIR_BYTES_PER_ENTRY 8192u /* one directory entry per 8 KiB of region */
#define REGION_MAX_SIZE ((uint64_t)1 << 40)
#define DIRLOCK_SLICE_NS (10 * 1000 * 1000)
#define OPEN_RETRY_NS  (100 * 1000 * 1000)

/* Immutable header, line 0.  checksum covers every byte before it. */
struct region_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;    /* bytes before the proc table */
	uint64_t size;        /* bytes of the whole region */
	uint32_t ptab_off;
	uint32_t ptab_slots;
	uint32_t dir_off;
	uint32_t dir_entries;
	uint64_t heap_off;
	uint32_t flags;
	uint32_t reserved;
	uint64_t checksum;    /* FNV-1a 64 of the bytes above */
};
_Static_assert(sizeof(struct region_hdr) == 64, "header is one line");

/* Mutable control words, line 1. */
struct region_ctl {
	uint64_t heap_top;    /* next free heap offset; CAS-advanced */
	uint32_t dir_lock;    /* thread id (gettid) of the holder, 0 when free */
	uint32_t dir_sleepers;
	uint32_t dir_hwm;     /* directory entries ever used: finds scan [0, hwm) */
	uint32_t dir_count;   /* published objects */
	uint32_t pad[10];
};
_Static_assert(sizeof(struct region_ctl) == 64, "control block is one line");

/*
 * Process-table slot.  word = pid << 32 | gen << 1 | used.  gen counts
 * claims of the slot (21 bits, never 0 once claimed), so an owner id
 * (slot | gen << 10) names one attachment and goes stale when the slot is
 * reclaimed.  starttime (field 22 of /proc/PID/stat) guards against pid reuse.
 */
struct ptab_slot {
	uint64_t word;
	uint64_t starttime;
	uint64_t attached_ns;
	uint64_t reserved;
};
_Static_assert(sizeof(struct ptab_slot) == 32, "ptab slot size");

enum { DIR_FREE = 0, DIR_BUILDING = 1, DIR_READY = 2 };

struct dir_entry {
	uint32_t state;       /* DIR_*; READY published with release */
	uint32_t type;
	uint64_t off;
	uint64_t size;
	uint32_t creator_id;
	uint32_t name_hash;
	char name[SHMQ_OBJ_NAME_MAX + 1];
	uint8_t pad[32];
};
_Static_assert(sizeof(struct dir_entry) == DIR_ENTRY_SIZE, "directory entry size");

#define GEN_MASK ((1u << SHMQ__ID_GEN_BITS) - 1)

static struct region_hdr *hdr_of(const shmq_region *r)
{
	return (struct region_hdr *)r->base;
}

static struct region_ctl *ctl_of(const shmq_region *r)
{
	return (struct region_ctl *)(r->base + sizeof(struct region_hdr));
}

static struct ptab_slot *slot_of(const shmq_region *r, unsigned i)
{
	return (struct ptab_slot *)(r->base + r->ptab_off) + i;
}

static struct dir_entry *entry_of(const shmq_region *r, unsigned i)
{
	return (struct dir_entry *)(r->base + r->dir_off) + i;
}

static uint64_t fnv1a64(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static uint32_t name_hash(const char *name)
{
	uint64_t h = fnv1a64(name, strlen(name));

	return (uint32_t)(h ^ (h >> 32));
}

const char *shmq__obj_type_name(uint32_t type)
{
	static const char *const names[SHMQ__OBJ_TYPE_MAX] = {
		"none", "lock", "barrier", "pipe", "queue", "pool", "blob", "flag", "cond", "sem",
	};

	return type < SHMQ__OBJ_TYPE_MAX ? names[type] : "unknown";
}

/* ---- names ---- */

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static int name_chars_check(const char *s, size_t max)
{
	size_t n = 0;
	bool all_dots = true;

	for (; s[n]; n++) {
		if (n >= max || !name_char_ok(s[n]))
			return -EINVAL;
		all_dots &= s[n] == '.';
	}
	return n == 0 || all_dots ? -EINVAL : 0;
}

/* "/app" or "app" -> "/app" in out (SHMQ_NAME_MAX + 2 bytes). */
static int region_name_norm(const char *name, char *out)
{
	int rc;

	if (!name)
		return -EINVAL;
	if (name[0] == '/')
		name++;
	rc = name_chars_check(name, SHMQ_NAME_MAX);
	if (rc)
		return rc;
	out[0] = '/';
	strcpy(out + 1, name);
	return 0;
}

int shmq__obj_name_check(const char *name)
{
	if (!name)
		return -EINVAL;
	return name_chars_check(name, SHMQ_OBJ_NAME_MAX);
}

/* ---- process liveness ---- */

/* Parse /proc/PID/stat: state (field 3) and starttime (field 22). */
static int proc_stat_read(pid_t pid, char *state, uint64_t *starttime)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do {
		n = read(fd, buf, sizeof(buf) - 1);
	} while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (!p || p[1] != ' ' || !p[2])
		return -EIO;
	*state = p[2];
	p += 3;
	/* fields 4..21 precede starttime */
	for (int field = 4; field <= 21; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EIO;
		p++;
	}
	*starttime = strtoull(p, NULL, 10);
	return 0;
}

uint64_t shmq__pid_starttime(pid_t pid)
{
	uint64_t st = 0;
	char state;

	if (proc_stat_read(pid, &state, &st))
		return 0;
	return st;
}

int shmq__pid_alive(pid_t pid, uint64_t starttime)
{
	uint64_t st;
	char state;
	int rc;

	if (pid <= 0)
		return 0;
	rc = proc_stat_read(pid, &state, &st);
	if (rc == -ENOENT || rc == -ESRCH)
		return 0;
	if (rc) /* no /proc: fall back to kill(2), which cannot see pid reuse */
		return kill(pid, 0) == 0 || errno == EPERM;
	if (state == 'Z' || state == 'X' || state == 'x')
		return 0;
	return starttime == 0 || st == starttime;
}

int shmq__region_id_alive(const shmq_region *r, uint32_t id)
{
	unsigned slot = shmq__id_slot(id);
	uint32_t gen = id >> SHMQ__ID_SLOT_BITS;
	struct ptab_slot *s;
	uint64_t w, st;

	if (shmq__region_id_valid(r, id))
		return -EBADMSG;
	s = slot_of(r, slot);
	w = shmq__load_acquire(&s->word); /* pairs with the CAS in ptab_claim */
	if (!(w & 1) || ((w >> 1) & GEN_MASK) != gen)
		return 0;
	st = shmq__load_acquire(&s->starttime); /* pairs with the release store in ptab_claim */
	return shmq__pid_alive((pid_t)(w >> 32), st);
}

/* The process-table word of a valid id's slot, or 0 when the slot does not
 * hold that generation attached. */
static uint64_t id_listed_word(const shmq_region *r, uint32_t id)
{
	uint64_t w = shmq__load_acquire(&slot_of(r, shmq__id_slot(id))->word); /* pairs with the CAS in ptab_claim */

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
	return kill((pid_t)(w >> 32), 0) == 0 || errno != ESRCH;
}

static bool ptab_word_dead(uint64_t w, const struct ptab_slot *s)
{
	if (!(w & 1))
		return true;
	/* pairs with the release store of starttime in ptab_claim */
	return !shmq__pid_alive((pid_t)(w >> 32), shmq__load_acquire(&s->starttime));
}

/* Claim a free slot, or reclaim one whose process is gone. */
static int ptab_claim(shmq_region *r)
{
	pid_t pid = getpid();
	uint64_t st = shmq__pid_starttime(pid);

	for (unsigned pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < r->ptab_slots; i++) {
			struct ptab_slot *s = slot_of(r, i);
			uint64_t w = shmq__load_acquire(&s->word); /* pairs with the claim CAS */
			uint32_t gen;

			if (pass == 0 ? (w & 1) != 0 : !ptab_word_dead(w, s))
				continue;
			gen = (((uint32_t)(w >> 1)) + 1) & GEN_MASK;
			if (gen == 0)
				gen = 1;
			/* acq_rel: acquire the old owner's writes, release ours
			 * to any id_alive that loads the new word */
			if (!shmq__cas_acq_rel(&s->word, &w,
					       ((uint64_t)(uint32_t)pid << 32) | (uint64_t)gen << 1 | 1))
				continue;
			shmq__store_relaxed(&s->attached_ns, (uint64_t)shmq_now_ns()); /* informational only */
			shmq__store_release(&s->starttime, st); /* pairs with id_alive's load_acquire */
			r->self_id = i | gen << SHMQ__ID_SLOT_BITS;
			r->pid = pid;
			return 0;
		}
	}
	return -ENOSPC;
}

static void ptab_release(shmq_region *r)
{
	struct ptab_slot *s;
	uint64_t w;

	if (!r->self_id)
		return;
	s = slot_of(r, shmq__id_slot(r->self_id));
	w = shmq__load_acquire(&s->word); /* pairs with our own claim CAS */
	if ((w & 1) && ((w >> 1) & GEN_MASK) == r->self_id >> SHMQ__ID_SLOT_BITS &&
	    (pid_t)(w >> 32) == r->pid)
		/* release: our writes to shared objects happen before the slot reads free */
		shmq__cas_release(&s->word, &w, w & ~(UINT64_C(0xffffffff) << 32 | 1));
	r->self_id = 0;
}

int shmq__region_ptab_get(const shmq_region *r, unsigned slot, struct shmq__ptab_entry *e)
{
	struct ptab_slot *s;
	uint64_t w;

	if (slot >= r->ptab_slots)
		return -EINVAL;
	s = slot_of(r, slot);
	w = shmq__load_acquire(&s->word); /* pairs with the claim CAS */
	if (!(w & 1))
		return -ENOENT;
	e->pid = (pid_t)(w >> 32);
	e->gen = (uint32_t)(w >> 1) & GEN_MASK;
	e->starttime = shmq__load_acquire(&s->starttime); /* pairs with the claim's release */
	e->attached_ns = shmq__load_relaxed(&s->attached_ns); /* informational */
	return 0;
}

/* ---- geometry and header ---- */

struct geometry {
	uint64_t size;
	uint32_t ptab_slots;
	uint32_t dir_off;
	uint32_t dir_entries;
	uint64_t heap_off;
};

static uint32_t dir_entries_for(uint64_t size)
{
	uint64_t n = size / DIR_BYTES_PER_ENTRY;

	return n < DIR_MIN ? DIR_MIN : n > DIR_MAX ? DIR_MAX : (uint32_t)n;
}

static void geometry_for(uint64_t size, struct geometry *g)
{
	g->size = size;
	g->ptab_slots = SHMQ__PTAB_SLOTS;
	g->dir_off = PTAB_OFF + SHMQ__PTAB_SLOTS * (uint32_t)sizeof(struct ptab_slot);
	g->dir_entries = dir_entries_for(size);
	g->heap_off = SHMQ__ALIGN_UP((uint64_t)g->dir_off + (uint64_t)g->dir_entries * DIR_ENTRY_SIZE,
				     (uint64_t)REGION_PAGE);
}

/* Verify a header copy against the file size.  Magic and checksum before
 * version: a foreign file is -EBADMSG; ours at another layout -EPROTO. */
static int hdr_verify(const struct region_hdr *h, uint64_t file_size, struct geometry *g)
{
	if (h->magic != REGION_MAGIC)
		return -EBADMSG;
	if (h->version != REGION_VERSION)
		return -EPROTO;
	if (h->checksum != fnv1a64(h, offsetof(struct region_hdr, checksum)))
		return -EBADMSG;
	if (h->size != file_size || h->size < SHMQ_REGION_MIN_SIZE || h->size > REGION_MAX_SIZE ||
	    h->size % REGION_PAGE)
		return -EBADMSG;
	geometry_for(h->size, g);
	if (h->hdr_size != PTAB_OFF || h->ptab_off != PTAB_OFF || h->ptab_slots != g->ptab_slots ||
	    h->dir_off != g->dir_off || h->dir_entries != g->dir_entries ||
	    h->heap_off != g->heap_off || g->heap_off >= h->size || h->reserved != 0)
		return -EBADMSG;
	return 0;
}

static void hdr_write(struct region_hdr *h, const struct geometry *g, unsigned flags)
{
	struct region_hdr tmp = {
		.magic = REGION_MAGIC,
		.version = REGION_VERSION,
		.hdr_size = PTAB_OFF,
		.size = g->size,
		.ptab_off = PTAB_OFF,
		.ptab_slots = g->ptab_slots,
		.dir_off = g->dir_off,
		.dir_entries = g->dir_entries,
		.heap_off = g->heap_off,
		.flags = flags,
	};

	tmp.checksum = fnv1a64(&tmp, offsetof(struct region_hdr, checksum));
	memcpy(h, &tmp, sizeof(tmp));
}

/* ---- mapping ---- */

static int region_map(shmq_region *r, int fd, uint64_t size, bool prefault)
{
	int flags = MAP_SHARED | (prefault ? MAP_POPULATE : 0);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	r->base = p;
	r->size = size;
	r->fd = fd;
	return 0;
}

static void geometry_apply(shmq_region *r, const struct geometry *g)
{
	r->ptab_off = PTAB_OFF;
	r->ptab_slots = g->ptab_slots;
	r->dir_off = g->dir_off;
	r->dir_entries = g->dir_entries;
	r->heap_off = g->heap_off;
}

static void region_free(shmq_region *r)
{
	if (r->base)
		munmap(r->base, r->size);
	if (r->fd >= 0)
		close(r->fd);
	shmq__free(r, sizeof(*r));
}

static shmq_region *region_alloc(void)
{
	shmq_region *r = shmq__calloc(1, sizeof(*r));

	if (r)
		r->fd = -1;
	return r;
}

/* Lay out a fresh, zero-filled file of size bytes and attach to it. */
static int region_format(shmq_region *r, int fd, uint64_t size, unsigned flags)
{
	struct geometry g;
	struct region_ctl *ctl;
	int rc;

	geometry_for(size, &g);
	rc = region_map(r, fd, size, !(flags & SHMQ_REGION_NOPREFAULT));
	if (rc)
		return rc;
	geometry_apply(r, &g);
	ctl = ctl_of(r);
	shmq__store_relaxed(&ctl->heap_top, g.heap_off); /* published by the header below */
	rc = ptab_claim(r);
	if (rc)
		return rc;
	/* The header goes last: openers treat an all-zero magic as "being
	 * created".  The release fence orders the stores above before it and
	 * pairs with the opener's acquire fence after it reads the magic. */
	shmq__fence_release();
	hdr_write(hdr_of(r), &g, flags);
	return 0;
}

static int size_check(const struct shmq_region_opts *o, uint64_t *size)
{
	uint64_t s = o && o->size ? o->size : SHMQ_REGION_DEFAULT_SIZE;

	if (s < SHMQ_REGION_MIN_SIZE || s > REGION_MAX_SIZE)
		return -EINVAL;
	*size = SHMQ__ALIGN_UP(s, (uint64_t)REGION_PAGE);
	return 0;
}

SHMQ_API int shmq_region_create(const char *name, const struct shmq_region_opts *o,
				shmq_region **out)
{
	mode_t mode = o && o->mode ? o->mode : 0600;
	unsigned flags = o ? o->flags : 0;
	shmq_region *r;
	uint64_t size;
	int fd, rc;

	if (!out || (flags & ~SHMQ_REGION_NOPREFAULT) || (mode & ~07777u))
		return -EINVAL;
	rc = size_check(o, &size);
	if (rc)
		return rc;
	r = region_alloc();
	if (!r)
		return -ENOMEM;
	if (name) {
		rc = region_name_norm(name, r->name);
		if (rc)
			goto fail;
		fd = shm_open(r->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	} else {
		fd = memfd_create("shmq", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	}
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	r->fd = fd;
	if ((name && fchmod(fd, mode)) || ftruncate(fd, (off_t)size)) {
		rc = -errno;
		goto fail_unlink;
	}
	/* An anonymous region's size can never change under its users. */
	if (!name)
		fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	rc = region_format(r, fd, size, flags);
	if (rc)
		goto fail_unlink;
	*out = r;
	return 0;
fail_unlink:
	if (name)
		shm_unlink(r->name);
fail:
	region_free(r);
	return rc == -EFBIG ? -ENOSPC : rc;
}

static void sleep_ns(long ns)
{
	struct timespec ts = { 0, ns };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Attach to an opened descriptor: verify, map, register.  prefault: honour
 * the region's prefault policy (open does; inherited mappings do not). */
static int region_attach(shmq_region *r, int fd, bool prefault)
{
	int64_t give_up = shmq_now_ns() + OPEN_RETRY_NS;
	struct region_hdr h;
	struct geometry g;
	struct stat st;
	int rc;

	for (;;) {
		if (fstat(fd, &st))
			return -errno;
		if ((uint64_t)st.st_size >= sizeof(h)) {
			ssize_t n = pread(fd, &h, sizeof(h), 0);

			if (n != (ssize_t)sizeof(h))
				return n < 0 ? -errno : -EBADMSG;
			if (h.magic != 0)
				break;
		}
		/* A creator is between shm_open and writing the header. */
		if (shmq_now_ns() > give_up)
			return -EBADMSG;
		sleep_ns(1000 * 1000);
	}
	shmq__fence_acquire(); /* pairs with region_format's release fence */
	rc = hdr_verify(&h, (uint64_t)st.st_size, &g);
	if (rc)
		return rc;
	rc = region_map(r, fd, g.size, prefault && !(h.flags & SHMQ_REGION_NOPREFAULT));
	if (rc)
		return rc;
	geometry_apply(r, &g);
	/* The file may have changed between pread and mmap: verify the mapped header too. */
	rc = hdr_verify(hdr_of(r), g.size, &g);
	if (rc)
		return rc;
	return ptab_claim(r);
}

SHMQ_API int shmq_region_open(const char *name, shmq_region **out)
{
	shmq_region *r;
	int fd, rc;

	if (!out)
		return -EINVAL;
	r = region_alloc();
	if (!r)
		return -ENOMEM;
	rc = region_name_norm(name, r->name);
	if (rc)
		goto fail;
	fd = shm_open(r->name, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	r->fd = fd;
	rc = region_attach(r, fd, true);
	if (rc)
		goto fail;
	*out = r;
	return 0;
fail:
	region_free(r);
	return rc;
}

int shmq__region_from_fd(int fd, const char *name, shmq_region **out)
{
	shmq_region *r;
	int dupfd, rc;

	if (fd < 0 || !out)
		return -EINVAL;
	r = region_alloc();
	if (!r)
		return -ENOMEM;
	if (name && *name) {
		rc = region_name_norm(name, r->name);
		if (rc)
			goto fail;
	}
	dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dupfd < 0) {
		rc = -errno;
		goto fail;
	}
	r->fd = dupfd;
	/* Spawned children map lazily: populating every page table entry of
	 * a 64 MiB region cost ~27 ms per spawn (14x the spawn itself), paid
	 * again by each of a pool's workers, for pages a child may never touch. */
	rc = region_attach(r, dupfd, false);
	if (rc)
		goto fail;
	*out = r;
	return 0;
fail:
	region_free(r);
	return rc;
}

int shmq__region_fd(const shmq_region *r)
{
	return r->fd;
}

SHMQ_API int shmq_region_inherit(shmq_region **out)
{
	const char *env = getenv(SHMQ__REGION_ENV);
	const char *name = NULL;
	char *end;
	long fd;

	if (!out)
		return -EINVAL;
	if (!env || !*env)
		return -ENOENT;
	errno = 0;
	fd = strtol(env, &end, 10);
	if (errno || end == env || fd < 0 || fd > INT32_MAX || (*end && *end != ':'))
		return -EINVAL;
	if (*end == ':')
		name = end + 1;
	/* Keep the inherited descriptor for further inherit calls, but never
	 * pass it on to programs this process runs. */
	if (fcntl((int)fd, F_SETFD, FD_CLOEXEC))
		return errno == EBADF ? -ENOENT : -errno;
	return shmq__region_from_fd((int)fd, name, out);
}

SHMQ_API void shmq_region_close(shmq_region *r)
{
	if (!r)
		return;
	if (r->pid == getpid())
		ptab_release(r);
	region_free(r);
}

SHMQ_API int shmq_region_unlink(const char *name)
{
	char norm[SHMQ_NAME_MAX + 2];
	int rc = region_name_norm(name, norm);

	if (rc)
		return rc;
	return shm_unlink(norm) ? -errno : 0;
}

/* ---- read-only observation, for tools ---- */

int shmq__region_observe(const char *name, shmq_region **out)
{
	struct region_hdr h;
	struct geometry g;
	struct stat st;
	shmq_region *r;
	ssize_t n;
	void *p;
	int fd, rc;

	if (!out)
		return -EINVAL;
	r = region_alloc();
	if (!r)
		return -ENOMEM;
	rc = region_name_norm(name, r->name);
	if (rc)
		goto fail;
	fd = shm_open(r->name, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	r->fd = fd;
	if (fstat(fd, &st)) {
		rc = -errno;
		goto fail;
	}
	if ((uint64_t)st.st_size < sizeof(h)) {
		rc = -ENOEXEC;
		goto fail;
	}
	n = pread(fd, &h, sizeof(h), 0);
	if (n != (ssize_t)sizeof(h)) {
		rc = n < 0 ? -errno : -EBADMSG;
		goto fail;
	}
	if (h.magic == 0 || h.magic != REGION_MAGIC) {
		rc = h.magic == 0 ? -EAGAIN : -ENOEXEC;
		goto fail;
	}
	rc = hdr_verify(&h, (uint64_t)st.st_size, &g);
	if (rc)
		goto fail;
	p = mmap(NULL, g.size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	r->base = p;
	r->size = g.size;
	geometry_apply(r, &g);
	/* The file may have changed between pread and mmap: verify the mapping. */
	rc = hdr_verify(hdr_of(r), g.size, &g);
	if (rc)
		goto fail;
	*out = r;
	return 0;
fail:
	region_free(r);
	return rc;
}

/* ---- allocator ---- */

int shmq__region_alloc(shmq_region *r, uint64_t size, void **mem_out)
{
	struct region_ctl *ctl = ctl_of(r);
	uint64_t top, start, end;

	if (size == 0)
		return -EINVAL;
	if (size > r->size) /* can never fit: the documented "full" error */
		return -ENOSPC;
	size = SHMQ__ALIGN_UP(size, (uint64_t)SHMQ__CACHELINE);
	top = shmq__load_relaxed(&ctl->heap_top); /* the CAS below re-validates it */
	do {
		if (top < r->heap_off || top > r->size)
			return -EBADMSG;
		start = SHMQ__ALIGN_UP(top, (uint64_t)SHMQ__CACHELINE);
		if (start > r->size || size > r->size - start)
			return -ENOSPC;
		end = start + size;
		/* relaxed: the heap top publishes nothing; blocks are
		 * published through the directory's release store */
	} while (!shmq__cas_relaxed(&ctl->heap_top, &top, end));
	memset(r->base + start, 0, size);
	*mem_out = r->base + start;
	return 0;
}

void *shmq__region_ptr(const shmq_region *r, uint64_t off, uint64_t len)
{
	if (off < r->heap_off || off > r->size || len > r->size - off)
		return NULL;
	return r->base + off;
}

/* ---- directory lock: a futex word owned by a thread id (so two threads of
 * one process exclude each other like any two processes), stolen once that
 * thread is gone (its process died inside the directory) ---- */

static int dir_lock(shmq_region *r)
{
	struct region_ctl *ctl = ctl_of(r);
	uint32_t self = (uint32_t)gettid();

	for (;;) {
		uint32_t cur = 0;
		int rc;

		/* acquire: pairs with dir_unlock's release exchange */
		if (shmq__cas_acquire(&ctl->dir_lock, &cur, self))
			return 0;
		if (cur == self)
			return -EDEADLK; /* this thread nested a directory call: a bug */
		rc = shmq__wait_word(&ctl->dir_lock, cur, &ctl->dir_sleepers, SHMQ__NO_DEADLINE,
				     DIRLOCK_SLICE_NS);
		if (rc == -EINTR && !shmq__pid_alive((pid_t)cur, 0)) {
			/* the holder died inside the directory: take over */
			if (shmq__cas_acquire(&ctl->dir_lock, &cur, self))
				return 0;
		} else if (rc && rc != -EINTR) {
			return rc;
		}
	}
}

static void dir_unlock(shmq_region *r)
{
	struct region_ctl *ctl = ctl_of(r);

	shmq__exchange_seq_cst(&ctl->dir_lock, 0);
	shmq__wake_word(&ctl->dir_lock, &ctl->dir_sleepers, 1);
}

/* ---- directory ---- */

/* Validate a published entry; fill in its checked memory. */
static int entry_check(const shmq_region *r, const struct dir_entry *e, uint32_t *type,
		       void **mem, uint64_t *size)
{
	uint64_t off = shmq__load_relaxed(&e->off);   /* ordered by the state load_acquire */
	uint64_t len = shmq__load_relaxed(&e->size);  /* ordered by the state load_acquire */
	uint32_t t = shmq__load_relaxed(&e->type);    /* ordered by the state load_acquire */

	if (t == SHMQ__OBJ_NONE || t >= SHMQ__OBJ_TYPE_MAX || off % SHMQ__CACHELINE)
		return -EBADMSG;
	*mem = shmq__region_ptr(r, off, len);
	if (!*mem || len == 0)
		return -EBADMSG;
	*type = t;
	*size = len;
	return 0;
}

/* Copy an entry's name out, refusing one without a terminator. */
static int entry_name(const struct dir_entry *e, char out[SHMQ_OBJ_NAME_MAX + 1])
{
	memcpy(out, e->name, SHMQ_OBJ_NAME_MAX + 1);
	if (memchr(out, '\0', SHMQ_OBJ_NAME_MAX + 1) == NULL)
		return -EBADMSG;
	return 0;
}

static uint32_t dir_hwm(const shmq_region *r)
{
	/* pairs with the release store of dir_hwm in dir_claim */
	uint32_t hwm = shmq__load_acquire(&ctl_of(r)->dir_hwm);

	return hwm > r->dir_entries ? r->dir_entries : hwm;
}

/* Scan for a READY entry named name.  Returns its index, -ENOENT, or -EBADMSG. */
static int dir_lookup(const shmq_region *r, const char *name, uint32_t hash)
{
	uint32_t hwm = dir_hwm(r);
	char buf[SHMQ_OBJ_NAME_MAX + 1];

	for (uint32_t i = 0; i < hwm; i++) {
		struct dir_entry *e = entry_of(r, i);

		/* pairs with the release store of READY in shmq__obj_create */
		if (shmq__load_acquire(&e->state) != DIR_READY)
			continue;
		if (shmq__load_relaxed(&e->name_hash) != hash) /* ordered by the state load */
			continue;
		if (entry_name(e, buf))
			return -EBADMSG;
		if (strcmp(buf, name) == 0)
			return (int)i;
	}
	return -ENOENT;
}

int shmq__obj_find(shmq_region *r, const char *name, uint32_t type, void **mem_out,
		   uint64_t *size_out)
{
	uint32_t t;
	void *mem;
	uint64_t size;
	int i, rc;

	if (!r || !mem_out)
		return -EINVAL;
	rc = shmq__obj_name_check(name);
	if (rc)
		return rc;
	i = dir_lookup(r, name, name_hash(name));
	if (i < 0)
		return i;
	rc = entry_check(r, entry_of(r, (unsigned)i), &t, &mem, &size);
	if (rc)
		return rc;
	if (t != type)
		return -EINVAL;
	*mem_out = mem;
	if (size_out)
		*size_out = size;
	return 0;
}

/* Under the directory lock: a free entry (BUILDING ones belong to creators
 * that died holding the lock), or -ENOSPC. */
static int dir_claim(shmq_region *r, uint32_t *idx)
{
	struct region_ctl *ctl = ctl_of(r);
	uint32_t hwm = dir_hwm(r);

	for (uint32_t i = 0; i < hwm; i++) {
		uint32_t s = shmq__load_relaxed(&entry_of(r, i)->state); /* we hold the dir lock */

		if (s == DIR_FREE || s == DIR_BUILDING) {
			*idx = i;
			return 0;
		}
		if (s != DIR_READY)
			return -EBADMSG;
	}
	if (hwm >= r->dir_entries)
		return -ENOSPC;
	*idx = hwm;
	/* release: readers that see the new hwm see the entry's FREE state */
	shmq__store_release(&ctl->dir_hwm, hwm + 1);
	return 0;
}

int shmq__obj_create(shmq_region *r, const char *name, uint32_t type, uint64_t size,
		     int (*init)(void *mem, uint64_t size, void *arg), void *arg,
		     void **mem_out)
{
	uint32_t hash, idx;
	struct dir_entry *e;
	void *mem = NULL;
	int rc;

	if (!r || type == SHMQ__OBJ_NONE || type >= SHMQ__OBJ_TYPE_MAX || size == 0)
		return -EINVAL;
	rc = shmq__obj_name_check(name);
	if (rc)
		return rc;
	hash = name_hash(name);
	rc = dir_lock(r);
	if (rc)
		return rc;
	rc = dir_lookup(r, name, hash);
	if (rc >= 0 || rc != -ENOENT) {
		rc = rc >= 0 ? -EEXIST : rc;
		goto out;
	}
	rc = dir_claim(r, &idx);
	if (rc)
		goto out;
	rc = shmq__region_alloc(r, size, &mem);
	if (rc)
		goto out;
	e = entry_of(r, idx);
	/* relaxed: the entry is published by the release store of READY below */
	shmq__store_relaxed(&e->state, (uint32_t)DIR_BUILDING);
	shmq__store_relaxed(&e->type, type);
	shmq__store_relaxed(&e->off, shmq__region_off(r, mem));
	shmq__store_relaxed(&e->size, SHMQ__ALIGN_UP(size, (uint64_t)SHMQ__CACHELINE));
	shmq__store_relaxed(&e->creator_id, r->self_id);
	shmq__store_relaxed(&e->name_hash, hash);
	memset(e->name, 0, sizeof(e->name));
	strcpy(e->name, name);
	rc = init ? init(mem, size, arg) : 0;
	if (rc) {
		shmq__store_relaxed(&e->state, (uint32_t)DIR_FREE); /* never published */
		goto out;
	}
	/* pairs with the load_acquire of state in dir_lookup and obj_walk */
	shmq__store_release(&e->state, (uint32_t)DIR_READY);
	shmq__fetch_add_relaxed(&ctl_of(r)->dir_count, 1); /* a statistic for tools */
	if (mem_out)
		*mem_out = mem;
out:
	dir_unlock(r);
	return rc;
}

int shmq__obj_walk(shmq_region *r, shmq__obj_visit_fn fn, void *arg)
{
	uint32_t hwm = dir_hwm(r);
	char buf[SHMQ_OBJ_NAME_MAX + 1];
	int bad = 0;

	for (uint32_t i = 0; i < hwm; i++) {
		struct dir_entry *e = entry_of(r, i);
		uint32_t type;
		uint64_t size;
		void *mem;
		int rc;

		/* pairs with the release store of READY in shmq__obj_create */
		if (shmq__load_acquire(&e->state) != DIR_READY)
			continue;
		if (entry_name(e, buf) || entry_check(r, e, &type, &mem, &size)) {
			bad = -EBADMSG;
			if (entry_name(e, buf))
				strcpy(buf, "?");
			rc = fn(buf, SHMQ__OBJ_NONE, NULL, 0, arg);
		} else {
			rc = fn(buf, type, mem, size, arg);
		}
		if (rc)
			return rc;
	}
	return bad;
}

SHMQ_API int shmq_region_info(const shmq_region *r, struct shmq_region_info *info)
{
	struct region_ctl *ctl;
	unsigned procs = 0;
	uint64_t top;

	if (!r || !info)
		return -EINVAL;
	ctl = ctl_of(r);
	memset(info, 0, sizeof(*info));
	top = shmq__load_relaxed(&ctl->heap_top); /* a statistic: no ordering needed */
	if (top < r->heap_off || top > r->size)
		return -EBADMSG;
	for (unsigned i = 0; i < r->ptab_slots; i++)
		procs += (shmq__load_relaxed(&slot_of(r, i)->word) & 1) != 0; /* a statistic */
	info->size = r->size;
	info->used = top;
	info->objects = shmq__load_relaxed(&ctl->dir_count); /* a statistic */
	info->max_objects = r->dir_entries;
	info->procs = procs;
	info->max_procs = r->ptab_slots;
	info->version = REGION_VERSION;
	strcpy(info->name, r->name);
	return 0;
}

SHMQ_API int shmq_region_alloc(shmq_region *r, const char *name, size_t size, void **mem)
{
	if (!r || !mem || size == 0)
		return -EINVAL;
	return shmq__obj_create(r, name, SHMQ__OBJ_BLOB, size, NULL, NULL, mem);
}

SHMQ_API int shmq_region_find(shmq_region *r, const char *name, void **mem, size_t *size)
{
	uint64_t sz;
	int rc;

	if (!r || !mem)
		return -EINVAL;
	rc = shmq__obj_find(r, name, SHMQ__OBJ_BLOB, mem, &sz);
	if (!rc && size)
		*size = (size_t)sz;
	return rc;
}
