#!/bin/sh
# SPDX-License-Identifier: MIT
# shmq-bench pipe -- tput runs its throughput paths (one message per call,
# bulk, blocking; 8 B to 4 KiB; beside the kernel's transports and ck_ring,
# and the bulk rate beside its bound, a minimal batched ring), and
# pipe -- sweep 64 its ring-size sweep at one size (64-byte and 56-byte
# messages), to the end and prints every row.  Under the sanitizer builds of make check
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
bench_run "$tmp/sweep.txt" pipe -- sweep 64
for size in 64B 56B; do
	for row in busy blocking; do
		bench_row "$tmp/sweep.txt" "pipe $size $row, ring 64 msgs" Mmsg/s
	done
done
echo "ok: every throughput and sweep row printed"
