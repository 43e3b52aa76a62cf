#!/bin/sh
# SPDX-License-Identifier: MIT
# shmq-bench pipe -- tput runs its throughput paths (one message per call,
# bulk, blocking; 8 B to 4 KiB; beside the kernel's transports and ck_ring,
# and the bulk rate beside its bound, a minimal batched ring)
# to the end and prints every row.  Under the sanitizer builds of make check
# this is what catches the bench itself reading or writing past its buffers
# (the bulk sender stamped half its messages past the end of its array, which
# AddressSanitizer reports as a global-buffer-overflow in bulk_stamp).  It
# checks that the rows are there, never the figures in them.
set -u

. "$(dirname "$0")/bench_test.sh"

bench_run "$tmp/out.txt" pipe -- tput
for size in 8B 64B 1KiB 4KiB; do
	for row in "pipe busy, 1 msg/call" "pipe busy, bulk 32/call" "pipe blocking vs pipe(2)"; do
		re=$(printf '%s' "$row" | sed 's/[()]/\\&/g')
		bench_row "$tmp/out.txt" "$re $size" Mmsg/s
	done
done
# the bulk rate's bound, measured beside it at 64 B
bench_row "$tmp/out.txt" "pipe busy, bulk 32/call, beside its bound 64B" Mmsg/s \
	"minimal batched ring \\(bound\\)"
echo "ok: every throughput row printed"
