/* SPDX-License-Identifier: MIT */
/*
 * libshmq-bridge at volume and across a network cut, against a real
 * nats-server started by the test (tests/bridge_util.h).  Skipped (exit 77)
 * when nats-server is not installed or libshmq has no two-phase get (no OUT).
 *
 *  - test_long_roundtrip: region A's queue -> OUT -> stream -> IN -> region
 *    B's queue, sizes 0 .. 64 KiB.  make check moves LONG_SHORT messages;
 *    SHMQ_CHECK_LONG=1 (make check-long-bridge) the 200k.
 *  - test_netns_cut: the server in network namespace A, the OUT bridge (the
 *    shmq command) in namespace B, joined by a veth pair that the test takes
 *    down for a few seconds mid-stream.  Skipped, with the reason printed,
 *    where the test cannot make namespaces (not root, no `ip netns`).
 *
 * Messages carry no index (a 0-byte message cannot): the i-th message's size
 * and bytes are a pure function of (seed, i), so the consumer regenerates
 * the i-th expected message and compares every byte.  Loss, duplication and
 * reordering all show as a mismatch or a wrong count.  The seed is printed.
 */
#define _GNU_SOURCE
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <arpa/inet.h>

#include <nats/nats.h>

#include "testutil.h"
#include "bridge_util.h"

#include <shmq/bridge.h>

#include "bridge_runner.h"

#define MSG_MAX 65536u
#define LONG_SHORT 8000ull     /* make check */
#define LONG_FULL 200000ull    /* SHMQ_CHECK_LONG=1 */
#define QCAP 64u               /* 64 x 64 KiB: fits the default region */
/* what a slot carries: longer messages travel through the queue's heap
 * (both bridges: OUT reads them in place, IN puts them noted) */
#define SLOT_MSG 4096u

static const char *bridge_tool = BRIDGE_TOOL;
static uint64_t seed;

/* ---- the messages: size and bytes of message i from (seed, i) ---- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* 1/16 empty, 1/16 exactly MSG_MAX, else log-uniform in 1 .. MSG_MAX - 1:
 * every size class is hit while the stream's store stays around 1 GB at
 * 200k messages. */
static size_t msg_len(uint64_t i)
{
	uint64_t h = mix(seed ^ mix(i));
	unsigned bits;

	switch (h & 15) {
	case 0:
		return 0;
	case 1:
		return MSG_MAX;
	}
	bits = 1 + (unsigned)((h >> 4) % 16); /* 1 .. 16 */
	return 1 + (size_t)((h >> 20) % ((1ull << bits) - 1));
}

static void msg_fill(uint8_t *b, uint64_t i, size_t n)
{
	uint64_t x = mix(seed + i * 0x2545f4914f6cdd1dull);

	for (size_t k = 0; k < n; k += 8) {
		size_t c = n - k < 8 ? n - k : 8;

		x = mix(x);
		memcpy(b + k, &x, c);
	}
}

static uint64_t volume(void)
{
	return getenv("SHMQ_CHECK_LONG") ? LONG_FULL : LONG_SHORT;
}

/* ---- the two regions and the consumer ---- */

struct side {
	char name[96];
	shmq_region *r;
	shmq_queue *q;
};

struct cons {
	shmq_queue *q;
	uint64_t want;
	uint64_t got;     /* messages verified, in order */
	uint64_t extra;   /* messages past want (duplicates) */
	int bad;          /* 1 size, 2 bytes, 3 get error */
	int done;
	int64_t deadline;
	pthread_t t;
	bool running;
};

static void side_open(struct side *s, const char *tag)
{
	struct shmq_queue_opts qo = { .capacity = QCAP, .max_msg = SLOT_MSG };

	tu_name(s->name, sizeof s->name, tag);
	assert_int_equal(shmq_region_create(s->name, NULL, &s->r), 0);
	assert_int_equal(shmq_queue_create(s->r, "jobs", &qo, &s->q), 0);
}

static void side_close(struct side *s)
{
	if (!s->r)
		return;
	shmq_queue_close(s->q);
	shmq_region_close(s->r);
	shmq_region_unlink(s->name);
	s->r = NULL;
}

