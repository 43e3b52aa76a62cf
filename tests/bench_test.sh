# SPDX-License-Identifier: MIT
# Sourced by the tests that run shmq-bench (tests/test_bench_*.sh,
# tests/test_report.sh): the bench's path from the build directory, a
# temporary directory removed on exit, fail, bench_run and bench_row.
# shellcheck shell=sh

BENCH=${SHMQ_TEST_BENCH:-./tools/shmq-bench} # another build's bench, to test the test
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# bench_run OUT ARGS...: shmq-bench --quick --runs 1 ARGS, its output (both
# streams) into OUT; on failure print it and fail.
bench_run() {
	out=$1
	shift
	"$BENCH" --quick --runs 1 "$@" > "$out" 2>&1 || {
		cat "$out" >&2
		fail "shmq-bench $* failed"
	}
}

# bench_row OUT ROW UNIT [BASE]: OUT has the row ROW (an extended regular
# expression) with a number and UNIT in libshmq's column and, given BASE,
# a number and UNIT beside it for the baseline BASE; else print OUT and
# fail.
bench_row() {
	if [ $# -ge 4 ]; then
		bench_re="^ *$2 +[0-9.]+ $3 +[0-9.]+ $3 +$4 "
	else
		bench_re="^ *$2 +[0-9.]+ $3( |\$)"
	fi
	grep -qE "$bench_re" "$1" || { cat "$1" >&2; fail "no row '$2'${4:+ beside $4}"; }
}
