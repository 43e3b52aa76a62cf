/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench bridge: stream -> queue through libshmq-bridge, beside a raw
 * nats.c pull consumer acking in batches, on the same stream, 64 B and 4 KiB.
 *
 * Each run starts its own nats-server (JetStream, store in /tmp, killed at
 * the end; tests/bridge_util.h), makes the stream through the bridge's
 * create, fills it once with async publishes carrying message ids (that
 * rate is reported as a figure of its own, without a baseline: the OUT
 * bridge, its libshmq side, needs the queue's two-phase get), then drains it
 * twice: by a raw pull consumer (fetch 256, one AckAll per batch: the
 * bridge's own fetch pattern) and by the bridge into a queue that a
 * consumer thread empties.  Without nats-server the subcommand says so and
 * reports nothing.
 *
 * OUT (queue -> bridge -> stream), with the queue's two-phase get: n
 * messages put into a queue whose OUT bridge publishes them, timed until the
 * bridge has them all acked, beside raw nats.c async publishes with message
 * ids of the same n messages to a stream of the same configuration.  Each
 * side's clock starts after one message of its own went through (the
 * bridge's start reads the stream's end: a few ms, which were a tenth of a
 * --quick run's 2000 messages of 4 KiB).  The
 * two alternate which runs first from run to run (bench_run_index), so
 * neither side always meets a cold store.  Latency, end to end: an OUT
 * bridge on queue A and an IN bridge on queue B through the one server; a
 * producer puts messages carrying their put time into A at a steady pace,
 * this thread gets them from B and records now - that time.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include <shmq.h>
#include <shmq/bridge.h>

#include "bench.h"
#include "../tests/bridge_util.h"

#define BB_FETCH 256

struct bb {
	struct bu_server srv;
	natsConnection *nc;
	jsCtx *js;
	shmq_region *r;
	char region[64];
};

static int bb_connect(struct bb *x)
{
	jsOptions jo;

	if (natsConnection_ConnectTo(&x->nc, x->srv.url) != NATS_OK)
		return -ECONNREFUSED;
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = 4096;
	jo.PublishAsync.StallWait = 5000;
	return natsConnection_JetStream(&x->js, x->nc, &jo) == NATS_OK ? 0 : -EIO;
}

/* n messages of size bytes on subj, async, each with an id; msg/s.  With
 * warm, one message more is published and acked before the clock starts,
 * as the OUT bridge's first message is (bb_out_bridged). */
static double bb_publish(struct bb *x, const char *subj, uint64_t n, size_t size, bool warm)
{
	char *buf = calloc(1, size);
	int64_t t0;
	jsPubOptions po;

	if (!buf)
		return -1;
	if (warm) {
		jsPubOptions_Init(&po);
		po.MsgId = "bench.warm";
		if (js_PublishAsync(x->js, subj, buf, (int)size, &po) != NATS_OK) {
			free(buf);
			return -1;
		}
		jsPubOptions_Init(&po);
		po.MaxWait = 60000;
		if (js_PublishAsyncComplete(x->js, &po) != NATS_OK) {
			free(buf);
			return -1;
		}
	}
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		char id[40];

		jsPubOptions_Init(&po);
		snprintf(id, sizeof id, "bench.%zu.%llu", size, (unsigned long long)i);
		po.MsgId = id;
		memcpy(buf, &i, size < 8 ? size : 8);
		if (js_PublishAsync(x->js, subj, buf, (int)size, &po) != NATS_OK) {
			free(buf);
			return -1;
		}
	}
	jsPubOptions_Init(&po);
	po.MaxWait = 60000;
	free(buf);
	if (js_PublishAsyncComplete(x->js, &po) != NATS_OK)
		return -1;
	return (double)n * 1e9 / (double)(bench_now_ns() - t0);
}

/* The baseline: a raw pull consumer from the stream's start; msg/s.  On a
 * connection of its own, closed before the subscription is destroyed:
 * nats.c 3.4.1's read loop may still hold a pointer to a subscription being
 * destroyed and lock its freed mutex (lib/bridge/bridge.c, in_listen). */
static double bb_raw_pull(struct bb *x, const char *stream, const char *subj, uint64_t n)
{
	natsConnection *nc = NULL;
	natsSubscription *sub = NULL;
	jsCtx *js = NULL;
	jsSubOptions so;
	uint64_t got = 0;
	int64_t t0 = 0, end;

	if (natsConnection_ConnectTo(&nc, x->srv.url) != NATS_OK)
		return -1;
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.ManualAck = true;
	so.Config.AckPolicy = js_AckAll;
	so.Config.MaxAckPending = 65536;
	if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK ||
	    js_PullSubscribe(&sub, js, subj, "rawbench", NULL, &so, NULL) != NATS_OK)
		goto out;
	t0 = bench_now_ns();
	end = t0 + 120ll * 1000000000;
	while (got < n && bench_now_ns() < end) {
		natsMsgList l = { 0 };

		if (natsSubscription_Fetch(&l, sub, BB_FETCH, 1000, NULL) != NATS_OK)
			continue;
		got += (uint64_t)l.Count;
		if (l.Count)
			natsMsg_Ack(l.Msgs[l.Count - 1], NULL);
		natsMsgList_Destroy(&l);
	}
	end = bench_now_ns();
	natsSubscription_Unsubscribe(sub);
out:
	natsConnection_Close(nc);
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return t0 && got == n ? (double)n * 1e9 / (double)(end - t0) : -1;
}

