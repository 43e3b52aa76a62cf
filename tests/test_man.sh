#!/bin/sh
# SPDX-License-Identifier: MIT
# The man pages stay honest:
#  - every page (man/*.1, man/*.3 but the aliases) formats with
#    groff -ww -z -man without a word and with status 0, and rendered for an
#    80-column terminal has no line wider than 80 columns;
#  - every alias page is one line, ".so man3/<page>.3", naming a real page;
#  - every function the public header declares (SHMQ_API or extern) is in the
#    SYNOPSIS of exactly one page, with the header's prototype, in that page's
#    NAME, and has its alias page (tools/man-aliases.sh --check);
#  - every page is installed (dist_man_MANS in Makefile.am or man/aliases.am);
#  - every EXAMPLE that is a whole program, and every program in examples/,
#    compiles against <shmq.h> without a warning of -Wall -Wextra.
# Runs from any build directory: the sources are found through $srcdir.
set -u

top=${srcdir:-.}
man="$top/man"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

bad=0
fail() {
	echo "FAIL: $*" >&2
	bad=1
}

[ -d "$man" ] || { echo "FAIL: no $man" >&2; exit 1; }
command -v groff >/dev/null 2>&1 || { echo "SKIP: groff is needed"; exit 77; }

is_alias() {
	head -n 1 "$1" | grep -q '^\.so '
}

# 1. Formatting: not one warning.
pages=0
for f in "$man"/*.1 "$man"/*.3; do
	[ -f "$f" ] || continue
	is_alias "$f" && continue
	pages=$((pages + 1))
	if ! groff -ww -z -man "$f" >"$tmp/groff" 2>&1; then
		fail "groff -ww -z -man $f exits $?"
	fi
	if [ -s "$tmp/groff" ]; then
		fail "groff -ww -z -man $f complains:"
		sed 's/^/    /' "$tmp/groff" >&2
	fi
	# Filled text wraps at the line length, but a .nf line (SYNOPSIS,
	# EXAMPLE) is set as it is.  Plain text (-P-cbou: no SGR, no
	# overstriking); columns are counted as characters, each UTF-8
	# continuation byte removed first.
	groff -man -Tutf8 -rLL=80n -P-cbou "$f" 2>/dev/null |
		LC_ALL=C tr -d '\200-\277' | LC_ALL=C awk 'length > 80' >"$tmp/wide"
	if [ -s "$tmp/wide" ]; then
		fail "$f: rendered at 80 columns (groff -man -Tutf8 -rLL=80n), lines are wider:"
		sed 's/^/    /' "$tmp/wide" >&2
	fi
done
[ $pages -gt 0 ] || fail "no man pages in $man"

# 2. Alias pages: one line naming a page that exists and is no alias itself.
aliases=0
for f in "$man"/*.3; do
	[ -f "$f" ] || continue
	is_alias "$f" || continue
	aliases=$((aliases + 1))
	if [ "$(wc -l <"$f")" -ne 1 ]; then
		fail "$f: an alias page is exactly one line"
		continue
	fi
	target=$(sed -n 's|^\.so man3/\([A-Za-z0-9_.-]*\)\.3$|\1|p' "$f")
	if [ -z "$target" ]; then
		fail "$f: reads \"$(cat "$f")\", not \".so man3/PAGE.3\""
	elif [ ! -f "$man/$target.3" ] || is_alias "$man/$target.3"; then
		fail "$f: points at man3/$target.3, which is no page"
	fi
done

# 3. Every public function: documented with the header's prototype, aliased.
if ! sh "$top/tools/man-aliases.sh" --check "$top"; then
	fail "man pages and the public header disagree (fix the page, then run: sh tools/man-aliases.sh)"
fi
for f in "$man"/*.3; do
	[ -f "$f" ] || continue
	is_alias "$f" && continue
	# the NAME section, joined: "a, b, c \- what"
	sed -n '/^\.SH NAME/,/^\.SH/p' "$f" | sed '1d;$d' | tr '\n' ' ' >"$tmp/name"
	page=$(basename "$f" .3)
	grep -l "^\.so man3/$page\.3$" "$man"/*.3 2>/dev/null | while read -r a; do
		fn=$(basename "$a" .3)
		grep -q "\(^\|[ ,]\)$fn\(,\| \\\\-\)" "$tmp/name" ||
			echo "$a: $fn is not in the NAME section of $f" >>"$tmp/noname"
	done
done
if [ -s "$tmp/noname" ]; then
	fail "functions missing from NAME (whatis and apropos read it):"
	sed 's/^/    /' "$tmp/noname" >&2
fi

# 4. Installed: every page is in dist_man_MANS.
cat "$top/Makefile.am" "$man"/*.am 2>/dev/null >"$tmp/am"
for f in "$man"/*.1 "$man"/*.3; do
	[ -f "$f" ] || continue
	rel="man/$(basename "$f")"
	grep -q "[[:space:]=]$rel\([[:space:]\\\\]\|$\)" "$tmp/am" ||
		fail "$rel is not in dist_man_MANS (Makefile.am, or run sh tools/man-aliases.sh)"
done
grep -q '^include .*man/aliases\.am' "$top/Makefile.am" ||
	fail "Makefile.am does not include man/aliases.am"

# 5. EXAMPLEs that are whole programs compile (syntax and types).
cc=${CC:-cc}
examples=0
if command -v "$cc" >/dev/null 2>&1; then
	for f in "$man"/*.3; do
		[ -f "$f" ] || continue
		is_alias "$f" && continue
		sed -n '/^\.SH EXAMPLE/,/^\.SH/p' "$f" | sed -n '/^\.nf/,/^\.fi/p' | sed '1d;$d' |
			sed 's/\\e/\\/g; s/\\-/-/g; s/\\(em/--/g; s/\\&//g' >"$tmp/ex.body"
		grep -q 'main(' "$tmp/ex.body" || continue
		{
			grep -q '^#include' "$tmp/ex.body" ||
				printf '#include <stdint.h>\n#include <stdio.h>\n#include <string.h>\n#include <shmq.h>\n'
			cat "$tmp/ex.body"
		} >"$tmp/ex.c"
		examples=$((examples + 1))
		if ! "$cc" -std=gnu11 -fsyntax-only -Wall -Wextra -Werror -I"$top/lib/include" \
			"$tmp/ex.c" >"$tmp/cc" 2>&1; then
			fail "the EXAMPLE of $f does not compile warning-free (-Wall -Wextra):"
			sed 's/^/    /' "$tmp/cc" >&2
		fi
	done
	# 6. The programs in examples/ too: a reader copies them with his own flags.
	for f in "$top"/examples/*.c "$top"/examples/*/*.c; do
		[ -f "$f" ] || continue
		examples=$((examples + 1))
		if ! "$cc" -std=gnu11 -fsyntax-only -Wall -Wextra -Werror -I"$top/lib/include" \
			"$f" >"$tmp/cc" 2>&1; then
			fail "$f does not compile warning-free (-Wall -Wextra):"
			sed 's/^/    /' "$tmp/cc" >&2
		fi
	done
else
	echo "note: no C compiler ($cc): EXAMPLEs not compiled"
fi

[ $bad = 0 ] && echo "PASS: $pages pages within 80 columns, $aliases aliases, every public function documented, $examples examples compile"
exit $bad
