/* SPDX-License-Identifier: MIT */
/*
 * libshmq-bridge: a queue joined to a NATS JetStream stream (see
 * <shmq/bridge.h> for the contract, bridge/bridge_int.h for the checkpoint).
 * This file: the handle, connecting, the stream, the IN direction's loop.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include <shmq/bridge.h>

#include "core/atomic_int.h"
#include "core/hash_int.h"
#include "bridge/bridge_int.h"
#ifdef HAVE_SHMQ_QUEUE_2PC
#include "bridge/export_int.h" /* libshmq's private node */
#endif

#define BRIDGE_NAME_MAX     SHMQ_OBJ_NAME_MAX
#define BRIDGE_FETCH_NS     (200ll * 1000000)  /* one fetch waits at most this */
#define BRIDGE_PUT_NS       (100ll * 1000000)  /* one put attempt waits at most this */
#define BRIDGE_RETRY_NS     (100ll * 1000000)  /* pause after a server error */
#define BRIDGE_FULL_NS      (2ll * 1000000)    /* pause while the queue is full */
#define BRIDGE_NOSPC_EMPTY  50                 /* IN: heap full, queue empty this many looks: -ENOSPC */
#define BRIDGE_IDLE_REWIND  25                 /* empty fetches before re-making the consumer */
#define BRIDGE_HOLD_NS      (2ll * 1000000000) /* create waits this long for the holder lock */
#define BRIDGE_JS_WAIT_MS   2000               /* JetStream API calls */
#define BRIDGE_JS_TRY_MS    200                /* IN: one try of a consumer call (in_js_again) */
#define BRIDGE_SILENT_NS    (1ll * 1000000000) /* IN: nothing heard this long: OFFLINE */
#define BRIDGE_DEAD_MAX     128                /* OUT: messages destroyed together */

struct shmq_bridge {
	pid_t pid;                 /* the process that made it: a child of fork() has a copy */
	shmq_region *r;
	shmq_queue *q;
	shmq_lock *hold;
	struct shmq__bridge_shared *sh;
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub;     /* IN: the pull requests' answers, OUT: the publishes', for the bridge's lifetime */
	natsMsg **msgs;            /* IN: one round's messages, batch entries */
	int req_left;              /* IN: messages the open pull request may still bring */
	int64_t req_end;           /* IN: when it expires at the server */
	bool have_consumer;        /* IN: the pull consumer exists (in_subscribe) */
	bool fresh;                /* IN: it has delivered nothing past the checkpoint yet */
	int64_t heard_ns;          /* IN: when the server last answered (in_online) */
	int conn_down;             /* nonzero from nats.c's disconnected callback to its reconnected one */
	int conn_closed;           /* nats.c's closed callback ran: no callback comes after it */
	bool stamped;              /* create stamped a new checkpoint object */
	char inbox[64];            /* the inbox sub listens on (OUT: "<inbox>.*.*") */
	unsigned dir;
	uint32_t batch;
	uint32_t capacity;         /* the queue's, from its stats at create */
	int running;               /* nonzero while a shmq_bridge_run runs (a second: -EBUSY) */
	int stop;                  /* nonzero once shmq_bridge_stop was called */
	int64_t stop_deadline;     /* shmq_now_ns() by which run must return */
	int state;                 /* enum shmq_bridge_state */
	uint64_t moved;
	uint64_t rewinds;
#ifdef HAVE_SHMQ_QUEUE_2PC
	uint64_t *marks;           /* the queue's loop marks (bridge_int.h, Loops) */
	uint32_t nmarks;           /* = the queue's capacity, private */
	struct out_slot *fly;      /* OUT: the in-flight table, a ring of inflight entries */
	uint32_t inflight;
	uint32_t fly_head;         /* OUT: the oldest entry in flight */
	uint32_t fly_n;            /* OUT: entries in flight */
	uint32_t fly_hint;         /* OUT: where, after fly_head, the next answer is likely */
	uint32_t epoch;            /* OUT: answers to older epochs are dropped */
	int64_t progress_ns;       /* OUT: the last commit, or the first publish after none in flight */
	uint64_t incarnation;      /* OUT: the queue's, fixed when it was made */
	char idpfx[180];           /* OUT: "<uuid hex>.<queue>.<incarnation hex>." */
	size_t idpfx_len;
	char last_id[208];         /* OUT: the stream's last message id, "" if none */
	natsMsg *dead[BRIDGE_DEAD_MAX]; /* OUT: messages done with, destroyed together */
	uint32_t ndead;
#endif
	char subject[256];
	char stream[128];
	char durable[BRIDGE_NAME_MAX + 34]; /* IN: "<name flattened>_<region uuid hex>" (durable_fill) */
	char name[BRIDGE_NAME_MAX + 1];
};

#ifdef HAVE_SHMQ_QUEUE_2PC
/* nats.c hands every destroyed message to its collector thread and wakes
 * that thread when it waits: one destroy per publish and per answer would
 * wake it about twice per message.  Destroyed together, the first wakes it
 * and the rest join the list it takes. */
static void dead_flush(shmq_bridge *b)
{
	for (uint32_t i = 0; i < b->ndead; i++)
		natsMsg_Destroy(b->dead[i]);
	b->ndead = 0;
}

static void dead_add(shmq_bridge *b, natsMsg *m)
{
	if (b->ndead == BRIDGE_DEAD_MAX)
		dead_flush(b);
	b->dead[b->ndead++] = m;
}
#endif

static void bridge_sleep(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int nats_err(natsStatus s)
{
	switch (s) {
	case NATS_OK: return 0;
	case NATS_NO_MEMORY: return -ENOMEM;
	case NATS_TIMEOUT: return -ETIMEDOUT;
	case NATS_NO_SERVER: return -ECONNREFUSED;
	case NATS_CONNECTION_AUTH_FAILED: /* the server refused our user */
	case NATS_NOT_PERMITTED: return -EACCES;
	case NATS_NOT_FOUND: return -ENOENT;
	case NATS_INVALID_ARG: return -EINVAL;
	default: return -EIO;
	}
}

/* [A-Za-z0-9_-] only, as stream and consumer names want them. */
static void name_flatten(char *s)
{
	for (; *s; s++)
		if (*s == '.' || *s == '-' || *s == '*' || *s == '>' || *s == ' ')
			*s = '_';
}

/* A stream name as the server takes it: printable, no whitespace, none of
 * . * > / \ (they name subjects and files), no " (nats.c puts names into
 * the JSON of API requests unescaped: a quote ends the string there). */
static bool stream_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || strchr(".*>/\\\"", *s))
			return false;
	return true;
}

/* A subject: dot-separated tokens, none empty, no whitespace or control
 * characters, no " or \ (unescaped in nats.c's JSON, as stream names);
 * wild (a subscription's, IN) lets a token be * and the last one be >,
 * which a publication's (OUT) may not hold at all. */
static bool subject_ok(const char *s, bool wild)
{
	const char *tok = s;

	for (;; s++) {
		if (*s == '.' || !*s) {
			size_t n = (size_t)(s - tok);

			if (n == 0)
				return false;
			if (memchr(tok, '*', n) || memchr(tok, '>', n)) {
				if (!wild || n != 1 || (*tok == '>' && *s))
					return false;
			}
			if (!*s)
				return true;
			tok = s + 1;
		} else if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f ||
			   *s == '"' || *s == '\\') {
			return false;
		}
	}
}

static int names_fill(shmq_bridge *b, const char *queue, const struct shmq_bridge_opts *o)
{
	int n;

	n = o->subject ? snprintf(b->subject, sizeof b->subject, "%s", o->subject)
		       : snprintf(b->subject, sizeof b->subject, "shmq.%s", queue);
	if (n <= 0 || (size_t)n >= sizeof b->subject)
		return -EINVAL;
	n = o->stream ? snprintf(b->stream, sizeof b->stream, "%s", o->stream)
		      : snprintf(b->stream, sizeof b->stream, "SHMQ_%s", queue);
	if (n <= 0 || (size_t)n >= sizeof b->stream)
		return -EINVAL;
	if (!o->stream)
		name_flatten(b->stream + 5);
	n = o->name ? snprintf(b->name, sizeof b->name, "%s", o->name)
		    : snprintf(b->name, sizeof b->name, "bridge.%s", queue);
	/* room for the holder lock's ".hold" */
	if (n <= 0 || (size_t)n + 5 >= sizeof b->name)
		return -EINVAL;
	memcpy(b->durable, b->name, sizeof b->name);
	name_flatten(b->durable);
	/* refused here, as names, rather than by the server later */
	if (!stream_name_ok(b->stream) || !subject_ok(b->subject, b->dir == SHMQ_BRIDGE_IN))
		return -EINVAL;
	return 0;
}

/*
 * IN: the pull consumer's durable name, "<name flattened>_<region uuid hex>"
 * (at most 58 + 33 characters; the server takes 255).  The bridge name alone
 * was shared by every region bridging the stream under that name: each
 * start and rewind deleted the other regions' consumer.  The checkpoint is
 * the region's, so is the consumer now.  Upgrade: nothing of the old
 * consumer is needed, since in_subscribe makes the consumer anew from the
 * checkpoint at every start; the old one (bridge name alone) is left on the
 * server, as a bridge of another region running the older library may still
 * use it.
 */
