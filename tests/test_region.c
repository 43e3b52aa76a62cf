/* SPDX-License-Identifier: MIT */
/* Regions: create/open across processes, names, modes, the verified header,
 * the directory, the allocator and the process table. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include "testutil.h"

#include "core/atomic_int.h"
#include "core/ptab_int.h"
#include "core/region_int.h"
#include "core/region_layout_int.h"

#define SMALL ((size_t)256 << 10)

static void test_create_open_two_processes(void **state)
{
	char name[96];
	struct shmq_region_opts o = { .size = SMALL };
	shmq_region *r;
	uint64_t *word;
	pid_t pid;

	(void)state;
	tu_name(name, sizeof(name), "xproc");
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	assert_int_equal(shmq__obj_create(r, "word", SHMQ__OBJ_BLOB, 64, NULL, NULL, (void **)&word), 0);
	*word = 0x1234;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *c;
		uint64_t *w;
		int ok = shmq_region_open(name, &c) == 0 &&
			 shmq__obj_find(c, "word", SHMQ__OBJ_BLOB, (void **)&w, NULL) == 0 &&
			 *w == 0x1234 && shmq__region_self(c) != shmq__region_self(r);

		if (ok)
			*w = 0x5678;
		shmq_region_close(c);
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(*word, 0x5678);
	shmq_region_close(r);
	assert_int_equal(shmq_region_unlink(name), 0);
}

static void test_exclusive_and_missing(void **state)
{
	char name[96];
	struct shmq_region_opts o = { .size = SMALL };
	shmq_region *r, *r2;

	(void)state;
	tu_name(name, sizeof(name), "excl");
	assert_int_equal(shmq_region_open(name, &r2), -ENOENT);
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	assert_int_equal(shmq_region_create(name, &o, &r2), -EEXIST);
	shmq_region_close(r);
	assert_int_equal(shmq_region_unlink(name), 0);
	assert_int_equal(shmq_region_unlink(name), -ENOENT);
	assert_int_equal(shmq_region_open(name, &r2), -ENOENT);
}

/* A server's thread cancelled (deferred) while it creates, opens or closes a
 * region: the calls are no cancellation points, so each completes and the
 * cancel acts after it.  Old code: the cancel acted inside the call (in an
 * open, a close or the creator's liveness look), which left the descriptor
 * behind - for a create, one holding the creator's lock on a file without
 * its header, so every open of the name said -EAGAIN while this process
 * lived, and a create -EEXIST. */
struct cancelled_region {
	int which; /* 0: create; 1: open; 2: close */
	const char *name;
	shmq_region *r;
	int rc;
};

static void *cancelled_region_main(void *arg)
{
	struct cancelled_region *c = arg;
	struct shmq_region_opts o = { .size = SMALL };

	pthread_cancel(pthread_self()); /* deferred: pending in the call */
	if (c->which == 0)
		c->rc = shmq_region_create(c->name, &o, &c->r);
	else if (c->which == 1)
		c->rc = shmq_region_open(c->name, &c->r);
	else
		shmq_region_close(c->r), c->rc = 0;
	pthread_testcancel();
	return NULL;
}

static void cancelled_region_call(struct cancelled_region *c)
{
	pthread_t th;
	void *ret;

	c->rc = 1;
	assert_int_equal(pthread_create(&th, NULL, cancelled_region_main, c), 0);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_ptr_equal(ret, PTHREAD_CANCELED);
	assert_int_equal(c->rc, 0);
}

static void test_cancelled_inside(void **state)
{
	char name[96];
	struct cancelled_region c = { 0, NULL, NULL, 0 }, d = { 1, NULL, NULL, 0 };
	int fds = tu_fd_count();
	shmq_region *r;

	(void)state;
	tu_name(name, sizeof(name), "cancel");
	c.name = d.name = name;
	cancelled_region_call(&c);
	assert_int_equal(shmq_region_open(name, &r), 0);
	shmq_region_close(r);
	cancelled_region_call(&d);
	d.which = 2;
	cancelled_region_call(&d);
	c.which = 2;
	cancelled_region_call(&c);
	assert_int_equal(tu_fd_count(), fds);
	assert_int_equal(shmq_region_unlink(name), 0);
}

static void test_mode(void **state)
{
	char name[96], path[128];
	struct shmq_region_opts o = { .size = SMALL };
	struct stat st;
	shmq_region *r;
	mode_t old = umask(0);

	(void)state;
	umask(old | 022);
	tu_name(name, sizeof(name), "mode");
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	snprintf(path, sizeof(path), "/dev/shm%s", name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	shmq_region_close(r);
	shmq_region_unlink(name);

	o.mode = 0640;
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	shmq_region_close(r);
	shmq_region_unlink(name);
	umask(old);
}

static void test_bad_names_and_sizes(void **state)
{
	char longname[256];
	struct shmq_region_opts o = { .size = SMALL };
	shmq_region *r;

	(void)state;
	memset(longname, 'a', 201);
	longname[201] = '\0';
	assert_int_equal(shmq_region_create("", &o, &r), -EINVAL);
	assert_int_equal(shmq_region_create("/", &o, &r), -EINVAL);
	assert_int_equal(shmq_region_create(longname, &o, &r), -EINVAL);
	assert_int_equal(shmq_region_create("/a/b", &o, &r), -EINVAL);
	assert_int_equal(shmq_region_create("caf\xc3\xa9", &o, &r), -EINVAL);
	assert_int_equal(shmq_region_create("..", &o, &r), -EINVAL);
	assert_int_equal(shmq_region_create("sp ace", &o, &r), -EINVAL);
	assert_int_equal(shmq_region_open("", &r), -EINVAL);
	assert_int_equal(shmq_region_open(NULL, &r), -EINVAL);
	assert_int_equal(shmq_region_unlink("a/b"), -EINVAL);
	o.size = 4096;
	assert_int_equal(shmq_region_create(NULL, &o, &r), -EINVAL);
	o.size = SMALL;
	o.flags = 0x80;
	assert_int_equal(shmq_region_create(NULL, &o, &r), -EINVAL);
	/* 200 characters exactly is fine: this run's own name (another run of
	 * the suite, in another tree, may be at this very line), padded */
	tu_name(longname, sizeof(longname), "long");
	memmove(longname, longname + 1, strlen(longname)); /* no '/': 200 characters */
	memset(longname + strlen(longname), 'a', 200 - strlen(longname));
	longname[200] = '\0';
	o.flags = 0;
	assert_int_equal(shmq_region_create(longname, &o, &r), 0);
	shmq_region_close(r);
	assert_int_equal(shmq_region_unlink(longname), 0);
}

static void test_anonymous(void **state)
{
	shmq_region *r;
	struct shmq_region_info info;
	void *mem;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, NULL, &r), 0);
	assert_int_equal(shmq_region_info(r, &info), 0);
	assert_int_equal(info.size, SHMQ_REGION_DEFAULT_SIZE);
	assert_string_equal(info.name, "");
	assert_int_equal(info.procs, 1);
	assert_int_equal(shmq__obj_create(r, "x", SHMQ__OBJ_BLOB, 100, NULL, NULL, &mem), 0);
	assert_int_equal((uintptr_t)mem % 64, 0);
	shmq_region_close(r);
}

/* Flip every byte of the header in turn: open must refuse, never crash. */
static void test_header_flips(void **state)
{
	char name[96], path[128];
	struct shmq_region_opts o = { .size = SMALL };
	shmq_region *r;
	int fd;

	(void)state;
	tu_name(name, sizeof(name), "flip");
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	shmq_region_close(r);
	snprintf(path, sizeof(path), "/dev/shm%s", name);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	for (off_t i = 0; i < 64; i++) {
		uint8_t b, x;
		int rc;

		assert_int_equal(pread(fd, &b, 1, i), 1);
		x = b ^ 0x5a;
		assert_int_equal(pwrite(fd, &x, 1, i), 1);
		rc = shmq_region_open(name, &r);
		if (rc == 0)
			shmq_region_close(r);
		if (rc != -EBADMSG && rc != -EPROTO)
			fail_msg("byte %ld flipped: open gave %d", (long)i, rc);
		assert_int_equal(pwrite(fd, &b, 1, i), 1);
	}
	assert_int_equal(shmq_region_open(name, &r), 0);
	shmq_region_close(r);
	/* a truncated file */
	assert_int_equal(ftruncate(fd, (off_t)SMALL / 2), 0);
	assert_int_equal(shmq_region_open(name, &r), -EBADMSG);
	/* a foreign file of the right size */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(ftruncate(fd, (off_t)SMALL), 0);
	assert_int_equal(pwrite(fd, "not a region", 12, 0), 12);
	assert_int_equal(shmq_region_open(name, &r), -EBADMSG);
	close(fd);
	shmq_region_unlink(name);
}

static void test_version_mismatch(void **state)
{
	char name[96], path[128];
	struct shmq_region_opts o = { .size = SMALL };
	shmq_region *r;
	uint32_t v = 99;
	int fd;

	(void)state;
	tu_name(name, sizeof(name), "ver");
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	shmq_region_close(r);
	snprintf(path, sizeof(path), "/dev/shm%s", name);
	fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, &v, 4, 8), 4);
	assert_int_equal(shmq_region_open(name, &r), -EPROTO);
	close(fd);
	shmq_region_unlink(name);
}

