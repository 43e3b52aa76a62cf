#!/bin/sh
# SPDX-License-Identifier: MIT
# shmq ls / stat / watch / rm against regions this test makes: a plain one, one
# whose creator is still attached, one whose creator died attached, one with a
# corrupt header, one with a corrupt directory entry, a foreign file, and one
# with two pools (one running with a dead worker, one closed and joined), and
# one whose objects' callers slept on their futexes and were woken (waits, wakes);
# and anonymous (memfd) regions of a live process, found through /proc.
# Every --json output must parse; looking at a region must not change a byte.
set -u

SHMQ=./tools/shmq
MK=./tests/tools_mkregion
ANON=./tests/helper_anon
p="shmq-test-tools-$$"
tmp=$(mktemp -d)
holder=
pool_holder=
anon=

cleanup() {
	if [ -n "$anon" ]; then
		kill "$anon" 2>/dev/null
		wait "$anon" 2>/dev/null
	fi
	if [ -n "$holder" ]; then
		kill "$holder" 2>/dev/null
		wait "$holder" 2>/dev/null
	fi
	if [ -n "$pool_holder" ]; then
		kill "$pool_holder" 2>/dev/null
		wait "$pool_holder" 2>/dev/null
	fi
	rm -f /dev/shm/"$p"-* /dev/shm/."$p"-*
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 is needed to check the JSON"; exit 77; }
[ -d /dev/shm ] || { echo "SKIP: no /dev/shm"; exit 77; }

# q FILE EXPR: evaluate a Python expression over the JSON document d in FILE.
# The expression may call check(d) (ls) or expect(d, "OBJ.KEY=VALUE", ...)
# (stat; "OBJ.KEY>=N" for a number at least N), which print each mismatch on
# stderr.
q() {
	python3 - "$1" "$2" "$p" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = sys.argv[3]

def check(d):
    st = {r["name"]: r for r in d["regions"]}
    want = {"plain": "ok", "dead": "ok", "live": "ok", "corrupt": "corrupt", "baddir": "ok"}
    for n, w in want.items():
        got = st.get("/%s-%s" % (p, n), {}).get("status")
        if got != w:
            print("%s is %s, want %s" % (n, got, w), file=sys.stderr)
    if st.get("/%s-baddir" % p, {}).get("directory_corrupt") is not True:
        print("baddir's corrupt entry not flagged", file=sys.stderr)
    if st.get("/%s-live" % p, {}).get("procs_alive") != 1:
        print("live region should have 1 live process", file=sys.stderr)

def pools(d):
    return sorted(((o["name"], o["state"]) for o in d.get("object_list", [])
                   if o["type"] == "pool"), key=lambda x: x[0])

def pool_check(d, holder):
    ps = pools(d)
    if len(ps) != 2:
        print("want 2 pools, got %d: %s" % (len(ps), ps), file=sys.stderr)
        return
    (_, closed), (_, run) = ps
    want_closed = {"state": "exited", "closed": True, "workers": 1, "workers_alive": 0,
                   "jobs": 0, "tasks_queued": 0, "tasks_running": 0, "workers_listed": 1}
    want_run = {"state": "running", "closed": False, "workers": 2, "workers_alive": 1,
                "jobs": 1, "tasks_queued": 6, "tasks_running": 2, "tasks": 100,
                "restarts": 0, "sleepers": 0, "creator_pid": int(holder),
                "creator_alive": True, "workers_listed": 2, "w0_alive": True,
                "w1_alive": False, "w0_restarts": 0, "w1_restarts": 0}
    for st, want in ((closed, want_closed), (run, want_run)):
        for k, v in want.items():
            if st.get(k) != v:
                print("pool %s: %s is %s, want %s" % (st.get("state"), k, st.get(k), v),
                      file=sys.stderr)
    if not (run.get("w0_pid", 0) > 0 and run.get("w1_pid", 0) > 0 and
            run["w0_pid"] != run["w1_pid"]):
        print("pool worker pids: %s %s" % (run.get("w0_pid"), run.get("w1_pid")), file=sys.stderr)
    if run.get("w0_tasks", 0) + run.get("w1_tasks", 0) != 100:
        print("pool tasks per worker do not add up to 100", file=sys.stderr)

def expect(d, *checks):
    objs = {o["name"]: o for o in d.get("object_list", [])}
    for c in checks:
        atleast = ">=" in c
        lhs, want = c.split(">=" if atleast else "=", 1)
        name, key = lhs.rsplit(".", 1)  # object names may hold dots, keys never
        got = objs.get(name, {}).get("state", {}).get(key, "<missing>")
        if atleast:
            if not isinstance(got, int) or isinstance(got, bool) or got < int(want):
                print("%s is %s, want >= %s" % (lhs, got, want), file=sys.stderr)
        elif str(got) != want:
            print("%s is %s, want %s" % (lhs, got, want), file=sys.stderr)

print(eval(sys.argv[2]))
PY
}

# expect FILE WHAT OBJ.KEY=VALUE|OBJ.KEY>=N...: facts of objects in a stat --json document.
expect() {
	f=$1
	what=$2
	shift 2
	args=""
	for c in "$@"; do
		args="$args, '$c'"
	done
	out=$(q "$f" "expect(d$args)" 2>&1 >/dev/null)
	[ -z "$out" ] || fail "$what: $out"
}

# run_json OUT ARGS...: run shmq --json ARGS, keep stdout in OUT, check it parses.
run_json() {
	out=$1
	shift
	"$SHMQ" --json "$@" > "$out"
	rc=$?
	python3 -m json.tool "$out" > /dev/null || fail "shmq --json $* printed invalid JSON"
	return $rc
}

# ---- the regions ----
$MK plain "$p-plain" || fail "make plain"
$MK die "$p-dead" 2>/dev/null
[ -e /dev/shm/"$p-dead" ] || fail "make dead"
$MK corrupt "$p-corrupt" || fail "make corrupt"
$MK baddir "$p-baddir" || fail "make baddir"
$MK foreign "$p-foreign" || fail "make foreign"
# a name may start with a dot (only all dots is refused): listed like any
$MK plain ".$p-dot" || fail "make dot"
$MK sleepy "$p-sleepy" || fail "make sleepy (a caller that should have slept and been woken)"
$MK bridge "$p-bridge" || fail "make bridge (bridge checkpoints)"
# holds until cleanup kills it (the test may run long on a loaded machine)
$MK hold "$p-live" 900 > "$tmp/holder.out" &
holder=$!
i=0
until grep -q ready "$tmp/holder.out" 2>/dev/null; do
	i=$((i + 1))
	kill -0 "$holder" 2>/dev/null || fail "holder died before it was ready"
	[ $i -lt 1200 ] || fail "holder never became ready"
	sleep 0.05
done
# pools: workers are processes, give them time on a loaded machine
$MK pool "$p-pool" 900 > "$tmp/pool.out" &
pool_holder=$!
i=0
until grep -q ready "$tmp/pool.out" 2>/dev/null; do
	i=$((i + 1))
	kill -0 "$pool_holder" 2>/dev/null || fail "pool holder died before it was ready"
	[ $i -lt 1200 ] || fail "pool holder never became ready"
	sleep 0.05
done

cksum /dev/shm/"$p"-* > "$tmp/before"

# ---- ls ----
"$SHMQ" ls > "$tmp/ls.txt" || fail "shmq ls exit status"
grep -q "^/$p-plain  *ok " "$tmp/ls.txt" || fail "ls: plain not ok: $(cat "$tmp/ls.txt")"
grep -q "^/$p-corrupt  *corrupt " "$tmp/ls.txt" || fail "ls: corrupt region not reported"
grep -q "^/$p-baddir  *corrupt-dir " "$tmp/ls.txt" || fail "ls: corrupt directory not reported"
grep -q "^/$p-foreign " "$tmp/ls.txt" && fail "ls: a foreign file is listed without --all"
"$SHMQ" ls --all | grep -q "^/$p-foreign  *foreign " || fail "ls --all: foreign file not reported"
grep -q "^/\.$p-dot  *ok " "$tmp/ls.txt" || fail "ls: a region whose name starts with a dot is not listed"

run_json "$tmp/ls.json" ls || fail "shmq --json ls exit status"
q "$tmp/ls.json" "check(d)" 2>&1 >/dev/null | grep . && fail "ls --json"

# ---- stat ----
run_json "$tmp/plain.json" stat "$p-plain" || fail "stat plain exit status"
[ "$(q "$tmp/plain.json" "sorted((o['name'], o['type']) for o in d['object_list'])")" = \
  "[('broken', 'barrier'), ('chan', 'pipe'), ('counters', 'blob'), ('done', 'queue'), ('gate', 'barrier'), ('jobs', 'queue'), ('mutex', 'lock'), ('spare', 'lock'), ('table', 'blob')]" ] ||
	fail "stat plain: objects $(cat "$tmp/plain.json")"
# a 100-byte message is one 104-byte record (padded to 8; its length in a descriptor apart)
expect "$tmp/plain.json" "stat plain" mutex.held=False spare.held=False table.bytes=4096 \
	gate.parties=3 gate.waiting=0 gate.generation=0 gate.broken=False broken.broken=True \
	jobs.depth=3 jobs.capacity=8 jobs.unit=msgs jobs.msgs_in=3 jobs.msgs_out=0 \
	jobs.shutdown=False jobs.sleepers=0 done.shutdown=True done.capacity=5 done.depth=0 \
	chan.depth_0to1=104 chan.depth_1to0=0 chan.bytes_in=104 chan.bytes_out=0 chan.unit=bytes
# nobody ever had to sleep here: no futex wait, and no wake call for anybody
expect "$tmp/plain.json" "stat plain (no contention)" mutex.waits=0 mutex.wakes=0 \
	spare.waits=0 spare.wakes=0 gate.waits=0 gate.wakes=0 broken.waits=0 broken.wakes=0 \
	jobs.waits=0 jobs.wakes=0 done.waits=0 chan.waits=0 chan.wakes=0 \
	chan.end0_waits=0 chan.end1_waits=0
[ "$(q "$tmp/plain.json" "len(d['process_table'])")" = 0 ] || fail "stat plain: creator detached, table not empty"

# a caller of each object slept on its futex and another woke it
run_json "$tmp/sleepy.json" stat "$p-sleepy" || fail "stat sleepy exit status"
expect "$tmp/sleepy.json" "stat sleepy (callers slept and were woken)" \
	"slock.waits>=1" "slock.wakes>=1" "sbar.waits>=1" "sbar.wakes>=1" \
	"squeue.waits>=1" "squeue.wakes>=1" "squeue.getter_waits>=1" "squeue.getter_wakes>=1" \
	squeue.putter_waits=0 "squeue.msgs_in>=1" "squeue.msgs_out>=1" \
	"spipe.waits>=1" "spipe.wakes>=1" "spipe.end1_waits>=1" "spipe.end1_wakes>=1" \
	spipe.end0_waits=0 idle.waits=0 idle.wakes=0
"$SHMQ" stat "$p-sleepy" > "$tmp/sleepy.txt"
grep -q "^  slock  *lock  *bytes=128 held=no contended=no waits=[1-9][0-9]* wakes=[1-9]" "$tmp/sleepy.txt" ||
	fail "stat (table): lock waits and wakes: $(grep slock "$tmp/sleepy.txt")"

# bridge checkpoints (libshmq-bridge's blobs, made without a server): their
# cursors, state, holder and doubt; an impossible one is flagged corrupt; a
# plain blob stays a plain blob
run_json "$tmp/bridge.json" stat "$p-bridge"
expect "$tmp/bridge.json" "stat bridge (checkpoints)" \
	bridge.jobs.bridge=in bridge.jobs.version=2 bridge.jobs.state=running \
	bridge.jobs.read=45 bridge.jobs.acked=41 bridge.jobs.pending=42 bridge.jobs.in_doubt=2 \
	bridge.jobs.rewinds=3 bridge.jobs.holder_pid=4242 \
	bridge.out.bridge=out bridge.out.version=1 bridge.out.state=stopped bridge.out.acked=7 \
	bridge.out.read=9 bridge.out.looped=5 bridge.out.holder_pid=77 \
	bridge.bad.dir=9 plainblob.bytes=128 plainblob.bridge="<missing>"
[ "$(q "$tmp/bridge.json" "[o['corrupt'] for o in d['object_list'] if o['name'] == 'bridge.bad']")" = "[True]" ] ||
	fail "stat bridge: an impossible checkpoint is not flagged corrupt"
[ "$(q "$tmp/bridge.json" "[o['corrupt'] for o in d['object_list'] if o['name'] != 'bridge.bad']")" = "[False, False, False]" ] ||
	fail "stat bridge: a valid checkpoint or a plain blob flagged corrupt"
"$SHMQ" stat "$p-bridge" > "$tmp/bridge.txt"
grep -q "^  bridge.jobs  *blob  *bytes=128 bridge=in version=2 state=running read=45 acked=41 pending=42 in_doubt=2 rewinds=3 holder_pid=4242$" "$tmp/bridge.txt" ||
	fail "stat (table): bridge checkpoint: $(grep bridge.jobs "$tmp/bridge.txt")"

run_json "$tmp/dead.json" stat "$p-dead" || fail "stat dead exit status"
[ "$(q "$tmp/dead.json" "[(p['alive']) for p in d['process_table']]")" = "[False]" ] ||
	fail "stat dead: the dead creator is not reported dead: $(cat "$tmp/dead.json")"

expect "$tmp/dead.json" "stat dead (creator killed holding the lock)" \
	mutex.held=True mutex.holder_alive=False spare.held=False chan.end0_alive=0 chan.end1_alive=0

run_json "$tmp/live.json" stat "$p-live" || fail "stat live exit status"
expect "$tmp/live.json" "stat live" mutex.held=True "mutex.holder_pid=$holder" mutex.holder_alive=True \
	chan.end0_alive=1 chan.end1_alive=1 chan.closed=False
[ "$(q "$tmp/live.json" "[(p['pid'], p['alive']) for p in d['process_table']]")" = "[($holder, True)]" ] ||
	fail "stat live: holder $holder not reported alive: $(cat "$tmp/live.json")"

run_json "$tmp/baddir.json" stat "$p-baddir" || fail "stat baddir exit status"
[ "$(q "$tmp/baddir.json" "sum(o['corrupt'] for o in d['object_list'])")" = 1 ] ||
	fail "stat baddir: the corrupt entry is not reported"

run_json "$tmp/corrupt.json" stat "$p-corrupt" && fail "stat corrupt: exit status 0"
[ "$(q "$tmp/corrupt.json" "d['status']")" = corrupt ] || fail "stat corrupt: status"
run_json "$tmp/foreign.json" stat "$p-foreign" && fail "stat foreign: exit status 0"
[ "$(q "$tmp/foreign.json" "d['status']")" = foreign ] || fail "stat foreign: status"
run_json "$tmp/missing.json" stat "$p-missing" && fail "stat missing: exit status 0"
[ "$(q "$tmp/missing.json" "d['status']")" = missing ] || fail "stat missing: status"
"$SHMQ" stat "$p-live" > "$tmp/live.txt"
grep -q "^  table  *blob  *bytes=4096" "$tmp/live.txt" || fail "stat (table): object line"
grep -q "^  mutex  *lock  *bytes=128 held=yes contended=no holder_pid=$holder holder_alive=yes" "$tmp/live.txt" ||
	fail "stat (table): lock line: $(grep mutex "$tmp/live.txt")"

# a pool: its workers (pid, alive), tasks per worker, steals, tasks queued and
# running, closed or not; the creator makes no pool call, so the dead worker
# stays dead and the region stays still while we look
run_json "$tmp/pool.json" stat "$p-pool" || fail "stat pool exit status"
q "$tmp/pool.json" "pool_check(d, $pool_holder)" 2>&1 >/dev/null | grep . &&
	fail "stat pool --json: $(cat "$tmp/pool.json")"
"$SHMQ" stat "$p-pool" > "$tmp/pool.txt" || fail "stat pool (table) exit status"
grep -q "^  pool\.[0-9]*\.[0-9]*  *pool .* state=running closed=no workers=2 workers_alive=1 jobs=1 tasks_queued=6 tasks_running=2 " "$tmp/pool.txt" ||
	fail "stat pool (table): running pool line: $(cat "$tmp/pool.txt")"
grep -q "^  pool\.[0-9]*\.[0-9]*  *pool .* state=exited closed=yes workers=1 workers_alive=0 " "$tmp/pool.txt" ||
	fail "stat pool (table): closed pool line: $(cat "$tmp/pool.txt")"
grep -q " w1_alive=no " "$tmp/pool.txt" || fail "stat pool (table): dead worker not shown"

# ---- watch ----
"$SHMQ" --json watch "$p-live" --count 2 --interval 0.1 > "$tmp/watch.jsonl" || fail "watch exit status"
[ "$(wc -l < "$tmp/watch.jsonl")" -eq 2 ] || fail "watch --count 2: $(wc -l < "$tmp/watch.jsonl") lines"
while read -r line; do
	printf '%s\n' "$line" | python3 -m json.tool > /dev/null || fail "watch --json: invalid line"
done < "$tmp/watch.jsonl"
# the second refresh has rates: nothing moves in these regions, so every
# object with message, wait and wake counters shows 0 per second
tail -n 1 "$tmp/watch.jsonl" > "$tmp/watch2.json"
[ "$(q "$tmp/watch2.json" "sorted((o['name'], o['rate_in'], o['rate_waits'], o['rate_wakes']) for o in d['object_list'] if o['type'] == 'queue')")" = \
  "[('done', 0, 0, 0), ('jobs', 0, 0, 0)]" ] ||
	fail "watch --json: queue rates: $(cat "$tmp/watch2.json")"
[ "$(q "$tmp/watch2.json" "[(o['rate_waits'], o['rate_wakes']) for o in d['object_list'] if o['name'] == 'mutex']")" = "[(0, 0)]" ] ||
	fail "watch --json: lock wait rates: $(cat "$tmp/watch2.json")"
"$SHMQ" watch "$p-sleepy" --count 2 --interval 0.1 > "$tmp/watch.txt" || fail "watch (table) exit status"
grep -q "^  squeue .* in=0 msgs/s out=0 msgs/s waits=0/s wakes=0/s" "$tmp/watch.txt" ||
	fail "watch (table): queue rates: $(grep squeue "$tmp/watch.txt")"

# ---- looking changed nothing ----
cksum /dev/shm/"$p"-* > "$tmp/after"
cmp -s "$tmp/before" "$tmp/after" || fail "reading regions changed them: $(diff "$tmp/before" "$tmp/after")"

# ---- hostile bytes: shmq stat never crashes, always prints valid JSON ----
$MK plain "$p-fuzz" || fail "make fuzz"
python3 - "/dev/shm/$p-fuzz" "$SHMQ" "$p-fuzz" <<'PY' || fail "shmq stat on a corrupted region"
import json, os, random, subprocess, sys
path, shmq, name = sys.argv[1:4]
rnd = random.Random(4242)
size = os.path.getsize(path)
with open(path, "r+b") as f:
    for round in range(80):
        for _ in range(6):               # past the header: process table, directory, objects
            # mostly where region.c puts the directory and the first objects
            # (36 KiB on); the layout only steers the aim, any byte may be hit
            x = rnd.random()
            off = (rnd.randrange(36864, 45056) if x < 0.3 else
                   rnd.randrange(45056, 60000) if x < 0.8 else rnd.randrange(64, size))
            f.seek(off)
            f.write(bytes([rnd.randrange(256)]))
        f.flush()
        r = subprocess.run([shmq, "--json", "stat", name], capture_output=True, text=True)
        assert r.returncode in (0, 1), "round %d: exit %d %s" % (round, r.returncode, r.stderr)
        json.loads(r.stdout)
PY

# ---- hostile names: an object name in the region with terminal control
# bytes (create refuses them, a writer to the region need not) is printed
# without them: the table is for a terminal ----
$MK plain "$p-esc" || fail "make esc"
python3 - "/dev/shm/$p-esc" <<'PY' || fail "esc: no object named jobs"
import sys
path = sys.argv[1]
with open(path, "r+b") as f:
    d = f.read()
    i = d.find(b"jobs\0")
    if i < 0:
        sys.exit(1)
    f.seek(i)
    f.write(b"\x1b]0\n")  # an OSC start and a line break, as long as "jobs"
PY
"$SHMQ" stat "$p-esc" > "$tmp/esc.txt"
rc=$?
[ $rc -le 1 ] || fail "stat on hostile names: exit $rc"
python3 - "$tmp/esc.txt" <<'PY' || fail "stat printed control bytes from the region: $(od -c "$tmp/esc.txt" | head -5)"
import re, sys
data = open(sys.argv[1], "rb").read()
clean = not any((b < 0x20 and b != 0x0a) or b == 0x7f for b in data)
sys.exit(0 if clean and re.search(rb"^  \?\]0\? +queue ", data, re.M) else 1)
PY
"$SHMQ" rm --force "$p-esc" > /dev/null || fail "rm esc"

# ---- not a file: a FIFO under /dev/shm is no region, and looking at it must
# not wait for a writer to open it (stat, watch and rm all look first) ----
mkfifo "/dev/shm/$p-fifo" || fail "mkfifo"
for cmd in "stat" "watch --count 1" "rm"; do
	# shellcheck disable=SC2086 # cmd carries its options
	timeout 20 "$SHMQ" $cmd "$p-fifo" > "$tmp/fifo.txt" 2>&1
	rc=$?
	[ $rc -eq 1 ] || fail "$cmd on a FIFO: exit $rc (124: it waited for a writer)"
	grep -q "not a libshmq region" "$tmp/fifo.txt" || fail "$cmd on a FIFO: $(cat "$tmp/fifo.txt")"
done
[ -p "/dev/shm/$p-fifo" ] || fail "rm removed a FIFO without --force"
rm -f "/dev/shm/$p-fifo"

# ---- anonymous (memfd) regions: ls finds them through /proc, stat takes PID:FD ----
# the helper holds a region with a queue "work" (2 of 8 messages), a memfd
# "shmq" of junk, one "shmq" with libshmq's header at the wrong size, another
# program's memfd "other", and a forked child holding all of them too
$ANON 900 > "$tmp/anon.out" &
anon=$!
i=0
until grep -q ready "$tmp/anon.out" 2>/dev/null; do
	i=$((i + 1))
	kill -0 "$anon" 2>/dev/null || fail "anonymous-region holder died before it was ready"
	[ $i -lt 1200 ] || fail "anonymous-region holder never became ready"
	sleep 0.05
done
read -r _ apid rfd ffd cfd ofd cpid < "$tmp/anon.out"
[ "$apid" = "$anon" ] || fail "helper_anon: pid $apid, want $anon"
cksum "/proc/$apid/fd/$rfd" > "$tmp/anon.before"

"$SHMQ" ls > "$tmp/ls2.txt" || fail "shmq ls (anonymous) exit status"
grep -q "^$apid:$rfd  *ok  *256.0 KiB .* 1  *1/1  anonymous (memfd:shmq), held by $apid $cpid\$" "$tmp/ls2.txt" ||
	fail "ls: anonymous region not listed: $(grep -v '^/' "$tmp/ls2.txt")"
# one region held by two processes is one row, shown through its first holder
[ "$(grep -c " held by $apid $cpid\$" "$tmp/ls2.txt")" -eq 2 ] ||
	fail "ls: want the region and the corrupt memfd once each: $(grep -v '^/' "$tmp/ls2.txt")"
grep -q "^$cpid:" "$tmp/ls2.txt" && fail "ls: the child's copy of the same memfds listed again"
shown=$(awk -v ok="$apid:$rfd" '$1 == ok { print $1 }' "$tmp/ls2.txt")
# a memfd with libshmq's header at the wrong size: an error line, not trusted
grep -q "^$apid:$cfd  *corrupt " "$tmp/ls2.txt" || fail "ls: corrupt memfd not reported"
grep -q "^$apid:$ffd " "$tmp/ls2.txt" && fail "ls: a foreign memfd is listed without --all"
grep -q "^$apid:$ofd " "$tmp/ls2.txt" && fail "ls: another program's memfd is listed"
"$SHMQ" ls --all > "$tmp/ls2all.txt" || fail "shmq ls --all (anonymous) exit status"
grep -q "^$apid:$ffd  *foreign " "$tmp/ls2all.txt" || fail "ls --all: foreign memfd not reported"
grep -q "^$apid:$ofd " "$tmp/ls2all.txt" && fail "ls --all: another program's memfd is listed"

run_json "$tmp/ls2.json" ls || fail "shmq --json ls (anonymous) exit status"
[ "$(q "$tmp/ls2.json" "[(r['status'], r['anonymous'], r['pid'], r['fd'], r['held_by'], r['objects']) for r in d['regions'] if r['name'] == '$apid:$rfd']")" = \
  "[('ok', True, $apid, $rfd, [$apid, $cpid], 1)]" ] || fail "ls --json: anonymous region: $(cat "$tmp/ls2.json")"

for n in "$apid:$rfd" "$shown" "$cpid:$rfd"; do
	run_json "$tmp/anon.json" stat "$n" || fail "stat $n exit status"
	expect "$tmp/anon.json" "stat $n" work.depth=2 work.capacity=8 work.msgs_in=2 work.msgs_out=0
	[ "$(q "$tmp/anon.json" "(d['name'], [(p['pid'], p['alive']) for p in d['process_table']])")" = \
	  "('$n', [($apid, True)])" ] || fail "stat $n: $(cat "$tmp/anon.json")"
done
"$SHMQ" stat "$shown" > "$tmp/anon.txt" || fail "stat $shown (table) exit status"
grep -q "^  work  *queue  *bytes=[0-9]* depth=2 capacity=8 " "$tmp/anon.txt" ||
	fail "stat $shown (table): queue line: $(cat "$tmp/anon.txt")"
run_json "$tmp/anon.json" stat "$apid:$cfd" && fail "stat corrupt memfd: exit status 0"
[ "$(q "$tmp/anon.json" "d['status']")" = corrupt ] || fail "stat corrupt memfd: status"
run_json "$tmp/anon.json" stat "$apid:$ffd" && fail "stat foreign memfd: exit status 0"
[ "$(q "$tmp/anon.json" "d['status']")" = foreign ] || fail "stat foreign memfd: status"
run_json "$tmp/anon.json" stat "$apid:$ofd" && fail "stat other memfd: exit status 0"
[ "$(q "$tmp/anon.json" "d['status']")" = foreign ] || fail "stat other memfd: status"
run_json "$tmp/anon.json" stat "$apid:1" && fail "stat of a non-memfd descriptor: exit status 0"
run_json "$tmp/anon.json" stat "$apid:9999" && fail "stat of a closed descriptor: exit status 0"
[ "$(q "$tmp/anon.json" "d['status']")" = missing ] || fail "stat closed descriptor: status"
"$SHMQ" rm "$apid:$rfd" 2>/dev/null && fail "rm: 'removed' an anonymous region"
cksum "/proc/$apid/fd/$rfd" > "$tmp/anon.after"
cmp -s "$tmp/anon.before" "$tmp/anon.after" || fail "reading an anonymous region changed it"

# once its processes are gone, so is the region
kill "$anon"
wait "$anon" || fail "anonymous-region holder exit status"
anon=
"$SHMQ" ls --all > "$tmp/ls3.txt" || fail "shmq ls (after exit) exit status"
grep -Eq "^($apid|$cpid):" "$tmp/ls3.txt" && fail "ls: anonymous region still listed after its holders exited"

# ---- rm ----
"$SHMQ" rm "$p-live" 2> "$tmp/rm.err" && fail "rm: removed a region with a live process attached"
grep -q "$holder" "$tmp/rm.err" || fail "rm: refusal does not name the live pid"
[ -e /dev/shm/"$p-live" ] || fail "rm: refused, yet the region is gone"
run_json "$tmp/rm.json" rm "$p-dead" || fail "rm dead (creator died): refused"
[ "$(q "$tmp/rm.json" "d['removed']")" = True ] || fail "rm --json: removed"
[ -e /dev/shm/"$p-dead" ] && fail "rm dead: still there"
"$SHMQ" rm "$p-corrupt" 2>/dev/null && fail "rm: removed a corrupt region without --force"
"$SHMQ" rm "$p-foreign" 2>/dev/null && fail "rm: removed a foreign file without --force"
"$SHMQ" rm --force "$p-corrupt" > /dev/null || fail "rm --force corrupt"
"$SHMQ" rm --force "$p-foreign" > /dev/null || fail "rm --force foreign"
"$SHMQ" rm --force "$p-live" > /dev/null || fail "rm --force live"
"$SHMQ" rm "$p-plain" > /dev/null || fail "rm plain"
"$SHMQ" rm "$p-plain" 2>/dev/null && fail "rm of a missing region succeeded"
"$SHMQ" rm --force "$p-fuzz" > /dev/null || fail "rm --force fuzz"
kill "$pool_holder"
wait "$pool_holder" || fail "pool holder exit status"
pool_holder=
"$SHMQ" rm "$p-pool" > /dev/null || fail "rm pool (its creator has terminated it)"
"$SHMQ" rm "$p-sleepy" > /dev/null || fail "rm sleepy"
"$SHMQ" rm "$p-bridge" > /dev/null || fail "rm bridge"
for n in dead corrupt foreign live plain fuzz pool sleepy bridge; do
	[ -e /dev/shm/"$p-$n" ] && fail "rm: $n still there"
done
echo "PASS: shmq ls / stat / watch / rm"
exit 0
