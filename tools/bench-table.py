#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The README's performance table from several `shmq-bench -j` invocations.

    for i in 1 2 3 4 5 6 7 8; do
        OMP_WAIT_POLICY=passive ./tools/shmq-bench -q -n 3 -j all > /tmp/all-$i.json
    done
    python3 tools/bench-table.py /tmp/all-*.json

Each invocation ran every figure N times (-n N) and reports their median and
the ratio of medians to the baseline run beside it.  For each figure of ROWS
this prints the median of the invocations' medians and their range, and the
median of the invocations' ratios with the range of all per-run ratios.  A
figure goes into the table only if it reproduced: every invocation's ratio on
the same side of 1 (or all within 3% of 1) and the largest within 30% of the
smallest (a factor of 2 when all are 2 or more).  The others are listed with
each invocation's ratio, in the order the files were given, so that nothing
is claimed that a rerun did not show.  Ratios above 1 favour libshmq.
"""
import json
import statistics
import sys

# (subcommand, figure name as shmq-bench prints it, the README's label)
ROWS = [
    ("lock", "uncontended acquire+release", "lock, uncontended acquire+release"),
    ("lock", "uncontended acquire+release vs robust",
     "lock, uncontended, beside the robust mutex"),
    ("lock", "2 processes contending", "lock, 2 processes contending"),
    ("lock", "2 processes contending vs robust", "lock, 2 processes contending, beside the robust mutex"),
    ("barrier", "2 processes, close together", "barrier, 2 processes arriving together"),
    ("barrier", "2 processes, 100 us apart", "barrier, 2 processes 100 µs apart"),
    ("sync", "sem acquire+release", "semaphore, uncontended acquire+release"),
    ("sync", "cond ping-pong, awake", "condition ping-pong, 2 processes awake"),
    ("sync", "sem ping-pong, awake", "semaphore ping-pong, 2 processes awake"),
    ("pipe", "pipe busy, 1 msg/call 64B", "pipe, 64 B, one message per call"),
    ("pipe", "pipe busy, bulk 32/call 64B", "pipe, 64 B, 32 messages per call"),
    ("pipe", "pipe busy, bulk 32/call, beside its bound 64B",
     "pipe, 64 B, 32 messages per call, beside its bound"),
    ("pipe", "the bound: minimal batched ring, 32/call 64B",
     "the bound: a minimal batched ring, 64 B, 32 messages per call"),
    ("pipe", "pipe busy, 1 msg/call 1KiB", "pipe, 1 KiB, one message per call"),
    ("pipe", "pipe busy, 1 msg/call 4KiB", "pipe, 4 KiB, one message per call"),
    ("pipe", "pipe blocking vs pipe(2) 64B", "pipe, 64 B, blocking"),
    ("pipe", "pipe reserve/commit 4096B vs pipe(2)", "pipe, 4 KiB reserve/commit"),
    ("pipe", "round trip 64B awake (busy)", "pipe round trip, 64 B, both polling, beside the line"),
    ("pipe", "round trip 64B awake vs minimal ring",
     "pipe round trip, 64 B, both polling, beside its bound"),
    ("pipe", "round trip 64B minimal ring (bound)",
     "the bound: a minimal ring's round trip, 64 B, beside the line"),
    ("pipe", "round trip 64B awake vs ck_ring", "pipe round trip, 64 B, both polling"),
    ("pipe", "round trip 64B asleep (spin 0) vs pipe(2)", "pipe round trip, 64 B, receiver asleep"),
    ("pipe", "round trip 64B blocking (spin, sleep) vs pipe(2)",
     "pipe round trip, 64 B, receiver spinning then sleeping"),
    ("queue", "queue busy 1p1c 64B", "queue, 1p1c, 64 B, busy"),
    ("queue", "queue busy 1p1c 64B vs Vyukov, ring 1024 msgs",
     "queue, 1p1c, 64 B, busy, beside its protocol without crash safety"),
    ("queue", "Vyukov MPMC 1p1c 64B, ring 1024 msgs",
     "the bound: Vyukov's MPMC, 1p1c, 64 B, busy"),
    ("queue", "queue blocking 1p1c vs mq 64B", "queue, 1p1c, 64 B, blocking"),
    ("queue", "queue busy 1p1c 1KiB", "queue, 1p1c, 1 KiB, busy"),
    ("queue", "queue busy 1p1c 4KiB", "queue, 1p1c, 4 KiB, busy"),
    ("queue", "queue busy 4p4c 64B", "queue, 4p4c, 64 B, busy"),
    ("queue", "queue large 1p1c put/get_alloc vs pipe 64KiB", "queue, 64 KiB messages"),
    ("spawn", "spawn-to-exit", "spawn to exit"),
    ("run", "run /bin/true", "`shmq_run /bin/true`"),
    ("run", "capture head -c N /dev/zero", "`shmq_run` capture of `head -c N /dev/zero`"),
    ("sched", "enter+cancel, 1000000 pending", "scheduler enter+cancel, 10^6 pending"),
    ("waitset", "wake via waitset, 1 pipe", "waitset wake-up through 1 pipe"),
    ("pool", "apply_async round trip (sleeping workers)", "pool `apply_async` round trip"),
    ("pool", "bare futex pair round trip (bound)",
     "the bound: a bare futex pair's round trip to a sleeping process"),
    ("pool", "uneven map (1% 1000x heavier)", "pool, uneven map (1% of elements 1000x heavier), 2 workers"),
    ("pool", "uneven map vs OpenMP", "pool, uneven map"),
    ("pool", "fork-join fib, cutoff 18 (2 workers)", "fork-join fib(30), cutoff 18, 2 workers"),
    ("bridge", "stream->queue 64B", "bridge, stream -> queue, 64 B"),
    ("bridge", "stream->queue 4KiB", "bridge, stream -> queue, 4 KiB"),
    ("bridge", "queue->stream 64B", "bridge, queue -> stream, 64 B"),
    ("bridge", "queue->stream 4KiB", "bridge, queue -> stream, 4 KiB"),
]

UNITS = {"ns": "ns", "us": "µs", "ms": "ms"}


def value(v):
    """A scalar figure's {median, values}, or a latency figure's p50."""
    return v["p50"] if "p50" in v else v


def ratio_of(r):
    if isinstance(r["ratio"], dict):
        return r["ratio"]["p50"], r["ratio_runs"]["p50"]
    return r["ratio"], r["ratio_runs"]


def fmt(x, unit):
    if unit == "ns" and x >= 10000:
        x, unit = x / 1000, "µs"
    if unit in ("ns", "µs", "us") and x >= 10000:
        x, unit = x / 1000, "ms"
    unit = UNITS.get(unit, unit)
    if x >= 100:
        s = "%.0f" % x
    elif x >= 10:
        s = "%.1f" % x
    else:
        s = "%.2f" % x
    return s, unit


def cell(values, unit):
    med, u = fmt(statistics.median(values), unit)
    lo, _ = fmt(min(values), unit)
    hi, _ = fmt(max(values), unit)
    return "%s %s (%s-%s)" % (med, u, lo, hi)


def reproduced(ratios):
    lo, hi = min(ratios), max(ratios)
    same_side = lo > 1 or hi < 1 or (lo >= 0.97 and hi <= 1.03)
    return same_side and hi <= lo * (2.0 if lo >= 2 else 1.3)


def main(paths):
    runs = [json.load(open(p)) for p in paths]
    index = [{(r["subcommand"], r["name"]): r for r in d["results"]} for d in runs]
    lines = []
    for d in index:
        r = d.get(("limits", "cache-line round trip, processes"))
        lines.append(r["shmq"]["median"] if r else float("nan"))
    print("%d invocations; cache-line round trip between processes: %s ns"
          % (len(runs), ", ".join("%.0f" % x for x in lines)))
    print()
    print("| Figure | libshmq | Baseline | Ratio (per-run range) |")
    print("|---|---|---|---|")
    left = []
    for sub, name, label in ROWS:
        got = [d.get((sub, name)) for d in index]
        if any(r is None or r.get("ratio") is None for r in got):
            left.append("- %s: missing from %d of %d invocations"
                        % (label, sum(r is None or r.get("ratio") is None for r in got), len(got)))
            continue
        unit = got[0]["unit"]
        ours = [value(r["shmq"])["median"] for r in got]
        base = [value(r["baseline"]["value"])["median"] for r in got]
        ratios = [ratio_of(r)[0] for r in got]
        per_run = [x for r in got for x in ratio_of(r)[1]]
        if reproduced(ratios):
            print("| %s | %s | %s, %s | %.2fx (%.2f-%.2f) |"
                  % (label, cell(ours, unit), cell(base, unit), got[0]["baseline"]["name"],
                     statistics.median(ratios), min(per_run), max(per_run)))
        else:
            left.append("- %s against %s (%s)" % (label, got[0]["baseline"]["name"],
                                                  ", ".join("%.2fx" % x for x in ratios)))
    print()
    print("Not reproduced (each invocation's ratio, in order):")
    print("\n".join(left))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: bench-table.py RESULTS.json RESULTS.json [...]")
    main(sys.argv[1:])