static void *consumer(void *arg)
{
	struct cons *c = arg;
	uint8_t *buf = malloc(MSG_MAX), *want = malloc(MSG_MAX);

	while (!c->bad && bu_now() < __atomic_load_n(&c->deadline, __ATOMIC_SEQ_CST)) {
		uint64_t i = c->got + c->extra + 1;
		ssize_t n = shmq_queue_get(c->q, buf, MSG_MAX, 100 * 1000000ll);
		size_t len;

		if (n == -ETIMEDOUT) {
			if (c->got == c->want)
				break; /* all seen, and nothing more came for 100 ms */
			continue;
		}
		if (n < 0) {
			c->bad = 3;
			break;
		}
		if (c->got == c->want) {
			c->extra++;
			continue;
		}
		len = msg_len(i);
		if ((size_t)n != len) {
			fprintf(stderr, "test_bridge_long: message %llu: %zd bytes, expected %zu\n",
				(unsigned long long)i, n, len);
			c->bad = 1;
			break;
		}
		msg_fill(want, i, len);
		if (memcmp(buf, want, len)) {
			fprintf(stderr, "test_bridge_long: message %llu: bytes differ\n",
				(unsigned long long)i);
			c->bad = 2;
			break;
		}
		__atomic_store_n(&c->got, c->got + 1, __ATOMIC_SEQ_CST); /* read while we run */
	}
	free(buf);
	free(want);
	__atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void cons_start(struct cons *c, shmq_queue *q, uint64_t want, int64_t deadline)
{
	memset(c, 0, sizeof *c);
	c->q = q;
	c->want = want;
	c->deadline = deadline;
	assert_int_equal(pthread_create(&c->t, NULL, consumer, c), 0);
	c->running = true;
}

/* Wait for the consumer to end (all seen, or its deadline): whether it has
 * every message. */
static bool cons_wait(struct cons *c)
{
	while (!__atomic_load_n(&c->done, __ATOMIC_SEQ_CST) && bu_now() < c->deadline + 2000000000ll)
		bu_sleep_ms(10);
	return __atomic_load_n(&c->done, __ATOMIC_SEQ_CST) && !c->bad && c->got == c->want;
}

/* Every message, once, in order: and after the last one, nothing more. */
static void cons_expect_all(struct cons *c)
{
	cons_wait(c);
	if (!__atomic_load_n(&c->done, __ATOMIC_SEQ_CST))
		__atomic_store_n(&c->deadline, 0, __ATOMIC_SEQ_CST);
	pthread_join(c->t, NULL);
	c->running = false;
	fprintf(stderr, "test_bridge_long: %llu of %llu messages in order, %llu extra\n",
		(unsigned long long)c->got, (unsigned long long)c->want,
		(unsigned long long)c->extra);
	assert_int_equal(c->bad, 0);
	assert_int_equal(c->got, c->want);
	assert_int_equal(c->extra, 0);
}

static void cons_abort(struct cons *c)
{
	if (c->running) {
		__atomic_store_n(&c->deadline, 0, __ATOMIC_SEQ_CST);
		pthread_join(c->t, NULL);
		c->running = false;
	}
}

/* Called at each put timeout of put_range (NULL: nothing), and once more
 * with stuck = true before it fails at its deadline: the netns test checks
 * its bridge processes there, so that one that died fails the test at once,
 * with its output, and a stall shows what they said. */
static void (*put_watch)(bool stuck);

/* Put messages from..to into q, riding out put timeouts (a stalled bridge
 * fills the queue: the producer waits, nothing is dropped); the number of
 * timeouts seen. */
static uint64_t put_range(shmq_queue *q, uint64_t from, uint64_t to, int64_t deadline)
{
	uint8_t *buf = malloc(MSG_MAX);
	uint64_t timeouts = 0;

	for (uint64_t i = from; i <= to; i++) {
		size_t len = msg_len(i);
		int rc;

		msg_fill(buf, i, len);
		while ((rc = shmq_queue_put(q, buf, len, 100ll * 1000000)) == -ETIMEDOUT &&
		       bu_now() < deadline) {
			timeouts++;
			if (put_watch)
				put_watch(false);
		}
		if (rc && put_watch) {
			fprintf(stderr, "test_bridge_long: put of message %llu: %d after %llu timeouts\n",
				(unsigned long long)i, rc, (unsigned long long)timeouts);
			put_watch(true);
		}
		assert_int_equal(rc, 0);
	}
	free(buf);
	return timeouts;
}

/* ---- in-process bridges on threads ---- */

static void runner_start(struct runner *ru, shmq_region *r, const char *url, unsigned dir)
{
	struct shmq_bridge_opts o = { .url = url, .dir = dir };

	memset(ru, 0, sizeof *ru);
	assert_int_equal(shmq_bridge_create(r, "jobs", &o, &ru->b), 0);
	runner_run(ru);
}

static uint64_t stream_msgs(const char *url)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsStreamInfo *si = NULL;
	uint64_t n = UINT64_MAX;

	if (natsConnection_ConnectTo(&nc, url) == NATS_OK &&
	    natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
	    js_GetStreamInfo(&si, js, "SHMQ_jobs", NULL, NULL) == NATS_OK)
		n = si->State.Msgs;
	jsStreamInfo_Destroy(si);
	natsConnection_Close(nc); /* first: joins the read loop (bridge.c, in_listen) */
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return n;
}