static int durable_fill(shmq_bridge *b)
{
#if HAVE_DECL_SHMQ_REGION_UUID
	uint8_t u[16];
	size_t n = strlen(b->durable);
	int rc = shmq_region_uuid(b->r, u);

	if (rc)
		return rc;
	_Static_assert(sizeof b->durable >= sizeof b->name + 33, "durable: name, _, 32 hex digits");
	b->durable[n++] = '_';
	for (int i = 0; i < 16; i++, n += 2)
		snprintf(b->durable + n, 3, "%02x", u[i]);
#else
	(void)b;
#endif
	return 0;
}

/*
 * A version-1 checkpoint (bridge_int.h) becomes version 2 in place: its
 * reserved words are zero, which version 2 reads as "no position noted",
 * so only a pending message needs care: version 1 recorded no position for
 * it, so it is in doubt, put again and counted, as version 1 promised.
 * Idempotent up to the version store, so a kill inside is harmless (it may
 * count that message twice).  A newer version is refused: its words may mean
 * what we cannot know.
 */
static int shared_upgrade(shmq_bridge *b)
{
	uint32_t v = shmq__load_seq_cst(&b->sh->version);
	uint64_t pending, applied;

	if (v == SHMQ__BRIDGE_VERSION)
		return 0;
	if (v != SHMQ__BRIDGE_VERSION_1)
		return v > SHMQ__BRIDGE_VERSION ? -EPROTO : -EBADMSG;
	pending = shmq__load_seq_cst(&b->sh->pending);
	applied = shmq__load_seq_cst(&b->sh->applied);
	if (b->dir == SHMQ_BRIDGE_IN && pending && pending == applied + 1)
		shmq__store_seq_cst(&b->sh->in_doubt, shmq__load_seq_cst(&b->sh->in_doubt) + 1);
	shmq__store_seq_cst(&b->sh->pending, 0);
	shmq__store_seq_cst(&b->sh->pending_pos, 0);
	shmq__store_seq_cst(&b->sh->pos_incarnation, 0);
	shmq__store_seq_cst(&b->sh->version, SHMQ__BRIDGE_VERSION);
	return 0;
}

/* The checkpoint object: made zeroed on first use, then checked. */
static int shared_attach(shmq_bridge *b)
{
	void *mem;
	size_t size;
	int rc = shmq_region_alloc(b->r, b->name, SHMQ__BRIDGE_OBJ_SIZE, &mem);

	if (rc == -EEXIST)
		rc = shmq_region_find(b->r, b->name, &mem, &size);
	else
		size = SHMQ__BRIDGE_OBJ_SIZE;
	if (rc)
		return rc;
	if (size < SHMQ__BRIDGE_OBJ_SIZE)
		return -EBADMSG;
	b->sh = mem;
	/* The holder lock is held: nobody else writes the object now.  A fresh
	 * one (magic 0) is stamped; anything else must be ours. */
	if (shmq__load_seq_cst(&b->sh->magic) == 0) {
		shmq__store_seq_cst(&b->sh->version, SHMQ__BRIDGE_VERSION);
		shmq__store_seq_cst(&b->sh->dir, b->dir);
		shmq__store_seq_cst(&b->sh->magic, SHMQ__BRIDGE_MAGIC);
		b->stamped = true;
	}
	if (shmq__load_seq_cst(&b->sh->magic) != SHMQ__BRIDGE_MAGIC)
		return -EBADMSG;
	if (shmq__load_seq_cst(&b->sh->dir) != b->dir)
		return -EINVAL; /* the name belongs to a bridge of the other direction */
	return shared_upgrade(b);
}

static int hold_take(shmq_bridge *b)
{
	char lname[BRIDGE_NAME_MAX + 8];
	int rc;

	snprintf(lname, sizeof lname, "%s.hold", b->name);
	rc = shmq_lock_create(b->r, lname, &b->hold);
	if (rc == -EEXIST)
		rc = shmq_lock_open(b->r, lname, &b->hold);
	if (rc)
		return rc;
	rc = shmq_lock_acquire(b->hold, BRIDGE_HOLD_NS);
	if (rc == -EOWNERDEAD)
		return 0; /* a killed bridge's: the checkpoint protocol covers it */
	if (rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EDEADLK)
		rc = -EBUSY;
	if (rc) {
		shmq_lock_close(b->hold);
		b->hold = NULL;
	}
	return rc;
}

/*
 * The connection's state, as nats.c's callbacks (on its own thread) tell
 * it: natsConnection_Status takes the connection's lock, which the
 * reconnecting thread holds through a connect attempt (up to the 2 s
 * connect timeout against a server that accepts and never answers), so the
 * run thread asks these words instead.  The closed callback is the last
 * one nats.c makes with b; shmq_bridge_free waits for it.
 */
static void on_disconnected(natsConnection *nc, void *arg)
{
	shmq_bridge *b = arg;

	(void)nc;
	shmq__store_seq_cst(&b->conn_down, 1);
}

static void on_reconnected(natsConnection *nc, void *arg)
{
	shmq_bridge *b = arg;

	(void)nc;
	shmq__store_seq_cst(&b->conn_down, 0);
}

static void on_closed(natsConnection *nc, void *arg)
{
	shmq_bridge *b = arg;

	(void)nc;
	shmq__store_seq_cst(&b->conn_down, 1);
	shmq__store_seq_cst(&b->conn_closed, 1);
}

static int connect_server(shmq_bridge *b, const char *url)
{
	natsOptions *opts = NULL;
	natsStatus s = natsOptions_Create(&opts);

	if (s == NATS_OK)
		s = natsOptions_SetURL(opts, url);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(opts, 2000);
	/* ride out outages: reconnect forever, every 100 ms, and buffer nothing
	 * the bridge has not accounted for itself */
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(opts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(opts, 100);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(opts, 1000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(opts, 2);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(opts, on_disconnected, b);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(opts, on_reconnected, b);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(opts, on_closed, b);
	if (s == NATS_OK)
		s = natsConnection_Connect(&b->nc, opts);
	natsOptions_Destroy(opts);
	if (s == NATS_OK) {
		jsOptions jo;

		jsOptions_Init(&jo);
		jo.Wait = BRIDGE_JS_WAIT_MS;
		s = natsConnection_JetStream(&b->js, b->nc, &jo);
	}
	return nats_err(s);
}

/* The stream, made when absent: file storage, Discard=New, a duplicate
 * window of 10 minutes.  An existing stream must carry our subject. */
static int stream_ensure(shmq_bridge *b)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetStreamInfo(&si, b->js, b->stream, NULL, &jerr);
	int rc = 0;

	if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
		jsStreamConfig cfg;
		const char *subj[1] = { b->subject };

		jsStreamConfig_Init(&cfg);
		cfg.Name = b->stream;
		cfg.Subjects = subj;
		cfg.SubjectsLen = 1;
		cfg.Storage = js_FileStorage;
		cfg.Discard = js_DiscardNew;
		cfg.Duplicates = SHMQ_BRIDGE_DUP_WINDOW_NS;
		jerr = 0;
		s = js_AddStream(&si, b->js, &cfg, NULL, &jerr);
		if (s != NATS_OK && jerr == JSStreamNameExistErr) /* lost a race */
			s = js_GetStreamInfo(&si, b->js, b->stream, NULL, &jerr);
	}
	if (s == NATS_NO_RESPONDERS)
		return -EPROTO; /* nobody answers the JetStream API: not enabled there */
	if (s != NATS_OK)
		return nats_err(s);
	rc = -EPROTO;
	for (int i = 0; si && si->Config && i < si->Config->SubjectsLen; i++)
		if (strcmp(si->Config->Subjects[i], b->subject) == 0)
			rc = 0;
	/* IN: a stream whose sequences end below the checkpoint was made again
	 * (or its store lost what it had acked): resuming after the checkpoint
	 * would skip that many new messages unseen.  The checkpoint word is
	 * untrusted: a wrong one refuses, never skips */
	if (rc == 0 && b->dir == SHMQ_BRIDGE_IN && si &&
	    si->State.LastSeq < shmq__load_seq_cst(&b->sh->applied))
		rc = -EPROTO;
	jsStreamInfo_Destroy(si);
	return rc;
}

static void stats_set_state(shmq_bridge *b, int state)
{
	/* relaxed: the run thread's own store read back (only it writes the
	 * word once run runs): a commit sets RUNNING and stores nothing new */
	if (shmq__load_relaxed(&b->state) == state)
		return;
	/* relaxed: a statistic; shmq_bridge_stats reads it alone */
	shmq__store_relaxed(&b->state, state);
	/* relaxed: a statistic for shmq stat, read alone */
	shmq__store_relaxed(&b->sh->state, (uint32_t)state);
}

static bool stop_due(shmq_bridge *b)
{
	return shmq__load_seq_cst(&b->stop) != 0 &&
	       shmq_now_ns() >= shmq__load_seq_cst(&b->stop_deadline);
}

/* ---- loops (bridge/bridge_int.h, Loops) ---- */
#ifdef HAVE_SHMQ_QUEUE_2PC
/* The queue's loop marks, made zeroed on first use by any bridge of it.
 * Named after the queue's incarnation, so a queue made again under the same
 * name (positions from 0 again) never meets the marks of the old one. */