static void test_full_region(void **state)
{
	struct shmq_region_opts o = { .size = SHMQ_REGION_MIN_SIZE };
	struct shmq_region_info info;
	shmq_region *r;
	void *mem;
	int rc, n = 0;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &o, &r), 0);
	assert_int_equal(shmq__obj_create(r, "huge", SHMQ__OBJ_BLOB, SHMQ_REGION_MIN_SIZE, NULL, NULL, &mem), -ENOSPC);
	for (;;) {
		char nm[32];

		snprintf(nm, sizeof(nm), "o%d", n);
		rc = shmq__obj_create(r, nm, SHMQ__OBJ_BLOB, 1024, NULL, NULL, &mem);
		if (rc)
			break;
		n++;
	}
	assert_int_equal(rc, -ENOSPC);
	assert_true(n > 0);
	assert_int_equal(shmq_region_info(r, &info), 0);
	assert_int_equal(info.objects, (unsigned)n);
	/* what was there is still there */
	assert_int_equal(shmq__obj_find(r, "o0", SHMQ__OBJ_BLOB, &mem, NULL), 0);
	shmq_region_close(r);
}

static void test_thousand_objects(void **state)
{
	shmq_region *r;
	void *mem[1000];

	(void)state;
	assert_int_equal(shmq_region_create(NULL, NULL, &r), 0);
	for (int i = 0; i < 1000; i++) {
		char nm[32];

		snprintf(nm, sizeof(nm), "obj.%d", i);
		assert_int_equal(shmq__obj_create(r, nm, SHMQ__OBJ_BLOB, 64 + (size_t)i, NULL, NULL, &mem[i]), 0);
		memset(mem[i], i & 0xff, 64);
	}
	for (int i = 999; i >= 0; i--) {
		char nm[32];
		void *p;
		uint64_t size;

		snprintf(nm, sizeof(nm), "obj.%d", i);
		assert_int_equal(shmq__obj_find(r, nm, SHMQ__OBJ_BLOB, &p, &size), 0);
		assert_ptr_equal(p, mem[i]);
		assert_true(size >= 64 + (uint64_t)i);
		assert_int_equal(((uint8_t *)p)[63], i & 0xff);
	}
	assert_int_equal(shmq__obj_create(r, "obj.7", SHMQ__OBJ_BLOB, 64, NULL, NULL, &mem[0]), -EEXIST);
	assert_int_equal(shmq__obj_find(r, "nope", SHMQ__OBJ_BLOB, &mem[0], NULL), -ENOENT);
	shmq_region_close(r);
}

static int init_fail(void *mem, uint64_t size, void *arg)
{
	(void)mem;
	(void)size;
	(void)arg;
	return -ENOMEM;
}

static void test_type_mismatch_and_names(void **state)
{
	shmq_region *r;
	void *mem;
	char longname[80];

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &(struct shmq_region_opts){ .size = SMALL }, &r), 0);
	assert_int_equal(shmq__obj_create(r, "l", SHMQ__OBJ_LOCK, 64, NULL, NULL, &mem), 0);
	assert_int_equal(shmq__obj_find(r, "l", SHMQ__OBJ_QUEUE, &mem, NULL), -EINVAL);
	assert_int_equal(shmq__obj_find(r, "l", SHMQ__OBJ_LOCK, &mem, NULL), 0);
	memset(longname, 'n', 64);
	longname[64] = '\0';
	assert_int_equal(shmq__obj_create(r, longname, SHMQ__OBJ_BLOB, 64, NULL, NULL, &mem), -EINVAL);
	longname[63] = '\0';
	assert_int_equal(shmq__obj_create(r, longname, SHMQ__OBJ_BLOB, 64, NULL, NULL, &mem), 0);
	assert_int_equal(shmq__obj_create(r, "a/b", SHMQ__OBJ_BLOB, 64, NULL, NULL, &mem), -EINVAL);
	assert_int_equal(shmq__obj_create(r, "", SHMQ__OBJ_BLOB, 64, NULL, NULL, &mem), -EINVAL);
	/* a failing init publishes nothing; the name stays free */
	assert_int_equal(shmq__obj_create(r, "f", SHMQ__OBJ_BLOB, 64, init_fail, NULL, &mem), -ENOMEM);
	assert_int_equal(shmq__obj_find(r, "f", SHMQ__OBJ_BLOB, &mem, NULL), -ENOENT);
	assert_int_equal(shmq__obj_create(r, "f", SHMQ__OBJ_BLOB, 64, NULL, NULL, &mem), 0);
	shmq_region_close(r);
}

/* A directory entry pointing outside the heap is refused, never followed. */
static void test_corrupt_directory_entry(void **state)
{
	shmq_region *r;
	void *mem;
	uint64_t *off;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &(struct shmq_region_opts){ .size = SMALL }, &r), 0);
	assert_int_equal(shmq__obj_create(r, "victim", SHMQ__OBJ_BLOB, 64, NULL, NULL, &mem), 0);
	off = (uint64_t *)(r->base + r->dir_off + 8); /* struct dir_entry.off */
	assert_int_equal(*off, shmq__region_off(r, mem));
	*off = r->size + 4096;
	assert_int_equal(shmq__obj_find(r, "victim", SHMQ__OBJ_BLOB, &mem, NULL), -EBADMSG);
	*off = 8; /* inside the header */
	assert_int_equal(shmq__obj_find(r, "victim", SHMQ__OBJ_BLOB, &mem, NULL), -EBADMSG);
	shmq_region_close(r);
}

/* Fork a child that attaches to the region called name, stores its owner id
 * in *child_id and waits to be killed; returns its pid once the id is
 * there. */
static pid_t attached_child(const char *name, uint32_t *child_id)
{
	int pfd[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *c2 = tu_child_region(name);

		*child_id = shmq__region_self(c2);
		if (write(pfd[1], "x", 1) != 1)
			_exit(2);
		pause(); /* killed by the parent while attached */
		_exit(3);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	return pid;
}

static void test_process_table(void **state)
{
	char name[96];
	struct shmq_region_opts o = { .size = SMALL };
	shmq_region *r;
	uint32_t *child_id;
	pid_t pid;

	(void)state;
	tu_name(name, sizeof(name), "ptab");
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	assert_int_equal(shmq__region_id_alive(r, shmq__region_self(r)), 1);
	assert_int_equal(shmq__region_id_alive(r, 0), -EBADMSG);
	assert_int_equal(shmq__obj_create(r, "id", SHMQ__OBJ_BLOB, 64, NULL, NULL, (void **)&child_id), 0);
	pid = attached_child(name, child_id);
	assert_int_equal(shmq__region_id_alive(r, *child_id), 1);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq__region_id_alive(r, *child_id), 0);
	/* the dead slot is reclaimed by the next attachment, under a new id */
	{
		shmq_region *again;

		assert_int_equal(shmq_region_open(name, &again), 0);
		assert_int_not_equal(shmq__region_self(again), *child_id);
		assert_int_equal(shmq__region_id_alive(r, *child_id), 0);
		assert_int_equal(shmq__region_id_alive(r, shmq__region_self(again)), 1);
		shmq_region_close(again);
	}
	shmq_region_close(r);
	shmq_region_unlink(name);
}

/* Field 22 of /proc/PID/stat, the start time the process table records. */
static uint64_t proc_starttime(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	assert_non_null(p);
	/* after the comm: fields 3..21, then starttime */
	assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u "
				"%*d %*d %*d %*d %*d %*d %llu", &st), 1);
	return st;
}

/* A dead attachment whose pid was reused by another process is dead: the
 * slot's start time is not the new process's.  Found by an audit: the
 * start time was read from field 21 of /proc/PID/stat (itrealvalue, always
 * 0) instead of 22, so every slot recorded 0 ("unknown") and a reused pid
 * made a dead holder alive again: its lock was never taken over. */
static void test_pid_reused(void **state)
{
	struct shmq_region_opts o = { .size = SMALL };
	struct shmq__ptab_entry e;
	struct shmq__ptab_slot *slot;
	uint32_t *child_id;
	char name[96];
	shmq_region *r;
	pid_t pid, other;

	(void)state;
	tu_name(name, sizeof(name), "pidreuse");
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	/* our own slot carries our start time */
	assert_int_equal(shmq__region_ptab_get(r, shmq__id_slot(shmq__region_self(r)), &e), 0);
	assert_int_equal(e.pid, getpid());
	assert_int_equal(e.starttime, proc_starttime(getpid()));
	assert_int_equal(shmq__obj_create(r, "id", SHMQ__OBJ_BLOB, 64, NULL, NULL, (void **)&child_id), 0);
	pid = attached_child(name, child_id);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq__region_id_alive(r, *child_id), 0);
	/* its pid goes to another process (here: a live one made after it,
	 * written into the dead slot as a pid reuse would leave it), one that
	 * started a clock tick later (start times count ticks) */
	assert_int_equal(shmq__region_ptab_get(r, shmq__id_slot(*child_id), &e), 0);
	assert_int_not_equal(e.starttime, 0);
	for (;;) {
		other = fork();
		assert_true(other >= 0);
		if (other == 0) {
			alarm(60);
			pause();
			_exit(0);
		}
		if (proc_starttime(other) != e.starttime)
			break;
		kill(other, SIGKILL);
		assert_int_equal(tu_wait_child(other), 128 + SIGKILL);
	}
	slot = (struct shmq__ptab_slot *)(r->base + r->ptab_off) + shmq__id_slot(*child_id);
	__atomic_store_n(&slot->word, (uint64_t)(uint32_t)other << 32 | (slot->word & 0xffffffffu),
			 __ATOMIC_SEQ_CST);
	assert_int_equal(shmq__region_id_alive(r, *child_id), 0);
	kill(other, SIGKILL);
	assert_int_equal(tu_wait_child(other), 128 + SIGKILL);
	shmq_region_close(r);
	shmq_region_unlink(name);
}

