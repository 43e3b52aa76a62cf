#!/bin/sh
# SPDX-License-Identifier: MIT
# shmq-bench pipe -- tput runs its throughput paths (one message per call,
# bulk, blocking; 8 B to 4 KiB; beside the kernel's transports and ck_ring)
# to the end and prints every row.  Under the sanitizer builds of make check
# this is what catches the bench itself reading or writing past its buffers
# (the bulk sender stamped half its messages past the end of its array, which
# AddressSanitizer reports as a global-buffer-overflow in bulk_stamp).  It
# checks that the rows are there, never the figures in them.
set -u

BENCH=./tools/shmq-bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

"$BENCH" --quick --runs 1 pipe -- tput > "$tmp/out.txt" 2>&1 || {
	cat "$tmp/out.txt" >&2
	fail "shmq-bench pipe -- tput failed"
}
for size in 8B 64B 1KiB 4KiB; do
	for row in "pipe busy, 1 msg/call" "pipe busy, bulk 32/call" "pipe blocking vs pipe(2)"; do
		re=$(printf '%s' "$row" | sed 's/[()]/\\&/g')
		grep -qE "^ *$re $size +[0-9.]+ Mmsg/s" "$tmp/out.txt" ||
			{ cat "$tmp/out.txt" >&2; fail "no row '$row $size'"; }
	done
done
echo "ok: every throughput row printed"
