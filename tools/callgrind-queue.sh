#!/bin/sh
# Instructions per call of the queue's hot paths: tools/cg_queue (one
# process, 1024 slots, 64-byte messages) under callgrind, one run per
# call, collecting only inside it; its inclusive cost divided by its calls.
#   sh tools/callgrind-queue.sh [rounds]     (after `make tools/cg_queue`)
set -e
rounds=${1:-10000}
dir=$(dirname "$0")
out=$(mktemp /tmp/cg-queue.XXXXXX)
trap 'rm -f "$out"' EXIT
for f in shmq_queue_put shmq_queue_get shmq_queue_get_begin shmq_queue_get_commit; do
	valgrind -q --tool=callgrind --callgrind-out-file="$out" --toggle-collect="$f" \
		"$dir/cg_queue" "$rounds"
	calls=$rounds
	[ "$f" = shmq_queue_put ] && calls=$((2 * rounds)) # put runs in both loops
	callgrind_annotate "$out" 2>/dev/null |
		awk -v n="$calls" -v f="$f" '/PROGRAM TOTALS/ {
			gsub(",", "", $1); printf "%-22s %7.1f Ir/call\n", f, $1 / n }'
done