/* ---- two claims of one free slot at once ----
 *
 * A claimer holds at shmq__ptab_fault with the slot it chose from a word it
 * read free, while another claim takes that slot; then it goes on. */

static _Thread_local bool claim_hold; /* this thread's next claim stops once */
static pthread_mutex_t claim_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t claim_cv = PTHREAD_COND_INITIALIZER;
static int claim_state; /* 0: not there yet, 1: held at the seam, 2: let go */
static unsigned claim_slot;

static void claim_hold_here(unsigned slot)
{
	if (!claim_hold)
		return;
	claim_hold = false;
	pthread_mutex_lock(&claim_mu);
	claim_slot = slot;
	claim_state = 1;
	pthread_cond_broadcast(&claim_cv);
	while (claim_state != 2)
		pthread_cond_wait(&claim_cv, &claim_mu);
	pthread_mutex_unlock(&claim_mu);
}

struct held_open {
	const char *name;
	shmq_region *r;
	int rc;
};

static void *open_held(void *arg)
{
	struct held_open *h = arg;

	claim_hold = true;
	h->rc = shmq_region_open(h->name, &h->r);
	return NULL;
}

/* Two threads of one process open a region at once and go for the same free
 * slot, the one this process left last (its start time still in it).  The
 * loser, held after it read the slot free while the winner claimed it, must
 * leave the winner's start time alone.  Found by an audit: each claimer
 * cleared the slot's start time by a CAS from the value it read before its
 * own claim CAS, so a loser cleared the winner's (the same value); the
 * winner's slot then read "start time unknown": its pid's reuse went unseen,
 * and the other open of this process no longer knew the winner's lock as
 * its own (-EAGAIN, a wait on itself, instead of -EDEADLK). */
static void test_claim_race_keeps_starttime(void **state)
{
	struct shmq_region_opts o = { .size = SMALL };
	struct held_open b = { 0 };
	struct shmq__ptab_entry e = { 0 };
	shmq_region *r, *left, *a = NULL;
	shmq_lock *la, *lb;
	pthread_t th;
	char name[96];
	int rc_a;

	(void)state;
	tu_name(name, sizeof(name), "claimrace");
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	assert_int_equal(shmq_lock_create(r, "l", &la), 0);
	shmq_lock_close(la);
	assert_int_equal(shmq_region_open(name, &left), 0);
	assert_int_equal(shmq__id_slot(shmq__region_self(left)), 1);
	shmq_region_close(left); /* slot 1: free, our start time still in it */
	b.name = name;
	claim_state = 0;
	shmq__ptab_fault = claim_hold_here;
	assert_int_equal(pthread_create(&th, NULL, open_held, &b), 0);
	pthread_mutex_lock(&claim_mu);
	while (claim_state != 1)
		pthread_cond_wait(&claim_cv, &claim_mu);
	pthread_mutex_unlock(&claim_mu);
	rc_a = shmq_region_open(name, &a); /* takes the slot b holds at */
	pthread_mutex_lock(&claim_mu);
	claim_state = 2;
	pthread_cond_broadcast(&claim_cv);
	pthread_mutex_unlock(&claim_mu);
	assert_int_equal(pthread_join(th, NULL), 0);
	shmq__ptab_fault = NULL;
	assert_int_equal(rc_a, 0);
	assert_int_equal(b.rc, 0);
	assert_int_equal(claim_slot, 1);
	assert_int_equal(shmq__id_slot(shmq__region_self(a)), 1);
	assert_int_not_equal(shmq__id_slot(shmq__region_self(b.r)), 1);
	assert_int_equal(shmq__region_ptab_get(r, 1, &e), 0);
	assert_int_equal(e.pid, getpid());
	assert_int_equal(e.starttime, proc_starttime(getpid()));
	/* either open knows a lock taken through the other as this thread's */
	assert_int_equal(shmq_lock_open(a, "l", &la), 0);
	assert_int_equal(shmq_lock_open(b.r, "l", &lb), 0);
	assert_int_equal(shmq_lock_acquire(la, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_lock_acquire(lb, SHMQ_NOWAIT), -EDEADLK);
	assert_int_equal(shmq_lock_release(la), 0);
	assert_int_equal(shmq_lock_acquire(lb, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_lock_acquire(la, SHMQ_NOWAIT), -EDEADLK);
	assert_int_equal(shmq_lock_release(lb), 0);
	shmq_lock_close(la);
	shmq_lock_close(lb);
	shmq_region_close(b.r);
	shmq_region_close(a);
	shmq_region_close(r);
	shmq_region_unlink(name);
}

/* A claim under way holds its slot under a free word that names the
 * claimer.  A claimer that died there leaves the slot to the next one that
 * finds the table otherwise full, once its pidns record says that its pid
 * is one of ours; without the record its pid proves nothing, and the slot
 * is left alone. */
static void test_claim_held_by_dead_claimer(void **state)
{
	struct shmq_region_opts o = { .size = SMALL };
	struct shmq__ptab_slot *slots;
	struct shmq__ptab_entry e;
	shmq_region *r, *c;
	char name[96];
	pid_t dead;

	(void)state;
	tu_name(name, sizeof(name), "deadclaimer");
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	dead = fork();
	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	assert_int_equal(tu_wait_child(dead), 0);
	slots = (struct shmq__ptab_slot *)(r->base + r->ptab_off);
	for (unsigned i = 1; i < r->ptab_slots; i++) /* the rest: all ours, alive */
		slots[i] = (struct shmq__ptab_slot){
			.word = (uint64_t)(uint32_t)getpid() << 32 | 5u << 1 | 1,
			.starttime = proc_starttime(getpid()),
		};
	slots[7] = (struct shmq__ptab_slot){ .word = (uint64_t)(uint32_t)dead << 32 | 6u << 1,
					     .starttime = 1234 };
	assert_int_equal(shmq_region_open(name, &c), -ENOSPC);
	slots[7].pidns = (uint64_t)r->pidns << 32 | 6u;
	assert_int_equal(shmq_region_open(name, &c), 0);
	assert_int_equal(shmq__region_self(c), 7u | 7u << SHMQ__ID_SLOT_BITS);
	assert_int_equal(shmq__region_ptab_get(r, 7, &e), 0);
	assert_int_equal(e.pid, getpid());
	assert_int_equal(e.starttime, proc_starttime(getpid()));
	shmq_region_close(c);
	shmq_region_close(r);
	shmq_region_unlink(name);
}

static void test_public_alloc_find(void **state)
{
	shmq_region *r;
	void *a, *b;
	size_t size;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &(struct shmq_region_opts){ .size = SMALL }, &r), 0);
	assert_int_equal(shmq_region_alloc(r, "table", 1000, &a), 0);
	assert_int_equal((uintptr_t)a % 64, 0);
	assert_int_equal(((char *)a)[999], 0);
	assert_int_equal(shmq_region_find(r, "table", &b, &size), 0);
	assert_ptr_equal(a, b);
	assert_true(size >= 1000);
	assert_int_equal(shmq_region_alloc(r, "table", 8, &b), -EEXIST);
	assert_int_equal(shmq_region_alloc(r, "zero", 0, &b), -EINVAL);
	assert_int_equal(shmq_region_alloc(r, "big", SMALL, &b), -ENOSPC);
	assert_int_equal(shmq_region_find(r, "nope", &b, &size), -ENOENT);
	assert_int_equal(shmq__obj_create(r, "lk", SHMQ__OBJ_LOCK, 64, NULL, NULL, &b), 0);
	assert_int_equal(shmq_region_find(r, "lk", &b, &size), -EINVAL);
	shmq_region_close(r);
}

/* shmq_region(3)'s limits: size from 64 KiB to 1 TiB, rounded up to whole
 * 4 KiB pages; one directory entry per 8 KiB, 64 to 4096 of them; 1024
 * process-table slots; shmq_region_find() reports the size rounded up to a
 * multiple of 64, and takes a NULL size. */
static void test_limits_stated(void **state)
{
	struct shmq_region_info info;
	struct shmq_region_opts o = { .size = SHMQ_REGION_MIN_SIZE - 1 };
	const size_t tib = (size_t)1 << 40;
	shmq_region *r;
	void *a, *b;
	size_t size;
	int rc;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &o, &r), -EINVAL);
	o.size = tib + 1;
	assert_int_equal(shmq_region_create(NULL, &o, &r), -EINVAL);
	o.size = tib;
	o.flags = SHMQ_REGION_NOPREFAULT;
	rc = shmq_region_create(NULL, &o, &r);
	assert_true(rc == 0 || rc == -ENOSPC || rc == -ENOMEM);
	if (rc == 0) {
		assert_int_equal(shmq_region_info(r, &info), 0);
		assert_int_equal(info.size, tib);
		assert_int_equal(info.max_objects, 4096);
		shmq_region_close(r);
	}
	o.flags = 0;
	o.size = SHMQ_REGION_MIN_SIZE;
	assert_int_equal(shmq_region_create(NULL, &o, &r), 0);
	assert_int_equal(shmq_region_info(r, &info), 0);
	assert_int_equal(info.size, SHMQ_REGION_MIN_SIZE);
	assert_int_equal(info.max_objects, 64);
	assert_int_equal(info.max_procs, 1024);
	shmq_region_close(r);
	o.size = SHMQ_REGION_MIN_SIZE + 1;
	assert_int_equal(shmq_region_create(NULL, &o, &r), 0);
	assert_int_equal(shmq_region_info(r, &info), 0);
	assert_int_equal(info.size, SHMQ_REGION_MIN_SIZE + 4096);
	shmq_region_close(r);
	o.size = (size_t)1 << 20;
	assert_int_equal(shmq_region_create(NULL, &o, &r), 0);
	assert_int_equal(shmq_region_info(r, &info), 0);
	assert_int_equal(info.max_objects, ((size_t)1 << 20) / 8192);
	assert_int_equal(shmq_region_alloc(r, "odd", 100, &a), 0);
	assert_int_equal(shmq_region_find(r, "odd", &b, &size), 0);
	assert_ptr_equal(a, b);
	assert_int_equal(size, 128);
	b = NULL;
	assert_int_equal(shmq_region_find(r, "odd", &b, NULL), 0);
	assert_ptr_equal(a, b);
	shmq_region_close(r);
	assert_int_equal(shmq_region_create(NULL, NULL, &r), 0);
	assert_int_equal(shmq_region_info(r, &info), 0);
	assert_int_equal(info.size, SHMQ_REGION_DEFAULT_SIZE);
	assert_int_equal(info.max_objects, 4096);
	shmq_region_close(r);
}

