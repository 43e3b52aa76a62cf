#!/bin/sh
# SPDX-License-Identifier: MIT
# shmq-bench queue -- cpu and pipe -- cpu: the one-process put+get (send+recv)
# pair beside ck_ring, checked for a figure on both sides (a build without
# ck_ring has only libshmq's).  Each side checks every message's sequence
# number and the bench exits nonzero on a wrong one, so under the sanitizer
# builds of make check this is also where those loops run checked.  Never the
# figures themselves.
set -u
. "$(dirname "$0")/bench_test.sh"

for sub in queue pipe; do
	bench_run "$tmp/$sub.txt" "$sub" -- cpu
	case $sub in
	queue) row="queue 1 process 64B put\\+get pair" base="ck_ring MPMC" ;;
	pipe) row="pipe 1 process 64B send\\+recv pair" base="ck_ring spsc" ;;
	esac
	if grep -q "HAVE_CK 1" config.h 2>/dev/null; then
		bench_row "$tmp/$sub.txt" "$row" ns "$base"
	else
		bench_row "$tmp/$sub.txt" "$row" ns
	fi
done
echo "ok: both one-process rows printed"
