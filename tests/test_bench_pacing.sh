#!/bin/sh
# SPDX-License-Identifier: MIT
# shmq-bench queue -- pacing and pipe -- pacing run their figures (1 KiB and
# 4 KiB, the consumer pausing once and 64 times per empty poll, beside
# ck_ring) to the end and print every row; under the sanitizer builds of
# make check this runs the paced loops there too.  It checks that the rows
# are there, never the figures in them (a build without ck_ring prints a
# note instead and is not checked).
set -u

. "$(dirname "$0")/bench_test.sh"

for sub in queue pipe; do
	bench_run "$tmp/$sub.txt" "$sub" -- pacing
	if grep -q "built without ck_ring" "$tmp/$sub.txt"; then
		echo "skip: $sub: no ck_ring in this build"
		continue
	fi
	case $sub in
	queue) series="queue busy 1p1c, consumer" base="ck_ring MPMC" ;;
	pipe) series="pipe busy, 1 msg/call, receiver" base="ck_ring spsc" ;;
	esac
	for size in 1KiB 4KiB; do
		for pace in "1 pause" "64 pauses"; do
			bench_row "$tmp/$sub.txt" "$series $pace per empty poll $size" Mmsg/s "$base"
		done
	done
done
echo "ok: every pacing row printed"
