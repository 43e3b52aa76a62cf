/* SPDX-License-Identifier: MIT */
/*
 * shmq: look inside live libshmq regions (like ipcs / ipcrm, knowing
 * libshmq's objects).
 *
 *   shmq ls                  every region under /dev/shm with libshmq's header,
 *                            and the anonymous (memfd) regions of live processes
 *   shmq stat NAME           its objects with their state, and its process table
 *                            (NAME may be PID:FD, an anonymous region as ls shows it)
 *   shmq watch NAME          the same, refreshed in place, with rates
 *   shmq rm NAME [--force]   unlink, refusing while live processes are attached
 *
 * Reading never changes a region and never blocks its users: regions are
 * mapped read-only (shmq__introspect_observe) without joining their process
 * table, and no lock is ever taken.  The library is reached through its public
 * API and <shmq/introspect.h> only, whose version is checked at start.  Nothing read is trusted; a region that
 * is truncated under us (SIGBUS) or otherwise unreadable is reported, and the
 * tool goes on with the next one.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>
#include <shmq/introspect.h>

#define SHM_DIR "/dev/shm"

/* An anonymous region is a memfd that shmq_region_create names "shmq"; its
 * holders' /proc/PID/fd/N links read so (a memfd has no path to unlink). */
#define MEMFD_LINK "/memfd:shmq (deleted)"
#define MEMFD_HOLDERS_MAX 16

/* ---------------------------------------------------------------- options */

struct tool_opts {
	bool json;
	bool all;          /* ls: foreign files too */
	bool force;        /* rm */
	double interval;   /* watch: seconds */
	long count;        /* watch: refreshes, 0 = until interrupted */
};

/* ---------------------------------------------------------------- fault guard */

/* A region may be truncated by someone else while we read it (SIGBUS).  Reads
 * of mapped regions run under this guard and turn a fault into -EFAULT. */
static sigjmp_buf guard_jmp;
static volatile sig_atomic_t guard_armed;

