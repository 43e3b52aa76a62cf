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

# function:least, prefetch instructions it must hold: a bulk send asks for
# the room the next call fills (shmq__spsc_prefetch_room); a cancel starts
# the four loads of its heap removal (heap_prefetch_remove)
want="shmq_pipe_send_bulk:1 shmq__heap_cancel:4"
counts=$(objdump -d --no-show-raw-insn "$lib" | awk '
	/^[0-9a-f]+ <[^>]+>:$/ { f = $2; gsub(/[<>:]/, "", f); next }
	/\tprefetch/ { n[f]++ }
	END { for (f in n) print f, n[f] }')
bad=0
for w in $want; do
	f=${w%%:*} least=${w#*:}
	got=$(printf '%s\n' "$counts" | awk -v f="$f" '$1 == f { print $2 }')
	if [ "${got:-0}" -lt "$least" ]; then
		echo "check-prefetch: $f has ${got:-0} prefetch instructions in $lib, wants at least $least" >&2
		bad=1
	else
		echo "check-prefetch: $f: $got"
	fi
done
exit $bad