static int loop_attach(shmq_bridge *b, const char *queue)
{
	struct shmq__queue_ident qi;
	struct shmq__bridge_loop *lp;
	char lname[BRIDGE_NAME_MAX + 1];
	uint64_t size = sizeof *lp + (uint64_t)b->capacity * sizeof(uint64_t);
	size_t have;
	void *mem;
	int rc = shmq__bridge_queue_ident(b->q, &qi), n;

	if (rc)
		return rc;
	n = snprintf(lname, sizeof lname, "bridge.loop.%016llx.%s",
		     (unsigned long long)qi.incarnation, queue);
	if (n > 0 && (size_t)n >= sizeof lname) /* a long queue name (bridge_int.h, Loops) */
		n = snprintf(lname, sizeof lname, "bridge.loop.%016llx.h%016llx",
			     (unsigned long long)qi.incarnation,
			     (unsigned long long)shmq__fnv1a64(queue, strlen(queue)));
	if (n <= 0 || (size_t)n >= sizeof lname)
		return -EINVAL;
	rc = shmq_region_alloc(b->r, lname, size, &mem);
	if (rc == -EEXIST) {
		rc = shmq_region_find(b->r, lname, &mem, &have);
		if (!rc && have < size)
			rc = -EBADMSG;
	}
	if (rc)
		return rc;
	lp = mem;
	/* Made zeroed by alloc, the marks all "none" already; stamped by
	 * whoever comes first, slots then the magic, each only from 0: every
	 * bridge of the queue stamps alike, so none waits for the one that
	 * made the object, which may have been killed before its stamp (or be
	 * slow to make it) and would otherwise leave the marks refused for
	 * the queue's life.  seq_cst: the stamp, as the checks below */
	{
		uint32_t zero = 0;

		shmq__cas_seq_cst(&lp->slots, &zero, b->capacity);
		zero = 0;
		shmq__cas_seq_cst(&lp->magic, &zero, SHMQ__BRIDGE_LOOP_MAGIC);
	}
	if (shmq__load_seq_cst(&lp->magic) != SHMQ__BRIDGE_LOOP_MAGIC ||
	    shmq__load_seq_cst(&lp->slots) != b->capacity)
		return -EBADMSG;
	b->marks = lp->mark;
	b->nmarks = b->capacity;
	return 0;
}

/* IN: called by the queue between the claim of pos and its publication.
 * First the checkpoint's pending_pos (bridge_int.h: the put's position, for
 * the next holder if we die now).  Then the loop mark: the mark of pos's
 * slot only grows (pos + 1 over what an older lap or a killed bridge
 * left): a CAS loop that ends once the mark is >= pos + 1, and another
 * bridge can raise it at most once per lap of the ring. */
static void in_note(void *arg, uint64_t pos)
{
	shmq_bridge *b = arg;
	uint64_t *w = &b->marks[pos % b->nmarks];
	uint64_t cur;

	shmq__store_seq_cst(&b->sh->pending_pos, pos + 1);
	/* relaxed: a statistic, counted before the message can be got, so
	 * that whoever got it reads it counted; the queue's release of the
	 * slot (put_publish) and the getter's acquire carry it */
	shmq__store_relaxed(&b->moved, b->moved + 1);
	cur = shmq__load_seq_cst(w);

	while (cur < pos + 1 && !shmq__cas_seq_cst(w, &cur, pos + 1))
		;
}

/* OUT: did an IN bridge put the message at pos, which we hold?  While we
 * hold it, the slot's next lap (pos + capacity) cannot be claimed, so the
 * mark is pos + 1 exactly when a bridge noted pos. */
static bool loop_brought(const shmq_bridge *b, uint64_t pos)
{
	return b->marks && shmq__load_seq_cst(&b->marks[pos % b->nmarks]) == pos + 1;
}
#endif

/* ---- IN: stream -> queue ---- */

/*
 * The pull requests are the bridge's own, not natsSubscription_Fetch: in
 * nats.c up to 3.8.1 a Fetch that starts with messages left in its
 * subscription (late answers to an earlier pull, common around a server
 * restart) recounts its batch and writes past the array it allocated
 * (nats.c PR #749; Debian ships 3.4.1): heap corruption, seen as "double
 * free or corruption" in natsMsgList_Destroy.  Here the array is ours and
 * its bound is checked on every message: a plain subscription takes the
 * answers to "$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>" requests, one
 * request open at a time, and the sequence check of in_batch decides what
 * is put whichever request brought it.
 *
 * That subscription lives as long as the bridge and is destroyed only after
 * the connection is closed: nats.c before 3.6.1 (its commit 0a7dd28b) looks a
 * subscription up in its read loop and uses it unreferenced, so destroying
 * one while the connection may deliver to it has the read loop lock a freed
 * mutex (an abort in natsMutex_Lock; ThreadSanitizer's "use of an invalid
 * mutex").  A rewind deletes the consumer and makes a new one; what the old
 * one's requests brought (messages, the 409 its deletion sends) is in the
 * subscription once the deletion's API reply came (one connection, one
 * order), and is dropped then, never taken as an answer to the new
 * consumer's requests.  The OUT direction listens the same way, on
 * "<inbox>.*.*", for the answers to its publishes (see OUT).
 */
static int in_listen(shmq_bridge *b)
{
	natsInbox *inbox = NULL;
	natsStatus s;

	if (b->sub)
		return 0;
	s = natsInbox_Create(&inbox);
	if (s == NATS_OK) {
		char subj[sizeof b->inbox + 8];

		snprintf(b->inbox, sizeof b->inbox, "%s", (const char *)inbox);
		/* OUT: the publishes' answers, "<inbox>.<epoch>.<position>" */
		snprintf(subj, sizeof subj, "%s%s", b->inbox,
			 b->dir == SHMQ_BRIDGE_OUT ? ".*.*" : "");
		s = natsConnection_SubscribeSync(&b->sub, b->nc, subj);
	}
	/* OUT: room for every answer in flight and late ones of an old
	 * epoch; past it nats.c drops answers and says so (a rewind) */
	if (s == NATS_OK && b->dir == SHMQ_BRIDGE_OUT)
		s = natsSubscription_SetPendingLimits(b->sub,
						      b->inflight < 65536 ? (int)b->inflight * 4 + 1024 : -1,
						      64 * 1024 * 1024);
	natsInbox_Destroy(inbox);
	if (s != NATS_OK) {
		b->sub = NULL;
		return nats_err(s);
	}
	return 0;
}

/* Drop what the subscription holds now: at most the count nats.c gives. */
static void in_flush(shmq_bridge *b)
{
	int pm = 0, pb = 0;

	if (natsSubscription_GetPending(b->sub, &pm, &pb) != NATS_OK)
		return;
	while (pm-- > 0) {
		natsMsg *m = NULL;

		if (natsSubscription_NextMsg(&m, b->sub, 0) != NATS_OK)
			break;
		natsMsg_Destroy(m);
	}
}

/* The server answers: connected, and something (a message, a pull
 * request's end, an API reply) came within BRIDGE_SILENT_NS.  Expired pull
 * requests end with a 408 status every BRIDGE_FETCH_NS while it is idle,
 * so a server that stopped answering (but whose connection nats.c has not
 * yet given up on) is silent within about five of them; so is one that
 * lost our consumer (in_run). */
static bool in_online(shmq_bridge *b)
{
	return !shmq__load_seq_cst(&b->conn_down) && shmq_now_ns() - b->heard_ns < BRIDGE_SILENT_NS;
}

/* A consumer call timed out after one try of BRIDGE_JS_TRY_MS: try again
 * unless a stop came or BRIDGE_JS_WAIT_MS passed since end was set.  A
 * stop is honoured at once: no batch is in hand while the consumer is
 * re-made.  The tries repeat an idempotent request (a delete of what is
 * gone answers "not found", an add of the same config the consumer), and
 * what a late one does to the consumer costs at most a rewind: the
 * sequence check of in_batch, not the consumer, decides what is put. */
static bool in_js_again(shmq_bridge *b, int64_t end)
{
	return !shmq__load_seq_cst(&b->stop) && shmq_now_ns() < end;
}

/* A pull consumer delivering from the checkpoint on.  Made anew at every
 * start and rewind, so that what the server remembers of an older one
 * (acks, redeliveries, open requests) never decides what we put.  Its two
 * calls are tried BRIDGE_JS_TRY_MS at a time (in_js_again), so that a stop
 * during an outage is prompt. */
static int in_subscribe(shmq_bridge *b)
{
	int64_t end = shmq_now_ns() + BRIDGE_JS_WAIT_MS * 1000000ll;
	jsConsumerConfig cc;
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	jsOptions jo;
	natsStatus s;
	int rc = in_listen(b);

	if (rc)
		return rc;
	b->have_consumer = false;
	b->req_left = 0;
	if (shmq__load_seq_cst(&b->conn_down))
		return -ENOTCONN; /* the calls would only wait: in_run retries */
	jsOptions_Init(&jo);
	jo.Wait = BRIDGE_JS_TRY_MS;
	do {
		jerr = 0;
		s = js_DeleteConsumer(b->js, b->stream, b->durable, &jo, &jerr);
	} while (s == NATS_TIMEOUT && in_js_again(b, end));
	/* any answer (deleted, not found) orders the old consumer's answers
	 * before it (in_flush); none: the old one may still deliver */
	if (s == NATS_TIMEOUT)
		return -ETIMEDOUT;
	jsConsumerConfig_Init(&cc);
	cc.Durable = b->durable;
	cc.DeliverPolicy = js_DeliverByStartSequence;
	cc.OptStartSeq = shmq__load_seq_cst(&b->sh->applied) + 1;
	cc.AckPolicy = js_AckAll;
	cc.MaxAckPending = 65536;
	do {
		jerr = 0;
		ci = NULL;
		s = js_AddConsumer(&ci, b->js, b->stream, &cc, &jo, &jerr);
		jsConsumerInfo_Destroy(ci);
	} while (s == NATS_TIMEOUT && in_js_again(b, end));
	if (s != NATS_OK)
		return nats_err(s);
	in_flush(b); /* the old consumer's answers: in the sub by now */
	b->have_consumer = true;
	b->fresh = true;
	b->heard_ns = shmq_now_ns();
	return 0;
}