struct bb_run {
	shmq_bridge *b;
	int rc;
};

static void *bb_bridge_thread(void *arg)
{
	struct bb_run *ru = arg;

	ru->rc = shmq_bridge_run(ru->b);
	return NULL;
}

/* The bridge into a queue, emptied by this thread; msg/s. */
static double bb_bridged(struct bb_run *ru, shmq_queue *q, size_t size, uint64_t n)
{
	void *buf = malloc(size + 1);
	pthread_t t;
	uint64_t got = 0;
	int64_t t0 = bench_now_ns(), end = t0 + 120ll * 1000000000;

	if (!buf || pthread_create(&t, NULL, bb_bridge_thread, ru)) {
		free(buf);
		return -1;
	}
	while (got < n && bench_now_ns() < end)
		if (shmq_queue_get(q, buf, size + 1, 100000000) >= 0)
			got++;
	double rate = (double)n * 1e9 / (double)(bench_now_ns() - t0);

	shmq_bridge_stop(ru->b, 1000000000);
	pthread_join(t, NULL);
	free(buf);
	return got == n ? rate : -1;
}

static int bb_size(struct bench *b, struct bb *x, size_t size, uint64_t n)
{
	struct shmq_queue_opts qo = { .capacity = 4096, .max_msg = (uint32_t)size };
	struct shmq_bridge_opts bo = { .url = x->srv.url, .dir = SHMQ_BRIDGE_IN };
	struct bb_run ru = { 0 };
	char qname[32], stream[48], subj[48];
	shmq_queue *q;
	double pub, raw, bridged;
	int rc;

	snprintf(qname, sizeof qname, "b%zu", size);
	snprintf(stream, sizeof stream, "SHMQ_%s", qname);
	snprintf(subj, sizeof subj, "shmq.%s", qname);
	rc = shmq_queue_create(x->r, qname, &qo, &q);
	if (rc)
		return rc;
	rc = shmq_bridge_create(x->r, qname, &bo, &ru.b); /* makes the stream */
	if (rc) {
		shmq_queue_close(q);
		return rc;
	}
	pub = bb_publish(x, subj, n, size, false);
	raw = pub > 0 ? bb_raw_pull(x, stream, subj, n) : -1;
	bridged = raw > 0 ? bb_bridged(&ru, q, size, n) : -1;
	shmq_bridge_free(ru.b);
	shmq_queue_close(q);
	if (pub <= 0 || raw <= 0 || bridged <= 0)
		return -EIO;
	rc = bench_report_sized(b, "stream->queue", size, "kmsg/s", bridged / 1e3,
				"raw pull+ack", raw / 1e3, true);
	if (!rc)
		rc = bench_report_sized(b, "js async publish with ids", size, "kmsg/s", pub / 1e3,
					NULL, 0, true);
	return rc;
}