/* Two threads of one process creating objects at once: each waits for the
 * directory like another process would (no -EDEADLK), and every object lands. */
#define THREAD_OBJS 400

struct creator {
	shmq_region *r;
	int id;
	int failed;
};

static void *create_many(void *arg)
{
	struct creator *c = arg;
	char name[32];
	void *mem;

	for (int i = 0; i < THREAD_OBJS; i++) {
		snprintf(name, sizeof(name), "t%d.%d", c->id, i);
		int rc = shmq_region_alloc(c->r, name, 64, &mem);

		if (rc) {
			if (!c->failed++)
				print_message("thread %d: %s\n", c->id, shmq_strerror(rc));
		}
	}
	return NULL;
}

static void test_threads_create_concurrently(void **state)
{
	struct creator c[2];
	pthread_t th[2];
	shmq_region *r;
	char name[32];
	void *mem;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, NULL, &r), 0); /* room for 2 x THREAD_OBJS */
	for (int t = 0; t < 2; t++) {
		c[t] = (struct creator){ .r = r, .id = t };
		assert_int_equal(pthread_create(&th[t], NULL, create_many, &c[t]), 0);
	}
	for (int t = 0; t < 2; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(c[t].failed, 0);
	}
	for (int t = 0; t < 2; t++)
		for (int i = 0; i < THREAD_OBJS; i++) {
			snprintf(name, sizeof(name), "t%d.%d", t, i);
			assert_int_equal(shmq_region_find(r, name, &mem, NULL), 0);
		}
	shmq_region_close(r);
}

/* ---- a region whose creator has not written the header yet ----
 *
 * Every attach path (open, inherit, the tools' observe) must treat it alike:
 * wait a bounded while for a live creator (then -EAGAIN), give up at once on
 * a dead one (-EBADMSG), and attach once the header appears. */

enum attach_path { VIA_OPEN, VIA_INHERIT, VIA_OBSERVE, VIA_COUNT };
static const char *const via_name[VIA_COUNT] = { "open", "inherit", "observe" };

static int attach_via(enum attach_path via, const char *name, shmq_region **out)
{
	char env[320];
	int fd, rc;

	switch (via) {
	case VIA_OPEN:
		return shmq_region_open(name, out);
	case VIA_INHERIT: /* as a spawned child finds it: SHMQ_REGION_FD=FD:/name */
		fd = shm_open(name, O_RDWR, 0);
		if (fd < 0)
			return -errno;
		snprintf(env, sizeof(env), "%d:%s", fd, name);
		setenv(SHMQ__REGION_ENV, env, 1);
		rc = shmq_region_inherit(out);
		unsetenv(SHMQ__REGION_ENV);
		close(fd);
		return rc;
	default:
		return shmq__region_observe(name, out);
	}
}

/* What a creator leaves between shmq__ptab_claim and writing the header: a
 * sized, zeroed file whose slot 0 names the creator (pid) and no magic. */
static int forge_unformatted(const char *name, pid_t creator)
{
	struct shmq__ptab_slot slot = {
		.word = (uint64_t)(uint32_t)creator << 32 | 1u << 1 | 1,
		.starttime = shmq__pid_starttime(creator),
	};
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)SMALL) ||
	    pwrite(fd, &slot, sizeof(slot), SHMQ__REGION_PTAB_OFF) != (ssize_t)sizeof(slot)) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

/* A creator that died after claiming its slot, before writing the header:
 * the header will never come, every path says so (old code: open and
 * inherit waited and said -EBADMSG, observe said -EAGAIN). */
static void test_attach_creator_died(void **state)
{
	char name[96];
	shmq_region *r;
	pid_t pid;

	(void)state;
	tu_name(name, sizeof(name), "deadmaker");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(forge_unformatted(name, getpid()) ? 1 : 0);
	assert_int_equal(tu_wait_child(pid), 0);
	for (int via = 0; via < VIA_COUNT; via++) {
		int rc = attach_via(via, name, &r);

		if (rc != -EBADMSG)
			fail_msg("%s: %d, not -EBADMSG", via_name[via], rc);
	}
	shmq_region_unlink(name);
}

/* A creator that lives but does not finish within the wait (slot 0 names
 * this very process), and one that has not even sized its file: every path
 * gives up with -EAGAIN (old code: open and inherit -EBADMSG; observe
 * -EAGAIN, or -ENOEXEC for the empty file). */
static void test_attach_creator_stuck(void **state)
{
	char name[96];
	shmq_region *r;
	int fd;

	(void)state;
	tu_name(name, sizeof(name), "slowmaker");
	assert_int_equal(forge_unformatted(name, getpid()), 0);
	for (int via = 0; via < VIA_COUNT; via++) {
		int rc = attach_via(via, name, &r);

		if (rc != -EAGAIN)
			fail_msg("sized, no header: %s: %d, not -EAGAIN", via_name[via], rc);
	}
	shmq_region_unlink(name);
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600); /* not sized yet */
	assert_true(fd >= 0);
	close(fd);
	for (int via = 0; via < VIA_COUNT; via++) {
		int rc = attach_via(via, name, &r);

		if (rc != -EAGAIN)
			fail_msg("empty file: %s: %d, not -EAGAIN", via_name[via], rc);
	}
	shmq_region_unlink(name);
}

/* A creator killed after it sized its file, before it claimed slot 0 (its
 * fallocate and prefault of a large region take that long): the file is
 * zeroed, slot 0 included.  The creator holds an exclusive flock on the file
 * from before it sizes it until the header is written, so a file nobody
 * holds that lock on has no creator any more: every attach path gives up at
 * once (-EBADMSG) and a create takes the name over (old code: attaches gave
 * -EAGAIN after waiting and create -EEXIST, for as long as the file stayed;
 * and a create over a name whose replacement it could not lock said -EAGAIN).
 * While a creator holds the lock, they wait for it as before. */
static int forge_sized_unclaimed(const char *name)
{
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)SMALL)) {
		close(fd);
		return -EIO;
	}
	return fd;
}

static void test_attach_creator_died_unclaimed(void **state)
{
	char name[96];
	shmq_region *r;
	int fd;

	(void)state;
	tu_name(name, sizeof(name), "earlydead");
	/* a live creator in that window: it holds its lock */
	fd = forge_sized_unclaimed(name);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	for (int via = 0; via < VIA_COUNT; via++) {
		int rc = attach_via(via, name, &r);

		if (rc != -EAGAIN)
			fail_msg("live creator: %s: %d, not -EAGAIN", via_name[via], rc);
	}
	assert_int_equal(shmq_region_create(name, &(struct shmq_region_opts){ .size = SMALL }, &r),
			 -EEXIST);
	/* the creator dies: its lock goes with it */
	close(fd);
	for (int via = 0; via < VIA_COUNT; via++) {
		int rc = attach_via(via, name, &r);

		if (rc != -EBADMSG)
			fail_msg("dead creator: %s: %d, not -EBADMSG", via_name[via], rc);
	}
	assert_int_equal(shmq_region_create(name, &(struct shmq_region_opts){ .size = SMALL }, &r), 0);
	shmq_region_close(r);
	assert_int_equal(shmq_region_open(name, &r), 0);
	shmq_region_close(r);
	shmq_region_unlink(name);
	/* killed before it even sized the file: while the file is young it
	 * cannot be told from a creator that has not taken its lock yet, so
	 * create says -EEXIST; test_create_spares_young_unsized sees a create
	 * take it over once it is old (attaches still wait, then -EAGAIN) */
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(shmq_region_create(name, &(struct shmq_region_opts){ .size = SMALL }, &r),
			 -EEXIST);
	close(fd);
	assert_int_equal(shmq_region_create(name, &(struct shmq_region_opts){ .size = SMALL }, &r),
			 -EEXIST);
	shmq_region_unlink(name);
}

struct late_header {
	int fd;
	struct shmq__region_hdr hdr;
};

static void *header_writer(void *arg)
{
	struct late_header *l = arg;
	struct timespec ts = { 0, 20 * 1000 * 1000 }; /* let the attacher look first */

	nanosleep(&ts, NULL);
	if (pwrite(l->fd, &l->hdr, sizeof(l->hdr), 0) != (ssize_t)sizeof(l->hdr))
		return (void *)1;
	return NULL;
}