/* Ask for up to want messages, unless the last request may still deliver. */
static int in_request(shmq_bridge *b, int want)
{
	char subj[sizeof b->stream + sizeof b->durable + 40], body[96];
	int64_t now = shmq_now_ns();
	natsStatus s;

	/* open: not all delivered, no end status seen, not expired (a margin
	 * for what is still on the wire) */
	if (b->req_left > 0 && now < b->req_end + BRIDGE_FETCH_NS)
		return 0;
	snprintf(subj, sizeof subj, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", b->stream, b->durable);
	snprintf(body, sizeof body, "{\"batch\":%d,\"expires\":%lld}", want,
		 (long long)BRIDGE_FETCH_NS);
	s = natsConnection_PublishRequest(b->nc, subj, b->inbox, body, (int)strlen(body));
	if (s != NATS_OK)
		return nats_err(s);
	b->req_left = want;
	b->req_end = now + BRIDGE_FETCH_NS;
	return 0;
}

/* One round: at most want (<= b->batch) stream messages into b->msgs.
 * Their count (0: nothing within BRIDGE_FETCH_NS), or -EPIPE when the
 * consumer is gone (rewind), or another negative errno (the connection). */
static int in_fetch(shmq_bridge *b, int want)
{
	int64_t end = shmq_now_ns() + BRIDGE_FETCH_NS;
	int n = 0, rc;

	if (want > (int)b->batch)
		want = (int)b->batch;
	rc = in_request(b, want);
	if (rc)
		return rc;
	while (n < want) {
		int64_t left = end - shmq_now_ns();
		natsMsg *m = NULL;
		const char *reply, *st = NULL;
		natsStatus s;

		if (left <= 0)
			break;
		/* once one came, take only what is here already: a message
		 * must not wait in the bridge for the batch to fill (that cost
		 * up to BRIDGE_FETCH_NS of latency at low rates) */
		if (n > 0) {
			int pm = 0, pb = 0;

			if (natsSubscription_GetPending(b->sub, &pm, &pb) != NATS_OK || pm <= 0)
				break;
		}
		s = natsSubscription_NextMsg(&m, b->sub, left / 1000000 + 1);
		if (s == NATS_TIMEOUT)
			break;
		if (s != NATS_OK)
			return n ? n : nats_err(s);
		b->heard_ns = shmq_now_ns();
		reply = natsMsg_GetReply(m);
		if (reply && strncmp(reply, "$JS.ACK.", 8) == 0) {
			b->msgs[n++] = m;
			if (b->req_left > 0)
				b->req_left--;
			continue;
		}
		/* a status: 404/408 end the request, 409 (consumer deleted,
		 * too many waiting) and 503 (no consumer) ask for a rewind */
		if (natsMsgHeader_Get(m, "Status", &st) != NATS_OK || !st)
			st = "";
		if (strncmp(st, "100", 3) == 0) { /* a heartbeat: not asked for */
			natsMsg_Destroy(m);
			continue;
		}
		b->req_left = 0;
		rc = strncmp(st, "404", 3) == 0 || strncmp(st, "408", 3) == 0 ? 0 : -EPIPE;
		natsMsg_Destroy(m);
		if (rc && !n)
			return rc;
		break;
	}
	return n;
}

static void in_drop(shmq_bridge *b, int n)
{
	for (int i = 0; i < n; i++) {
		natsMsg_Destroy(b->msgs[i]);
		b->msgs[i] = NULL;
	}
}

static int in_rewind(shmq_bridge *b)
{
	/* relaxed: a statistic; shmq_bridge_stats reads it alone */
	shmq__store_relaxed(&b->rewinds, b->rewinds + 1);
	shmq__store_seq_cst(&b->sh->rewinds, shmq__load_seq_cst(&b->sh->rewinds) + 1);
	return in_subscribe(b);
}

/* Free slots of the queue now into *room (0 when full or the stats are
 * odd); -EPIPE once the queue is shut down: run returns it also when no put
 * would tell (the stream idle, the queue full), else 0. */
static int in_room(shmq_bridge *b, uint32_t *room)
{
	struct shmq_queue_stats st;

	*room = 0;
	if (shmq_queue_stats(b->q, &st))
		return 0;
	if (st.shut_down)
		return -EPIPE;
	if (st.len < b->capacity)
		*room = b->capacity - (uint32_t)st.len;
	return 0;
}

/* The put of a message longer than max_msg found the region's heap full
 * (-ENOSPC): while the queue holds messages, their consumers free heap
 * blocks, so it is a full queue (BLOCKED, wait, try again); with the queue
 * empty for BRIDGE_NOSPC_EMPTY looks in a row it is not ours to free
 * (false: run returns -ENOSPC, the message stays in the stream). */
static bool in_nospc_wait(shmq_bridge *b, int *empty)
{
	if (shmq_queue_len(b->q) == 0 && ++*empty >= BRIDGE_NOSPC_EMPTY)
		return false;
	stats_set_state(b, SHMQ_BRIDGE_BLOCKED);
	bridge_sleep(BRIDGE_FULL_NS);
	return true;
}

/* Put one message of stream sequence seq under the checkpoint protocol
 * (bridge/bridge_int.h).  0, 1 when the stop came first (nothing put), or
 * the put's error (nothing put). */
static int in_put(shmq_bridge *b, uint64_t seq, const void *data, size_t len)
{
	int rc, empty = 0;

	/* pending_pos first: a pending s never pairs with s - 1's position */
	shmq__store_seq_cst(&b->sh->pending_pos, 0);
	shmq__store_seq_cst(&b->sh->pending, seq);
	do {
#ifdef HAVE_SHMQ_QUEUE_2PC
		/* position and mark are stored before the message is
		 * published: no kill leaves a brought-in message unmarked,
		 * nor a published one without its position */
		rc = shmq__bridge_queue_put_noted(b->q, data, len, BRIDGE_PUT_NS, in_note, b);
#else
		rc = shmq_queue_put(b->q, data, len, BRIDGE_PUT_NS);
#endif
	} while ((rc == -ETIMEDOUT || rc == -EAGAIN ||
		  (rc == -ENOSPC && in_nospc_wait(b, &empty))) && !stop_due(b));
	if (rc == 0)
		shmq__store_seq_cst(&b->sh->applied, seq);
	shmq__store_seq_cst(&b->sh->pending, 0);
	if (rc == -ETIMEDOUT || rc == -EAGAIN || (rc == -ENOSPC && empty < BRIDGE_NOSPC_EMPTY))
		return 1;
#ifndef HAVE_SHMQ_QUEUE_2PC
	if (rc == 0)
		/* relaxed: a statistic; shmq_bridge_stats reads it alone */
		shmq__store_relaxed(&b->moved, b->moved + 1);
#endif
	return rc;
}

/* Put the n fetched messages in order.  0, 1 to rewind (a gap or a
 * redelivery out of order), 2 on a stop, or a put's error.  The first
 * message a new consumer delivers past the checkpoint may lie beyond
 * applied + 1: it starts at applied + 1 and delivers the lowest sequence
 * the stream still holds, so the ones between were deleted (limits, a
 * purge, a delete) and there is nothing to wait for.  Any later gap is a
 * delivery lost on the way: rewind (the new consumer then settles it). */
static int in_batch(shmq_bridge *b, int n)
{
	const char *ack = NULL;
	int rc = 0;

	for (int i = 0; i < n && rc == 0; i++) {
		jsMsgMetaData *md = NULL;
		uint64_t seq, applied = shmq__load_seq_cst(&b->sh->applied);

		if (natsMsg_GetMetaData(&md, b->msgs[i]) != NATS_OK) {
			rc = 1;
			break;
		}
		seq = md->Sequence.Stream;
		jsMsgMetaData_Destroy(md);
		/* relaxed: a statistic for shmq stat, read alone */
		shmq__store_relaxed(&b->sh->read, seq);
		if (seq <= applied) { /* a redelivery of what we put: drop it */
			ack = natsMsg_GetReply(b->msgs[i]);
			continue;
		}
		if (seq != applied + 1 && !b->fresh) {
			rc = 1;
			break;
		}
		b->fresh = false;
		rc = in_put(b, seq, natsMsg_GetData(b->msgs[i]),
			    (size_t)natsMsg_GetDataLength(b->msgs[i]));
		if (rc == 1)
			rc = 2;
		else if (rc == 0)
			ack = natsMsg_GetReply(b->msgs[i]);
	}
	/* AckAll: one ack covers the batch; lost acks cost only redeliveries,
	 * which the checkpoint drops */
	if (ack)
		natsConnection_PublishString(b->nc, ack, "+ACK");
	return rc;
}

#ifdef HAVE_SHMQ_QUEUE_2PC
/* What became of the put of the pending message, by its noted position
 * pos1 (p + 1, 0: none) of queue incarnation inc: 1 published, 0 not, < 0
 * undecidable.  A live producer at p (it cannot be the dead holder's: its
 * owner id was reused, or the checkpoint lies) is given a bounded while. */
static int in_fate(shmq_bridge *b, uint64_t pos1, uint64_t inc)
{
	struct shmq__queue_ident qi = { 0 };
	int rc = -EAGAIN;

	if (pos1 == 0)
		return 0; /* killed before the note, so before any publication */
	if (shmq__bridge_queue_ident(b->q, &qi) < 0 && qi.incarnation == 0)
		return -EBADMSG;
	if (inc != qi.incarnation)
		/* noted in a queue since deleted: not in this one (a corrupt
		 * incarnation word also lands here: put again, never lost) */
		return 0;
	for (int i = 0; i < 100; i++) {
		rc = shmq__bridge_queue_put_fate(b->q, pos1 - 1);
		if (rc != -EAGAIN)
			return rc;
		bridge_sleep(10 * 1000000);
	}
	return rc;
}
#endif

/*
 * The checkpoint left by a killed holder (bridge_int.h): the pending
 * message's put published -> it counts as applied; not published -> it is
 * fetched and put again; undecidable -> put again and counted in in_doubt.
 * Every checkpoint word is untrusted: pending decides only when it is
 * exactly applied + 1, pending_pos only which one slot is looked at (any
 * value names a slot inside the ring), and every doubt resolves to "put
 * again": a duplicate is counted, a loss would be silent.
 */
static void in_recover(shmq_bridge *b)
{
	uint64_t pending = shmq__load_seq_cst(&b->sh->pending);
	uint64_t applied = shmq__load_seq_cst(&b->sh->applied);
	int fate = -ESTALE; /* without the noted put, any pending one is in doubt */
#ifdef HAVE_SHMQ_QUEUE_2PC
	struct shmq__queue_ident qi = { 0 };
#endif

	if (pending && pending == applied + 1) {
#ifdef HAVE_SHMQ_QUEUE_2PC
		fate = in_fate(b, shmq__load_seq_cst(&b->sh->pending_pos),
			       shmq__load_seq_cst(&b->sh->pos_incarnation));
#endif
		if (fate == 1)
			shmq__store_seq_cst(&b->sh->applied, pending);
		else if (fate < 0)
			shmq__store_seq_cst(&b->sh->in_doubt,
					    shmq__load_seq_cst(&b->sh->in_doubt) + 1);
	}
	shmq__store_seq_cst(&b->sh->pending, 0);
	shmq__store_seq_cst(&b->sh->pending_pos, 0);
#ifdef HAVE_SHMQ_QUEUE_2PC
	/* the incarnation our puts' positions will belong to; ident fills it
	 * in also when the cursors look odd */
	(void)shmq__bridge_queue_ident(b->q, &qi);
	shmq__store_seq_cst(&b->sh->pos_incarnation, qi.incarnation);
#endif
}

static int in_run(shmq_bridge *b)
{
	int idle = 0, rc = 0;

	in_recover(b);
	while (!shmq__load_seq_cst(&b->stop) && rc == 0) {
		uint32_t room;
		int n;

		if (shmq__load_seq_cst(&b->conn_down)) {
			/* nats.c reconnects; nothing to ask till then (a call
			 * could wait for its connect attempt), and the consumer
			 * is made anew after it */
			stats_set_state(b, SHMQ_BRIDGE_OFFLINE);
			b->have_consumer = false;
			b->req_left = 0;
			bridge_sleep(BRIDGE_RETRY_NS);
			continue;
		}
		if (!b->have_consumer) {
			if (in_subscribe(b)) {
				stats_set_state(b, SHMQ_BRIDGE_OFFLINE);
				bridge_sleep(BRIDGE_RETRY_NS);
				continue;
			}
			stats_set_state(b, SHMQ_BRIDGE_RUNNING);
		}
		rc = in_room(b, &room);
		if (rc)
			break; /* shut down */
		if (room == 0) { /* backpressure: fetch nothing while the queue is full */
			stats_set_state(b, SHMQ_BRIDGE_BLOCKED);
			bridge_sleep(BRIDGE_FULL_NS);
			continue;
		}
		n = in_fetch(b, (int)(room < b->batch ? room : b->batch));
		if (n == 0 && !in_online(b)) {
			/* silent for a second: the server stopped answering, or
			 * it lost our consumer (requests for a consumer it does
			 * not have go unanswered: deleted, or a restart on a
			 * store that had not synced it).  The consumer's calls
			 * tell which: re-made, it runs again */
			stats_set_state(b, SHMQ_BRIDGE_OFFLINE);
			idle = 0;
			if (in_rewind(b) == 0)
				stats_set_state(b, SHMQ_BRIDGE_RUNNING);
			continue;
		}
		if (n == 0) {
			/* running, idle: nothing new, or a consumer the server
			 * lost (restarted on a store that had not synced it):
			 * re-make it now and then */
			stats_set_state(b, SHMQ_BRIDGE_RUNNING);
			if (++idle >= BRIDGE_IDLE_REWIND) {
				idle = 0;
				in_rewind(b);
			}
			continue;
		}
		if (n == -EPIPE) { /* the consumer is gone */
			in_rewind(b);
			bridge_sleep(BRIDGE_FULL_NS);
			continue;
		}
		if (n < 0) {
			stats_set_state(b, SHMQ_BRIDGE_OFFLINE);
			b->have_consumer = false;
			b->req_left = 0;
			bridge_sleep(BRIDGE_RETRY_NS);
			continue;
		}
		idle = 0;
		stats_set_state(b, SHMQ_BRIDGE_RUNNING);
		rc = in_batch(b, n);
		in_drop(b, n);
		if (rc == 1) {
			rc = 0;
			in_rewind(b);
		} else if (rc == 2) {
			rc = 0;
		}
	}
	return rc;
}


/* ---- OUT: queue -> stream ---- */
#ifdef HAVE_SHMQ_QUEUE_2PC
/*
 * Every message is begun (two-phase get), published with the id
 * "<region uuid>.<queue>.<incarnation>.<position>" and the previous message's
 * id as ExpectLastMsgId, and kept in the in-flight table (a ring, in publish
 * order) until JetStream acks it.  Up to `inflight` publishes are unacked at
 * a time, and the acked prefix of the table is committed, in position
 * order, as the acks come: the pipe never drains on purpose.
 *
 * The bridge speaks JetStream's publish protocol itself rather than through
 * js_PublishAsync: each publish names the reply subject
 * "<inbox>.<epoch>.<position>", one synchronous subscription on
 * "<inbox>.*.*" (made once, for the bridge's lifetime: see in_listen) brings
 * the answers, and the bridge thread reads them between publishes.  So no
 * other thread touches the table, no callback and no condition variable
 * hands an ack over, and an answer costs a look for a few bytes rather than
 * a JSON parse.  On a machine whose cores the server shares, that client
 * time is what decides whether the bridge keeps up with a raw publisher.
 *
 * An answer only marks its own entry; the prefix rule decides what is
 * committed, so an answer out of publish order is harmless (one connection's
 * publishes to one stream are answered in order, but nothing relies on it).
 * Any failure - an error answer (stream full with Discard=New, wrong last
 * id, no responders), a publish nats.c refuses, an answer nats.c dropped (a
 * slow consumer), no commit within BRIDGE_ACK_NS while publishes are in
 * flight (nats.c reports nothing for publishes lost with a connection: hence
 * the table) - rewinds: everything in flight is given back (the queue hands
 * it out again in position order), the epoch moves on so that late answers
 * to the old publishes are dropped, the stream's last message id is read
 * back, and messages the stream already holds (position <= the last one's)
 * are committed without a publish.  The chained ids keep the stream in
 * queue order: a publish whose predecessor was lost is refused, never
 * stored out of order (so an acked message's predecessors are stored too,
 * and a late publish of an old epoch can only store, under its own id, the
 * message that comes next).  A restarted bridge does the same at start (also
 * after the server's duplicate window has passed); within the window the
 * ids dedupe too.
 */
#define BRIDGE_ACK_NS   (5ll * 1000000000) /* publishes in flight, no commit this long: rewind */
#define BRIDGE_LOOK_NS  (250ll * 1000)     /* queue empty, answers due: wait on the queue this long between looks */
#define BRIDGE_NAP_NS   (250ll * 1000)     /* table full: answers gather this long between looks */
#define BRIDGE_PEEK     64                 /* publishes between looks at the answers */

struct out_slot {
	uint64_t pos;
	bool acked;
};

/* Why OUT rewinds (out_pump's and out_answers' positive returns), which
 * decides the state until the next commit: the server refused a message
 * (an error answer: a full stream with Discard=New, ...): BLOCKED; nothing
 * (a status such as 503, no answer, the connection): OFFLINE; our chain of
 * ids broke (wrong last id, answers nats.c dropped): as it was. */
enum { OUT_REFUSED = 1, OUT_LOST = 2, OUT_RESYNC = 3 };

/* The stream's last message id into b->last_id; its position + 1, when the
 * id is one of ours, into *upto (else 0: positions start at 0, so upto
 * counts the positions the stream holds).  An id of another region, queue
 * or incarnation (or none) is the end of a stream empty of ours only while
 * the checkpoint says no publish of this incarnation was ever acked; else someone
 * else writes to our subject, or our messages were purged from the stream:
 * -EPROTO, as a restart here could store a message twice.  0, or a
 * negative errno. */
static int out_last(shmq_bridge *b, uint64_t *upto)
{
	int64_t until = shmq_now_ns() + BRIDGE_JS_WAIT_MS * 1000000ll;
	natsMsg *m = NULL;
	const char *id = NULL;
	jsErrCode jerr = 0;
	jsOptions jo;
	natsStatus s;
	size_t plen = strlen(b->idpfx);
	char *end;

	*upto = 0;
	b->last_id[0] = 0;
	if (shmq__load_seq_cst(&b->conn_down))
		return -ENOTCONN; /* the call would only wait: out_run retries */
	/* tried BRIDGE_JS_TRY_MS at a time, as in_subscribe's calls, so that
	 * a stop during an outage is prompt (nothing is in flight here) */
	jsOptions_Init(&jo);
	jo.Wait = BRIDGE_JS_TRY_MS;
	do {
		jerr = 0;
		m = NULL;
		s = js_GetLastMsg(&m, b->js, b->stream, b->subject, &jo, &jerr);
	} while (s == NATS_TIMEOUT && in_js_again(b, until));
	if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
		return 0; /* an empty stream */
	if (s != NATS_OK)
		return nats_err(s);
	if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id &&
	    strlen(id) < sizeof b->last_id) {
		strcpy(b->last_id, id);
		if (strncmp(id, b->idpfx, plen) == 0 && id[plen] >= '0' && id[plen] <= '9') {
			unsigned long long v;

			errno = 0;
			v = strtoull(id + plen, &end, 10);
			if (*end == 0 && errno == 0 && v != UINT64_MAX)
				*upto = (uint64_t)v + 1;
		}
	}
	natsMsg_Destroy(m);
	if (*upto == 0 && shmq__load_seq_cst(&b->sh->out_incarnation) == b->incarnation)
		return -EPROTO;
	if (*upto) {
		/* ours by its id, which anyone reading the stream can copy: a
		 * position the queue never reached is not ours to trust (it
		 * would commit unpublished whatever lies below it).  The
		 * cursor is shared memory: a wrong one refuses, never commits */
		struct shmq__queue_ident qi = { 0 };

		(void)shmq__bridge_queue_ident(b->q, &qi);
		if (*upto > qi.put)
			return -EPROTO;
	}
	return 0;
}

