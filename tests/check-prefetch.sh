#!/bin/sh
# The prefetches the fast paths count on are in the built library.  GCC takes
# a helper that only loads and prefetches for pure and drops the call to it,
# prefetches and all, without a word; the helpers are always inlined for that
# reason (ring/spsc_int.h, sched/sched_heap.c).  This disassembles the library
# and fails when a function below has no prefetch instruction.  Run by make
# check, in the build tree.
set -eu
lib=
for f in lib/.libs/libshmq.a lib/.libs/libshmq.so; do
	[ -f "$f" ] && { lib=$f; break; }
done
[ -n "$lib" ] || { echo "check-prefetch: no built lib/.libs/libshmq.{a,so}" >&2; exit 1; }
command -v objdump >/dev/null || { echo "check-prefetch: objdump is missing (binutils)" >&2; exit 1; }

# function:insn:least, how many instructions whose name starts with insn it
# must hold: a bulk send asks for the room the next call fills
# (shmq__spsc_prefetch_room), on x86 with PREFETCHW for the CPUs that have
# it; a cancel starts the four loads of its heap removal
# (heap_prefetch_remove).  (A receive no longer prefetches: with layout 5 a
# 64-byte message is one line, which the copy loads at once.)
want="shmq_pipe_send_bulk:prefetch:1 shmq__heap_cancel:prefetch:4"
case $(uname -m) in
x86_64 | i?86) want="$want shmq_pipe_send_bulk:prefetchw:1" ;;
esac
insns=$(objdump -d --no-show-raw-insn "$lib" | awk '
	/^[0-9a-f]+ <[^>]+>:$/ { f = $2; gsub(/[<>:]/, "", f); next }
	/\tprefetch/ { split($0, t, "\t"); split(t[2], i, " "); print f, i[1] }')
bad=0
for w in $want; do
	f=${w%%:*} rest=${w#*:}
	insn=${rest%%:*} least=${rest#*:}
	got=$(printf '%s\n' "$insns" | awk -v f="$f" -v i="$insn" '$1 == f && index($2, i) == 1' | wc -l)
	if [ "$got" -lt "$least" ]; then
		echo "check-prefetch: $f has $got $insn* instructions in $lib, wants at least $least" >&2
		bad=1
	else
		echo "check-prefetch: $f: $got $insn*"
	fi
done
exit $bad
