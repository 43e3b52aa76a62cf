#!/bin/sh
# SPDX-License-Identifier: MIT
# shmq ls / stat / watch / rm against regions this test makes: a plain one, one
# whose creator is still attached, one whose creator died attached, one with a
# corrupt header, one with a corrupt directory entry, and a foreign file.
# Every --json output must parse; looking at a region must not change a byte.
set -u

SHMQ=./tools/shmq
MK=./tests/tools_mkregion
p="shmq-test-tools-$$"
tmp=$(mktemp -d)
holder=

cleanup() {
	if [ -n "$holder" ]; then
		kill "$holder" 2>/dev/null
		wait "$holder" 2>/dev/null
	fi
	rm -f /dev/shm/"$p"-*
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
q() {
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
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
$MK hold "$p-live" 60 > "$tmp/holder.out" &
holder=$!
i=0
until grep -q ready "$tmp/holder.out" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "holder never became ready"
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

run_json "$tmp/ls.json" ls || fail "shmq --json ls exit status"
st=$(q "$tmp/ls.json" "{r['name']: r['status'] for r in d['regions']}")
for pair in "plain:ok" "dead:ok" "live:ok" "corrupt:corrupt" "baddir:ok"; do
	n=${pair%%:*}
	want=${pair#*:}
	got=$(q "$tmp/ls.json" "[r['status'] for r in d['regions'] if r['name'] == '/$p-$n'][0]")
	[ "$got" = "$want" ] || fail "ls --json: $n is '$got', want '$want' ($st)"
done
[ "$(q "$tmp/ls.json" "[r['directory_corrupt'] for r in d['regions'] if r['name'] == '/$p-baddir'][0]")" = True ] ||
	fail "ls --json: baddir's corrupt entry not flagged"
[ "$(q "$tmp/ls.json" "[r['procs_alive'] for r in d['regions'] if r['name'] == '/$p-live'][0]")" = 1 ] ||
	fail "ls --json: live region should have 1 live process"

# ---- stat ----
run_json "$tmp/plain.json" stat "$p-plain" || fail "stat plain exit status"
[ "$(q "$tmp/plain.json" "sorted((o['name'], o['type']) for o in d['object_list'])")" = \
  "[('broken', 'barrier'), ('chan', 'pipe'), ('counters', 'blob'), ('done', 'queue'), ('gate', 'barrier'), ('jobs', 'queue'), ('mutex', 'lock'), ('spare', 'lock'), ('table', 'blob')]" ] ||
	fail "stat plain: objects $(cat "$tmp/plain.json")"
# obj STATEFILE OBJECT KEY: one fact of one object
obj() {
	q "$1" "[o['state'].get('$3') for o in d['object_list'] if o['name'] == '$2'][0]"
}
[ "$(obj "$tmp/plain.json" mutex held)" = False ] || fail "stat plain: released lock shown held"
for kv in parties:3 waiting:0 generation:0 broken:False; do
	[ "$(obj "$tmp/plain.json" gate "${kv%%:*}")" = "${kv#*:}" ] ||
		fail "stat plain: barrier gate ${kv%%:*} is $(obj "$tmp/plain.json" gate "${kv%%:*}"), want ${kv#*:}"
done
[ "$(obj "$tmp/plain.json" broken broken)" = True ] || fail "stat plain: aborted barrier not shown broken"
for kv in depth:3 capacity:8 unit:msgs msgs_in:3 msgs_out:0 shutdown:False sleepers:0; do
	[ "$(obj "$tmp/plain.json" jobs "${kv%%:*}")" = "${kv#*:}" ] ||
		fail "stat plain: queue jobs ${kv%%:*} is $(obj "$tmp/plain.json" jobs "${kv%%:*}"), want ${kv#*:}"
done
[ "$(obj "$tmp/plain.json" done shutdown)" = True ] || fail "stat plain: shut-down queue not shown"
# a 100-byte message is one 112-byte record (8-byte header, padded to 8)
for kv in depth_0to1:112 depth_1to0:0 bytes_in:112 bytes_out:0 unit:bytes; do
	[ "$(obj "$tmp/plain.json" chan "${kv%%:*}")" = "${kv#*:}" ] ||
		fail "stat plain: pipe chan ${kv%%:*} is $(obj "$tmp/plain.json" chan "${kv%%:*}"), want ${kv#*:}"
done
[ "$(q "$tmp/plain.json" "[o['state']['bytes'] for o in d['object_list'] if o['name'] == 'table'][0]")" = 4096 ] ||
	fail "stat plain: table size"
[ "$(q "$tmp/plain.json" "len(d['process_table'])")" = 0 ] || fail "stat plain: creator detached, table not empty"

run_json "$tmp/dead.json" stat "$p-dead" || fail "stat dead exit status"
[ "$(q "$tmp/dead.json" "[(p['alive']) for p in d['process_table']]")" = "[False]" ] ||
	fail "stat dead: the dead creator is not reported dead: $(cat "$tmp/dead.json")"

[ "$(obj "$tmp/dead.json" mutex held)" = True ] || fail "stat dead: lock held by the dead creator not shown held"
[ "$(obj "$tmp/dead.json" mutex holder_alive)" = False ] || fail "stat dead: the lock's dead holder is shown alive"
[ "$(obj "$tmp/dead.json" spare held)" = False ] || fail "stat dead: a free lock shown held"

run_json "$tmp/live.json" stat "$p-live" || fail "stat live exit status"
[ "$(obj "$tmp/live.json" mutex holder_pid)" = "$holder" ] || fail "stat live: lock holder is not $holder"
[ "$(obj "$tmp/live.json" mutex holder_alive)" = True ] || fail "stat live: the lock's live holder is shown dead"
for kv in end0_alive:1 end1_alive:1 closed:False; do
	[ "$(obj "$tmp/live.json" chan "${kv%%:*}")" = "${kv#*:}" ] ||
		fail "stat live: pipe chan ${kv%%:*} is $(obj "$tmp/live.json" chan "${kv%%:*}"), want ${kv#*:}"
done
[ "$(obj "$tmp/dead.json" chan end0_alive)" = 0 ] || fail "stat dead: the dead creator's pipe end shown alive"
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
grep -q "^  mutex  *lock  *bytes=64 held=yes contended=no holder_pid=$holder holder_alive=yes" "$tmp/live.txt" ||
	fail "stat (table): lock line: $(grep mutex "$tmp/live.txt")"

# ---- watch ----
"$SHMQ" --json watch "$p-live" --count 2 --interval 0.1 > "$tmp/watch.jsonl" || fail "watch exit status"
[ "$(wc -l < "$tmp/watch.jsonl")" -eq 2 ] || fail "watch --count 2: $(wc -l < "$tmp/watch.jsonl") lines"
while read -r line; do
	printf '%s\n' "$line" | python3 -m json.tool > /dev/null || fail "watch --json: invalid line"
done < "$tmp/watch.jsonl"

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
for n in dead corrupt foreign live plain fuzz; do
	[ -e /dev/shm/"$p-$n" ] && fail "rm: $n still there"
done
echo "PASS: shmq ls / stat / watch / rm"
exit 0
