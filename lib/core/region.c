/* SPDX-License-Identifier: MIT */
/*
 * Layer 3, regions: the mapping and its header.  A shm_open or memfd file
 * laid out as core/region_layout_int.h says, created and formatted here,
 * attached to through one verified path (region_attach) by open, inherit and
 * the tools' read-only observe, closed, and its heap handed out by a bump
 * allocator.  The process table is core/ptab.c, the object directory
 * core/objdir.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/cancel_int.h"
#include "core/compiler_int.h"
#include "core/fd_int.h"
#include "core/fork_int.h"
#include "core/ptab_int.h"
#include "core/region_int.h"
#include "core/time_int.h"
#include "core/region_layout_int.h"

#define FORMAT_WAIT_NS ((int64_t)1000 * 1000 * 1000) /* for a creator to write the header */
#define FORMAT_POLL_NS (1000 * 1000)

/* the test seam of core/region_int.h: NULL unless a test sets it */
void (*shmq__region_fault)(void);

static struct shmq__region_hdr *hdr_of(const shmq_region *r)
{
	return shmq__region_hdr_at(r->base);
}

static struct shmq__region_ctl *ctl_of(const shmq_region *r)
{
	return shmq__region_ctl_at(r->base);
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
	uint64_t n = size / SHMQ__DIR_BYTES_PER_ENTRY;

	return n < SHMQ__DIR_MIN ? SHMQ__DIR_MIN : n > SHMQ__DIR_MAX ? SHMQ__DIR_MAX : (uint32_t)n;
}

static void geometry_for(uint64_t size, struct geometry *g)
{
	g->size = size;
	g->ptab_slots = SHMQ__PTAB_SLOTS;
	g->dir_off = SHMQ__REGION_PTAB_OFF +
		     SHMQ__PTAB_SLOTS * (uint32_t)sizeof(struct shmq__ptab_slot);
	g->dir_entries = dir_entries_for(size);
	g->heap_off = SHMQ__ALIGN_UP((uint64_t)g->dir_off +
					     (uint64_t)g->dir_entries * SHMQ__DIR_ENTRY_SIZE,
				     (uint64_t)SHMQ__REGION_PAGE);
}

/* Verify a header copy against the file size.  Magic and checksum before
 * version: a foreign file is -EBADMSG; ours at another layout -EPROTO. */
static int hdr_verify(const struct shmq__region_hdr *h, uint64_t file_size, struct geometry *g)
{
	if (h->magic != SHMQ__REGION_MAGIC)
		return -EBADMSG;
	if (h->version != SHMQ__REGION_VERSION)
		return -EPROTO;
	if (h->checksum != shmq__fnv1a64(h, offsetof(struct shmq__region_hdr, checksum)))
		return -EBADMSG;
	if (h->size != file_size || h->size < SHMQ_REGION_MIN_SIZE ||
	    h->size > SHMQ__REGION_MAX_SIZE || h->size % SHMQ__REGION_PAGE)
		return -EBADMSG;
	geometry_for(h->size, g);
	if (h->hdr_size != SHMQ__REGION_PTAB_OFF || h->ptab_off != SHMQ__REGION_PTAB_OFF ||
	    h->ptab_slots != g->ptab_slots || h->dir_off != g->dir_off ||
	    h->dir_entries != g->dir_entries ||
	    h->heap_off != g->heap_off || g->heap_off >= h->size || h->reserved != 0)
		return -EBADMSG;
	return 0;
}

