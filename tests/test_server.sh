#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/server: start the pre-forked server on loopback (port 0, 4 workers),
# drive 10^4 INCRs from 8 concurrent clients over 37 keys, kill a worker
# while it holds a stripe lock mid-update (CRASH), then SIGTERM the server.
# Checks: exit status 0; per key the replies are exactly 1..total; the final
# counters equal the requests per key; the log has one line per increment,
# every (key, count) once; the dead holder was repaired and respawned.
# Then SIGTERM under load: the log still matches the counters exactly.
# Every wait is bounded.
set -u

SRV=./examples/server/server
CLI=./examples/server/client
tmp=$(mktemp -d)
srv=
cli=

cleanup() {
	if [ -n "$cli" ]; then
		kill -KILL "$cli" 2>/dev/null
		wait "$cli" 2>/dev/null
	fi
	if [ -n "$srv" ]; then
		kill -KILL "$srv" 2>/dev/null
		wait "$srv" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*" >&2
	for f in "$tmp"/server.err "$tmp"/client.err; do
		[ -f "$f" ] && { echo "== ${f##*/}"; tail -n 40 "$f"; } >&2
	done
	exit 1
}

# running PID: true while PID has not exited.  A zombie has exited, and so
# has a process the shell reaped on its own already (its status file is gone).
running() {
	st=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

[ -d /proc/self ] || { echo "SKIP: needs /proc"; exit 77; }

# start_server ARGS...: run it in the background; sets $srv and $port.  The
# port line comes once every worker listens (60 s: sanitizer builds on a
# loaded machine).
start_server() {
	# Emptied here, before the start: the redirection below happens in the
	# background child, and until it has run, the loop would read the last
	# server's port line (its clients then met "Connection refused").
	: >"$tmp/server.out"
	"$SRV" "$@" >"$tmp/server.out" 2>"$tmp/server.err" &
	srv=$!
	port=
	i=0
	while [ $i -lt 600 ]; do
		port=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$tmp/server.out")
		[ -n "$port" ] && return
		running "$srv" || fail "server exited during startup"
		sleep 0.1
		i=$((i + 1))
	done
	fail "no port line within 60 s"
}

# stop_server: SIGTERM; it must exit, with status 0, within 60 s.
stop_server() {
	kill -TERM "$srv"
	i=0
	while running "$srv" && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	running "$srv" && fail "server still running 60 s after SIGTERM"
	wait "$srv"
	st=$?
	srv=
	[ $st -eq 0 ] || fail "server exit status $st"
	tail -n 3 "$tmp/server.err"
}

start_server -x -i 250 0 4 "$tmp/access.log"
timeout 120 "$CLI" -c 8 -n 10000 -k 37 -t 30 127.0.0.1 "$port" >"$tmp/load.out" 2>"$tmp/client.err" ||
	fail "load client failed (status $?)"
cat "$tmp/client.err"
timeout 120 "$CLI" -C k0 -t 30 127.0.0.1 "$port" >"$tmp/crash.out" 2>>"$tmp/client.err" ||
	fail "crash client failed (status $?)"
# The client's retry may be served before the master has reaped the crashed
# worker; stopping then would (rightly) leave it unrespawned.  Wait for it.
i=0
while ! grep -q 'respawned as pid' "$tmp/server.err" && [ $i -lt 600 ]; do
	running "$srv" || fail "server exited after the CRASH"
	sleep 0.1
	i=$((i + 1))
done
stop_server

grep -q 'repaired after a dead holder' "$tmp/server.err" || fail "no repair after the CRASH"
grep -q 'respawned as pid' "$tmp/server.err" || fail "the crashed worker was not respawned"

# The access log, PID SEQ KEY COUNT per line, checked against want[KEY] (the
# final count): every count in 1..want, none twice; n counts the lines.
log_rule='
{
	n++
	if (NF != 4 || !($3 in want) || $4 < 1 || $4 > want[$3]) { print "log line " NR ": " $0; bad = 1; next }
	if (($3, $4) in seen) { print "log line " NR ": duplicate " $3 " " $4; bad = 1 }
	seen[$3, $4] = 1
}
'

# load.out: KEY FIRST LAST; crash.out: KEY COUNT (one more increment);
# server.out: final KEY COUNT; access.log: PID SEQ KEY COUNT.
awk -v load="$tmp/load.out" -v crash="$tmp/crash.out" -v final="$tmp/server.out" '
BEGIN {
	while ((getline l < load) > 0) {
		split(l, f, " ")
		if (f[2] != 1) { print "replies to " f[1] " start at " f[2]; bad = 1 }
		want[f[1]] = f[3]; nkeys++
	}
	if (nkeys != 37) { print "load output has " nkeys " keys"; bad = 1 }
	while ((getline l < crash) > 0) {
		split(l, f, " ")
		if (f[2] != want[f[1]] + 1) { print "after the crash " f[1] " is " f[2]; bad = 1 }
		want[f[1]] = f[2]
	}
	for (k in want) total += want[k]
	if (total != 10001) { print "replies count " total " increments, not 10001"; bad = 1 }
	while ((getline l < final) > 0) {
		split(l, f, " ")
		if (f[1] != "final") continue
		if (want[f[2]] != f[3]) { print "final " f[2] " " f[3] ", want " want[f[2]]; bad = 1 }
		nfinal++
	}
	if (nfinal != 37) { print nfinal " final counters, want 37"; bad = 1 }
}
'"$log_rule"'
END {
	if (n != total) { print "log has " n " lines, want " total; bad = 1 }
	exit bad
}' "$tmp/access.log" >&2 || fail "inconsistent counters or log"
echo "ok: 10001 increments, replies, counters and log consistent"

# SIGTERM under load: 8 connections with 8 requests in flight each.  The
# workers answer what they have read and log it; the logger writes every
# line: per key the log holds exactly 1..final, wherever the load was cut.
start_server -i 250 0 2 "$tmp/access2.log"
timeout 120 "$CLI" -c 8 -d 8 -n 10000000 -k 37 -t 30 127.0.0.1 "$port" >/dev/null 2>"$tmp/client.err" &
cli=$!
i=0
# (the server's logger makes the file: until it has, it holds no line)
while [ $i -lt 600 ] && [ "$(cat "$tmp/access2.log" 2>/dev/null | wc -l)" -lt 2000 ]; do
	sleep 0.1
	i=$((i + 1))
done
stop_server
# The client fails once its connections close; give it 10 s to notice.
i=0
while running "$cli" && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
kill -TERM "$cli" 2>/dev/null
wait "$cli"
cli=
awk -v final="$tmp/server.out" '
BEGIN {
	while ((getline l < final) > 0) {
		split(l, f, " ")
		if (f[1] == "final") { want[f[2]] = f[3]; total += f[3] }
	}
	if (total < 2000) { print "only " total " increments before SIGTERM"; bad = 1 }
}
'"$log_rule"'
END {
	if (n != total) { print "log has " n " lines, counters say " total; bad = 1 }
	if (!bad) print "ok: stopped under load after " total " increments, each logged once"
	exit bad
}' "$tmp/access2.log" >&2 || fail "log and counters disagree after a stop under load"
