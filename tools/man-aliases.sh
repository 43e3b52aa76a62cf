#!/bin/sh
# SPDX-License-Identifier: MIT
# Alias man pages: one man/<function>.3 per public function, holding only
# ".so man3/<family>.3", where <family>.3 is the page whose SYNOPSIS declares
# the function with exactly the header's prototype; and man/aliases.am, the
# automake fragment that installs them.
#
#   sh tools/man-aliases.sh [--check] [SRCDIR]
#
# Without --check: (re)writes the alias pages and man/aliases.am, removes
# alias pages of functions that no longer exist.  With --check: changes
# nothing, prints every difference and exits 1 if there is any.  Either way
# it fails (exit 1) when a function of the public header (SHMQ_API or extern)
# is in no page's SYNOPSIS, or a SYNOPSIS prototype differs from the header's.
# Run it after adding a function and documenting it; tests/test_man.sh runs
# --check.
set -eu

check=0
if [ "${1:-}" = "--check" ]; then
	check=1
	shift
fi
top=${1:-.}
man="$top/man"
inc="$top/lib/include"

[ -f "$inc/shmq.h" ] || { echo "man-aliases: no $inc/shmq.h" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Normalised prototypes: whitespace collapsed, none just inside parentheses
# or before a comma or semicolon.
norm='
function norm(s) {
	gsub(/[ \t\n]+/, " ", s)
	gsub(/\( /, "(", s); gsub(/ \)/, ")", s); gsub(/ ,/, ",", s); gsub(/ ;/, ";", s)
	sub(/^ /, "", s); sub(/ $/, "", s)
	return s
}
function fname(s,   m) {
	if (!match(s, /[A-Za-z_][A-Za-z0-9_]*\(/))
		return ""
	return substr(s, RSTART, RLENGTH - 1)
}'

# 1. The header's functions: "name<TAB>prototype" (SHMQ_API / extern removed).
awk "$norm"'
function flush() {
	gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, " ", buf)
	sub(/^[ \t]*(SHMQ_API|extern)[ \t]+/, "", buf)
	p = norm(buf)
	n = fname(p)
	if (n != "")
		printf "%s\t%s\t%s\n", n, p, FILENAME
	buf = ""; on = 0
}
on { buf = buf " " $0; if (index($0, ";")) flush(); next }
/^[ \t]*(SHMQ_API|extern)[ \t]/ && !/^[ \t]*#/ && !/extern[ \t]+"C"/ {
	buf = $0; on = 1
	if (index($0, ";")) flush()
}' "$inc/shmq.h" "$inc"/shmq/*.h | sort >"$tmp/hdr"

# 2. Every family page's SYNOPSIS, as the statements a reader sees:
#    "page<TAB>name<TAB>prototype".  Alternating font macros (.BI, .BR, ...)
#    join their arguments, .B and .I join them with spaces.
for f in "$man"/*.3; do
	[ -f "$f" ] || continue
	head -n 1 "$f" | grep -q '^\.so ' && continue
	awk -v page="$(basename "$f" .3)" "$norm"'
function args(line, sep,   out, i, c, a, q, n, first) {
	out = ""; i = 1; n = length(line); first = 1
	while (i <= n) {
		while (i <= n && substr(line, i, 1) ~ /[ \t]/) i++
		if (i > n) break
		a = ""
		if (substr(line, i, 1) == "\"") {
			i++
			while (i <= n) {
				c = substr(line, i, 1)
				if (c == "\"") {
					if (substr(line, i + 1, 1) == "\"") { a = a "\""; i += 2; continue }
					i++; break
				}
				a = a c; i++
			}
		} else {
			while (i <= n && substr(line, i, 1) !~ /[ \t]/) { a = a substr(line, i, 1); i++ }
		}
		out = out (first ? "" : sep) a; first = 0
	}
	return out
}
function unescape(s) {
	gsub(/\\e/, "\001", s); gsub(/\\\\/, "\001", s)
	gsub(/\\f(\[[^]]*\]|\(..|.)/, "", s)
	gsub(/\\-/, "-", s); gsub(/\\&/, "", s); gsub(/\\c/, "", s); gsub(/\\ /, " ", s)
	gsub(/\001/, "\\", s)
	return s
}
function emit(   p, n) {
	p = norm(acc); acc = ""
	n = fname(p)
	if (n != "")
		printf "%s\t%s\t%s\n", page, n, p
}
/^\.SH/ { insyn = ($0 ~ /^\.SH[ \t]+"?SYNOPSIS"?[ \t]*$/); acc = ""; next }
!insyn { next }
/^\.(PP|P|LP|sp|br|nf|fi|in|TP|IP|SS)([ \t]|$)/ { acc = ""; next }
/^\.\\"/ { next }
{
	t = $0
	if (t ~ /^\.(B|I|SM|SB)([ \t]|$)/) {
		sub(/^\.[A-Z]+[ \t]*/, "", t); t = args(t, " ")
	} else if (t ~ /^\.(BI|BR|IB|IR|RB|RI)([ \t]|$)/) {
		sub(/^\.[A-Z]+[ \t]*/, "", t); t = args(t, "")
	} else if (t ~ /^\./) {
		acc = ""; next
	}
	t = unescape(t)
	if (t ~ /^[ \t]*#/) { acc = ""; next }
	acc = acc " " t
	while ((k = index(acc, ";")) > 0) {
		rest = substr(acc, k + 1)
		acc = substr(acc, 1, k)
		emit()
		acc = rest
	}
}' "$f"
done | sort >"$tmp/syn"