static void hdr_write(struct shmq__region_hdr *h, const struct geometry *g, unsigned flags)
{
	struct shmq__region_hdr tmp = {
		.magic = SHMQ__REGION_MAGIC,
		.version = SHMQ__REGION_VERSION,
		.hdr_size = SHMQ__REGION_PTAB_OFF,
		.size = g->size,
		.ptab_off = SHMQ__REGION_PTAB_OFF,
		.ptab_slots = g->ptab_slots,
		.dir_off = g->dir_off,
		.dir_entries = g->dir_entries,
		.heap_off = g->heap_off,
		.flags = flags,
	};

	tmp.checksum = shmq__fnv1a64(&tmp, offsetof(struct shmq__region_hdr, checksum));
	/* The magic last, so that a creator killed inside this copy leaves no
	 * magic (a half-made file, which create replaces), and a reader that
	 * sees the stores in order never sees a magic without the rest.
	 * Readers copy the header with pread, which orders nothing of ours:
	 * hdr_await also waits while the creator's lock is held. */
	memcpy((uint8_t *)h + sizeof(h->magic), (const uint8_t *)&tmp + sizeof(tmp.magic),
	       sizeof(tmp) - sizeof(tmp.magic));
	/* release: the rest of the header before its magic; pairs with the
	 * acquire fence in region_attach after hdr_await read it */
	shmq__store_release(&h->magic, tmp.magic);
}

/* ---- identity ---- */

/* 16 random bytes for a region being formatted (not yet published: plain
 * stores, ordered before the header by region_format's release fence). */