#ifdef HAVE_SHMQ_QUEUE_2PC
static void bb_sleep_us(uint64_t us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/* A stream as the bridge makes them (file storage, Discard=New, the
 * duplicate window), for the raw side. */
static int bb_stream(struct bb *x, const char *stream, const char *subj)
{
	jsStreamConfig cfg;
	jsStreamInfo *si = NULL;
	const char *subjs[1] = { subj };
	natsStatus s;

	jsStreamConfig_Init(&cfg);
	cfg.Name = stream;
	cfg.Subjects = subjs;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.Discard = js_DiscardNew;
	cfg.Duplicates = SHMQ_BRIDGE_DUP_WINDOW_NS;
	s = js_AddStream(&si, x->js, &cfg, NULL, NULL);
	jsStreamInfo_Destroy(si);
	return s == NATS_OK ? 0 : -EIO;
}

/* n messages through the OUT bridge, put by this thread; msg/s, timed from
 * the first put to the bridge's last ack. */
static double bb_out_bridged(struct bb *x, size_t size, uint64_t n, int run)
{
	struct shmq_queue_opts qo = { .capacity = 4096, .max_msg = (uint32_t)size };
	struct shmq_bridge_opts bo = { .url = x->srv.url, .dir = SHMQ_BRIDGE_OUT };
	struct shmq_bridge_stats st = { 0 };
	struct bb_run ru = { 0 };
	char qname[32];
	char *buf = calloc(1, size);
	shmq_queue *q = NULL;
	pthread_t t;
	double rate = -1;
	int64_t t0, end;

	snprintf(qname, sizeof qname, "o%zu.%d", size, run);
	if (!buf || shmq_queue_create(x->r, qname, &qo, &q) ||
	    shmq_bridge_create(x->r, qname, &bo, &ru.b)) {
		shmq_queue_close(q);
		free(buf);
		return -1;
	}
	if (pthread_create(&t, NULL, bb_bridge_thread, &ru))
		goto out;
	/* the clock starts once one message went through: the bridge has read
	 * the stream's end and published, as the raw side's warm message */
	end = bench_now_ns() + 120ll * 1000000000;
	if (shmq_queue_put(q, buf, size, 10ll * 1000000000))
		goto stop;
	while (shmq_bridge_stats(ru.b, &st) == 0 && st.moved < 1 && bench_now_ns() < end)
		bb_sleep_us(100);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		memcpy(buf, &i, size < 8 ? size : 8);
		if (shmq_queue_put(q, buf, size, 10ll * 1000000000))
			break;
	}
	/* the raw side waits on a condition variable; this side polls.  At
	 * 100 us the poll woke 10^4 times a second on the cores the server and
	 * the bridge need; a 1 ms poll adds at most 1 ms to this side's time
	 * (0.2 % of a full run, 2 % of a --quick one), against the bridge */
	while (shmq_bridge_stats(ru.b, &st) == 0 && st.moved < n + 1 && bench_now_ns() < end)
		bb_sleep_us(1000);
	if (st.moved == n + 1)
		rate = (double)n * 1e9 / (double)(bench_now_ns() - t0);
stop:
	shmq_bridge_stop(ru.b, 2000000000);
	pthread_join(t, NULL);
out:
	shmq_bridge_free(ru.b);
	shmq_queue_close(q);
	free(buf);
	return rate;
}

static int bb_out_size(struct bench *b, struct bb *x, size_t size, uint64_t n)
{
	char stream[48], subj[48];
	int run = bench_run_index(b);
	double raw = -1, bridged = -1;

	snprintf(stream, sizeof stream, "RAW_%zu_%d", size, run);
	snprintf(subj, sizeof subj, "raw.%zu.%d", size, run);
	if (bb_stream(x, stream, subj))
		return -EIO;
	/* alternate the order: odd runs put the bridge first */
	if (run % 2) {
		bridged = bb_out_bridged(x, size, n, run);
		raw = bb_publish(x, subj, n, size, true);
	} else {
		raw = bb_publish(x, subj, n, size, true);
		bridged = bb_out_bridged(x, size, n, run);
	}
	if (raw <= 0 || bridged <= 0)
		return -EIO;
	return bench_report_sized(b, "queue->stream", size, "kmsg/s", bridged / 1e3,
				  "js async publish+ids", raw / 1e3, true);
}

struct bb_pacer {
	shmq_queue *q;
	uint64_t n;
	int64_t gap_ns;
	int rc;
};

/* Puts n 64-byte messages, each carrying its put time, one every gap_ns. */
static void *bb_pacer_thread(void *arg)
{
	struct bb_pacer *p = arg;
	char buf[64] = { 0 };
	int64_t next = bench_now_ns();

	for (uint64_t i = 0; i < p->n && p->rc == 0; i++) {
		int64_t now;

		while ((now = bench_now_ns()) < next)
			bb_sleep_us((uint64_t)(next - now) / 1000 + 1);
		memcpy(buf, &now, sizeof now);
		p->rc = shmq_queue_put(p->q, buf, sizeof buf, 10ll * 1000000000);
		next += p->gap_ns;
	}
	return NULL;
}