/* A live creator that writes the header while the attacher waits: every
 * path attaches (old code: observe said -EAGAIN at once). */
static void test_attach_waits_for_creator(void **state)
{
	struct shmq__ptab_slot creator = {
		.word = (uint64_t)(uint32_t)getpid() << 32 | 1u << 1 | 1,
		.starttime = shmq__pid_starttime(getpid()),
	};
	struct shmq__region_hdr zero = { 0 };
	struct shmq_region_info info;
	struct late_header l;
	char name[96];
	shmq_region *r;

	(void)state;
	tu_name(name, sizeof(name), "latemaker");
	assert_int_equal(shmq_region_create(name, &(struct shmq_region_opts){ .size = SMALL }, &r), 0);
	shmq_region_close(r);
	l.fd = shm_open(name, O_RDWR, 0);
	assert_true(l.fd >= 0);
	assert_int_equal(pread(l.fd, &l.hdr, sizeof(l.hdr), 0), sizeof(l.hdr));
	/* slot 0 back to "the creator is attached", as during region_format */
	assert_int_equal(pwrite(l.fd, &creator, sizeof(creator), SHMQ__REGION_PTAB_OFF),
			 sizeof(creator));
	for (int via = 0; via < VIA_COUNT; via++) {
		pthread_t th;
		void *bad;
		int rc;

		assert_int_equal(pwrite(l.fd, &zero, sizeof(zero), 0), sizeof(zero));
		assert_int_equal(pthread_create(&th, NULL, header_writer, &l), 0);
		rc = attach_via(via, name, &r);
		assert_int_equal(pthread_join(th, &bad), 0);
		assert_null(bad);
		if (rc)
			fail_msg("%s: %d while the creator finished", via_name[via], rc);
		assert_int_equal(shmq_region_info(r, &info), 0);
		assert_int_equal(info.size, SMALL);
		assert_int_equal(info.procs, via == VIA_OBSERVE ? 1 : 2);
		shmq_region_close(r);
	}
	close(l.fd);
	shmq_region_unlink(name);
}

struct torn_header {
	int fd;
	struct shmq__region_hdr hdr;
};

/* The creator finishing its header: the rest of it, then its lock. */
static void *header_finisher(void *arg)
{
	struct torn_header *t = arg;
	struct timespec ts = { 0, 20 * 1000 * 1000 }; /* let the attacher look first */

	nanosleep(&ts, NULL);
	if (pwrite(t->fd, &t->hdr, sizeof(t->hdr), 0) != (ssize_t)sizeof(t->hdr))
		return (void *)1;
	return flock(t->fd, LOCK_UN) ? (void *)1 : NULL;
}

/* A header read while its creator writes it: the magic there, the rest not
 * yet (the creator copied the 64 bytes in with memcpy, magic first, and an
 * attacher's pread copies bytes as they are).  While the creator's lock is
 * held that is a header being written: every attach path waits for it as
 * for a missing one (old code: -EBADMSG at once, a good region called
 * corrupt); without the lock, it is corrupt: -EBADMSG. */
static void test_attach_header_half_written(void **state)
{
	struct shmq__ptab_slot creator = {
		.word = (uint64_t)(uint32_t)getpid() << 32 | 1u << 1 | 1,
		.starttime = shmq__pid_starttime(getpid()),
	};
	struct shmq__region_hdr half = { 0 };
	struct torn_header t;
	char name[96];
	shmq_region *r;

	(void)state;
	tu_name(name, sizeof(name), "tornhdr");
	assert_int_equal(shmq_region_create(name, &(struct shmq_region_opts){ .size = SMALL }, &r), 0);
	shmq_region_close(r);
	t.fd = shm_open(name, O_RDWR, 0);
	assert_true(t.fd >= 0);
	assert_int_equal(pread(t.fd, &t.hdr, sizeof(t.hdr), 0), sizeof(t.hdr));
	assert_int_equal(pwrite(t.fd, &creator, sizeof(creator), SHMQ__REGION_PTAB_OFF),
			 sizeof(creator));
	half.magic = t.hdr.magic;
	half.version = t.hdr.version;
	for (int via = 0; via < VIA_COUNT; via++) {
		pthread_t th;
		void *bad;
		int rc;

		assert_int_equal(flock(t.fd, LOCK_EX), 0); /* the creator's lock */
		assert_int_equal(pwrite(t.fd, &half, sizeof(half), 0), sizeof(half));
		if (via == VIA_OPEN) /* a creator that does not finish: wait, then -EAGAIN */
			assert_int_equal(shmq_region_open(name, &r), -EAGAIN);
		assert_int_equal(pthread_create(&th, NULL, header_finisher, &t), 0);
		rc = attach_via(via, name, &r);
		assert_int_equal(pthread_join(th, &bad), 0);
		assert_null(bad);
		if (rc)
			fail_msg("%s: %d while the creator finished its header", via_name[via], rc);
		shmq_region_close(r);
	}
	/* nobody holds the lock: a header left half written is corrupt */
	assert_int_equal(pwrite(t.fd, &half, sizeof(half), 0), sizeof(half));
	for (int via = 0; via < VIA_COUNT; via++)
		assert_int_equal(attach_via(via, name, &r), -EBADMSG);
	close(t.fd);
	shmq_region_unlink(name);
}

/* One of the processes that race to create a name: 0 when it created the
 * region, 1 when it found it made and opened it, 10 + errno otherwise.  A
 * creator closes its region at once and exits (a setup program). */
static int create_or_open(const char *name, int go)
{
	struct shmq_region_opts o = { .size = SMALL };
	shmq_region *r;
	char c;
	int rc;

	if (read(go, &c, 1) != 0)
		return 9;
	rc = shmq_region_create(name, &o, &r);
	if (rc == 0) {
		shmq_region_close(r);
		return 0;
	}
	/* -EAGAIN (a creator descheduled for a second on a loaded machine)
	 * is the documented "try again" */
	for (int tries = 0; rc == -EEXIST || (rc == -EAGAIN && tries < 3); tries++)
		rc = shmq_region_open(name, &r);
	if (rc)
		return 10 - rc;
	shmq_region_close(r);
	return 1;
}

/* Processes racing to create one name, the losers opening it: exactly one
 * creates, every other opens the region (old code: about one round in
 * thirty an open said -EBADMSG: it read the header before the creator
 * wrote it, then found the creator gone, having finished and left, and
 * took the missing header for one that would never come). */
static void test_create_open_race(void **state)
{
	enum { ROUNDS = 200, RACERS = 4 };
	char name[96];

	(void)state;
	tu_name(name, sizeof(name), "race");
	for (int round = 0; round < ROUNDS; round++) {
		pid_t pid[RACERS];
		int go[2], created = 0;

		assert_int_equal(pipe(go), 0);
		for (int i = 0; i < RACERS; i++) {
			pid[i] = fork();
			assert_true(pid[i] >= 0);
			if (pid[i] == 0) {
				close(go[1]);
				_exit(create_or_open(name, go[0]));
			}
		}
		close(go[0]);
		close(go[1]); /* all go */
		for (int i = 0; i < RACERS; i++) {
			int st = tu_wait_child(pid[i]);

			if (st > 1)
				fail_msg("round %d: racer %d exited %d (-errno + 10)", round, i, st);
			created += st == 0;
		}
		assert_int_equal(created, 1);
		assert_int_equal(shmq_region_unlink(name), 0);
	}
}

/* A directory lock word naming a holder that never lets go (pid 1, or a
 * live process that is not in the directory): shmq_region_alloc and the
 * objects' creates give up with -EBADMSG after the bound instead of
 * waiting forever (old code: they waited for as long as the holder lived),
 * and the region works again once the word is cleared. */
static void test_forged_dir_lock(void **state)
{
	struct shmq__region_ctl *ctl;
	shmq_lock *lk;
	shmq_region *r;
	void *mem;
	pid_t sleeper;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &(struct shmq_region_opts){ .size = SMALL }, &r),
			 0);
	ctl = shmq__region_ctl_at(r->base);
	sleeper = fork();
	assert_true(sleeper >= 0);
	if (sleeper == 0) {
		pause();
		_exit(0);
	}
	shmq__store_seq_cst(&ctl->dir_lock, 1u);
	assert_int_equal(shmq_region_alloc(r, "a", 64, &mem), -EBADMSG);
	shmq__store_seq_cst(&ctl->dir_lock, (uint32_t)sleeper);
	assert_int_equal(shmq_lock_create(r, "l", &lk), -EBADMSG);
	assert_int_equal(shmq_region_find(r, "a", &mem, NULL), -ENOENT); /* nothing changed */
	kill(sleeper, SIGKILL);
	waitpid(sleeper, NULL, 0);
	shmq__store_seq_cst(&ctl->dir_lock, 0u);
	assert_int_equal(shmq_region_alloc(r, "a", 64, &mem), 0);
	shmq_region_close(r);
}

/* A process that rewrites the directory lock word each time a creator
 * looks at it (tu_cas_hostile: every CAS loses, every wait sees it move):
 * the create gives up with -EBADMSG after the directory lock's bound for a
 * whole call (10 s), not waits for ever (old code: each change of the word
 * started the 2 s bound afresh, so the create never returned). */
struct dir_hostile {
	char name[96];
	shmq_region *r;
};

static void *dir_hostile_open(void *p, uint32_t **word)
{
	struct dir_hostile *h = p;

	h->r = tu_child_region(h->name);
	*word = &shmq__region_ctl_at(h->r->base)->dir_lock;
	return h;
}