static int ident_write(struct shmq__region_ident *id)
{
	uint8_t u[sizeof(id->uuid)];
	size_t got = 0;

	while (got < sizeof(u)) {
		ssize_t n = getrandom(u + got, sizeof(u) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	memcpy(id->uuid, u, sizeof(u));
	id->check = shmq__fnv1a64(u, sizeof(u));
	return 0;
}

/* Copy the uuid out of a mapped region, believing it only if its check
 * holds: 0 or -EBADMSG. */
static int ident_read(const uint8_t *base, uint8_t uuid[16])
{
	struct shmq__region_ident id;

	memcpy(&id, shmq__region_ident_at((uint8_t *)base), sizeof(id));
	if (id.check != shmq__fnv1a64(id.uuid, sizeof(id.uuid)))
		return -EBADMSG;
	memcpy(uuid, id.uuid, sizeof(id.uuid));
	return 0;
}

SHMQ_API int shmq_region_uuid(const shmq_region *r, uint8_t uuid[16])
{
	if (!r || !uuid)
		return -EINVAL;
	return ident_read(r->base, uuid);
}

/* ---- mapping ---- */

/* Map size bytes of r->fd: read-write unless observing, populated if asked. */
static int region_map(shmq_region *r, uint64_t size, bool writable, bool prefault)
{
	int flags = MAP_SHARED | (prefault ? MAP_POPULATE : 0);
	void *p = mmap(NULL, size, PROT_READ | (writable ? PROT_WRITE : 0), flags, r->fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	r->base = p;
	r->size = size;
	return 0;
}

static void geometry_apply(shmq_region *r, const struct geometry *g)
{
	r->ptab_off = SHMQ__REGION_PTAB_OFF;
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

/*
 * Give [off, off + len) of fd its pages now.  A store into a page of a
 * shm or memfd file that tmpfs has no room for raises SIGBUS; reserving
 * turns that into -ENOSPC at the call that asked for the space.  A file
 * system that cannot reserve (no fallocate) is used as before.
 */
static int region_reserve(int fd, uint64_t off, uint64_t len)
{
	int rc;

	do {
		rc = fallocate(fd, 0, (off_t)off, (off_t)len);
	} while (rc && errno == EINTR);
	if (rc == 0 || errno == EOPNOTSUPP || errno == ENOSYS)
		return 0;
	return errno == EFBIG ? -ENOSPC : -errno;
}

/* Reserve what create must: the whole file, or with SHMQ_REGION_NOPREFAULT
 * (a large region meant to be used sparsely) only the pages before the heap;
 * shmq__region_alloc reserves each block of such a region as it hands it
 * out.  Such a region must still fit in its file system. */
static int region_reserve_at_create(shmq_region *r, uint64_t size, unsigned flags)
{
	struct geometry g;
	struct statfs fs;

	if (!(flags & SHMQ_REGION_NOPREFAULT))
		return region_reserve(r->fd, 0, size);
	if (fstatfs(r->fd, &fs) == 0 && fs.f_blocks &&
	    size / (uint64_t)fs.f_bsize > (uint64_t)fs.f_blocks)
		return -ENOSPC;
	geometry_for(size, &g);
	r->reserve_on_alloc = true;
	return region_reserve(r->fd, 0, g.heap_off);
}

/* Lay out r->fd, a fresh, zero-filled file of size bytes, and attach to it. */
static int region_format(shmq_region *r, uint64_t size, unsigned flags)
{
	struct geometry g;
	struct shmq__region_ctl *ctl;
	int rc;

	geometry_for(size, &g);
	rc = region_map(r, size, true, !(flags & SHMQ_REGION_NOPREFAULT));
	if (rc)
		return rc;
	geometry_apply(r, &g);
	ctl = ctl_of(r);
	/* relaxed: published by the fence_release before hdr_write below */
	shmq__store_relaxed(&ctl->heap_top, g.heap_off);
	rc = ident_write(shmq__region_ident_at(r->base));
	if (rc)
		return rc;
	rc = shmq__ptab_claim(r);
	if (rc)
		return rc;
	if (shmq__region_fault)
		shmq__region_fault();
	/* The header goes last: attachers treat an all-zero magic as "being
	 * created" (region_attach).  The release fence orders the stores above
	 * before it and pairs with region_attach's acquire fence after it
	 * reads the magic. */
	shmq__fence_release();
	hdr_write(hdr_of(r), &g, flags);
	return 0;
}

static int hdr_read(int fd, unsigned flags, struct shmq__region_hdr *h, uint64_t *file_size);

/* Is fd the file that name names now? */
static bool name_is_file(const char *name, int fd)
{
	struct stat a, b;
	int nfd = shm_open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0); /* never wait on a FIFO */
	bool same;

	if (nfd < 0)
		return false;
	same = !fstat(fd, &a) && !fstat(nfd, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
	close(nfd);
	return same;
}

/*
 * A file not sized yet may be a live creator's, between its shm_open and its
 * flock (creator_lock): holding the flock ourselves proves nothing then.
 * Such a creator survives an unlink (it finds the file gone and creates
 * anew), but a process told -EEXIST meanwhile would open the name and find
 * nothing (-ENOENT; seen in test_create_open_race on a loaded machine).  So
 * an unsized file counts as a dead creator's only once it is older than an
 * opener waits for a header; one that seems to come from the future (the
 * clock went back) counts as old.
 */
static bool unsized_young(const struct stat *st)
{
	struct timespec now;
	int64_t age;

	if (st->st_size != 0 || clock_gettime(CLOCK_REALTIME, &now))
		return false;
	age = shmq__timespec_to_ns(&now) - shmq__timespec_to_ns(&st->st_ctim);
	return age >= 0 && age < FORMAT_WAIT_NS;
}

/*
 * shm_open(O_EXCL) found name taken.  When it is one of ours whose creator
 * died before writing the header (region_format writes it last, after
 * claiming slot 0 of the process table), nothing will ever finish it:
 * unlink the name (its memory goes with the last descriptor) and return 0,
 * for the caller to try O_EXCL once more.  -EEXIST for anything else: a
 * region, a creator that may still finish, another user's file.
 *
 * Replacers of one dead file exclude each other with flock on it, and one
 * unlinks only a file that the name still names: a second replacer finds
 * the file unlinked and retries too.  Of the retries, O_EXCL lets one win.
 */
static int region_replace_dead(const char *name)
{
	struct shmq__region_hdr h;
	uint64_t file_size;
	struct stat st;
	int fd, rc = -EEXIST;

	fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return errno == ENOENT ? 0 : -EEXIST; /* gone already: retry */
	if (flock(fd, LOCK_EX | LOCK_NB))
		goto out; /* another replacer is at it */
	if (fstat(fd, &st) || st.st_uid != geteuid())
		goto out;
	if (st.st_nlink == 0) {
		rc = 0; /* replaced by another already: retry */
		goto out;
	}
	if (hdr_read(fd, 0, &h, &file_size) != -EAGAIN || unsized_young(&st) ||
	    shmq__ptab_creator_alive(fd, file_size, true) != 0 || !name_is_file(name, fd))
		goto out;
	rc = shm_unlink(name) && errno != ENOENT ? -EEXIST : 0;
out:
	close(fd); /* and the flock */
	return rc;
}

/*
 * The creator's lock (core/ptab_int.h), taken on the fresh file before it is
 * sized and held until the header is written: while it is held, a file of
 * ours without a header counts as being created; once the creator dies, it
 * goes with it.  A replacer that holds the lock may unlink a file
 * not sized yet before we have our lock: -EAGAIN then (the file is no longer
 * the name's; create anew), else 0 or -errno.
 */
static int creator_lock(int fd)
{
	struct stat st;

	while (flock(fd, LOCK_EX))
		if (errno != EINTR)
			return -errno;
	if (fstat(fd, &st))
		return -errno;
	return st.st_nlink == 0 ? -EAGAIN : 0;
}

int shmq__file_size_check(uint64_t size)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_FSIZE, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	return size > (uint64_t)rl.rlim_cur ? -EFBIG : 0;
}

static int size_check(const struct shmq_region_opts *o, uint64_t *size)
{
	uint64_t s = o && o->size ? o->size : SHMQ_REGION_DEFAULT_SIZE;

	if (s < SHMQ_REGION_MIN_SIZE || s > SHMQ__REGION_MAX_SIZE)
		return -EINVAL;
	*size = SHMQ__ALIGN_UP(s, (uint64_t)SHMQ__REGION_PAGE);
	return 0;
}

static int region_create(const char *name, const struct shmq_region_opts *o,
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
		if (fd < 0 && errno == EEXIST) {
			if (region_replace_dead(r->name) == 0)
				fd = shm_open(r->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
			else
				errno = EEXIST; /* not what replace_dead's calls left */
		}
		if (fd >= 0) {
			rc = creator_lock(fd);
			if (rc == -EAGAIN) { /* a replacer took the name: once more */
				close(fd);
				fd = shm_open(r->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
				rc = fd >= 0 ? creator_lock(fd) : 0;
				if (rc == -EAGAIN) { /* again: give up */
					close(fd);
					rc = -EEXIST;
					goto fail;
				}
			}
			if (rc) { /* no lock on a file of ours: remove it */
				r->fd = fd;
				goto fail_unlink;
			}
		}
	} else {
		fd = memfd_create("shmq", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	}
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	r->fd = fd = shmq__fd_high(fd); /* never at 0-2: core/fd_int.h */
	if (fd < 0) {
		rc = -errno;
		goto fail_unlink;
	}
	rc = shmq__file_size_check(size); /* before SIGXFSZ could end us */
	if (rc)
		goto fail_unlink;
	if ((name && fchmod(fd, mode)) || ftruncate(fd, (off_t)size)) {
		rc = -errno;
		goto fail_unlink;
	}
	/* An anonymous region's size can never change under its users. */
	if (!name)
		fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	rc = region_reserve_at_create(r, size, flags);
	if (rc)
		goto fail_unlink;
	rc = region_format(r, size, flags);
	if (rc)
		goto fail_unlink;
	if (name)
		flock(fd, LOCK_UN); /* the header is written: attachers need no creator */
	*out = r;
	return 0;
fail_unlink:
	if (name)
		shm_unlink(r->name);
fail:
	region_free(r);
	return rc == -EFBIG ? -ENOSPC : rc;
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_region_create(const char *name, const struct shmq_region_opts *o,
				shmq_region **out)
{
	int cs = shmq__cancel_off();
	int rc = region_create(name, o, out);

	shmq__cancel_restore(cs);
	return rc;
}

static void sleep_ns(long ns)
{
	struct timespec ts = { 0, ns };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- attaching: open, inherit and observe share this one path ---- */

enum {
	ATTACH_INHERIT = 1u << 0, /* map lazily whatever the region's prefault flag says */
	ATTACH_OBSERVE = 1u << 1, /* read only, no process-table slot; a file
				   * without our magic is -ENOEXEC, not -EBADMSG */
	ATTACH_SHARED = 1u << 2,  /* SHMQ_REGION_SHARED: any owner, any mode */
};

/*
 * May this process attach read-write to the file behind fd?  A name in
 * /dev/shm belongs to whoever created it first: another local user may have
 * made it (mode 0666) before us, and then owns, and can write, all that we
 * would share through it.  Only a file of our own that nobody else may
 * write is taken without SHMQ_REGION_SHARED; -EPERM otherwise.
 */
static int region_owner_check(int fd, unsigned flags)
{
	struct stat st;

	if (flags & (ATTACH_SHARED | ATTACH_OBSERVE))
		return 0;
	if (fstat(fd, &st))
		return -errno;
	if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return -EPERM;
	return 0;
}

/* The header as the file holds it now, through pread (nothing mapped yet):
 * 0 when it has a nonzero magic, -EAGAIN when it has none yet (size 0: the
 * creator has not sized it; magic 0 at a size a creator sizes to: not
 * written yet), or the error for a file that cannot be a region. */
static int hdr_read(int fd, unsigned flags, struct shmq__region_hdr *h, uint64_t *file_size)
{
	int foreign = flags & ATTACH_OBSERVE ? -ENOEXEC : -EBADMSG;
	struct stat st;
	ssize_t n;

	*file_size = 0;
	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return foreign; /* a FIFO or a device someone put under /dev/shm */
	*file_size = (uint64_t)st.st_size;
	if (*file_size == 0)
		return -EAGAIN;
	if (*file_size < sizeof(*h))
		return foreign;
	n = pread(fd, h, sizeof(*h), 0);
	if (n != (ssize_t)sizeof(*h))
		return n < 0 ? -errno : -EBADMSG;
	if (h->magic != 0)
		return 0;
	/* a creator sizes its file once, to a page multiple of a region's size */
	if (*file_size < SHMQ_REGION_MIN_SIZE || *file_size > SHMQ__REGION_MAX_SIZE ||
	    *file_size % SHMQ__REGION_PAGE)
		return foreign;
	return -EAGAIN;
}

/* Does h have our magic but not the checksum of its bytes: a header read
 * while its creator wrote it, or a corrupt one? */
static bool hdr_partial(const struct shmq__region_hdr *h)
{
	return h->magic == SHMQ__REGION_MAGIC &&
	       h->checksum != shmq__fnv1a64(h, offsetof(struct shmq__region_hdr, checksum));
}

/* hdr_read, where a header read half written counts as none yet (-EAGAIN)
 * while its creator holds the creator's lock.  Once the lock is free the
 * creator has written all of it (it lets go after the header), so the
 * header read again then is final. */
static int hdr_read_whole(int fd, unsigned flags, struct shmq__region_hdr *h,
			  uint64_t *file_size)
{
	int rc = hdr_read(fd, flags, h, file_size);

	if (rc || !hdr_partial(h))
		return rc;
	if (shmq__ptab_creator_locked(fd))
		return -EAGAIN;
	return hdr_read(fd, flags, h, file_size);
}

/* Read the header, waiting for a creator that has not written it yet; see
 * region_attach for the policy. */
static int hdr_await(int fd, unsigned flags, struct shmq__region_hdr *h, uint64_t *file_size)
{
	int64_t give_up = shmq_now_ns() + FORMAT_WAIT_NS;

	for (;;) {
		int rc = hdr_read_whole(fd, flags, h, file_size);

		if (rc != -EAGAIN)
			return rc;
		rc = shmq__ptab_creator_alive(fd, *file_size, false);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			/* No creator now.  It may have written the header
			 * after our read, then closed or exited: what it wrote
			 * before it left is there to read.  Still no magic:
			 * the header will never come. */
			rc = hdr_read_whole(fd, flags, h, file_size);
			return rc == -EAGAIN ? -EBADMSG : rc;
		}
		if (shmq_now_ns() > give_up)
			return -EAGAIN;
		sleep_ns(FORMAT_POLL_NS);
	}
}

/*
 * Attach r to its descriptor r->fd: read and verify the header against the
 * file's size and the geometry this library computes for that size, map,
 * verify the mapped header again (the file may change between the two), take
 * the verified geometry into r, and join the process table (not with
 * ATTACH_OBSERVE, which maps PROT_READ and never writes to the region).
 *
 * A file without a header yet belongs to a creator that is between shm_open
 * and writing the header (region_format writes it last).  Every attach path
 * treats it alike: poll the file every FORMAT_POLL_NS for at most
 * FORMAT_WAIT_NS, give up at once with -EBADMSG when slot 0 of its process
 * table, which the creator claims before it writes the header, shows that
 * creator dead or gone and the header, read once more, is still missing
 * (it will never come; a creator that wrote it and left between our reads
 * is read then), and with -EAGAIN when
 * the deadline passes while the creator may still finish (retry later).
 * A header read while the creator writes it (a magic, not yet its
 * checksum) counts as none yet while the creator holds its lock.
 */
static int region_attach(shmq_region *r, unsigned flags)
{
	bool observe = flags & ATTACH_OBSERVE;
	struct shmq__region_hdr h;
	struct geometry g;
	uint64_t file_size;
	bool prefault;
	int rc;

	rc = hdr_await(r->fd, flags, &h, &file_size);
	if (rc)
		return rc;
	shmq__fence_acquire(); /* pairs with region_format's release fence */
	if (observe && h.magic != SHMQ__REGION_MAGIC)
		return -ENOEXEC;
	rc = hdr_verify(&h, file_size, &g);
	if (rc)
		return rc;
	prefault = !(flags & (ATTACH_INHERIT | ATTACH_OBSERVE)) &&
		   !(h.flags & SHMQ_REGION_NOPREFAULT);
	rc = region_map(r, g.size, !observe, prefault);
	if (rc)
		return rc;
	geometry_apply(r, &g);
	r->reserve_on_alloc = h.flags & SHMQ_REGION_NOPREFAULT;
	/* The file may have changed between pread and mmap: verify the mapping. */
	rc = hdr_verify(hdr_of(r), g.size, &g);
	if (!rc) {
		uint8_t uuid[16];

		rc = ident_read(r->base, uuid); /* a version-2 header promises an identity */
	}
	if (rc || observe)
		return rc;
	return shmq__ptab_claim(r);
}

/* Open name with oflag and attach to it: shmq_region_open and observe. */
static int region_attach_name(const char *name, int oflag, unsigned flags, shmq_region **out)
{
	shmq_region *r;
	int rc;

	if (!out)
		return -EINVAL;
	r = region_alloc();
	if (!r)
		return -ENOMEM;
	rc = region_name_norm(name, r->name);
	if (rc)
		goto fail;
	/* O_NONBLOCK: a FIFO by that name must not hold an O_RDONLY open
	 * waiting for a writer (hdr_read refuses it); no effect on a file */
	r->fd = shmq__fd_high(shm_open(r->name, oflag | O_CLOEXEC | O_NONBLOCK, 0));
	if (r->fd < 0) {
		/* EINVAL for the name checked above: glibc's for open's EISDIR,
		 * a directory of that name, which holds no region */
		rc = errno != EINVAL ? -errno : flags & ATTACH_OBSERVE ? -ENOEXEC : -EBADMSG;
		goto fail;
	}
	rc = region_owner_check(r->fd, flags);
	if (rc)
		goto fail;
	rc = region_attach(r, flags);
	if (rc)
		goto fail;
	*out = r;
	return 0;
fail:
	region_free(r);
	return rc;
}

static int region_open_flags(const char *name, unsigned flags, shmq_region **out)
{
	if (flags & ~SHMQ_REGION_SHARED)
		return -EINVAL;
	return region_attach_name(name, O_RDWR, flags & SHMQ_REGION_SHARED ? ATTACH_SHARED : 0,
				  out);
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_region_open_flags(const char *name, unsigned flags, shmq_region **out)
{
	int cs = shmq__cancel_off();
	int rc = region_open_flags(name, flags, out);

	shmq__cancel_restore(cs);
	return rc;
}

SHMQ_API int shmq_region_open(const char *name, shmq_region **out)
{
	return shmq_region_open_flags(name, 0, out);
}

/* A region on our own copy of fd (the caller's descriptor stays the
 * caller's), attached with how. */
static int region_from_fd(int fd, const char *name, unsigned how, shmq_region **out)
{
	shmq_region *r;
	int rc;

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
	r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* never at 0-2: core/fd_int.h */
	if (r->fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = region_attach(r, how);
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
	/* Spawned children map lazily: populating every page table entry of
	 * a 64 MiB region cost ~27 ms per spawn (14x the spawn itself), paid
	 * again by each of a pool's workers, for pages a child may never touch. */
	return region_from_fd(fd, name, ATTACH_INHERIT, out);
}

int shmq__region_fd(const shmq_region *r)
{
	return r->fd;
}

static int region_inherit(shmq_region **out)
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

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_region_inherit(shmq_region **out)
{
	int cs = shmq__cancel_off();
	int rc = region_inherit(out);

	shmq__cancel_restore(cs);
	return rc;
}

static void region_close(shmq_region *r)
{
	if (!r)
		return;
	if (r->pid == getpid())
		shmq__ptab_release(r);
	region_free(r);
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API void shmq_region_close(shmq_region *r)
{
	int cs = shmq__cancel_off();

	region_close(r);
	shmq__cancel_restore(cs);
}

SHMQ_API int shmq_region_unlink(const char *name)
{
	char norm[SHMQ_NAME_MAX + 2];
	int rc = region_name_norm(name, norm);

	if (rc)
		return rc;
	return shm_unlink(norm) ? -errno : 0;
}

int shmq__region_observe(const char *name, shmq_region **out)
{
	return region_attach_name(name, O_RDONLY, ATTACH_OBSERVE, out);
}

int shmq__region_observe_fd(int fd, shmq_region **out)
{
	/* the very checks a named observe makes: magic, version, geometry
	 * against the file's size, then the mapping once more */
	return region_from_fd(fd, NULL, ATTACH_OBSERVE, out);
}

/* ---- allocator ---- */

int shmq__region_alloc(shmq_region *r, uint64_t size, void **mem_out)
{
	struct shmq__region_ctl *ctl = ctl_of(r);
	uint64_t top, start, end;

	/* a region handle inherited across fork() names the parent's
	 * attachment (its owner id): refuse it (observers have no pid) */
	if (shmq__region_forked(r))
		return -EBADF;
	if (size == 0)
		return -EINVAL;
	if (size > r->size) /* can never fit: the documented "full" error */
		return -ENOSPC;
	size = SHMQ__ALIGN_UP(size, (uint64_t)SHMQ__CACHELINE);
	/* relaxed: a first guess, re-validated by the CAS below */
	top = shmq__load_relaxed(&ctl->heap_top);
	do {
		if (top < r->heap_off || top > r->size)
			return -EBADMSG;
		start = SHMQ__ALIGN_UP(top, (uint64_t)SHMQ__CACHELINE);
		if (start > r->size || size > r->size - start)
			return -ENOSPC;
		end = start + size;
		/* Before the block is ours: a reservation that fails leaves the
		 * heap as it was; one for a block another caller wins is
		 * harmless (the pages are the region's either way). */
		if (r->reserve_on_alloc) {
			int rc = region_reserve(r->fd, start, size);

			if (rc)
				return rc;
		}
		/* relaxed: the heap top publishes nothing; blocks are
		 * published through the directory's release store */
	} while (!shmq__cas_relaxed(&ctl->heap_top, &top, end));
	memset(r->base + start, 0, size);
	*mem_out = r->base + start;
	return 0;
}

int shmq__region_extend(shmq_region *r, uint64_t end, uint64_t size)
{
	struct shmq__region_ctl *ctl = ctl_of(r);
	uint64_t top;

	if (shmq__region_forked(r))
		return -EBADF;
	if (size == 0 || end % SHMQ__CACHELINE)
		return -EINVAL;
	if (size > r->size)
		return -ENOSPC;
	size = SHMQ__ALIGN_UP(size, (uint64_t)SHMQ__CACHELINE);
	/* relaxed: re-validated by the CAS below, as in shmq__region_alloc */
	top = shmq__load_relaxed(&ctl->heap_top);
	if (top < r->heap_off || top > r->size)
		return -EBADMSG;
	if (top != end)
		return -EAGAIN;
	if (size > r->size - end)
		return -ENOSPC;
	if (r->reserve_on_alloc) {
		int rc = region_reserve(r->fd, end, size);

		if (rc)
			return rc;
	}
	/* relaxed: the heap top publishes nothing (shmq__region_alloc); a
	 * failed CAS means another block now lies at end */
	if (!shmq__cas_relaxed(&ctl->heap_top, &top, end + size))
		return -EAGAIN;
	memset(r->base + end, 0, size);
	return 0;
}

int shmq__region_reserve_ahead(shmq_region *r, uint64_t size)
{
	struct shmq__region_ctl *ctl = ctl_of(r);
	/* relaxed: where the heap stands now; allocators that move it
	 * meanwhile only make the reservation cover their blocks too */
	uint64_t top = shmq__load_relaxed(&ctl->heap_top);

	if (top < r->heap_off || top > r->size)
		return -EBADMSG;
	top = SHMQ__ALIGN_UP(top, (uint64_t)SHMQ__CACHELINE);
	if (top > r->size || size > r->size - top)
		return -ENOSPC;
	return r->reserve_on_alloc ? region_reserve(r->fd, top, size) : 0;
}

void *shmq__region_ptr(const shmq_region *r, uint64_t off, uint64_t len)
{
	if (off < r->heap_off || off > r->size || len > r->size - off)
		return NULL;
	return r->base + off;
}

SHMQ_API int shmq_region_info(const shmq_region *r, struct shmq_region_info *info)
{
	struct shmq__region_ctl *ctl;
	uint64_t top;

	if (!r || !info)
		return -EINVAL;
	ctl = ctl_of(r);
	memset(info, 0, sizeof(*info));
	/* relaxed: a statistic, range-checked before it is reported */
	top = shmq__load_relaxed(&ctl->heap_top);
	if (top < r->heap_off || top > r->size)
		return -EBADMSG;
	info->size = r->size;
	info->used = top;
	/* relaxed: a statistic, as the fetch_add in shmq__obj_create */
	info->objects = shmq__load_relaxed(&ctl->dir_count);
	info->max_objects = r->dir_entries;
	info->procs = shmq__ptab_count(r);
	info->max_procs = r->ptab_slots;
	info->version = SHMQ__REGION_VERSION;
	strcpy(info->name, r->name);
	return 0;
}
