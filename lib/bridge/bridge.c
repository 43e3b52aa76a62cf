/* SPDX-License-Identifier: MIT */
/*
 * libshmq-bridge: a queue joined to a NATS JetStream stream (see
 * <shmq/bridge.h> for the contract, bridge/bridge_int.h for the checkpoint).
 * This file: the handle, connecting, the stream, the IN direction's loop.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include <shmq/bridge.h>

#include "core/atomic_int.h"
#include "bridge/bridge_int.h"

#define BRIDGE_NAME_MAX     SHMQ_OBJ_NAME_MAX
#define BRIDGE_FETCH_NS     (200ll * 1000000)  /* one fetch waits at most this */
#define BRIDGE_PUT_NS       (100ll * 1000000)  /* one put attempt waits at most this */
#define BRIDGE_RETRY_NS     (100ll * 1000000)  /* pause after a server error */
#define BRIDGE_FULL_NS      (2ll * 1000000)    /* pause while the queue is full */
#define BRIDGE_IDLE_REWIND  25                 /* empty fetches before re-making the consumer */
#define BRIDGE_HOLD_NS      (2ll * 1000000000) /* create waits this long for the holder lock */
#define BRIDGE_JS_WAIT_MS   2000               /* JetStream API calls */

struct shmq_bridge {
	shmq_region *r;
	shmq_queue *q;
	shmq_lock *hold;
	struct shmq__bridge_shared *sh;
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub;
	unsigned dir;
	uint32_t batch;
	uint32_t capacity;         /* the queue's, from its stats at create */
	int stop;                  /* nonzero once shmq_bridge_stop was called */
	int64_t stop_deadline;     /* shmq_now_ns() by which run must return */
	int state;                 /* enum shmq_bridge_state */
	uint64_t moved;
	uint64_t rewinds;
	char subject[256];
	char stream[128];
	char durable[BRIDGE_NAME_MAX + 1];
	char name[BRIDGE_NAME_MAX + 1];
};

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
	memcpy(b->durable, b->name, sizeof b->durable);
	name_flatten(b->durable);
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
	}
	if (shmq__load_seq_cst(&b->sh->magic) != SHMQ__BRIDGE_MAGIC ||
	    shmq__load_seq_cst(&b->sh->version) != SHMQ__BRIDGE_VERSION)
		return -EBADMSG;
	if (shmq__load_seq_cst(&b->sh->dir) != b->dir)
		return -EINVAL; /* the name belongs to a bridge of the other direction */
	return 0;
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
	if (s != NATS_OK)
		return nats_err(s);
	rc = -EPROTO;
	for (int i = 0; si && si->Config && i < si->Config->SubjectsLen; i++)
		if (strcmp(si->Config->Subjects[i], b->subject) == 0)
			rc = 0;
	jsStreamInfo_Destroy(si);
	return rc;
}