# 3. Match them: every header function must be declared, identically, in
#    exactly one page's SYNOPSIS.
awk -F '\t' -v hdrs="$tmp/hdr" -v out="$tmp/map" -v topdir="$top/" '
BEGIN {
	while ((getline l < hdrs) > 0) {
		split(l, h, "\t"); want[h[1]] = h[2]; file = h[3]
		sub("^" topdir, "", file); from[h[1]] = file
	}
}
{
	if (!($2 in want))
		next
	if ($3 == want[$2]) {
		if (($2 in page) && page[$2] != $1) {
			printf "man-aliases: %s is declared in both man/%s.3 and man/%s.3\n", $2, page[$2], $1
			bad = 1
		}
		page[$2] = $1
	} else {
		seen[$2] = seen[$2] sprintf("\n    man/%s.3: %s", $1, $3)
	}
}
END {
	for (n in want) {
		if (n in page) {
			print n "\t" page[n] > out
			continue
		}
		bad = 1
		if (n in seen)
			printf "man-aliases: %s: no SYNOPSIS matches the header\n    %s: %s%s\n", \
				n, from[n], want[n], seen[n]
		else
			printf "man-aliases: %s (%s) is in no man page SYNOPSIS\n", n, from[n]
	}
	exit bad
}' "$tmp/syn" >&2 || exit 1
# A function that names its family's page (shmq_run) needs no alias.
awk -F '\t' '$1 != $2' "$tmp/map" | sort >"$tmp/map.sorted"

# 4. The alias pages and the fragment that installs them.
{
	echo "# Generated by tools/man-aliases.sh: one .so page per public function,"
	echo "# so that \"man shmq_queue_put\" finds its family's page.  Do not edit."
	printf 'dist_man_MANS +='
	while IFS='	' read -r fn pg; do
		printf ' \\\n\tman/%s.3' "$fn"
	done <"$tmp/map.sorted"
	printf '\n'
} >"$tmp/aliases.am"

diffs=0
while IFS='	' read -r fn pg; do
	printf '.so man3/%s.3\n' "$pg" >"$tmp/alias"
	if [ -f "$man/$fn.3" ] && cmp -s "$tmp/alias" "$man/$fn.3"; then
		continue
	fi
	if [ $check = 1 ]; then
		echo "man-aliases: man/$fn.3 is missing or does not read \".so man3/$pg.3\"" >&2
		diffs=1
	else
		cp "$tmp/alias" "$man/$fn.3"
	fi
done <"$tmp/map.sorted"

# Alias pages of functions that are gone.
for f in "$man"/*.3; do
	[ -f "$f" ] || continue
	head -n 1 "$f" | grep -q '^\.so ' || continue
	fn=$(basename "$f" .3)
	grep -q "^$fn	" "$tmp/map.sorted" && continue
	if [ $check = 1 ]; then
		echo "man-aliases: man/$fn.3 is an alias for no public function" >&2
		diffs=1
	else
		rm -f "$f"
	fi
done

if ! cmp -s "$tmp/aliases.am" "$man/aliases.am" 2>/dev/null; then
	if [ $check = 1 ]; then
		echo "man-aliases: man/aliases.am is out of date (run sh tools/man-aliases.sh)" >&2
		diffs=1
	else
		cp "$tmp/aliases.am" "$man/aliases.am"
	fi
fi
exit $diffs
