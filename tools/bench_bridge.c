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
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* n messages of size bytes on subj, async, each with an id; msg/s. */
static double bb_publish(struct bb *x, const char *subj, uint64_t n, size_t size)
{
	char *buf = calloc(1, size);
	int64_t t0 = bench_now_ns();
	jsPubOptions po;

	if (!buf)
		return -1;
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

/* The baseline: a raw pull consumer from the stream's start; msg/s. */
static double bb_raw_pull(struct bb *x, const char *stream, const char *subj, uint64_t n)
{
	natsSubscription *sub = NULL;
	jsSubOptions so;
	uint64_t got = 0;
	int64_t t0, end;

	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.ManualAck = true;
	so.Config.AckPolicy = js_AckAll;
	so.Config.MaxAckPending = 65536;
	if (js_PullSubscribe(&sub, x->js, subj, "rawbench", NULL, &so, NULL) != NATS_OK)
		return -1;
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
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	return got == n ? (double)n * 1e9 / (double)(bench_now_ns() - t0) : -1;
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
	pub = bb_publish(x, subj, n, size);
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
	jsCtx_Destroy(x.js);
	natsConnection_Destroy(x.nc);
	shmq_region_close(x.r);
	shmq_region_unlink(x.region);
	bu_server_stop(&x.srv);
	return rc;
}
