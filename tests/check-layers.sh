#!/bin/sh
# The library's layers, checked: every file under lib/LAYER/ includes private
# headers by their layer path ("core/region_int.h"), only from its own layer
# or one listed before it, and every private header ends in _int.h.  Public
# headers (lib/include) and system headers are not layered.  Run by make check.
set -eu
top=${srcdir:-.}
layers="core ring sync chan proc sched pool embed bridge" # each may include only itself and those before it

rank() { # layer -> its index in $layers, or nothing
	i=0
	for l in $layers; do
		[ "$l" = "$1" ] && { echo $i; return; }
		i=$((i + 1))
	done
}

bad=0
for l in $layers; do
	[ -d "$top/lib/$l" ] || { echo "check-layers: lib/$l is missing" >&2; bad=1; }
done
for f in "$top"/lib/*/*.c "$top"/lib/*/*.h; do
	rel=${f#"$top"/lib/}
	layer=${rel%%/*}
	[ "$layer" = include ] && continue
	own=$(rank "$layer")
	if [ -z "$own" ]; then
		echo "check-layers: lib/$rel is in no layer ($layers)" >&2; bad=1; continue
	fi
	case $rel in
	*.h) case $rel in *_int.h) ;; *) echo "check-layers: lib/$rel: a private header must end in _int.h" >&2; bad=1 ;; esac ;;
	esac
	# quoted includes only: <...> are system or public headers
	for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
		[ "$inc" = config.h ] && continue
		case $inc in
		*/*) ;;
		*) echo "check-layers: lib/$rel includes \"$inc\" without its layer" >&2; bad=1; continue ;;
		esac
		to=$(rank "${inc%%/*}")
		if [ -z "$to" ] || [ ! -f "$top/lib/$inc" ]; then
			echo "check-layers: lib/$rel includes \"$inc\", which is no layer's file" >&2; bad=1
		elif [ "$to" -gt "$own" ]; then
			echo "check-layers: lib/$rel ($layer) includes $inc from a layer above it" >&2; bad=1
		fi
	done
done
# examples use the public API only
if grep -ln '#[[:space:]]*include[[:space:]]*"[a-z]*/[a-z_]*_int\.h"' "$top"/examples/*.c "$top"/examples/*/*.c 2>/dev/null; then
	echo "check-layers: the examples above include private headers" >&2; bad=1
fi
[ $bad -eq 0 ] && echo "check-layers: lib/ follows its layers ($layers)"
exit $bad