static int dir_hostile_create(void *p)
{
	struct dir_hostile *h = p;
	shmq_lock *lk;

	return shmq_lock_create(h->r, "l", &lk);
}

static void test_dir_lock_hostile(void **state)
{
	static const uint32_t base = 0x40000000u; /* above any pid_max: no live tid */
	struct dir_hostile h;
	struct shmq__region_ctl *ctl;
	shmq_region *r;
	shmq_lock *lk;
	int64_t took;
	void *mem;
	int rc;

	(void)state;
	tu_name(h.name, sizeof(h.name), "dirhostile");
	assert_int_equal(shmq_region_create(h.name, &(struct shmq_region_opts){ .size = SMALL }, &r),
			 0);
	ctl = shmq__region_ctl_at(r->base);
	shmq__store_seq_cst(&ctl->dir_lock, base);
	rc = tu_cas_hostile(&ctl->dir_lock, &base, 1, dir_hostile_open, dir_hostile_create, &h,
			    (int64_t)25000 * 1000 * 1000, &took);
	shmq__store_seq_cst(&ctl->dir_lock, 0u);
	if (rc == TU_HOSTILE_NO_PTRACE) {
		shmq_region_close(r);
		shmq_region_unlink(h.name);
		skip();
	}
	print_message("create under hostile writes: %d after %lld ms\n", rc,
		      (long long)(took / 1000000));
	assert_int_equal(rc, -EBADMSG);
	/* nothing was made, and a sane word works as before */
	assert_int_equal(shmq_region_find(r, "l", &mem, NULL), -ENOENT);
	assert_int_equal(shmq_lock_create(r, "l", &lk), 0);
	shmq_lock_close(lk);
	shmq_region_close(r);
	assert_int_equal(shmq_region_unlink(h.name), 0);
}

/* A creator killed inside the directory leaves the lock naming its thread
 * id; the kernel may hand that tid to a live thread of another process.
 * Simulated: the lock and holder record a real killed creator left, with
 * the tid (in both) replaced by a live thread's of ours.  The next create
 * takes the lock over at once (old code: the tid alone looked alive, so
 * every create waited 2 s and failed with -EBADMSG for as long as that
 * thread lived), also when the reused tid is the caller's own (old code:
 * -EDEADLK), while a nested hold of the caller's own is still -EDEADLK. */
struct dir_tid {
	pid_t tid;
	int go[2];
	int stop[2];
};

static void *dir_tid_thread(void *p)
{
	struct dir_tid *t = p;
	char c = 0;

	t->tid = gettid();
	if (write(t->go[1], &c, 1) != 1)
		return NULL;
	while (read(t->stop[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

struct dir_stall {
	shmq_region *r;
	int fd;
};

static int dir_stall_init(void *mem, uint64_t size, void *arg)
{
	struct dir_stall *d = arg;
	uint32_t id = shmq__region_self(d->r);

	(void)mem;
	(void)size;
	if (write(d->fd, &id, sizeof(id)) != (ssize_t)sizeof(id))
		return -EIO;
	for (;;)
		pause();
}

static void test_dir_lock_tid_reused(void **state)
{
	struct shmq__region_ctl *ctl;
	struct dir_tid t;
	char name[96], c = 0;
	bool recorded;
	shmq_region *r;
	shmq_lock *lk;
	pthread_t th;
	uint32_t dead_id, me;
	int64_t t0, took;
	int fds[2];
	void *mem;
	pid_t pid;

	(void)state;
	tu_name(name, sizeof(name), "dirtid");
	assert_int_equal(shmq_region_create(name, &(struct shmq_region_opts){ .size = SMALL }, &r),
			 0);
	ctl = shmq__region_ctl_at(r->base);
	/* a creator killed inside its object's init, holding the directory */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct dir_stall d = { .r = tu_child_region(name), .fd = fds[1] };

		close(fds[0]);
		shmq__obj_create(d.r, "x", SHMQ__OBJ_BLOB, 64, dir_stall_init, &d, NULL);
		_exit(1);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &dead_id, sizeof(dead_id)), sizeof(dead_id));
	close(fds[0]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_int_equal(shmq__load_seq_cst(&ctl->dir_lock), (uint32_t)pid);
	assert_int_equal(shmq__region_id_alive(r, dead_id), 0);
	/* the hold recorded its holder (asserted at the end) */
	recorded = shmq__load_seq_cst(&ctl->dir_holder) == ((uint64_t)(uint32_t)pid << 32 | dead_id);

	/* its tid now names a live thread of ours */
	assert_int_equal(pipe(t.go), 0);
	assert_int_equal(pipe(t.stop), 0);
	assert_int_equal(pthread_create(&th, NULL, dir_tid_thread, &t), 0);
	assert_int_equal(read(t.go[0], &c, 1), 1);
	shmq__store_seq_cst(&ctl->dir_holder, (uint64_t)(uint32_t)t.tid << 32 | dead_id);
	shmq__store_seq_cst(&ctl->dir_lock, (uint32_t)t.tid);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_lock_create(r, "l", &lk), 0);
	took = shmq_now_ns() - t0;
	print_message("create past a reused tid: %lld ms\n", (long long)(took / 1000000));
	assert_true(took < (int64_t)2000 * 1000 * 1000);
	shmq_lock_close(lk);
	assert_int_equal(shmq_region_find(r, "x", &mem, NULL), -ENOENT); /* never published */

	/* the reused tid is the caller's own */
	me = (uint32_t)gettid();
	shmq__store_seq_cst(&ctl->dir_holder, (uint64_t)me << 32 | dead_id);
	shmq__store_seq_cst(&ctl->dir_lock, me);
	assert_int_equal(shmq_region_alloc(r, "b", 64, &mem), 0);
	/* a hold of this very thread through this attachment: nested */
	shmq__store_seq_cst(&ctl->dir_holder, (uint64_t)me << 32 | shmq__region_self(r));
	shmq__store_seq_cst(&ctl->dir_lock, me);
	assert_int_equal(shmq_region_alloc(r, "c", 64, &mem), -EDEADLK);
	shmq__store_seq_cst(&ctl->dir_holder, 0u);
	shmq__store_seq_cst(&ctl->dir_lock, 0u);
	assert_int_equal(shmq_region_alloc(r, "c", 64, &mem), 0);

	assert_true(recorded);
	assert_int_equal(write(t.stop[1], &c, 1), 1);
	pthread_join(th, NULL);
	close(t.go[0]);
	close(t.go[1]);
	close(t.stop[0]);
	close(t.stop[1]);
	shmq_region_close(r);
	assert_int_equal(shmq_region_unlink(name), 0);
}

/* A directory lock word naming the caller's own thread with no hold of
 * ours recorded beside it (no record, or one naming another tid or a
 * garbage id) is no nested hold: a forged word, or a thread of another pid
 * namespace that shares /dev/shm.  The call waits as for any holder and
 * gives up with -EBADMSG after the hold bound, as for a word naming another
 * thread (old code: -EDEADLK at once, an errno no page names for these
 * calls, and forever for a forged word).  Nothing is made meanwhile. */
static void test_forged_dir_lock_own_tid(void **state)
{
	static const uint64_t records[] = { 0, 0xffffffffu }; /* none; a garbage id */
	struct shmq__region_ctl *ctl;
	shmq_region *r;
	shmq_lock *lk;
	uint32_t me = (uint32_t)gettid();
	void *mem;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &(struct shmq_region_opts){ .size = SMALL }, &r),
			 0);
	ctl = shmq__region_ctl_at(r->base);
	for (size_t i = 0; i < sizeof(records) / sizeof(records[0]); i++) {
		shmq__store_seq_cst(&ctl->dir_holder, records[i] ? (uint64_t)me << 32 | records[i] : 0);
		shmq__store_seq_cst(&ctl->dir_lock, me);
		if (i == 0)
			assert_int_equal(shmq_region_alloc(r, "a", 64, &mem), -EBADMSG);
		else
			assert_int_equal(shmq_lock_create(r, "l", &lk), -EBADMSG);
	}
	assert_int_equal(shmq_region_find(r, "a", &mem, NULL), -ENOENT); /* nothing changed */
	assert_int_equal(shmq_region_find(r, "l", &mem, NULL), -ENOENT);
	shmq__store_seq_cst(&ctl->dir_holder, 0u);
	shmq__store_seq_cst(&ctl->dir_lock, 0u);
	assert_int_equal(shmq_region_alloc(r, "a", 64, &mem), 0);
	shmq_region_close(r);
}

/* A name in /dev/shm that is no file: a directory (glibc's shm_open turns
 * open's EISDIR into EINVAL) or a FIFO.  open says what it says of any
 * other file that holds no region, -EBADMSG (old code: -EINVAL for the
 * directory, which the page gives for a bad name, and the name was fine);
 * create says -EEXIST. */
static void test_open_not_a_file(void **state)
{
	char name[96], path[128];
	shmq_region *r = NULL;

	(void)state;
	tu_name(name, sizeof(name), "notafile");
	snprintf(path, sizeof(path), "/dev/shm/%s", name[0] == '/' ? name + 1 : name);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(shmq_region_open(name, &r), -EBADMSG);
	assert_null(r);
	assert_int_equal(shmq_region_create(name, NULL, &r), -EEXIST);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(shmq_region_open(name, &r), -EBADMSG);
	assert_null(r);
	assert_int_equal(shmq_region_create(name, NULL, &r), -EEXIST);
	assert_int_equal(unlink(path), 0);
}