static void stats_set_state(shmq_bridge *b, int state)
{
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

/* ---- IN: stream -> queue ---- */

static void in_unsubscribe(shmq_bridge *b)
{
	if (!b->sub)
		return;
	natsSubscription_Destroy(b->sub);
	b->sub = NULL;
}

/* A pull consumer delivering from the checkpoint on.  Made anew at every
 * start and rewind, so that what the server remembers of an older one
 * (acks, redeliveries) never decides what we put. */
static int in_subscribe(shmq_bridge *b)
{
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;

	in_unsubscribe(b);
	js_DeleteConsumer(b->js, b->stream, b->durable, NULL, &jerr);
	jsSubOptions_Init(&so);
	so.Stream = b->stream;
	so.ManualAck = true;
	so.Config.Durable = b->durable;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = shmq__load_seq_cst(&b->sh->applied) + 1;
	so.Config.AckPolicy = js_AckAll;
	so.Config.MaxAckPending = 65536;
	s = js_PullSubscribe(&b->sub, b->js, b->subject, b->durable, NULL, &so, &jerr);
	if (s != NATS_OK) {
		b->sub = NULL;
		return nats_err(s);
	}
	return 0;
}

static int in_rewind(shmq_bridge *b)
{
	/* relaxed: a statistic; shmq_bridge_stats reads it alone */
	shmq__store_relaxed(&b->rewinds, b->rewinds + 1);
	shmq__store_seq_cst(&b->sh->rewinds, shmq__load_seq_cst(&b->sh->rewinds) + 1);
	return in_subscribe(b);
}

/* Free slots of the queue now (0 when full or the stats are odd). */
static uint32_t in_room(shmq_bridge *b)
{
	struct shmq_queue_stats st;

	if (shmq_queue_stats(b->q, &st) || st.len >= b->capacity)
		return 0;
	return b->capacity - (uint32_t)st.len;
}

/* Put one message of stream sequence seq under the checkpoint protocol
 * (bridge/bridge_int.h).  0, 1 when the stop came first (nothing put), or
 * the put's error (nothing put). */
static int in_put(shmq_bridge *b, uint64_t seq, const void *data, size_t len)
{
	int rc;

	shmq__store_seq_cst(&b->sh->pending, seq);
	do {
		rc = shmq_queue_put(b->q, data, len, BRIDGE_PUT_NS);
	} while ((rc == -ETIMEDOUT || rc == -EAGAIN) && !stop_due(b));
	if (rc == 0)
		shmq__store_seq_cst(&b->sh->applied, seq);
	shmq__store_seq_cst(&b->sh->pending, 0);
	if (rc == -ETIMEDOUT || rc == -EAGAIN)
		return 1;
	if (rc == 0)
		/* relaxed: a statistic; shmq_bridge_stats reads it alone */
		shmq__store_relaxed(&b->moved, b->moved + 1);
	return rc;
}

/* Put a fetched batch in order.  0, 1 to rewind (a gap or redelivery out of
 * order), 2 on a stop, or a put's error. */
static int in_batch(shmq_bridge *b, natsMsgList *list)
{
	natsMsg *last = NULL;
	int rc = 0;

	for (int i = 0; i < list->Count && rc == 0; i++) {
		jsMsgMetaData *md = NULL;
		uint64_t seq, applied = shmq__load_seq_cst(&b->sh->applied);

		if (natsMsg_GetMetaData(&md, list->Msgs[i]) != NATS_OK) {
			rc = 1;
			break;
		}
		seq = md->Sequence.Stream;
		jsMsgMetaData_Destroy(md);
		/* relaxed: a statistic for shmq stat, read alone */
		shmq__store_relaxed(&b->sh->read, seq);
		if (seq <= applied) { /* a redelivery of what we put: drop it */
			last = list->Msgs[i];
			continue;
		}
		if (seq != applied + 1) {
			rc = 1;
			break;
		}
		rc = in_put(b, seq, natsMsg_GetData(list->Msgs[i]),
			    (size_t)natsMsg_GetDataLength(list->Msgs[i]));
		if (rc == 1)
			rc = 2;
		else if (rc == 0)
			last = list->Msgs[i];
	}
	/* AckAll: one ack covers the batch; lost acks cost only redeliveries,
	 * which the checkpoint drops */
	if (last)
		natsMsg_Ack(last, NULL);
	return rc;
}

/* The checkpoint left by a killed holder: at most one message in doubt. */
static void in_recover(shmq_bridge *b)
{
	uint64_t pending = shmq__load_seq_cst(&b->sh->pending);
	uint64_t applied = shmq__load_seq_cst(&b->sh->applied);

	if (pending && pending == applied + 1)
		shmq__store_seq_cst(&b->sh->in_doubt, shmq__load_seq_cst(&b->sh->in_doubt) + 1);
	shmq__store_seq_cst(&b->sh->pending, 0);
}

static int in_run(shmq_bridge *b)
{
	int idle = 0, rc = 0;

	in_recover(b);
	while (!shmq__load_seq_cst(&b->stop) && rc == 0) {
		natsMsgList list = { 0 };
		jsErrCode jerr = 0;
		uint32_t room;
		natsStatus s;

		if (!b->sub && in_subscribe(b)) {
			stats_set_state(b, SHMQ_BRIDGE_OFFLINE);
			bridge_sleep(BRIDGE_RETRY_NS);
			continue;
		}
		room = in_room(b);
		if (room == 0) { /* backpressure: fetch nothing while the queue is full */
			stats_set_state(b, SHMQ_BRIDGE_BLOCKED);
			bridge_sleep(BRIDGE_FULL_NS);
			continue;
		}
		s = natsSubscription_Fetch(&list, b->sub, (int)(room < b->batch ? room : b->batch),
					   BRIDGE_FETCH_NS / 1000000, &jerr);
		if (s == NATS_TIMEOUT) {
			/* nothing new, or a consumer the server lost (restarted on a
			 * store that had not synced it): re-make it now and then */
			if (++idle >= BRIDGE_IDLE_REWIND) {
				idle = 0;
				in_rewind(b);
			}
			continue;
		}
		if (s != NATS_OK) {
			stats_set_state(b, SHMQ_BRIDGE_OFFLINE);
			in_unsubscribe(b);
			bridge_sleep(BRIDGE_RETRY_NS);
			continue;
		}
		idle = 0;
		stats_set_state(b, SHMQ_BRIDGE_RUNNING);
		rc = in_batch(b, &list);
		natsMsgList_Destroy(&list);
		if (rc == 1) {
			rc = 0;
			in_rewind(b);
		} else if (rc == 2) {
			rc = 0;
		}
	}
	return rc;
}

/* ---- the handle ---- */

static int opts_check(const struct shmq_bridge_opts *o)
{
	if (!o || !o->url || !*o->url || o->flags)
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
	/* OUT needs the queue's two-phase get (shmq_queue_get_begin/commit/abort)
	 * and shmq_region_uuid, which this libshmq does not have yet */
	if (o->dir == SHMQ_BRIDGE_OUT)
		return -EOPNOTSUPP;
	b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->r = r;
	b->dir = o->dir;
	b->batch = o->batch ? o->batch : SHMQ_BRIDGE_DEFAULT_BATCH;
	rc = names_fill(b, queue, o);
	if (!rc)
		rc = shmq_queue_open(r, queue, &b->q);
	if (!rc)
		rc = shmq_queue_stats(b->q, &st);
	if (!rc && st.capacity == 0)
		rc = -EBADMSG;
	b->capacity = st.capacity;
	if (!rc)
		rc = hold_take(b);
	if (!rc)
		rc = shared_attach(b);
	if (!rc)
		rc = connect_server(b, o->url);
	if (!rc)
		rc = stream_ensure(b);
	if (rc) {
		shmq_bridge_free(b);
		return rc;
	}
	shmq__store_seq_cst(&b->sh->holder_pid, (uint32_t)getpid());
	stats_set_state(b, SHMQ_BRIDGE_IDLE);
	*out = b;
	return 0;
}

SHMQ_API int shmq_bridge_run(shmq_bridge *b)
{
	int rc;

	if (!b)
		return -EINVAL;
	stats_set_state(b, SHMQ_BRIDGE_RUNNING);
	rc = in_run(b);
	stats_set_state(b, SHMQ_BRIDGE_STOPPED);
	return rc;
}

SHMQ_API int shmq_bridge_stop(shmq_bridge *b, int64_t drain_timeout_ns)
{
	int64_t now;

	if (!b || drain_timeout_ns < 0)
		return -EINVAL;
	/* clock_gettime(CLOCK_MONOTONIC) is async-signal-safe */
	now = shmq_now_ns();
	shmq__store_seq_cst(&b->stop_deadline, now + drain_timeout_ns);
	shmq__store_seq_cst(&b->stop, 1);
	return 0;
}

SHMQ_API int shmq_bridge_stats(const shmq_bridge *b, struct shmq_bridge_stats *st)
{
	if (!b || !st)
		return -EINVAL;
	memset(st, 0, sizeof *st);
	/* relaxed: statistics, each read alone (in_put, in_rewind, stats_set_state) */
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
	if (!b)
		return;
	in_unsubscribe(b);
	if (b->js)
		jsCtx_Destroy(b->js);
	if (b->nc) {
		natsConnection_Close(b->nc);
		natsConnection_Destroy(b->nc);
	}
	if (b->hold) {
		shmq_lock_release(b->hold);
		shmq_lock_close(b->hold);
	}
	shmq_queue_close(b->q);
	free(b);
}