/* ---- 1: the round trip at volume ---- */

struct fx {
	struct bu_server srv;
	struct side a, b;
	struct runner out, in;
	struct cons c;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	assert_non_null(f);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (!runner_end(&f->out) || !runner_end(&f->in))
		_exit(99); /* a bridge thread hangs: nothing safe to free */
	cons_abort(&f->c);
	side_close(&f->a);
	side_close(&f->b);
	if (f->srv.dir[0])
		bu_server_stop(&f->srv);
	free(f);
	return 0;
}

static void test_long_roundtrip(void **state)
{
	struct fx *f = *state;
	const uint64_t n = volume();
	/* 200k messages of ~6 KiB average through two bridges: minutes */
	const int64_t deadline = bu_now() + (n > LONG_SHORT ? 1800ll : 60ll) * 1000000000;
	int64_t t0;
	uint64_t timeouts;

	assert_int_equal(bu_server_start(&f->srv, NULL), 0);
	side_open(&f->a, "bridgelongA");
	side_open(&f->b, "bridgelongB");
	runner_start(&f->out, f->a.r, f->srv.url, SHMQ_BRIDGE_OUT);
	runner_start(&f->in, f->b.r, f->srv.url, SHMQ_BRIDGE_IN);
	cons_start(&f->c, f->b.q, n, deadline);
	t0 = bu_now();
	timeouts = put_range(f->a.q, 1, n, deadline);
	cons_expect_all(&f->c);
	fprintf(stderr, "test_bridge_long: %llu messages in %.1f s (%llu put timeouts)\n",
		(unsigned long long)n, (double)(bu_now() - t0) / 1e9, (unsigned long long)timeouts);
	assert_true(runner_end(&f->out));
	assert_int_equal(f->out.rc, 0);
	assert_true(runner_end(&f->in));
	assert_int_equal(f->in.rc, 0);
	assert_int_equal(stream_msgs(f->srv.url), n);
	assert_int_equal(shmq_queue_len(f->a.q), 0);
	assert_int_equal(shmq_queue_len(f->b.q), 0);
}

/* ---- 2: a network cut between two namespaces ---- */

static char ns_a[32], ns_b[32], veth_a[16], veth_b[16];
static bool ns_made;
static int ns_home = -1; /* the test's own network namespace */