static void guard_handler(int sig)
{
	if (guard_armed)
		siglongjmp(guard_jmp, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void guard_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = guard_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

typedef int (*guarded_fn)(void *arg);

static int guard_call(guarded_fn fn, void *arg)
{
	int rc;

	if (sigsetjmp(guard_jmp, 1) != 0) {
		guard_armed = 0;
		return -EFAULT;
	}
	guard_armed = 1;
	rc = fn(arg);
	guard_armed = 0;
	return rc;
}

/* ---------------------------------------------------------------- snapshot */

struct obj_row {
	char name[SHMQ_OBJ_NAME_MAX + 1];
	struct shmq__obj_stat st;
	double rate_in, rate_out; /* watch: per second, NAN when unknown */
	const char *rate_unit;    /* "msgs" or "bytes" */
	double rate_waits, rate_wakes; /* watch: futex waits and wakes per second, or NAN */
};

struct proc_row {
	unsigned slot;
	pid_t pid;
	uint32_t gen;
	bool alive;
	int64_t age_ns;
};

/* Everything one look at a region found. */
struct snap {
	char name[SHMQ_NAME_MAX + 2];
	int status;          /* 0, or why the region could not be read */
	uint64_t file_size;
	struct shmq_region_info info;
	int dir_status;      /* -EBADMSG when a directory entry is corrupt */
	struct obj_row *objs;
	size_t nobjs, cap_objs;
	struct proc_row *procs;
	size_t nprocs, cap_procs;
	unsigned procs_alive;
	int64_t taken_ns;
	shmq_region *r;      /* while taking it */
	bool detail;
	/* an anonymous region (name "PID:FD"): who holds it */
	bool anon;
	pid_t pid;           /* the holder we looked at it through */
	int fd;              /* its descriptor there */
	pid_t holders[MEMFD_HOLDERS_MAX]; /* every process found holding it */
	unsigned nholders;   /* all of them, even past the array */
	pid_t last_holder;   /* ls: the last one counted */
};

static void snap_free(struct snap *s)
{
	free(s->objs);
	free(s->procs);
	s->objs = NULL;
	s->procs = NULL;
	s->nobjs = s->cap_objs = s->nprocs = s->cap_procs = 0;
}

static void *grow(void *v, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return v;
	size_t c = *cap ? *cap * 2 : 16;
	void *p = realloc(v, c * elem);
	if (p)
		*cap = c;
	return p;
}

static int snap_visit(const char *name, const struct shmq__obj_stat *st, void *arg)
{
	struct snap *s = arg;
	struct obj_row *objs = grow(s->objs, &s->cap_objs, s->nobjs, sizeof(*objs));

	if (!objs)
		return -ENOMEM;
	s->objs = objs;
	struct obj_row *o = &objs[s->nobjs++];
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->rate_in = o->rate_out = o->rate_waits = o->rate_wakes = NAN;
	o->st = *st;
	return 0;
}

static int snap_procs(struct snap *s)
{
	int64_t now = shmq_now_ns();

	for (unsigned i = 0; i < s->info.max_procs; i++) {
		struct shmq__introspect_proc e;
		if (shmq__introspect_proc(s->r, i, &e) != 0)
			continue;
		struct proc_row *p = grow(s->procs, &s->cap_procs, s->nprocs, sizeof(*p));
		if (!p)
			return -ENOMEM;
		s->procs = p;
		p = &p[s->nprocs++];
		p->slot = i;
		p->pid = e.pid;
		p->gen = e.gen;
		p->alive = e.alive;
		p->age_ns = e.attached_ns && (int64_t)e.attached_ns <= now ? now - (int64_t)e.attached_ns : -1;
		s->procs_alive += p->alive;
	}
	return 0;
}

static int snap_read(void *arg)
{
	struct snap *s = arg;
	int rc = shmq_region_info(s->r, &s->info);

	if (rc)
		return rc;
	rc = snap_procs(s);
	if (rc)
		return rc;
	rc = shmq__introspect_objects(s->r, s->detail, snap_visit, s);
	if (rc == -EBADMSG) {
		s->dir_status = rc;
		rc = 0;
	}
	return rc;
}

/* ---------------------------------------------------------------- anonymous regions */

/* Is name "PID:FD" (an anonymous region as ls shows it)?  Region names never
 * hold ':', so the two kinds of name cannot be confused. */
static bool anon_parse(const char *name, pid_t *pid, int *fd)
{
	char *end;
	long p, f;

	if (!(name[0] >= '0' && name[0] <= '9'))
		return false;
	errno = 0;
	p = strtol(name, &end, 10);
	if (errno || *end != ':' || p <= 0 || p > INT32_MAX || !(end[1] >= '0' && end[1] <= '9'))
		return false;
	f = strtol(end + 1, &end, 10);
	if (errno || *end || f < 0 || f > INT32_MAX)
		return false;
	*pid = (pid_t)p;
	*fd = (int)f;
	return true;
}

/*
 * Open process pid's descriptor fd read-only if it is a libshmq memfd: 0 and
 * *out, -ENOENT (no such process or descriptor), -EACCES (not ours to read),
 * -ENOEXEC (some other file).  The link is checked before the open so that no
 * pipe or device is ever opened; O_NONBLOCK and the S_ISREG check cover a
 * descriptor replaced in between.
 */
static int anon_open(pid_t pid, int fd, int *out, struct stat *st)
{
	char path[64], link[sizeof(MEMFD_LINK) + 1];
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	n = readlink(path, link, sizeof(link));
	if (n < 0)
		return errno == EACCES || errno == EPERM ? -EACCES : -ENOENT;
	if ((size_t)n != sizeof(MEMFD_LINK) - 1 || memcmp(link, MEMFD_LINK, (size_t)n))
		return -ENOEXEC;
	f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (f < 0)
		return errno == EACCES || errno == EPERM ? -EACCES : -ENOENT;
	if (fstat(f, st) || !S_ISREG(st->st_mode)) {
		close(f);
		return -ENOEXEC;
	}
	*out = f;
	return 0;
}

/* Look at the anonymous region open as f (held by pid as fd). */
static void snap_take_fd(struct snap *s, int f, const struct stat *st)
{
	s->file_size = (uint64_t)st->st_size;
	s->status = shmq__introspect_observe_fd(f, &s->r);
	if (s->status)
		return;
	s->status = guard_call(snap_read, s);
	shmq_region_close(s->r);
	s->r = NULL;
}

static void snap_init(struct snap *s, bool detail)
{
	memset(s, 0, sizeof(*s));
	s->detail = detail;
	s->taken_ns = shmq_now_ns();
}

static void snap_anon_init(struct snap *s, pid_t pid, int fd, bool detail)
{
	snap_init(s, detail);
	s->anon = true;
	s->pid = pid;
	s->fd = fd;
	s->holders[0] = pid;
	s->nholders = 1;
	s->last_holder = pid;
	snprintf(s->name, sizeof(s->name), "%d:%d", (int)pid, fd);
}

/* Look at region name: "PID:FD" or a /dev/shm name (with or without its
 * leading slash). */
static void snap_take(struct snap *s, const char *name, bool detail)
{
	struct stat st;
	char path[sizeof(SHM_DIR) + SHMQ_NAME_MAX + 2];
	pid_t pid;
	int fd, f;

	if (anon_parse(name, &pid, &fd)) {
		snap_anon_init(s, pid, fd, detail);
		s->status = anon_open(pid, fd, &f, &st);
		if (s->status)
			return;
		snap_take_fd(s, f, &st);
		close(f);
		return;
	}
	memset(s, 0, sizeof(*s));
	s->detail = detail;
	if (name[0] == '/')
		name++;
	snprintf(s->name, sizeof(s->name), "/%s", name);
	snprintf(path, sizeof(path), SHM_DIR "/%s", name);
	if (stat(path, &st) == 0)
		s->file_size = (uint64_t)st.st_size;
	s->taken_ns = shmq_now_ns();
	s->status = shmq__introspect_observe(name, &s->r);
	if (s->status)
		return;
	s->status = guard_call(snap_read, s);
	shmq_region_close(s->r);
	s->r = NULL;
}

/* ---------------------------------------------------------------- words */

static const char *status_word(int status)
{
	switch (status) {
	case 0: return "ok";
	case -ENOEXEC: return "foreign";
	case -EBADMSG: return "corrupt";
	case -EPROTO: return "other-version";
	case -EAGAIN: return "initialising";
	case -EACCES: return "no-access";
	case -ENOENT: return "missing";
	case -EINVAL: return "bad-name";
	case -EFAULT: return "truncated";
	default: return "unreadable";
	}
}

static const char *status_text(int status)
{
	switch (status) {
	case -ENOEXEC: return "not a libshmq region (no libshmq header)";
	case -EBADMSG: return "corrupt: its header or a structure failed verification";
	case -EPROTO: return "made by another libshmq layout version";
	case -EAGAIN: return "being created (no header yet)";
	case -EFAULT: return "changed under us (truncated while being read)";
	default: return shmq_strerror(status);
	}
}

static void size_str(uint64_t v, char *buf, size_t len)
{
	if (v >= (1u << 30))
		snprintf(buf, len, "%.1f GiB", (double)v / (1u << 30));
	else if (v >= (1u << 20))
		snprintf(buf, len, "%.1f MiB", (double)v / (1u << 20));
	else if (v >= 1024)
		snprintf(buf, len, "%.1f KiB", (double)v / 1024);
	else
		snprintf(buf, len, "%llu B", (unsigned long long)v);
}

/* ---------------------------------------------------------------- JSON */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

static void json_kv(FILE *f, const struct shmq__stat_kv *kv)
{
	json_str(f, kv->key);
	fputs(": ", f);
	switch (kv->kind) {
	case SHMQ__STAT_U64: fprintf(f, "%llu", (unsigned long long)kv->u); break;
	case SHMQ__STAT_I64: fprintf(f, "%lld", (long long)kv->i); break;
	case SHMQ__STAT_BOOL: fputs(kv->u ? "true" : "false", f); break;
	default: json_str(f, kv->s); break;
	}
}

static void json_obj(FILE *f, const struct obj_row *o)
{
	fputs("{\"name\": ", f);
	json_str(f, o->name);
	fputs(", \"type\": ", f);
	json_str(f, shmq__introspect_type_name(o->st.type));
	fprintf(f, ", \"corrupt\": %s, \"state\": {", o->st.status ? "true" : "false");
	for (unsigned i = 0; i < o->st.n; i++) {
		if (i)
			fputs(", ", f);
		json_kv(f, &o->st.kv[i]);
	}
	fputs("}, \"rate_in\": ", f);
	json_num(f, o->rate_in);
	fputs(", \"rate_out\": ", f);
	json_num(f, o->rate_out);
	fputs(", \"rate_unit\": ", f);
	if (o->rate_unit)
		json_str(f, o->rate_unit);
	else
		fputs("null", f);
	fputs(", \"rate_waits\": ", f);
	json_num(f, o->rate_waits);
	fputs(", \"rate_wakes\": ", f);
	json_num(f, o->rate_wakes);
	fputc('}', f);
}

static void json_proc(FILE *f, const struct proc_row *p)
{
	fprintf(f, "{\"slot\": %u, \"pid\": %d, \"gen\": %u, \"alive\": %s, \"attached_s\": ", p->slot,
		(int)p->pid, p->gen, p->alive ? "true" : "false");
	json_num(f, p->age_ns >= 0 ? (double)p->age_ns / 1e9 : NAN);
	fputc('}', f);
}

/* One region; detail adds objects and processes.  compact: on one line (watch). */
static void json_snap(FILE *f, const struct snap *s, bool detail, bool compact)
{
	const char *nl = compact ? " " : "\n  ", *nl2 = compact ? " " : "\n    ";

	fputs("{\"name\": ", f);
	json_str(f, s->name);
	fputs(", \"status\": ", f);
	json_str(f, status_word(s->status));
	fputs(", \"error\": ", f);
	if (s->status)
		json_str(f, status_text(s->status));
	else
		fputs("null", f);
	fprintf(f, ", \"file_size\": %llu", (unsigned long long)s->file_size);
	if (s->anon) {
		fprintf(f, ", \"anonymous\": true, \"memfd\": \"shmq\", \"pid\": %d, \"fd\": %d, \"held_by\": [",
			(int)s->pid, s->fd);
		for (unsigned i = 0; i < s->nholders && i < MEMFD_HOLDERS_MAX; i++)
			fprintf(f, "%s%d", i ? ", " : "", (int)s->holders[i]);
		fprintf(f, "], \"holders\": %u", s->nholders);
	}
	if (s->status == 0) {
		fprintf(f, ", \"size\": %zu, \"used\": %zu, \"version\": %u, \"objects\": %u, "
			   "\"max_objects\": %u, \"procs\": %zu, \"procs_alive\": %u, "
			   "\"directory_corrupt\": %s",
			s->info.size, s->info.used, s->info.version, s->info.objects, s->info.max_objects,
			s->nprocs, s->procs_alive, s->dir_status ? "true" : "false");
	}
	if (detail && s->status == 0) {
		fprintf(f, ",%s\"object_list\": [", nl);
		for (size_t i = 0; i < s->nobjs; i++) {
			fprintf(f, "%s%s", i ? "," : "", nl2);
			json_obj(f, &s->objs[i]);
		}
		fprintf(f, "],%s\"process_table\": [", nl);
		for (size_t i = 0; i < s->nprocs; i++) {
			fprintf(f, "%s%s", i ? "," : "", nl2);
			json_proc(f, &s->procs[i]);
		}
		fputs("]", f);
	}
	fputc('}', f);
}

/* ---------------------------------------------------------------- ls */

/* Could name be a region of ours?  Entries in /dev/shm that libshmq could
 * not have created (bad characters, too long, dots alone: "." and "..")
 * are skipped outright; a name that only starts with a dot is a region's. */
static bool ls_candidate(const struct dirent *d)
{
	size_t n = strlen(d->d_name), dots = strspn(d->d_name, ".");

	if (n == 0 || dots == n || n > SHMQ_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = d->d_name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return d->d_type == DT_REG || d->d_type == DT_UNKNOWN;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the candidate files, sorted; *n of them. */
static char **ls_names(size_t *n)
{
	DIR *dir = opendir(SHM_DIR);
	struct dirent *d;
	char **names = NULL;
	size_t cap = 0;

	*n = 0;
	if (!dir)
		return NULL;
	while ((d = readdir(dir))) {
		if (!ls_candidate(d))
			continue;
		char **v = grow(names, &cap, *n, sizeof(*v));
		if (!v)
			break;
		names = v;
		if (!(names[*n] = strdup(d->d_name)))
			break;
		(*n)++;
	}
	closedir(dir);
	if (names)
		qsort(names, *n, sizeof(*names), name_cmp);
	return names;
}

/* One process descriptor that links to a libshmq memfd. */
struct anon_ref {
	pid_t pid;
	int fd;
};

static int anon_ref_cmp(const void *a, const void *b)
{
	const struct anon_ref *x = a, *y = b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

/* Add process pid's descriptors that link to a libshmq memfd to *v.  A
 * process we may not read, or that exits while we look, adds nothing. */
static int anon_scan_pid(pid_t pid, struct anon_ref **v, size_t *n, size_t *cap)
{
	char path[64], link[sizeof(MEMFD_LINK) + 1];
	struct dirent *d;
	DIR *dir;
	int rc = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return 0;
	while ((d = readdir(dir))) {
		char *end;
		long fd = strtol(d->d_name, &end, 10);
		ssize_t len;

		if (d->d_name[0] < '0' || d->d_name[0] > '9' || *end || fd > INT32_MAX)
			continue;
		len = readlinkat(dirfd(dir), d->d_name, link, sizeof(link));
		if (len != (ssize_t)sizeof(MEMFD_LINK) - 1 || memcmp(link, MEMFD_LINK, (size_t)len))
			continue;
		struct anon_ref *g = grow(*v, cap, *n, sizeof(**v));
		if (!g) {
			rc = -ENOMEM;
			break;
		}
		*v = g;
		g[(*n)++] = (struct anon_ref){ .pid = pid, .fd = (int)fd };
	}
	closedir(dir);
	return rc;
}

/* Every libshmq memfd held by a live process, by pid then fd. */
static struct anon_ref *anon_refs(size_t *n)
{
	DIR *proc = opendir("/proc");
	struct anon_ref *v = NULL;
	struct dirent *d;
	size_t cap = 0;
	pid_t self = getpid();

	*n = 0;
	if (!proc)
		return NULL;
	while ((d = readdir(proc))) {
		char *end;
		long pid = strtol(d->d_name, &end, 10);

		if (d->d_name[0] < '1' || d->d_name[0] > '9' || *end || pid > INT32_MAX ||
		    pid == self)
			continue;
		if (anon_scan_pid((pid_t)pid, &v, n, &cap))
			break;
	}
	closedir(proc);
	if (v)
		qsort(v, *n, sizeof(*v), anon_ref_cmp);
	return v;
}

/* The anonymous regions, each once however many processes hold it (the
 * same memfd: st_dev and st_ino), shown through its first holder.  *n of
 * them, to snap_free and free. */
static struct snap *anon_snaps(size_t *n)
{
	size_t nrefs, cap = 0;
	struct anon_ref *refs = anon_refs(&nrefs);
	struct snap *v = NULL;
	struct {
		dev_t dev;
		ino_t ino;
	} *seen = NULL;

	*n = 0;
	if (nrefs)
		seen = calloc(nrefs, sizeof(*seen));
	for (size_t i = 0; seen && i < nrefs; i++) {
		struct stat st;
		size_t j;
		int f;

		if (anon_open(refs[i].pid, refs[i].fd, &f, &st))
			continue; /* exited, replaced, or not ours to read */
		for (j = 0; j < *n; j++)
			if (seen[j].dev == st.st_dev && seen[j].ino == st.st_ino)
				break;
		if (j < *n) {
			/* refs come by pid: one process holding it twice counts once */
			if (v[j].last_holder != refs[i].pid) {
				if (v[j].nholders < MEMFD_HOLDERS_MAX)
					v[j].holders[v[j].nholders] = refs[i].pid;
				v[j].nholders++;
				v[j].last_holder = refs[i].pid;
			}
			close(f);
			continue;
		}
		struct snap *g = grow(v, &cap, *n, sizeof(*v));
		if (!g) {
			close(f);
			break;
		}
		v = g;
		seen[*n].dev = st.st_dev;
		seen[*n].ino = st.st_ino;
		snap_anon_init(&v[*n], refs[i].pid, refs[i].fd, false);
		snap_take_fd(&v[*n], f, &st);
		close(f);
		(*n)++;
	}
	free(seen);
	free(refs);
	return v;
}

static void ls_anon_note(const struct snap *s)
{
	if (!s->anon)
		return;
	printf("  anonymous (memfd:shmq), held by");
	for (unsigned i = 0; i < s->nholders && i < MEMFD_HOLDERS_MAX; i++)
		printf(" %d", (int)s->holders[i]);
	if (s->nholders > MEMFD_HOLDERS_MAX)
		printf(" and %u more", s->nholders - MEMFD_HOLDERS_MAX);
}

static void ls_row(const struct snap *s)
{
	char size[32], used[32], procs[32];

	if (s->status) {
		size_str(s->file_size, size, sizeof(size));
		printf("%-32s %-13s %10s %10s %7s %11s  %s", s->name, status_word(s->status), size, "-",
		       "-", "-", status_text(s->status));
		ls_anon_note(s);
		putchar('\n');
		return;
	}
	size_str(s->info.size, size, sizeof(size));
	size_str(s->info.used, used, sizeof(used));
	snprintf(procs, sizeof(procs), "%u/%zu", s->procs_alive, s->nprocs);
	printf("%-32s %-13s %10s %10s %7u %11s%s", s->name, s->dir_status ? "corrupt-dir" : "ok", size,
	       used, s->info.objects, procs, s->dir_status ? "  a directory entry is corrupt" : "");
	ls_anon_note(s);
	putchar('\n');
}

static int cmd_ls(const struct tool_opts *o)
{
	size_t n;
	char **names = ls_names(&n);
	bool first = true;

	if (o->json)
		printf("{\"dir\": \"%s\", \"regions\": [", SHM_DIR);
	else
		printf("%-32s %-13s %10s %10s %7s %11s\n", "NAME", "STATUS", "SIZE", "USED", "OBJECTS",
		       "PROCS(live)");
	for (size_t i = 0; i < n; i++) {
		struct snap s;
		snap_take(&s, names[i], false);
		if (s.status == -ENOEXEC && !o->all) {
			snap_free(&s);
			continue;
		}
		if (o->json) {
			fputs(first ? "\n  " : ",\n  ", stdout);
			json_snap(stdout, &s, false, false);
		} else {
			ls_row(&s);
		}
		first = false;
		snap_free(&s);
	}
	size_t nanon;
	struct snap *anon = anon_snaps(&nanon);
	for (size_t i = 0; i < nanon; i++) {
		struct snap *s = &anon[i];
		if (!(s->status == -ENOEXEC && !o->all)) {
			if (o->json) {
				fputs(first ? "\n  " : ",\n  ", stdout);
				json_snap(stdout, s, false, false);
			} else {
				ls_row(s);
			}
			first = false;
		}
		snap_free(s);
	}
	free(anon);
	if (o->json)
		printf("\n]}\n");
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return 0;
}

/* ---------------------------------------------------------------- stat */

/* A string read from a region, for a terminal: padded to width, with '?'
 * for every byte that is not printable ASCII (create allows only
 * [A-Za-z0-9._-] in names, but a writer to the region need not keep to it,
 * and an escape sequence must not reach the operator's terminal). */
static void text_print(const char *s, int width)
{
	int n = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
		putchar(*p >= 0x20 && *p < 0x7f ? *p : '?');
	for (; n < width; n++)
		putchar(' ');
}

static void kv_print(const struct shmq__stat_kv *kv)
{
	switch (kv->kind) {
	case SHMQ__STAT_U64: printf(" %s=%llu", kv->key, (unsigned long long)kv->u); break;
	case SHMQ__STAT_I64: printf(" %s=%lld", kv->key, (long long)kv->i); break;
	case SHMQ__STAT_BOOL: printf(" %s=%s", kv->key, kv->u ? "yes" : "no"); break;
	default:
		printf(" %s=", kv->key);
		text_print(kv->s, 0);
		break;
	}
}

static void stat_obj_print(const struct obj_row *ob, bool rates)
{
	fputs("  ", stdout);
	text_print(ob->name, 24);
	printf(" %-8s", shmq__introspect_type_name(ob->st.type));
	if (ob->st.status)
		printf(" CORRUPT");
	for (unsigned i = 0; i < ob->st.n; i++)
		kv_print(&ob->st.kv[i]);
	if (rates && isfinite(ob->rate_in))
		printf(" in=%.0f %s/s", ob->rate_in, ob->rate_unit);
	if (rates && isfinite(ob->rate_out))
		printf(" out=%.0f %s/s", ob->rate_out, ob->rate_unit);
	if (rates && isfinite(ob->rate_waits))
		printf(" waits=%.0f/s", ob->rate_waits);
	if (rates && isfinite(ob->rate_wakes))
		printf(" wakes=%.0f/s", ob->rate_wakes);
	putchar('\n');
}

static void stat_print(const struct snap *s, bool rates)
{
	char size[32], used[32];

	if (s->status) {
		printf("%s: %s\n", s->name, status_text(s->status));
		return;
	}
	size_str(s->info.size, size, sizeof(size));
	size_str(s->info.used, used, sizeof(used));
	printf("region %s: %s, %s used, %u objects (of %u), layout %u, %zu processes (%u alive)\n",
	       s->name, size, used, s->info.objects, s->info.max_objects, s->info.version, s->nprocs,
	       s->procs_alive);
	if (s->dir_status)
		printf("  warning: a directory entry is corrupt (shown as CORRUPT)\n");
	printf("objects:\n");
	if (s->nobjs == 0)
		printf("  (none)\n");
	for (size_t i = 0; i < s->nobjs; i++)
		stat_obj_print(&s->objs[i], rates);
	printf("processes:\n  %-5s %-8s %-6s %s\n", "SLOT", "PID", "ALIVE", "ATTACHED");
	for (size_t i = 0; i < s->nprocs; i++) {
		const struct proc_row *p = &s->procs[i];
		char age[32] = "-";
		if (p->age_ns >= 0)
			snprintf(age, sizeof(age), "%.1f s ago", (double)p->age_ns / 1e9);
		printf("  %-5u %-8d %-6s %s\n", p->slot, (int)p->pid, p->alive ? "yes" : "no", age);
	}
}

static int cmd_stat(const struct tool_opts *o, const char *name)
{
	struct snap s;

	snap_take(&s, name, true);
	if (o->json) {
		json_snap(stdout, &s, true, false);
		putchar('\n');
	} else {
		stat_print(&s, false);
	}
	snap_free(&s);
	return s.status ? 1 : 0;
}

/* ---------------------------------------------------------------- watch */

static const struct obj_row *obj_find(const struct snap *s, const char *name)
{
	for (size_t i = 0; i < s->nobjs; i++)
		if (strcmp(s->objs[i].name, name) == 0)
			return &s->objs[i];
	return NULL;
}

static double counter_rate(const struct obj_row *now, const struct obj_row *then, const char *key,
			   double dt)
{
	const struct shmq__stat_kv *a = shmq__stat_get(&now->st, key);
	const struct shmq__stat_kv *b = shmq__stat_get(&then->st, key);

	if (!a || !b || a->kind != SHMQ__STAT_U64 || b->kind != SHMQ__STAT_U64 || a->u < b->u || dt <= 0)
		return NAN;
	return (double)(a->u - b->u) / dt;
}

static void watch_rates(struct snap *s, const struct snap *prev)
{
	double dt = (double)(s->taken_ns - prev->taken_ns) / 1e9;

	for (size_t i = 0; i < s->nobjs; i++) {
		const struct obj_row *p = obj_find(prev, s->objs[i].name);
		if (!p)
			continue;
		bool msgs = shmq__stat_get(&s->objs[i].st, "msgs_in") != NULL;
		s->objs[i].rate_unit = msgs ? "msgs" : "bytes";
		s->objs[i].rate_in = counter_rate(&s->objs[i], p, msgs ? "msgs_in" : "bytes_in", dt);
		s->objs[i].rate_out = counter_rate(&s->objs[i], p, msgs ? "msgs_out" : "bytes_out", dt);
		s->objs[i].rate_waits = counter_rate(&s->objs[i], p, "waits", dt);
		s->objs[i].rate_wakes = counter_rate(&s->objs[i], p, "wakes", dt);
	}
}

static void sleep_s(double sec)
{
	struct timespec ts = { (time_t)sec, (long)((sec - floor(sec)) * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int cmd_watch(const struct tool_opts *o, const char *name)
{
	struct snap prev = { 0 }, cur;
	bool tty = isatty(STDOUT_FILENO) == 1;
	int rc = 0;

	prev.status = -1;
	for (long i = 0; o->count == 0 || i < o->count; i++) {
		if (i)
			sleep_s(o->interval);
		snap_take(&cur, name, true);
		if (cur.status == 0 && prev.status == 0)
			watch_rates(&cur, &prev);
		if (o->json) {
			json_snap(stdout, &cur, true, true);
			putchar('\n');
		} else {
			if (tty)
				fputs("\033[H\033[2J", stdout);
			stat_print(&cur, true);
			if (!tty)
				putchar('\n');
		}
		fflush(stdout);
		rc = cur.status ? 1 : 0;
		snap_free(&prev);
		prev = cur;
	}
	snap_free(&prev);
	return rc;
}

/* ---------------------------------------------------------------- rm */

static int cmd_rm(const struct tool_opts *o, const char *name)
{
	struct snap s;
	int rc;

	snap_take(&s, name, false);
	if (s.anon) {
		fprintf(stderr, "shmq: %s: an anonymous region has no name to remove; it goes away "
				"when the last process holding it closes it\n", s.name);
		snap_free(&s);
		return 1;
	}
	if (s.status == -ENOENT || s.status == -EINVAL) {
		fprintf(stderr, "shmq: %s: %s\n", s.name, shmq_strerror(s.status));
		snap_free(&s);
		return 1;
	}
	if (s.status && !o->force) {
		fprintf(stderr, "shmq: %s: %s; not removed (use --force)\n", s.name, status_text(s.status));
		snap_free(&s);
		return 1;
	}
	if (s.status == 0 && s.procs_alive && !o->force) {
		fprintf(stderr, "shmq: %s: %u live process(es) attached:", s.name, s.procs_alive);
		for (size_t i = 0; i < s.nprocs; i++)
			if (s.procs[i].alive)
				fprintf(stderr, " %d", (int)s.procs[i].pid);
		fprintf(stderr, "; not removed (use --force)\n");
		snap_free(&s);
		return 1;
	}
	rc = shmq_region_unlink(s.name);
	if (o->json) {
		fputs("{\"name\": ", stdout);
		json_str(stdout, s.name);
		printf(", \"removed\": %s, \"live_procs\": %u, \"status\": ", rc == 0 ? "true" : "false",
		       s.procs_alive);
		json_str(stdout, status_word(s.status));
		fputs(", \"error\": ", stdout);
		if (rc)
			json_str(stdout, shmq_strerror(rc));
		else
			fputs("null", stdout);
		puts("}");
	} else if (rc == 0) {
		printf("removed %s%s\n", s.name, s.procs_alive ? " (forced: live processes keep their mapping)" : "");
	}
	if (rc)
		fprintf(stderr, "shmq: %s: %s\n", s.name, shmq_strerror(rc));
	snap_free(&s);
	return rc ? 1 : 0;
}

/* ---------------------------------------------------------------- main */

#ifdef SHMQ_TOOL_BRIDGE
/* ---- shmq bridge out|in REGION QUEUE URL [SUBJECT] ---- */
#include <pthread.h>
#include <shmq/bridge.h>

static shmq_bridge *volatile bridge_cur;
static volatile sig_atomic_t bridge_stopping; /* a signal came before run */

static void bridge_on_signal(int sig)
{
	(void)sig;
	bridge_stopping = 1;
	/* shmq_bridge_stop only stores two words: safe in a handler */
	if (bridge_cur)
		shmq_bridge_stop(bridge_cur, 5 * 1000000000ll);
}

struct bridge_job {
	shmq_bridge *b;
	int rc;
	int done;
};

static void *bridge_thread(void *arg)
{
	struct bridge_job *j = arg;

	j->rc = shmq_bridge_run(j->b);
	__atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static const char *const bridge_states[] = { "idle", "running", "blocked", "offline", "stopped" };

static void bridge_progress(shmq_bridge *b, const char *dir, const char *queue, bool last)
{
	struct shmq_bridge_stats st;

	if (shmq_bridge_stats(b, &st))
		return;
	fprintf(stderr, "\rbridge %s %s: moved %llu, read %llu, acked %llu, in doubt %llu, %s   %s",
		dir, queue, (unsigned long long)st.moved, (unsigned long long)st.read,
		(unsigned long long)st.acked, (unsigned long long)st.in_doubt,
		st.state < 5 ? bridge_states[st.state] : "?", last ? "\n" : "");
	fflush(stderr);
}

static int cmd_bridge(int argc, char **argv)
{
	struct shmq_bridge_opts bo = { 0 };
	struct bridge_job job = { 0 };
	struct sigaction sa = { .sa_handler = bridge_on_signal };
	shmq_region *r = NULL;
	pthread_t t;
	int rc;

	if (argc < 4 || argc > 5 || (strcmp(argv[0], "in") && strcmp(argv[0], "out"))) {
		fprintf(stderr, "usage: shmq bridge out|in REGION QUEUE URL [SUBJECT]\n");
		return 2;
	}
	bo.dir = strcmp(argv[0], "in") == 0 ? SHMQ_BRIDGE_IN : SHMQ_BRIDGE_OUT;
	bo.url = argv[3];
	bo.subject = argc == 5 ? argv[4] : NULL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = shmq_region_open(argv[1], &r);
	if (!rc)
		rc = shmq_bridge_create(r, argv[2], &bo, &job.b);
	if (rc) {
		fprintf(stderr, "shmq bridge: %s %s: %s\n", argv[1], argv[2], shmq_strerror(rc));
		shmq_region_close(r);
		return 1;
	}
	bridge_cur = job.b;
	if (bridge_stopping) /* asked to stop while connecting */
		shmq_bridge_stop(job.b, 0);
	rc = pthread_create(&t, NULL, bridge_thread, &job);
	if (rc == 0) {
		while (!__atomic_load_n(&job.done, __ATOMIC_SEQ_CST)) {
			bridge_progress(job.b, argv[0], argv[2], false);
			for (int i = 0; i < 10 && !__atomic_load_n(&job.done, __ATOMIC_SEQ_CST); i++)
				nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
		}
		pthread_join(t, NULL);
		rc = job.rc;
	} else {
		rc = -rc;
	}
	bridge_progress(job.b, argv[0], argv[2], true);
	shmq_bridge_free(job.b);
	shmq_region_close(r);
	if (rc)
		fprintf(stderr, "shmq bridge: %s\n", shmq_strerror(rc));
	return rc ? 1 : 0;
}
#endif /* SHMQ_TOOL_BRIDGE */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmq [--json] ls [--all]\n"
		"       shmq [--json] stat NAME|PID:FD\n"
		"       shmq [--json] watch NAME|PID:FD [--interval SEC] [--count N]\n"
		"       shmq [--json] rm NAME [--force]\n"
#ifdef SHMQ_TOOL_BRIDGE
		"       shmq bridge out|in REGION QUEUE URL [SUBJECT]\n"
#endif
		"Look inside libshmq regions under " SHM_DIR ", and anonymous ones (PID:FD,\n"
		"through /proc), without changing them.\n");
}

static const struct option tool_long_opts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "all", no_argument, NULL, 'a' },
	{ "force", no_argument, NULL, 'f' },
	{ "interval", required_argument, NULL, 'i' },
	{ "count", required_argument, NULL, 'n' },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_opts(int argc, char **argv, struct tool_opts *o)
{
	int c;
	char *end;

	while ((c = getopt_long(argc, argv, "jafi:n:Vh", tool_long_opts, NULL)) != -1) {
		switch (c) {
		case 'j': o->json = true; break;
		case 'a': o->all = true; break;
		case 'f': o->force = true; break;
		case 'i':
			o->interval = strtod(optarg, &end);
			if (*end || !(o->interval >= 0.05 && o->interval <= 3600))
				return 2;
			break;
		case 'n':
			o->count = strtol(optarg, &end, 10);
			if (*end || o->count < 0)
				return 2;
			break;
		case 'V': printf("shmq %s\n", shmq_version()); return 1;
		case 'h': usage(stdout); return 1;
		default: return 2;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct tool_opts o = { .interval = 1.0 };
	int rc = parse_opts(argc, argv, &o);

	if (rc == 1)
		return 0;
	if (rc || optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (shmq__introspect_version() != SHMQ__INTROSPECT_VERSION) {
		fprintf(stderr, "shmq: built for introspection interface %u, libshmq has %u\n",
			SHMQ__INTROSPECT_VERSION, shmq__introspect_version());
		return 2;
	}
	const char *cmd = argv[optind];
	const char *name = optind + 1 < argc ? argv[optind + 1] : NULL;
#ifdef SHMQ_TOOL_BRIDGE
	if (strcmp(cmd, "bridge") == 0)
		return cmd_bridge(argc - optind - 1, argv + optind + 1);
#endif
	guard_install();
	if (strcmp(cmd, "ls") == 0 && !name)
		return cmd_ls(&o);
	if (name && optind + 2 == argc) {
		if (strcmp(cmd, "stat") == 0)
			return cmd_stat(&o, name);
		if (strcmp(cmd, "watch") == 0)
			return cmd_watch(&o, name);
		if (strcmp(cmd, "rm") == 0)
			return cmd_rm(&o, name);
	}
	usage(stderr);
	return 2;
}
