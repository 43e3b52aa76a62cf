#!/bin/sh
# `make fuzz`: build each libFuzzer target with clang, ASan and UBSan, from
# the library's sources directly.  usage: build.sh SRCDIR BUILDDIR TARGET... -- LIBSOURCES...
set -eu
srcdir=$1 builddir=$2
shift 2
targets=""
while [ "$1" != "--" ]; do targets="$targets $1"; shift; done
shift
srcs=""
for f in "$@"; do case $f in *.c) srcs="$srcs $srcdir/$f" ;; esac; done
CC=${FUZZ_CC:-clang}
flags="-g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
incs="-I$srcdir/lib/include -I$srcdir/lib -I$builddir -I$srcdir/tests/fuzz"
mkdir -p "$builddir/tests/fuzz"
for t in $targets; do
	echo "  FUZZ     tests/fuzz/fuzz_$t"
	# shellcheck disable=SC2086
	$CC $flags $incs $srcs "$srcdir/tests/fuzz/fuzz_$t.c" \
		$(pkg-config --cflags --libs liburing) -lpthread -o "$builddir/tests/fuzz/fuzz_$t"
done
