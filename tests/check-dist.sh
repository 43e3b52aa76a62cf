#!/bin/sh
# Every header of the source tree (lib/, tests/, tools/, examples/) is named
# in Makefile.am, so that `make dist` puts it in the tarball: automake ships
# only the files it is told about, and a header that is included but never
# listed builds here and breaks the tarball's build.  Run by make check.
set -u
top=${srcdir:-.}
[ -f "$top/Makefile.am" ] || { echo "check-dist: no $top/Makefile.am" >&2; exit 99; }
bad=0
for d in lib tests tools examples; do
	[ -d "$top/$d" ] || continue
	for f in $(cd "$top" && find "$d" -name '*.h' | sort); do
		if ! grep -qF "$f" "$top/Makefile.am"; then
			echo "check-dist: $f is not in Makefile.am (a _SOURCES or EXTRA_DIST): make dist leaves it out" >&2
			bad=1
		fi
	done
done
[ $bad = 0 ] && echo "check-dist: every header is listed"
exit $bad
