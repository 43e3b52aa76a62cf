#!/bin/sh
# A program linked against the static library with what
# `pkg-config --static --libs shmq` lists links and runs: the .pc names every
# library the archive needs (liburing, pthread, and jemalloc when configured
# --with-jemalloc).  The same for libshmq-bridge and shmq-bridge.pc when the
# bridge is built.  Run by make check, in the build tree, against the .pc
# files configure made there (never an installed copy); skipped without
# pkg-config or a static library (--disable-static).
set -u
cc=${SHMQ_CC:-cc}
top=${srcdir:-.}
command -v pkg-config >/dev/null 2>&1 || { echo "check-pkgconfig: SKIP: no pkg-config"; exit 77; }
[ -f lib/.libs/libshmq.a ] || { echo "check-pkgconfig: SKIP: no lib/.libs/libshmq.a"; exit 77; }
[ -f lib/shmq.pc ] || { echo "check-pkgconfig: no lib/shmq.pc in the build tree" >&2; exit 1; }
PKG_CONFIG_PATH="$PWD/lib${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
bad=0

# pkg-config --static --libs PKG without the libraries of this tree (-lshmq,
# -lshmq-bridge), whose archives are named instead.
flags_of() {
	out=$(pkg-config --static --libs "$1") || return 1
	flags=
	for w in $out; do
		case $w in
		-lshmq | -lshmq-bridge) ;;
		*) flags="$flags $w" ;;
		esac
	done
	echo "$flags"
}

# link PKG PROGRAM ARCHIVE...: link statically against the archives with the
# .pc's flags, then run the program.
link() {
	pkg=$1 prog=$2
	shift 2
	flags=$(flags_of "$pkg") || { echo "check-pkgconfig: pkg-config --static --libs $pkg fails" >&2; bad=1; return; }
	# shellcheck disable=SC2086 # flags are words
	if ! $cc -I"$top/lib/include" -o "$tmp/$prog" "$tmp/$prog.c" "$@" $flags ${SHMQ_SAN_LDFLAGS:-} \
		>"$tmp/$prog.log" 2>&1; then
		echo "check-pkgconfig: a static link with 'pkg-config --static --libs $pkg' ($flags) fails:" >&2
		sed 's/^/    /' "$tmp/$prog.log" >&2
		bad=1
	elif ! "$tmp/$prog"; then
		echo "check-pkgconfig: $prog, linked statically against $pkg, fails" >&2
		bad=1
	else
		echo "check-pkgconfig: $pkg: static link with$flags"
	fi
}

# Calls into the allocator (jemalloc when configured so), io_uring (the
# scheduler) and pthread (a thread), so each needed library is pulled in.
cat >"$tmp/core.c" <<'PROG'
#include <shmq.h>
static void *fn(void *arg) { return arg; }
int main(int argc, char **argv)
{
	shmq_region *r;
	shmq_sched *s;
	shmq_thread *t;
	void *ret = 0;
	if (shmq_dispatch(argc, argv) != 0 || shmq_region_create(0, 0, &r) != 0)
		return 1;
	if (shmq_sched_create(0, &s) != 0)
		return 2;
	shmq_sched_destroy(s);
	if (shmq_thread_start(fn, r, &t) != 0 || shmq_thread_join(t, SHMQ_FOREVER, &ret) != 0)
		return 3;
	shmq_thread_close(t);
	shmq_region_close(r);
	return ret == (void *)r ? 0 : 4;
}
PROG
link shmq core lib/.libs/libshmq.a

if [ -f lib/.libs/libshmq-bridge.a ] && [ -f lib/shmq-bridge.pc ]; then
	cat >"$tmp/bridge.c" <<'PROG'
#include <shmq.h>
#include <shmq/bridge.h>
#include <errno.h>
int main(void)
{
	struct shmq_bridge_stats st;
	shmq_bridge *b;
	return shmq_bridge_stats(0, &st) == -EINVAL && shmq_bridge_create(0, "q", 0, &b) == -EINVAL ? 0 : 1;
}
PROG
	link shmq-bridge bridge lib/.libs/libshmq-bridge.a lib/.libs/libshmq.a
fi
exit $bad