/* Run a shell command, bounded by `timeout`; true when it exited 0. */
static bool sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool sh(const char *fmt, ...)
{
	char cmd[512], full[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	snprintf(full, sizeof full, "timeout 10 %s >/dev/null 2>&1", cmd);
	return system(full) == 0;
}

static void ns_cleanup(void)
{
	if (!ns_made)
		return;
	/* deleting a namespace deletes the veth end in it, and so the pair */
	sh("ip netns del %s", ns_a);
	sh("ip netns del %s", ns_b);
	ns_made = false;
}

static void ns_on_fatal(int sig)
{
	bu_kill_all();
	ns_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int ns_enter(const char *ns)
{
	char path[128];
	int fd, rc;

	snprintf(path, sizeof path, "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = setns(fd, CLONE_NEWNET) ? -errno : 0;
	close(fd);
	return rc;
}

/* argv run in namespace ns, a tracked child; its output goes to log (NULL:
 * /dev/null), or to the test's own with BU_VERBOSE. */
static pid_t ns_spawn(const char *ns, char *const argv[], const char *log)
{
	pid_t pid = fork();

	if (pid == 0) {
		int out = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (ns_enter(ns))
			_exit(126);
		if (out >= 0 && !getenv("BU_VERBOSE")) {
			dup2(out, 1);
			dup2(out, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid > 0)
		bu_track(pid);
	return pid;
}

/* Print a bridge's log (its last 4 KiB) to the test's output. */
static void log_show(const char *what, const char *log)
{
	char buf[4096];
	FILE *f = fopen(log, "r");
	size_t n;

	if (!f)
		return;
	if (fseek(f, -(long)sizeof buf, SEEK_END))
		rewind(f);
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	fprintf(stderr, "test_bridge_long: --- %s's output ---\n%.*s\n--- end ---\n", what, (int)n,
		buf);
}

/* SIGTERM: a clean stop within 10 s, exit status 0; else its status (-1:
 * still running) and its output, and the test fails. */
static void bridge_stop(pid_t pid, const char *what, const char *log)
{
	int st;

	kill(pid, SIGTERM);
	st = bu_wait(pid, 10000);
	if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return;
	fprintf(stderr, "test_bridge_long: %s did not stop cleanly: wait status %d\n", what, st);
	log_show(what, log);
	fail();
}

/* The netns test's bridge processes and where their output goes. */
static struct {
	pid_t out_pid, in_pid;
	char out_log[320], in_log[320];
} nsb;

/* Both bridges still run: one that exited fails the test at once, with
 * its status and its output, instead of as a count of missing messages.
 * stuck: show what both said (messages missing, or puts stalled).  Also
 * put_range's watch in the netns test. */
static void bridges_alive(bool stuck)
{
	const pid_t pids[2] = { nsb.out_pid, nsb.in_pid };
	const char *logs[2] = { nsb.out_log, nsb.in_log }, *names[2] = { "bridge out", "bridge in" };

	for (int k = 0; k < 2; k++) {
		int st = bu_wait(pids[k], 0);

		if (st == -1)
			continue;
		fprintf(stderr, "test_bridge_long: %s exited early: %s %d\n", names[k],
			WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		log_show(names[k], logs[k]);
		fail();
	}
	for (int k = 0; stuck && k < 2; k++)
		log_show(names[k], logs[k]);
}

/* A NATS server greets with INFO: from the calling thread's namespace. */
static bool answers(const char *ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 1 };
	char buf[8];
	bool ok;

	if (fd < 0)
		return false;
	inet_pton(AF_INET, ip, &a.sin_addr);
	ok = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
	     setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0 &&
	     connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	     recv(fd, buf, 4, MSG_WAITALL) == 4 && memcmp(buf, "INFO", 4) == 0;
	close(fd);
	return ok;
}

/* Why namespaces cannot be made here, or NULL. */
static const char *ns_unavailable(void)
{
	if (geteuid() != 0)
		return "not root";
	if (system("command -v ip >/dev/null 2>&1") != 0)
		return "no ip(8)";
	if (!sh("ip netns add %s", ns_a))
		return "ip netns add failed (no CAP_SYS_ADMIN or no netns support)";
	ns_made = true;
	if (!sh("ip netns add %s", ns_b))
		return "ip netns add failed";
	/* made inside the namespaces: deleting them deletes the pair */
	if (!sh("ip -n %s link add %s type veth peer name %s netns %s", ns_a, veth_a, veth_b, ns_b))
		return "no veth";
	return NULL;
}

static void test_netns_cut(void **state)
{
	struct fx *f = *state;
	const uint64_t n = getenv("SHMQ_CHECK_LONG") ? 20000 : 1500;
	const int64_t deadline = bu_now() + 60ll * 1000000000;
	const char *why;
	char url[64], port[8] = "4222", sd[300];
	char *srv_argv[] = { "nats-server", "-js", "-a", "10.231.7.1", "-p", port, "-sd", sd, NULL };
	char *out_argv[] = { (char *)bridge_tool, "bridge", "out", f->a.name, "jobs", url, NULL };
	char *in_argv[] = { (char *)bridge_tool, "bridge", "in", f->b.name, "jobs", url, NULL };
	uint64_t t1, t2, t3;
	int64_t end;

	snprintf(ns_a, sizeof ns_a, "shmq-a-%d", (int)getpid());
	snprintf(ns_b, sizeof ns_b, "shmq-b-%d", (int)getpid());
	snprintf(veth_a, sizeof veth_a, "sqa%d", (int)getpid());
	snprintf(veth_b, sizeof veth_b, "sqb%d", (int)getpid());
	why = ns_unavailable();
	if (why) {
		ns_cleanup();
		printf("SKIP test_netns_cut: cannot make network namespaces: %s\n", why);
		skip();
	}
	/* the pair: veth_a in A (10.231.7.1/30), veth_b in B (10.231.7.2/30) */
	assert_true(sh("ip -n %s addr add 10.231.7.1/30 dev %s", ns_a, veth_a));
	assert_true(sh("ip -n %s addr add 10.231.7.2/30 dev %s", ns_b, veth_b));
	assert_true(sh("ip -n %s link set lo up", ns_a));
	assert_true(sh("ip -n %s link set lo up", ns_b));
	assert_true(sh("ip -n %s link set %s up", ns_a, veth_a));
	assert_true(sh("ip -n %s link set %s up", ns_b, veth_b));

	/* the server in A */
	memset(&f->srv, 0, sizeof f->srv);
	snprintf(f->srv.dir, sizeof f->srv.dir, "/tmp/shmq-bridge-test.XXXXXX");
	assert_non_null(mkdtemp(f->srv.dir));
	snprintf(sd, sizeof sd, "%s/js", f->srv.dir);
	f->srv.pid = ns_spawn(ns_a, srv_argv, NULL);
	assert_true(f->srv.pid > 0);
	snprintf(url, sizeof url, "nats://10.231.7.1:%s", port);

	/* this thread lives in B from here to the end of the test, for the
	 * checks.  Both bridges are processes spawned into B: nats.c's shared
	 * threads (timers, reconnects) started by the first test of this
	 * process stay in the namespace they were made in, so an in-process
	 * bridge here could not reconnect across the cut. */
	ns_home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	assert_true(ns_home >= 0);
	assert_int_equal(ns_enter(ns_b), 0);
	end = bu_now() + BU_START_NS;
	while (!answers("10.231.7.1", 4222) && bu_now() < end)
		bu_sleep_ms(50);
	assert_true(answers("10.231.7.1", 4222));

	side_open(&f->a, "bridgecutA");
	side_open(&f->b, "bridgecutB");
	/* the bridges: the shmq command, in B, their output kept for a failure */
	snprintf(nsb.out_log, sizeof nsb.out_log, "%s/bridge-out.log", f->srv.dir);
	snprintf(nsb.in_log, sizeof nsb.in_log, "%s/bridge-in.log", f->srv.dir);
	nsb.out_pid = ns_spawn(ns_b, out_argv, nsb.out_log);
	assert_true(nsb.out_pid > 0);
	nsb.in_pid = ns_spawn(ns_b, in_argv, nsb.in_log);
	assert_true(nsb.in_pid > 0);
	put_watch = bridges_alive;
	cons_start(&f->c, f->b.q, n, deadline);

	t1 = put_range(f->a.q, 1, n / 3, deadline);
	/* both bridges up before the cut: a bridge still setting up (connect,
	 * stream and consumer requests, slow under sanitizers and load) when
	 * the link goes down fails its create and exits, which is not what
	 * this test is about.  The first message through IN shows both are. */
	while (__atomic_load_n(&f->c.got, __ATOMIC_SEQ_CST) == 0 && bu_now() < deadline) {
		bridges_alive(false);
		bu_sleep_ms(10);
	}
	bridges_alive(false);
	assert_true(__atomic_load_n(&f->c.got, __ATOMIC_SEQ_CST) > 0);
	/* the cut: producers go on putting; A fills, their puts time out */
	assert_true(sh("ip -n %s link set %s down", ns_b, veth_b));
	end = bu_now() + 3000000000ll;
	{
		uint64_t i = n / 3 + 1;
		uint8_t *buf = malloc(MSG_MAX);

		t2 = 0;
		while (bu_now() < end && i <= n) {
			size_t len = msg_len(i);
			int rc;

			msg_fill(buf, i, len);
			rc = shmq_queue_put(f->a.q, buf, len, 100ll * 1000000);
			if (rc == -ETIMEDOUT) {
				t2++;
				continue;
			}
			assert_int_equal(rc, 0);
			i++;
		}
		free(buf);
		assert_true(sh("ip -n %s link set %s up", ns_b, veth_b));
		fprintf(stderr, "test_bridge_long: cut at %llu, %llu put during the cut, "
			"%llu put timeouts\n", (unsigned long long)(n / 3),
			(unsigned long long)(i - 1 - n / 3), (unsigned long long)t2);
		/* the queue (QCAP) is far smaller than what 3 s of producing
		 * brings: the cut did stall the producers */
		assert_true(t2 > 0);
		t3 = put_range(f->a.q, i, n, deadline);
	}
	bridges_alive(false);
	if (!cons_wait(&f->c))
		bridges_alive(true); /* the consumer misses messages: what the bridges said */
	cons_expect_all(&f->c);
	assert_int_equal(stream_msgs(url), n);
	put_watch = NULL;
	bridge_stop(nsb.out_pid, "bridge out", nsb.out_log);
	bridge_stop(nsb.in_pid, "bridge in", nsb.in_log);
	assert_int_equal(shmq_queue_len(f->a.q), 0);
	assert_int_equal(shmq_queue_len(f->b.q), 0);
	fprintf(stderr, "test_bridge_long: %llu messages across the cut (%llu timeouts after)\n",
		(unsigned long long)n, (unsigned long long)(t1 + t3));
	assert_int_equal(setns(ns_home, CLONE_NEWNET), 0);
	close(ns_home);
	ns_home = -1;
	bu_server_stop(&f->srv);
	ns_cleanup();
}

static int ns_teardown(void **state)
{
	int rc;

	put_watch = NULL;
	rc = fx_teardown(state);

	if (ns_home >= 0) {
		if (setns(ns_home, CLONE_NEWNET))
			perror("setns");
		close(ns_home);
		ns_home = -1;
	}
	ns_cleanup();
	return rc;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_long_roundtrip, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_netns_cut, fx_setup, ns_teardown),
	};
	const char *s = getenv("SHMQ_SEED");

#ifndef HAVE_SHMQ_QUEUE_2PC
	printf("SKIP: libshmq has no two-phase get: the bridge has no OUT direction\n");
	return 77;
#endif
	if (!bu_have_server()) {
		printf("SKIP: nats-server is not installed (tools/setup.sh installs it)\n");
		return 77;
	}
	seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	fprintf(stderr, "test_bridge_long: seed %#llx (SHMQ_SEED), %llu messages\n",
		(unsigned long long)seed, (unsigned long long)volume());
	/* ns_cleanup runs after bu_kill_all (atexit is last in, first out) */
	atexit(ns_cleanup);
	bu_cleanup_install();
	signal(SIGTERM, ns_on_fatal);
	signal(SIGINT, ns_on_fatal);
	signal(SIGABRT, ns_on_fatal);
	signal(SIGALRM, ns_on_fatal);
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	alarm(getenv("SHMQ_CHECK_LONG") ? 3600 : 300);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