/* queue A -> OUT -> stream -> IN -> queue B, paced; p50/p99 of put -> get. */
static int bb_latency(struct bench *b, struct bb *x, uint64_t n)
{
	struct shmq_queue_opts qo = { .capacity = 4096, .max_msg = 64 };
	char qa[32], qb[32], subj[48], stream[48];
	/* one stream between the two */
	struct shmq_bridge_opts oo = { .url = x->srv.url, .dir = SHMQ_BRIDGE_OUT, .subject = subj,
				       .stream = stream };
	struct shmq_bridge_opts io = { .url = x->srv.url, .dir = SHMQ_BRIDGE_IN, .subject = subj,
				       .stream = stream };
	struct bb_run out = { 0 }, in = { 0 };
	struct bb_pacer pc = { .n = n, .gap_ns = 200000 }; /* 5 kmsg/s */
	struct bench_hist *h = bench_hist_new();
	shmq_queue *a = NULL, *qbh = NULL;
	pthread_t to, ti, tp;
	uint64_t got = 0;
	int run = bench_run_index(b), rc = -EIO;
	int64_t end;

	snprintf(qa, sizeof qa, "la%d", run);
	snprintf(qb, sizeof qb, "lb%d", run);
	snprintf(subj, sizeof subj, "shmq.lat%d", run);
	snprintf(stream, sizeof stream, "LAT_%d", run);
	if (!h)
		return -ENOMEM;
	bench_hist_init(h);
	if (shmq_queue_create(x->r, qa, &qo, &a) || shmq_queue_create(x->r, qb, &qo, &qbh) ||
	    shmq_bridge_create(x->r, qa, &oo, &out.b) || shmq_bridge_create(x->r, qb, &io, &in.b))
		goto out;
	if (pthread_create(&to, NULL, bb_bridge_thread, &out))
		goto out;
	if (pthread_create(&ti, NULL, bb_bridge_thread, &in)) {
		shmq_bridge_stop(out.b, 1000000000);
		pthread_join(to, NULL);
		goto out;
	}
	pc.q = a;
	end = bench_now_ns() + 120ll * 1000000000;
	if (pthread_create(&tp, NULL, bb_pacer_thread, &pc) == 0) {
		char buf[64];

		while (got < n && bench_now_ns() < end) {
			int64_t t;

			if (shmq_queue_get(qbh, buf, sizeof buf, 100000000) != (ssize_t)sizeof buf)
				continue;
			memcpy(&t, buf, sizeof t);
			bench_hist_record(h, (uint64_t)(bench_now_ns() - t));
			got++;
		}
		pthread_join(tp, NULL);
	}
	shmq_bridge_stop(out.b, 1000000000);
	shmq_bridge_stop(in.b, 1000000000);
	pthread_join(to, NULL);
	pthread_join(ti, NULL);
	if (got == n && pc.rc == 0)
		rc = bench_report_latency(b, "queue->stream->queue 64B, each", h, NULL, NULL);
out:
	shmq_bridge_free(out.b);
	shmq_bridge_free(in.b);
	shmq_queue_close(a);
	shmq_queue_close(qbh);
	bench_hist_free(h);
	return rc;
}
#endif /* HAVE_SHMQ_QUEUE_2PC */

int bench_bridge(struct bench *b)
{
	struct bb x = { 0 };
	struct shmq_region_opts ro = { .size = (size_t)256 << 20 };
	int rc;

	if (!bu_have_server()) {
		bench_note(b, "bridge: nats-server is not installed (tools/setup.sh): nothing measured");
		return 0;
	}
	if (bu_server_start(&x.srv, NULL))
		return -ECONNREFUSED;
	snprintf(x.region, sizeof x.region, "/shmq-bench-bridge-%d", (int)getpid());
	rc = shmq_region_create(x.region, &ro, &x.r);
	if (!rc)
		rc = bb_connect(&x);
	if (!rc)
		rc = bb_size(b, &x, 64, bench_scale(b, 100000, 10000));
	if (!rc)
		rc = bb_size(b, &x, 4096, bench_scale(b, 20000, 2000));
#ifdef HAVE_SHMQ_QUEUE_2PC
	if (!rc)
		rc = bb_out_size(b, &x, 64, bench_scale(b, 100000, 10000));
	if (!rc)
		rc = bb_out_size(b, &x, 4096, bench_scale(b, 20000, 2000));
	if (!rc)
		rc = bb_latency(b, &x, bench_scale(b, 10000, 1000));
#else
	bench_note(b, "bridge: libshmq without the two-phase get: no OUT figures");
#endif
	natsConnection_Close(x.nc); /* first: joins the read loop (bridge.c, in_listen) */
	jsCtx_Destroy(x.js);
	natsConnection_Destroy(x.nc);
	shmq_region_close(x.r);
	shmq_region_unlink(x.region);
	bu_server_stop(&x.srv);
	return rc;
}
