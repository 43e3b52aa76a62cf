/* SPDX-License-Identifier: MIT */
/*
 * libshmq-bridge: a libshmq queue joined to a NATS JetStream stream, so that
 * a queue reaches other hosts through an existing, proven engine.
 *
 * Its own library (pkg-config shmq-bridge; links libshmq and libnats), so
 * that libshmq itself keeps no network dependency and starts no threads.
 * shmq.h does not include this header.  nats.c runs threads of its own
 * inside a bridge's process.
 *
 *     shmq_bridge *b;
 *     struct shmq_bridge_opts o = { .url = "nats://10.0.0.2:4222", .dir = SHMQ_BRIDGE_IN };
 *     shmq_bridge_create(r, "jobs", &o, &b);  // stream SHMQ_jobs, subject shmq.jobs
 *     shmq_bridge_run(b);                     // until shmq_bridge_stop(b, ...)
 *     shmq_bridge_free(b);
 *
 * IN (stream -> queue).  A pull consumer (durable "<name>_<region uuid hex>",
 * dots made underscores: one per region) fetches batches never larger than
 * the queue's free slots (a full queue stops the fetching: backpressure, never
 * loss) and puts them in stream order.  The checkpoint - the stream sequence
 * of the last message put - lives in the region, in the object `name`, so a
 * bridge restarted after kill -9 (any process, any host that maps the region)
 * resumes after it: the consumer is made anew from checkpoint + 1 at every
 * start and every rewind, and a message whose sequence is not checkpoint + 1
 * (a redelivery, a gap) is never put: the bridge rewinds instead.  Redelivery
 * order is thus never relied upon.
 *
 * Why the checkpoint is a separate region word and not a header inside the
 * queued message: consumers get the stream's bytes exactly, and a header
 * could only be read back while the message is still queued.  Exactly once
 * across kill -9: the bridge marks the sequence pending before each put and
 * records the queue position the put claimed before the message is
 * published; the next bridge asks the queue whether that position was
 * published (even if consumed since) or its claim died unpublished, and
 * puts the message again only in the second case.  The queue can answer
 * until the position's slot is claimed for its next lap; only if other
 * producers put a whole capacity of messages between the kill and the next
 * bridge's start (or the queue was corrupted) is the message undecidable:
 * then it is put again (never lost) and counted in in_doubt.
 *
 * OUT (queue -> stream) needs the queue's two-phase get
 * (shmq_queue_get_begin/commit/abort) and shmq_region_uuid: until this
 * library is built against a libshmq that has them, create refuses
 * SHMQ_BRIDGE_OUT with -EOPNOTSUPP.
 *
 * One bridge per name at a time: create takes the region lock `name`.hold
 * and gives -EBUSY while a live bridge holds it; a dead holder's lock is
 * taken over.
 */
#ifndef SHMQ_BRIDGE_H
#define SHMQ_BRIDGE_H

#include <stdint.h>

#include <shmq.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmq_bridge shmq_bridge;

enum { SHMQ_BRIDGE_OUT = 1 /* queue -> subject */, SHMQ_BRIDGE_IN = 2 /* subject -> queue */ };

#define SHMQ_BRIDGE_DEFAULT_BATCH    256u  /* messages per fetch (IN), at most */
#define SHMQ_BRIDGE_DEFAULT_INFLIGHT 1024u /* unacked publishes (OUT), at most */
#define SHMQ_BRIDGE_DUP_WINDOW_NS    (600ll * 1000000000ll) /* stream duplicate window */

struct shmq_bridge_opts {
	const char *url;     /* nats://host:port (or a comma-separated list); required */
	const char *subject; /* NULL: "shmq.<queue>" */
	const char *stream;  /* NULL: "SHMQ_<queue>", dots and dashes made underscores */
	const char *name;    /* NULL: "bridge.<queue>"; the region object of the checkpoint
			      * (at most 58 characters: a queue name longer than 51
			      * needs one given here) */
	unsigned dir;        /* SHMQ_BRIDGE_OUT or SHMQ_BRIDGE_IN */
	unsigned flags;      /* 0 */
	uint32_t inflight;   /* 0: SHMQ_BRIDGE_DEFAULT_INFLIGHT; at most the queue's capacity */
	uint32_t batch;      /* 0: SHMQ_BRIDGE_DEFAULT_BATCH; at most the queue's capacity */
};

enum shmq_bridge_state {
	SHMQ_BRIDGE_IDLE = 0,     /* created, not running */
	SHMQ_BRIDGE_RUNNING = 1,  /* moving messages */
	SHMQ_BRIDGE_BLOCKED = 2,  /* IN: queue full; OUT: the server answers and refuses (a full
				   * stream with Discard=New, ...): retrying; also after run
				   * returned -EMSGSIZE */
	SHMQ_BRIDGE_OFFLINE = 3,  /* server unreachable (the connection dropped) or, IN, silent
				   * for a second: retrying, reconnecting */
	SHMQ_BRIDGE_STOPPED = 4,  /* run returned */
};

