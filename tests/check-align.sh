#!/bin/sh
# The hot entry points marked SHMQ__LINE_START (core/compiler_int.h) start on
# a cache line in the built library: the pipe's polled round trip moved by
# 13-17% with their offset within a line.  Run by make check, in the build
# tree.
set -eu
lib=
for f in lib/.libs/libshmq.so lib/.libs/libshmq.a; do
	[ -f "$f" ] && { lib=$f; break; }
done
[ -n "$lib" ] || { echo "check-align: no built lib/.libs/libshmq.{so,a}" >&2; exit 1; }
command -v nm >/dev/null || { echo "check-align: nm is missing (binutils)" >&2; exit 1; }

want="shmq_pipe_send shmq_pipe_recv"
bad=0
for f in $want; do
	addr=$(nm "$lib" | awk -v f="$f" '$3 == f && ($2 == "T" || $2 == "t") { print $1; exit }')
	if [ -z "$addr" ]; then
		echo "check-align: $f is not in $lib" >&2
		bad=1
	elif [ $((0x$addr % 64)) -ne 0 ]; then
		echo "check-align: $f starts at 0x$addr in $lib, not on a 64-byte line" >&2
		bad=1
	else
		echo "check-align: $f: 0x$addr"
	fi
done
exit $bad