/* A name someone else made first: a file of another user (as one that
 * squatted the name), or one group or others may write, is -EPERM from
 * open and attaches with SHMQ_REGION_SHARED (old code: open attached to
 * both silently).  A file of ours that others may only read opens. */
static void test_foreign_owner(void **state)
{
	static const struct {
		uid_t uid;
		mode_t mode;
		int rc;
	} cases[] = {
		{ 65534, 0600, -EPERM },
		{ 0, 0666, -EPERM },
		{ 0, 0620, -EPERM },
		{ 0, 0644, 0 },
	};
	char name[96];
	shmq_region *r, *c;
	int fd;

	(void)state;
	assert_int_equal(geteuid(), 0); /* the suite runs as root: it can chown */
	tu_name(name, sizeof(name), "squat");
	assert_int_equal(shmq_region_create(name, &(struct shmq_region_opts){ .size = SMALL }, &r),
			 0);
	shmq_region_close(r);
	assert_int_equal(shmq_region_open_flags(name, 0x80, &c), -EINVAL);
	assert_int_equal(shmq_region_open_flags(name, SHMQ_REGION_NOPREFAULT, &c), -EINVAL);
	fd = shm_open(name, O_RDWR, 0);
	assert_true(fd >= 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		assert_int_equal(fchown(fd, cases[i].uid, (gid_t)-1), 0);
		assert_int_equal(fchmod(fd, cases[i].mode), 0);
		rc = shmq_region_open(name, &c);
		if (rc == 0)
			shmq_region_close(c);
		if (rc != cases[i].rc)
			fail_msg("uid %d mode %o: open %d, not %d", (int)cases[i].uid,
				 (unsigned)cases[i].mode, rc, cases[i].rc);
		assert_int_equal(shmq_region_open_flags(name, SHMQ_REGION_SHARED, &c), 0);
		shmq_region_close(c);
	}
	/* the tools look without joining: a foreign region is theirs to see */
	assert_int_equal(fchown(fd, 65534, (gid_t)-1), 0);
	assert_int_equal(shmq__region_observe(name, &c), 0);
	shmq_region_close(c);
	close(fd);
	shmq_region_unlink(name);
}

static void stop_here(void)
{
	raise(SIGSTOP);
}

/* A creator stopped, then killed, between claiming slot 0 and writing the
 * header (the test seam of core/region_int.h): while it lives, create
 * says -EEXIST; once it is dead, create replaces its half-made region
 * (old code: -EEXIST forever, and open -EBADMSG), and the new region is
 * another file, attached to normally. */
static void test_create_replaces_dead_creator(void **state)
{
	struct shmq_region_opts o = { .size = SMALL };
	char name[96];
	shmq_region *r, *c;
	struct stat old_st, new_st;
	int status, fd;
	pid_t pid;

	(void)state;
	tu_name(name, sizeof(name), "killedmaker");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq__region_fault = stop_here;
		_exit(shmq_region_create(name, &o, &r) ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
	assert_true(WIFSTOPPED(status));
	fd = shm_open(name, O_RDONLY, 0);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &old_st), 0);
	assert_int_equal(shmq_region_create(name, &o, &r), -EEXIST); /* it may finish */
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(shmq_region_open(name, &c), -EBADMSG);
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	assert_int_equal(fstat(fd, &new_st), 0);
	assert_int_equal(new_st.st_nlink, 0); /* the dead one is unlinked */
	close(fd);
	assert_int_equal(shmq_region_open(name, &c), 0);
	shmq_region_close(c);
	shmq_region_close(r);
	assert_int_equal(shmq_region_create(name, &o, &r), -EEXIST); /* a live region stays */
	shmq_region_unlink(name);
}

/* A file of size 0 under the name, not locked: what a live creator leaves
 * between its shm_open and its flock, or a creator killed right there.
 * While it is young, create says -EEXIST (the creator may be at work: old
 * code unlinked the file at once, and a racer that had been told -EEXIST
 * then found no name to open, -ENOENT, as test_create_open_race once did);
 * once it is older than an opener's wait for the header (1 s), create takes
 * the name over. */
static void test_create_spares_young_unsized(void **state)
{
	struct shmq_region_opts o = { .size = SMALL };
	struct timespec pause = { 1, 100 * 1000 * 1000 };
	struct stat st;
	shmq_region *r, *c;
	char name[96];
	int fd;

	(void)state;
	tu_name(name, sizeof(name), "unsized");
	fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(shmq_region_create(name, &o, &r), -EEXIST);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_nlink, 1); /* still the name's */
	while (nanosleep(&pause, &pause))
		;
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_nlink, 0); /* the dead one is unlinked */
	close(fd);
	assert_int_equal(shmq_region_open(name, &c), 0);
	shmq_region_close(c);
	shmq_region_close(r);
	shmq_region_unlink(name);
}

/* Is name absent from /dev/shm? */
static bool shm_absent(const char *name)
{
	int fd = shm_open(name, O_RDONLY, 0);

	if (fd >= 0)
		close(fd);
	return fd < 0 && errno == ENOENT;
}

/* A region bigger than /dev/shm can hold: -ENOSPC from create, no file
 * left, no SIGBUS (old code: the lazily mapped one was created, and would
 * raise SIGBUS once used past what tmpfs holds; the prefaulted one filled
 * the tmpfs).  The size is past the tmpfs' whole capacity, not only its
 * free space, so that the kernel refuses the reservation at once rather
 * than filling the tmpfs first.  The lazy case comes first: against the
 * old code it fails before the prefaulted one could fill the tmpfs. */
static void test_no_room(void **state)
{
	static const unsigned flags[] = { SHMQ_REGION_NOPREFAULT, 0 };
	struct statvfs sv;
	uint64_t total, avail, size;
	char name[96];
	shmq_region *r;

	(void)state;
	if (statvfs("/dev/shm", &sv) || sv.f_blocks == 0)
		skip(); /* no /dev/shm, or one without a size limit */
	total = (uint64_t)sv.f_blocks * sv.f_frsize;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	size = (total > avail ? total : avail) + ((uint64_t)64 << 20);
	if (size > SHMQ__REGION_MAX_SIZE)
		skip();
	tu_name(name, sizeof(name), "noroom");
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		struct shmq_region_opts o = { .size = size, .flags = flags[i] };
		int rc = shmq_region_create(name, &o, &r);

		if (rc == 0) {
			shmq_region_close(r);
			shmq_region_unlink(name);
		}
		if (rc != -ENOSPC)
			fail_msg("flags %#x: %d, not -ENOSPC", flags[i], rc);
		assert_true(shm_absent(name));
	}
}

/* A region larger than the process's RLIMIT_FSIZE (ulimit -f) is -ENOSPC,
 * named or anonymous, and leaves no name behind.  Sizing the file past the
 * limit makes the kernel raise SIGXFSZ, which ended the process (the
 * library raises no signal on the caller's behalf).  In a child, so that
 * the old code's signal ends only it. */
static void test_above_file_size_limit(void **state)
{
	struct shmq_region_opts big = { .size = (size_t)8 << 20 };
	struct shmq_region_opts small = { .size = (size_t)512 << 10 };
	struct rlimit rl;
	char name[96];
	shmq_region *r;
	pid_t pid;

	(void)state;
	tu_name(name, sizeof(name), "fsize");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (getrlimit(RLIMIT_FSIZE, &rl) || rl.rlim_max < ((rlim_t)1 << 20))
			_exit(0); /* cannot set the limit we want: nothing to check */
		rl.rlim_cur = (rlim_t)1 << 20;
		if (setrlimit(RLIMIT_FSIZE, &rl))
			_exit(0);
		if (shmq_region_create(name, &big, &r) != -ENOSPC || !shm_absent(name))
			_exit(1);
		if (shmq_region_create(NULL, &big, &r) != -ENOSPC)
			_exit(2);
		if (shmq_region_create(NULL, &small, &r) != 0) /* below the limit */
			_exit(3);
		shmq_region_close(r);
		_exit(0);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	shmq_region_unlink(name);
}

static void test_strerror_and_clock(void **state)
{
	int64_t a, b;

	(void)state;
	assert_string_equal(shmq_strerror(-EBADMSG), shmq_strerror(EBADMSG));
	assert_string_not_equal(shmq_strerror(-EPIPE), shmq_strerror(-EAGAIN));
	assert_non_null(shmq_strerror(-12345));
	a = shmq_now_ns();
	b = shmq_now_ns();
	assert_true(b >= a && a > 0);
	assert_string_equal(shmq_version(), PACKAGE_VERSION);
	{
		/* the header's macros say what the library says */
		char v[32];

		snprintf(v, sizeof(v), "%d.%d.%d", SHMQ_VERSION_MAJOR, SHMQ_VERSION_MINOR,
			 SHMQ_VERSION_PATCH);
		assert_string_equal(v, shmq_version());
	}
}

/* ---- a host that closed its standard streams ---- */

/* Close 0-2, keeping copies (>= 10) in saved[] to put back. */
static void stdio_close(int saved[3])
{
	for (int i = 0; i < 3; i++) {
		saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
		close(i);
	}
}

static void stdio_restore(const int saved[3])
{
	for (int i = 0; i < 3; i++) {
		if (saved[i] >= 0) {
			dup2(saved[i], i);
			close(saved[i]);
		}
	}
}

