#!/bin/sh
# SPDX-License-Identifier: MIT
# tools/bench-table.py, the README's performance table from several
# shmq-bench -j invocations: on made-up results, a figure whose ratios
# stay on one side of 1 and within 30% goes into the table with the median
# of the invocations' medians and the range of every run's ratio; one whose
# ratios cross 1, or spread wider, is listed with each invocation's ratio.
set -u
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
srcdir=${srcdir:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# inv FILE LINE LOCK_OURS LOCK_BASE LOCK_R1 LOCK_R2 SEM_RATIO
inv() {
	cat > "$1" <<JSON
{"results": [
 {"subcommand": "limits", "name": "cache-line round trip, processes", "kind": "scalar", "unit": "ns",
  "shmq": {"median": $2, "values": [$2]}, "baseline": null, "ratio": null, "ratio_runs": null},
 {"subcommand": "lock", "name": "uncontended acquire+release", "kind": "scalar", "unit": "ns",
  "shmq": {"median": $3, "values": [$3]},
  "baseline": {"name": "pthread_mutex pshared", "value": {"median": $4, "values": [$4]}},
  "ratio": $5, "ratio_runs": [$5, $6]},
 {"subcommand": "sync", "name": "sem acquire+release", "kind": "scalar", "unit": "ns",
  "shmq": {"median": 10, "values": [10]},
  "baseline": {"name": "sem_t pshared", "value": {"median": 10, "values": [10]}},
  "ratio": $7, "ratio_runs": [$7]}
]}
JSON
}
inv "$tmp/a.json" 64 10 12 1.20 1.25 0.97
inv "$tmp/b.json" 400 11 13 1.18 1.10 1.05
inv "$tmp/c.json" 70 12 15 1.25 1.40 0.99
python3 "$srcdir/tools/bench-table.py" "$tmp/a.json" "$tmp/b.json" "$tmp/c.json" > "$tmp/out" 2>&1 || {
	cat "$tmp/out"; echo "FAIL: bench-table.py failed"; exit 1; }
fail() { cat "$tmp/out"; echo "FAIL: $*"; exit 1; }
grep -q '^3 invocations; cache-line round trip between processes: 64, 400, 70 ns$' "$tmp/out" ||
	fail "the line round trips"
grep -qF '| lock, uncontended acquire+release | 11.0 ns (10.0-12.0) | 13.0 ns (12.0-15.0), pthread_mutex pshared | 1.20x (1.10-1.40) |' "$tmp/out" ||
	fail "the lock row"
grep -q '^| semaphore' "$tmp/out" && fail "the semaphore's ratios cross 1: not a result"
grep -qF -- '- semaphore, uncontended acquire+release against sem_t pshared (0.97x, 1.05x, 0.99x)' "$tmp/out" ||
	fail "the semaphore's listing"
# the same lock ratios spread past 30%: listed, not in the table
inv "$tmp/c.json" 70 12 15 1.70 1.80 0.99
python3 "$srcdir/tools/bench-table.py" "$tmp/a.json" "$tmp/b.json" "$tmp/c.json" > "$tmp/out" 2>&1
grep -q '^| lock' "$tmp/out" && fail "1.18x to 1.70x is more than 30% apart"
grep -qF -- '- lock, uncontended acquire+release against pthread_mutex pshared (1.20x, 1.18x, 1.70x)' "$tmp/out" ||
	fail "the spread lock's listing"
echo "ok: bench-table.py keeps what reproduced and lists the rest"