/* The decimal digits of v at d, no terminator; their count (at most 20).
 * snprintf was about a fifth of a publish's instructions (callgrind). */
static size_t u64_digits(char *d, uint64_t v)
{
	char t[20];
	size_t n = 0;

	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		d[i] = t[n - 1 - i];
	return n;
}

/* out_publish copies an id, at most the prefix and 20 digits, into last_id */
_Static_assert(sizeof(((shmq_bridge *)0)->last_id) >= sizeof(((shmq_bridge *)0)->idpfx) + 20,
	       "last_id holds any id out_publish makes");

/* Publish the message at pos, chained to the last id.  0, -EMSGSIZE when
 * it is larger than the server takes (its max_payload), or OUT_LOST when
 * nats.c refused it otherwise (rewind). */
static int out_publish(shmq_bridge *b, uint64_t pos, const void *msg, size_t len)
{
	char id[sizeof b->idpfx + 21], reply[sizeof b->inbox + 33];
	size_t il = strlen(b->inbox), n;
	natsMsg *m = NULL;
	natsStatus s;

	/* id: "<idpfx><pos>"; reply: "<inbox>.<epoch>.<pos>" (out_answer) */
	memcpy(id, b->idpfx, b->idpfx_len);
	n = b->idpfx_len + u64_digits(id + b->idpfx_len, pos);
	id[n] = 0;
	memcpy(reply, b->inbox, il);
	reply[il++] = '.';
	il += u64_digits(reply + il, b->epoch);
	reply[il++] = '.';
	il += u64_digits(reply + il, pos);
	reply[il] = 0;
	s = natsMsg_Create(&m, b->subject, reply, (const char *)msg, (int)len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
	if (s == NATS_OK && b->last_id[0])
		s = natsMsgHeader_Set(m, "Nats-Expected-Last-Msg-Id", b->last_id);
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(b->nc, m);
	if (m)
		dead_add(b, m);
	if (s == NATS_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (s != NATS_OK)
		return OUT_LOST;
	memcpy(b->last_id, id, n + 1);
	return 0;
}

/* A stored ack ("duplicate" too: stored before under this id): the n bytes
 * at d name "seq" and no "error".  One pass over the quotes; two memmem
 * calls were about 900 instructions an answer. */
static bool out_stored(const char *d, int n)
{
	const char *p = d, *e;
	bool seq = false;

	if (!d || n <= 0)
		return false;
	e = d + n;
	while ((p = memchr(p, '"', (size_t)(e - p))) != NULL) {
		size_t left = (size_t)(e - p);

		if (left >= 7 && memcmp(p, "\"error\"", 7) == 0)
			return false;
		if (left >= 6 && memcmp(p, "\"seq\":", 6) == 0)
			seq = true;
		p++;
	}
	return seq;
}

/* The decimal number at *s (digits only, at least one, no overflow); *s
 * moves past it.  strtoull takes signs and spaces, and cost twice as much. */
static bool out_dec(const char **s, uint64_t *v)
{
	const char *p = *s;
	uint64_t x = 0;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*s = p;
	*v = x;
	return true;
}

/* What an answer that is not a stored ack asks for: -EMSGSIZE (the stream's
 * max_msg_size refused the message: it never will take it), OUT_RESYNC
 * (wrong last id: a predecessor was lost), OUT_REFUSED (any other error
 * answer: the server is there and does not take it), OUT_LOST (no error in
 * it: a status such as 503 "no responders"). */
static int out_refusal(const char *d, int n)
{
	char code[32];
	size_t cl;

	if (!d || n <= 0 || !memmem(d, (size_t)n, "\"error\"", 7))
		return OUT_LOST;
	cl = (size_t)snprintf(code, sizeof code, "\"err_code\":%d", (int)JSStreamMessageExceedsMaximumErr);
	if (memmem(d, (size_t)n, code, cl))
		return -EMSGSIZE;
	cl = (size_t)snprintf(code, sizeof code, "\"err_code\":%d", (int)JSStreamWrongLastMsgIDErr);
	if (memmem(d, (size_t)n, code, cl))
		return OUT_RESYNC;
	return OUT_REFUSED;
}

/* One answer: marks the entry it acks.  0, or why to rewind (out_refusal:
 * anything but a stored ack).  An answer to another epoch, or to no
 * position in flight, is dropped. */
static int out_answer(shmq_bridge *b, natsMsg *m)
{
	const char *subj = natsMsg_GetSubject(m);
	const char *d = natsMsg_GetData(m);
	int n = natsMsg_GetDataLength(m);
	size_t il = strlen(b->inbox);
	uint64_t ep, pos;

	if (!subj || strncmp(subj, b->inbox, il) != 0 || subj[il] != '.')
		return 0;
	subj += il + 1;
	if (!out_dec(&subj, &ep) || *subj != '.' || ep != b->epoch)
		return 0;
	subj++;
	if (!out_dec(&subj, &pos) || *subj != 0)
		return 0;
	/* answers come in publish order as a rule: look right after the last
	 * one first, so a batch of answers is one pass, not one per answer */
	for (uint32_t k = 0; k < b->fly_n; k++) {
		uint32_t i = (b->fly_hint + k) % b->fly_n;
		struct out_slot *e = &b->fly[(b->fly_head + i) % b->inflight];

		if (e->pos != pos)
			continue;
		/* stored (also "duplicate": stored before, under this id) */
		if (!out_stored(d, n))
			return out_refusal(d, n);
		e->acked = true;
		b->fly_hint = i + 1;
		return 0;
	}
	return 0;
}

/* The stream holds this incarnation's messages from now on (out_last);
 * stored before any commit, so a kill after a commit never finds the mark
 * missing. */
static void out_mark_incarnation(shmq_bridge *b)
{
	if (shmq__load_seq_cst(&b->sh->out_incarnation) != b->incarnation)
		shmq__store_seq_cst(&b->sh->out_incarnation, b->incarnation);
}

/* n messages up to position last were committed, the stream holding each
 * once: moved, whether their ack came or was lost and the stream's last id
 * told (out_pump). */
static void out_moved(shmq_bridge *b, uint64_t last, uint32_t n)
{
	shmq__store_seq_cst(&b->sh->applied, last);
	/* relaxed: a statistic; shmq_bridge_stats reads it alone */
	shmq__store_relaxed(&b->moved, b->moved + n);
	b->progress_ns = shmq_now_ns();
	stats_set_state(b, SHMQ_BRIDGE_RUNNING);
}

/* Commit the acked prefix of the table, in position order. */
static void out_commit_acked(shmq_bridge *b)
{
	uint64_t last = 0;
	uint32_t n = 0;

	if (b->fly_n && b->fly[b->fly_head].acked)
		out_mark_incarnation(b);
	while (b->fly_n && b->fly[b->fly_head].acked) {
		last = b->fly[b->fly_head].pos;
		shmq_queue_get_commit(b->q, last);
		b->fly_head = (b->fly_head + 1) % b->inflight;
		b->fly_n--;
		n++;
	}
	b->fly_hint = b->fly_hint > n ? b->fly_hint - n : 0;
	if (n)
		out_moved(b, last, n);
}

/* Take the answers that are here, or wait up to wait_ms for the first when
 * none is; then commit.  0, or why to rewind (-EMSGSIZE, OUT_*). */
static int out_answers(shmq_bridge *b, int64_t wait_ms)
{
	int pm = 0, pb = 0, rc = 0;

	if (natsSubscription_GetPending(b->sub, &pm, &pb) != NATS_OK)
		return OUT_LOST;
	if (pm > 0)
		wait_ms = 0;
	else if (wait_ms > 0)
		pm = 1;
	for (int i = 0; i < pm && rc == 0; i++) {
		natsMsg *m = NULL;
		natsStatus s = natsSubscription_NextMsg(&m, b->sub, wait_ms);

		if (s == NATS_TIMEOUT)
			break;
		if (s != NATS_OK) /* a slow consumer: answers were dropped */
			return OUT_RESYNC;
		rc = out_answer(b, m);
		dead_add(b, m);
	}
	dead_flush(b);
	out_commit_acked(b);
	return rc;
}

/* Give back everything in flight, newest first, and move to a new epoch:
 * answers to what was given back are dropped from now on. */
static void out_abort_all(shmq_bridge *b)
{
	while (b->fly_n) {
		b->fly_n--;
		shmq_queue_get_abort(b->q, b->fly[(b->fly_head + b->fly_n) % b->inflight].pos);
	}
	b->fly_hint = 0;
	b->epoch++;
}

/* A stop, or the queue gone: let what is in flight be acked and committed
 * (until the stop's deadline, at most BRIDGE_ACK_NS), give back the rest. */
static void out_drain(shmq_bridge *b)
{
	int64_t end = shmq_now_ns() + BRIDGE_ACK_NS;

	while (b->fly_n && !stop_due(b) && shmq_now_ns() < end)
		if (out_answers(b, 10))
			break;
	out_abort_all(b);
}

/* Publish and commit until a stop (0), a rewind (OUT_*) or an error
 * (-EMSGSIZE: a message the server will never take; it and what follows it
 * are given back, what went before is acked and committed first).  On a
 * rewind the caller gives back what is in flight; otherwise nothing is in
 * flight on return. */
static int out_pump(shmq_bridge *b, uint64_t upto)
{
	bool idle = false;

	for (;;) {
		int rc;

		if (shmq__load_seq_cst(&b->stop)) {
			out_drain(b);
			return 0;
		}
		while (b->fly_n < b->inflight) {
			const void *msg;
			uint64_t pos;
			/* the queue found empty last time and answers due: wait
			 * on the queue, so a message put now goes out at once,
			 * and look at the answers between waits */
			int64_t wait = !b->fly_n ? BRIDGE_FETCH_NS : idle ? BRIDGE_LOOK_NS : SHMQ_NOWAIT;
			/* a wait sleeps at once, without the 2000 tries and some
			 * fifteen sched_yield calls of a begin's spin phase: a
			 * spinning bridge takes the CPU its producers, the server
			 * and the consumers need (SHMQ_NOWAIT: a plain begin) */
			ssize_t len = shmq__bridge_queue_get_begin_idle(b->q, &msg, &pos, wait);
			struct out_slot *e;

			if (len == -EAGAIN || len == -ETIMEDOUT) {
				idle = true;
				if (!b->fly_n) /* all out and acked: running, idle */
					stats_set_state(b, SHMQ_BRIDGE_RUNNING);
				break;
			}
			idle = false;
			if (len < 0) {
				out_drain(b);
				return (int)len;
			}
			/* relaxed: a statistic for shmq stat, read alone */
			shmq__store_relaxed(&b->sh->read, pos);
			if (pos < upto) { /* the stream has it already (its ack was lost) */
				out_mark_incarnation(b);
				shmq_queue_get_commit(b->q, pos);
				out_moved(b, pos, 1);
				continue;
			}
			if (loop_brought(b, pos)) { /* an IN bridge brought it: no loop */
				shmq_queue_get_commit(b->q, pos);
				/* relaxed, both: a statistic for shmq stat, read
				 * alone; only the holder writes it */
				shmq__store_relaxed(&b->sh->looped,
						    shmq__load_relaxed(&b->sh->looped) + 1);
				continue;
			}
			rc = out_publish(b, pos, msg, (size_t)len);
			if (rc) {
				shmq_queue_get_abort(b->q, pos);
				if (rc == -EMSGSIZE)
					out_drain(b);
				return rc;
			}
			if (b->fly_n == 0)
				b->progress_ns = shmq_now_ns();
			e = &b->fly[(b->fly_head + b->fly_n++) % b->inflight];
			e->pos = pos;
			e->acked = false;
			if (b->fly_n % BRIDGE_PEEK == 0 && (rc = out_answers(b, 0)) != 0)
				return rc;
		}
		if (!b->fly_n)
			continue;
		/* table full: let the answers gather and take them together;
		 * waiting on the subscription would have nats.c's read loop
		 * wake this thread for every answer, a system call and a
		 * context switch per message on the server's cores */
		if (b->fly_n == b->inflight)
			bridge_sleep(BRIDGE_NAP_NS);
		rc = out_answers(b, 0);
		if (rc)
			return rc;
		if (b->fly_n && shmq_now_ns() - b->progress_ns > BRIDGE_ACK_NS)
			return OUT_LOST; /* no answer: publishes lost with a connection */
	}
}

static int out_run(shmq_bridge *b)
{
	uint64_t upto = 0;
	bool synced = false;
	int rc = 0;

	/* a stop ends the loop once what is in flight is acked and committed,
	 * or given back (out_drain) */
	while (!shmq__load_seq_cst(&b->stop) && rc == 0) {
		if (!synced) {
			rc = out_last(b, &upto);
			if (rc == -EPROTO)
				break;
			if (rc) {
				rc = 0;
				stats_set_state(b, SHMQ_BRIDGE_OFFLINE);
				bridge_sleep(BRIDGE_RETRY_NS);
				continue;
			}
			synced = true;
			/* the server answers; a refusal stays BLOCKED until a
			 * commit (out_moved) or an empty queue says otherwise */
			/* relaxed: the run thread's own store read back */
			if (shmq__load_relaxed(&b->state) != SHMQ_BRIDGE_BLOCKED)
				stats_set_state(b, SHMQ_BRIDGE_RUNNING);
		}
		rc = out_pump(b, upto);
		if (rc == -EMSGSIZE) { /* never to be stored: the operator's call */
			out_abort_all(b);
			stats_set_state(b, SHMQ_BRIDGE_BLOCKED);
		} else if (rc > 0) { /* rewind: read the stream's end again */
			out_abort_all(b);
			if (rc == OUT_REFUSED)
				stats_set_state(b, SHMQ_BRIDGE_BLOCKED);
			else if (rc == OUT_LOST)
				stats_set_state(b, SHMQ_BRIDGE_OFFLINE);
			rc = 0;
			synced = false;
			/* relaxed: a statistic; shmq_bridge_stats reads it alone */
			shmq__store_relaxed(&b->rewinds, b->rewinds + 1);
			bridge_sleep(BRIDGE_RETRY_NS);
		}
	}
	return rc == -EPIPE ? 0 : rc;
}

static int out_prepare(shmq_bridge *b, const char *queue, const struct shmq_bridge_opts *o)
{
	struct shmq__queue_ident qi;
	uint8_t u[16];
	int rc = shmq_region_uuid(b->r, u), n;

	if (!rc)
		rc = shmq__bridge_queue_ident(b->q, &qi);
	if (rc)
		return rc;
	if (qi.incarnation == 0) /* 0 means "none" in the checkpoint */
		return -EBADMSG;
	b->incarnation = qi.incarnation;
	/* uuid.queue.incarnation.position: a queue deleted and made again
	 * under the same name never repeats an id */
	n = snprintf(b->idpfx, sizeof b->idpfx,
		     "%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x.%s.%016llx.",
		     u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
		     u[12], u[13], u[14], u[15], queue, (unsigned long long)qi.incarnation);
	if (n <= 0 || (size_t)n >= sizeof b->idpfx)
		return -EINVAL;
	b->idpfx_len = (size_t)n;
	b->inflight = o->inflight ? o->inflight : SHMQ_BRIDGE_DEFAULT_INFLIGHT;
	if (b->inflight > b->capacity)
		b->inflight = b->capacity;
	b->fly = calloc(b->inflight, sizeof *b->fly);
	return b->fly ? 0 : -ENOMEM;
}
#endif /* HAVE_SHMQ_QUEUE_2PC */

/* ---- the handle ---- */

/* One server address of a URL list: [scheme://][user[:pass]@]host[:port][/],
 * scheme nats, tls, ws or wss, host a name or a [bracketed] IPv6 address,
 * port 1..65535.  The n bytes at u. */
static bool url_one_ok(const char *u, size_t n)
{
	const char *e = u + n, *p = memchr(u, '@', n), *h, *c;
	static const char *const schemes[] = { "nats://", "tls://", "ws://", "wss://" };
	unsigned long port = 0;

	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		size_t k = strlen(schemes[i]);

		if (n >= k && strncasecmp(u, schemes[i], k) == 0) {
			u += k;
			break;
		}
	}
	if (memmem(u, (size_t)(e - u), "://", 3))
		return false; /* a scheme nats.c does not speak */
	if (p && p >= u) /* the user part: whatever comes before the last @ */
		while ((c = memchr(p + 1, '@', (size_t)(e - p - 1))) != NULL)
			p = c;
	h = p && p >= u ? p + 1 : u;
	if (e > h && e[-1] == '/')
		e--;
	if (h < e && *h == '[') { /* [IPv6] */
		c = memchr(h, ']', (size_t)(e - h));
		if (!c || c == h + 1)
			return false;
		c++;
	} else {
		c = memchr(h, ':', (size_t)(e - h));
		if (!c)
			c = e;
		if (c == h)
			return false; /* no host */
	}
	for (const char *q = h; q < c; q++)
		if (*q == '/' || *q == '@' || (*q == ':' && *h != '['))
			return false;
	if (c == e)
		return true; /* the default port */
	if (*c != ':' || c + 1 == e || e - c - 1 > 5)
		return false;
	for (c++; c < e; c++) {
		if (*c < '0' || *c > '9')
			return false;
		port = port * 10 + (unsigned long)(*c - '0');
	}
	return port >= 1 && port <= 65535;
}

/* A URL, or a comma-separated list of them, as the connect would take it:
 * decided here so that a malformed one is -EINVAL before the holder lock
 * and the checkpoint are touched (the connect said -ECONNREFUSED). */
static bool url_ok(const char *url)
{
	const char *s = url;

	if (!*url)
		return false;
	for (const char *q = url; *q; q++)
		if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
			return false;
	for (;;) {
		const char *c = strchr(s, ',');
		size_t n = c ? (size_t)(c - s) : strlen(s);

		if (n == 0 || !url_one_ok(s, n))
			return false;
		if (!c)
			return true;
		s = c + 1;
	}
}

static int opts_check(const struct shmq_bridge_opts *o)
{
	if (!o || !o->url || !url_ok(o->url) || o->flags)
		return -EINVAL;
	if (o->dir != SHMQ_BRIDGE_IN && o->dir != SHMQ_BRIDGE_OUT)
		return -EINVAL;
	if (o->subject && (!*o->subject || strpbrk(o->subject, " \t\r\n")))
		return -EINVAL;
	return 0;
}

SHMQ_API int shmq_bridge_create(shmq_region *r, const char *queue, const struct shmq_bridge_opts *o,
				shmq_bridge **out)
{
	struct shmq_queue_stats st;
	shmq_bridge *b;
	int rc;

	if (!r || !queue || !*queue || !out)
		return -EINVAL;
	rc = opts_check(o);
	if (rc)
		return rc;
#ifndef HAVE_SHMQ_QUEUE_2PC
	/* OUT needs the queue's two-phase get (shmq_queue_get_begin/commit/abort)
	 * and shmq_region_uuid, which the libshmq built against lacks */
	if (o->dir == SHMQ_BRIDGE_OUT)
		return -EOPNOTSUPP;
#endif
	b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->pid = getpid();
	b->r = r;
	b->dir = o->dir;
	b->batch = o->batch ? o->batch : SHMQ_BRIDGE_DEFAULT_BATCH;
	rc = names_fill(b, queue, o);
	if (!rc && b->dir == SHMQ_BRIDGE_IN)
		rc = durable_fill(b);
	if (!rc)
		rc = shmq_queue_open(r, queue, &b->q);
	if (!rc)
		rc = shmq_queue_stats(b->q, &st);
	if (!rc && st.capacity == 0)
		rc = -EBADMSG;
	if (!rc) /* st is unset when the open or the stats failed */
		b->capacity = st.capacity;
	/* a fetch never takes more than the free slots: a larger batch would
	 * only size the array (and overflow the int a fetch counts in) */
	if (!rc && b->batch > b->capacity)
		b->batch = b->capacity;
	if (!rc && b->dir == SHMQ_BRIDGE_IN) {
		b->msgs = calloc(b->batch, sizeof *b->msgs);
		if (!b->msgs)
			rc = -ENOMEM;
	}
#ifdef HAVE_SHMQ_QUEUE_2PC
	if (!rc && b->dir == SHMQ_BRIDGE_OUT)
		rc = out_prepare(b, queue, o);
	if (!rc)
		rc = loop_attach(b, queue);
#endif
	if (!rc)
		rc = hold_take(b);
	if (!rc)
		rc = shared_attach(b);
	if (!rc)
		rc = connect_server(b, o->url);
	if (!rc)
		rc = stream_ensure(b);
#ifdef HAVE_SHMQ_QUEUE_2PC
	if (!rc && b->dir == SHMQ_BRIDGE_OUT) { /* refuse a stream not ours at once */
		uint64_t upto;

		rc = out_last(b, &upto);
		if (!rc)
			rc = in_listen(b);
	}
#endif
	if (rc) {
		/* a checkpoint we stamped and never used goes back to fresh
		 * (the hold is still ours), so a failed create does not give
		 * the name to its direction for good */
		if (b->stamped)
			shmq__store_seq_cst(&b->sh->magic, 0u);
		shmq_bridge_free(b);
		return rc;
	}
	shmq__store_seq_cst(&b->sh->holder_pid, (uint32_t)getpid());
	stats_set_state(b, SHMQ_BRIDGE_IDLE);
	*out = b;
	return 0;
}

/* A copy inherited across fork(): its connection's threads, its holder
 * lock and its checkpoints are the parent's (libshmq(3), handles after
 * fork). */
static bool bridge_foreign(const shmq_bridge *b)
{
	return b->pid != getpid(); /* async-signal-safe, for shmq_bridge_stop */
}

SHMQ_API int shmq_bridge_run(shmq_bridge *b)
{
	int rc, idle = 0;

	if (!b)
		return -EINVAL;
	if (bridge_foreign(b))
		return -EBADF;
	/* one thread per bridge: a second would put under the same checkpoint */
	if (!shmq__cas_seq_cst(&b->running, &idle, 1))
		return -EBUSY;
	stats_set_state(b, SHMQ_BRIDGE_RUNNING);
#ifdef HAVE_SHMQ_QUEUE_2PC
	if (b->dir == SHMQ_BRIDGE_OUT)
		rc = out_run(b);
	else
#endif
		rc = in_run(b);
	/* -EMSGSIZE: still BLOCKED, for shmq stat too: a message at the
	 * queue's head that the server will never take holds the bridge */
	if (rc != -EMSGSIZE)
		stats_set_state(b, SHMQ_BRIDGE_STOPPED);
	shmq__store_seq_cst(&b->running, 0);
	return rc;
}

SHMQ_API int shmq_bridge_stop(shmq_bridge *b, int64_t drain_timeout_ns)
{
	int64_t now;

	if (!b || (drain_timeout_ns < 0 && drain_timeout_ns != SHMQ_FOREVER))
		return -EINVAL;
	if (bridge_foreign(b))
		return -EBADF;
	/* clock_gettime(CLOCK_MONOTONIC) is async-signal-safe */
	now = shmq_now_ns();
	/* saturated: a drain longer than the clock can count, or SHMQ_FOREVER,
	 * waits as long as run ever would (now + drain would overflow into the
	 * past) */
	shmq__store_seq_cst(&b->stop_deadline,
			    drain_timeout_ns == SHMQ_FOREVER || drain_timeout_ns > INT64_MAX - now ?
				    INT64_MAX : now + drain_timeout_ns);
	shmq__store_seq_cst(&b->stop, 1);
	return 0;
}

SHMQ_API int shmq_bridge_stats(const shmq_bridge *b, struct shmq_bridge_stats *st)
{
	if (!b || !st)
		return -EINVAL;
	if (bridge_foreign(b))
		return -EBADF;
	memset(st, 0, sizeof *st);
	/* relaxed: statistics, each read alone (in_note / in_put, out_moved, in_rewind,
	 * stats_set_state); moved pairs as in_note says */
	st->moved = shmq__load_relaxed(&b->moved);
	st->rewinds = shmq__load_relaxed(&b->rewinds);
	st->state = (uint32_t)shmq__load_relaxed(&b->state);
	/* relaxed: a statistic written by in_batch, read alone */
	st->read = shmq__load_relaxed(&b->sh->read);
	st->acked = shmq__load_seq_cst(&b->sh->applied);
	st->in_doubt = shmq__load_seq_cst(&b->sh->in_doubt);
	st->dir = b->dir;
	return 0;
}

SHMQ_API void shmq_bridge_free(shmq_bridge *b)
{
	bool leak = false;

	if (!b)
		return;
	/* in a child of fork() only our copy goes: the connection's threads
	 * do not exist here (closing it would wait for them), and the hold
	 * and the queue handle are the parent's (their closes free our copies) */
	if (!bridge_foreign(b)) {
#ifdef HAVE_SHMQ_QUEUE_2PC
		dead_flush(b); /* OUT: the messages still waiting to be destroyed */
#endif
		/* closed first: natsConnection_Close joins the read loop, after
		 * which nothing delivers to the subscriptions (ours, and the
		 * JetStream context's for publish acks) that are destroyed next */
		if (b->nc) {
			natsConnection_Close(b->nc);
			/* the closed callback, the last that uses b, is run by
			 * nats.c's callback thread: b lives until it ran (leaked
			 * rather than freed under it, if it never comes) */
			for (int i = 0; i < 10000 && !shmq__load_seq_cst(&b->conn_closed); i++)
				bridge_sleep(1000000);
			if (!shmq__load_seq_cst(&b->conn_closed))
				leak = true;
		}
		if (b->sub)
			natsSubscription_Destroy(b->sub);
		if (b->js)
			jsCtx_Destroy(b->js);
		if (b->nc)
			natsConnection_Destroy(b->nc);
		if (b->hold)
			shmq_lock_release(b->hold);
	}
	shmq_lock_close(b->hold);
	shmq_queue_close(b->q);
	free(b->msgs);
#ifdef HAVE_SHMQ_QUEUE_2PC
	free(b->fly);
#endif
	if (!leak)
		free(b);
}