/* A daemon that closed stdin, stdout and stderr: the library keeps no
 * descriptor at 0-2, or the host's next printf writes into a region's file
 * (what SQLite refuses for its databases for the same reason).  Old code:
 * the named region got descriptor 0, the anonymous one 1, the inherited
 * copy 2, and a write to descriptor 0 overwrote the named region's header
 * (shmq_region_open: -EBADMSG). */
static void test_closed_stdio(void **state)
{
	static const char junk[] = "the host logs to its stdout, as it always did\n";
	char name[64];
	shmq_region *named = NULL, *anon = NULL, *copy = NULL, *again = NULL;
	int saved[3], rc[4], open_fd[3];

	(void)state;
	tu_name(name, sizeof(name), "stdio");
	shmq_region_unlink(name);
	stdio_close(saved);
	rc[0] = shmq_region_create(name, &(struct shmq_region_opts){ .size = SMALL }, &named);
	rc[1] = shmq_region_create(NULL, &(struct shmq_region_opts){ .size = SMALL }, &anon);
	rc[2] = anon ? shmq__region_from_fd(shmq__region_fd(anon), NULL, &copy) : -1;
	for (int i = 0; i < 3; i++) {
		open_fd[i] = fcntl(i, F_GETFD) >= 0;
		(void)!write(i, junk, sizeof(junk) - 1); /* the host's printf */
	}
	shmq_region_close(copy); /* before 0-2 are the host's again */
	shmq_region_close(anon);
	shmq_region_close(named);
	stdio_restore(saved);
	rc[3] = shmq_region_open(name, &again);
	shmq_region_close(again);
	shmq_region_unlink(name);
	assert_int_equal(rc[0], 0);
	assert_int_equal(rc[1], 0);
	assert_int_equal(rc[2], 0);
	assert_int_equal(rc[3], 0); /* the junk went nowhere near it */
	for (int i = 0; i < 3; i++)
		assert_false(open_fd[i]);
}

/* Our pidfds: how many there are, and in *of the first one of pid (fdinfo's
 * "Pid:"), -1 when none; pid 0 looks for none.  A reaped process's pidfd
 * counts, and names no pid. */
static int pidfds_scan(pid_t pid, int *of)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	*of = -1;
	while ((de = readdir(d))) {
		char path[300], link[64], info[512], want[32];
		ssize_t len;
		int fd = atoi(de->d_name), in;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = 0;
		if (!strstr(link, "pidfd"))
			continue;
		n++;
		if (pid <= 0 || *of >= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
		in = open(path, O_RDONLY | O_CLOEXEC);
		if (in < 0)
			continue;
		len = read(in, info, sizeof(info) - 1);
		close(in);
		if (len <= 0)
			continue;
		info[len] = 0;
		snprintf(want, sizeof(want), "Pid:\t%d\n", (int)pid);
		if (strstr(info, want))
			*of = fd;
	}
	closedir(d);
	return n;
}

/* The descriptor of ours that is a pidfd of pid, or -1. */
static int pidfd_of(pid_t pid)
{
	int fd;

	(void)pidfds_scan(pid, &fd);
	return fd;
}

/* shmq__pid_alive keeps a pidfd for a process it found alive as recorded,
 * and asks that afterwards instead of /proc (core/ptab.c).  A program may
 * close the library's descriptors and reuse their numbers: a pipe with data
 * put where the pidfd was - readable, as a dead process's pidfd is - must
 * not make a live process dead; the process's death then still shows. */
static void test_pid_alive_pidfd_taken_away(void **state)
{
	uint64_t st = 0;
	int pp[2], fd, status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() == 1)
			_exit(1);
		for (;;)
			pause();
	}
	for (int t = 0; t < 1000 && !st; t++) {
		st = shmq__pid_starttime(pid);
		if (!st)
			usleep(1000);
	}
	assert_true(st != 0);
	assert_int_equal(shmq__pid_alive(pid, st), 1); /* /proc, then a pidfd kept */
	assert_int_equal(shmq__pid_alive(pid, st), 1); /* the pidfd */
	assert_int_equal(shmq__pid_alive(pid, st + 1), 0); /* another start time: another process */
	fd = pidfd_of(pid);
	if (fd < 0) { /* a kernel without pidfs: nothing is kept */
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		skip();
	}
	assert_int_equal(pipe(pp), 0);
	assert_int_equal(write(pp[1], "x", 1), 1);
	assert_int_equal(dup2(pp[0], fd), fd); /* the number now names a readable pipe */
	assert_int_equal(shmq__pid_alive(pid, st), 1);
	assert_int_equal(shmq__pid_alive(pid, st), 1);
	assert_int_equal(kill(pid, SIGKILL), 0);
	for (int t = 0; t < 1000 && shmq__pid_alive(pid, st); t++) /* a zombie: dead */
		usleep(1000);
	assert_int_equal(shmq__pid_alive(pid, st), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(shmq__pid_alive(pid, st), 0);
	close(fd);
	close(pp[0]);
	close(pp[1]);
}

/* How many of our descriptors are pidfds (of anything, reaped ones too). */
static int pidfds_open(void)
{
	int fd;

	return pidfds_scan(0, &fd);
}

/* How many of our descriptors are pidfds of one of pids[0..n). */
static int pidfds_of(const pid_t *pids, int n)
{
	int count = 0;

	for (int i = 0; i < n; i++) {
		int fd = pidfd_of(pids[i]);

		count += fd >= 0;
	}
	return count;
}

/* The pidfds kept for shmq__pid_alive are at most 16: looking at 20 live
 * processes keeps 16, the least recently looked at given up (closed); a
 * process found gone has its pidfd closed; none of theirs is left once all
 * are (the kept pidfds of other tests' processes may go meanwhile). */
static void test_pid_alive_pidfds_bounded(void **state)
{
	enum { N = 20 };
	pid_t pids[N];
	uint64_t st[N];
	int status, base;

	(void)state;
	base = pidfds_open(); /* another test's, still kept */
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() == 1)
				_exit(1);
			for (;;)
				pause();
		}
	}
	for (int i = 0; i < N; i++) {
		st[i] = 0;
		for (int t = 0; t < 1000 && !st[i]; t++) {
			st[i] = shmq__pid_starttime(pids[i]);
			if (!st[i])
				usleep(1000);
		}
		assert_true(st[i] != 0);
		assert_int_equal(shmq__pid_alive(pids[i], st[i]), 1);
	}
	if (pidfds_of(pids, N) == 0) { /* a kernel without pidfs: nothing is kept */
		for (int i = 0; i < N; i++) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], &status, 0);
		}
		skip();
	}
	assert_int_equal(pidfds_of(pids, N), 16);
	for (int i = 0; i < N; i++) /* all still alive, through pidfds or /proc */
		assert_int_equal(shmq__pid_alive(pids[i], st[i]), 1);
	assert_int_equal(pidfds_of(pids, N), 16);
	for (int i = 0; i < N; i++) {
		assert_int_equal(kill(pids[i], SIGKILL), 0);
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(shmq__pid_alive(pids[i], st[i]), 0);
	/* a reaped process's pidfd names no pid any more: count them all */
	assert_in_range(pidfds_open(), 0, base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_open_two_processes),
		cmocka_unit_test(test_exclusive_and_missing),
		cmocka_unit_test(test_cancelled_inside),
		cmocka_unit_test(test_mode),
		cmocka_unit_test(test_bad_names_and_sizes),
		cmocka_unit_test(test_anonymous),
		cmocka_unit_test(test_header_flips),
		cmocka_unit_test(test_version_mismatch),
		cmocka_unit_test(test_full_region),
		cmocka_unit_test(test_thousand_objects),
		cmocka_unit_test(test_type_mismatch_and_names),
		cmocka_unit_test(test_corrupt_directory_entry),
		cmocka_unit_test(test_process_table),
		cmocka_unit_test(test_pid_reused),
		cmocka_unit_test(test_claim_race_keeps_starttime),
		cmocka_unit_test(test_claim_held_by_dead_claimer),
		cmocka_unit_test(test_public_alloc_find),
		cmocka_unit_test(test_limits_stated),
		cmocka_unit_test(test_threads_create_concurrently),
		cmocka_unit_test(test_attach_creator_died),
		cmocka_unit_test(test_attach_creator_stuck),
		cmocka_unit_test(test_attach_creator_died_unclaimed),
		cmocka_unit_test(test_attach_waits_for_creator),
		cmocka_unit_test(test_attach_header_half_written),
		cmocka_unit_test(test_create_open_race),
		cmocka_unit_test(test_forged_dir_lock),
		cmocka_unit_test(test_dir_lock_hostile),
		cmocka_unit_test(test_dir_lock_tid_reused),
		cmocka_unit_test(test_forged_dir_lock_own_tid),
		cmocka_unit_test(test_open_not_a_file),
		cmocka_unit_test(test_foreign_owner),
		cmocka_unit_test(test_create_replaces_dead_creator),
		cmocka_unit_test(test_create_spares_young_unsized),
		cmocka_unit_test(test_no_room),
		cmocka_unit_test(test_above_file_size_limit),
		cmocka_unit_test(test_strerror_and_clock),
		cmocka_unit_test(test_closed_stdio),
		cmocka_unit_test(test_pid_alive_pidfd_taken_away),
		cmocka_unit_test(test_pid_alive_pidfds_bounded),
	};

	if (getenv("SHMQ_TEST_FILTER")) /* run only the tests matching this pattern */
		cmocka_set_test_filter(getenv("SHMQ_TEST_FILTER"));
	return cmocka_run_group_tests_name("region", tests, NULL, NULL);
}