struct shmq_bridge_stats {
	uint64_t moved;    /* messages moved by this handle (OUT: committed, the stream holding
			    * each once: acked, or found there after its ack was lost,
			    * also one a killed bridge published) */
	uint64_t read;     /* IN: last stream sequence fetched; OUT: last queue position read */
	uint64_t acked;    /* IN: checkpoint (last stream sequence put); OUT: last position acked */
	uint64_t rewinds;  /* IN: consumer re-creations after a gap, redelivery, error or a
			    * second of silence; OUT: re-reads of the stream's end */
	uint64_t in_doubt; /* IN: messages put again after a kill, their fate undecidable (region-wide) */
	uint32_t state;    /* enum shmq_bridge_state */
	uint32_t dir;
	uint64_t reserved[4];
};

/* Create a bridge of direction o->dir between queue `queue` of r (which must
 * exist) and the server at o->url; connects, creates the stream when absent
 * (file storage, Discard=New, a 10-minute duplicate window).  Any thread.
 * r must stay open until shmq_bridge_free.  Errors: -EINVAL (opts, names:
 * a stream name with whitespace or any of . * > / \ ", a subject with an
 * empty token, whitespace, " or \, or wildcards where OUT publishes; a URL not of
 * the form [nats|tls|ws|wss://][user[:pass]@]host[:port], port 1..65535, or
 * a comma-separated list of them, refused before anything is claimed),
 * -ENOENT (no such queue), -EBUSY (another live bridge of that name),
 * -EOPNOTSUPP (OUT, see above), -ECONNREFUSED / -ETIMEDOUT (server),
 * -EACCES (the server refused the URL's user, or its lack of one), -EIO (the
 * server refused otherwise: a TLS it requires, an error answer of its
 * JetStream API), -EBADF (r was inherited across fork()),
 * -EPROTO (the stream exists with another subject, or the server has no
 * JetStream; IN: the stream's sequences end below the checkpoint - it was
 * made again, or its store lost acked messages - so resuming would skip
 * new ones; another name, a checkpoint of its own, takes it from its
 * start), -ENOMEM, -EBADMSG.  A handle is its process's: in a child of
 * fork() run, stop and stats give -EBADF and free frees only the copy. */
SHMQ_API int shmq_bridge_create(shmq_region *r, const char *queue, const struct shmq_bridge_opts *o,
				shmq_bridge **out);

/* Move messages until shmq_bridge_stop.  One thread per bridge.  Rides out
 * server outages (state OFFLINE) and full queues or streams (BLOCKED).  0
 * after a stop (OUT also once its queue is shut down and drained), -EPIPE
 * (IN: the queue was shut down, seen within a round also while the stream
 * is idle or the queue full; what the stream holds past the checkpoint
 * stays there), -EMSGSIZE (OUT: the next message is larger than the server's
 * max_payload or the stream's max_msg_size, so it can never be stored;
 * what went before it is stored and committed, it and what follows stay in
 * the queue, the state stays BLOCKED: raise the limit, or take the message
 * out of the queue, and run again), -EBADMSG (the checkpoint object was
 * overwritten), -ENOSPC (IN: the region cannot hold the next message, one
 * longer than the queue's max_msg, even with the queue empty; while the
 * queue holds messages a full heap is a full queue: BLOCKED, waiting),
 * -EPROTO (OUT: the stream's last message is not this queue's: another
 * writer on the subject, our messages purged, or an id of ours naming a
 * position the queue never reached), -EBUSY (run is running already, on
 * another thread),
 * -EINVAL, -EBADF. */
SHMQ_API int shmq_bridge_run(shmq_bridge *b);

/* Ask run to return: it finishes the batch in hand for at most
 * drain_timeout_ns (SHMQ_FOREVER: no limit; what it leaves is fetched again
 * by the next bridge),
 * then returns; with no batch in hand (IN during an outage, re-making its
 * consumer) within a few hundred ms.  Only atomic stores: safe from another thread or a signal
 * handler.  0, -EINVAL, -EBADF. */
SHMQ_API int shmq_bridge_stop(shmq_bridge *b, int64_t drain_timeout_ns);

/* A snapshot; any thread, also while run runs.  0, -EINVAL, -EBADF. */
SHMQ_API int shmq_bridge_stats(const shmq_bridge *b, struct shmq_bridge_stats *st);

/* Disconnect, release the holder lock and free.  Not while run runs.  NULL
 * is a no-op. */
SHMQ_API void shmq_bridge_free(shmq_bridge *b);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_BRIDGE_H */
