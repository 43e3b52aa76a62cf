#!/bin/sh
# SPDX-License-Identifier: MIT
# shmq-bench --report: the page is well-formed, self-contained (no network, no
# script), results.json parses, and - where Debian's chromium is installed -
# it renders headless with no console error into a screenshot that is not
# blank.  This checks the report, never the figures in it.
set -u

. "$(dirname "$0")/bench_test.sh"

command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 is needed"; exit 77; }

"$BENCH" --quick --runs 1 --report "$tmp/r" limits > "$tmp/out.txt" || fail "shmq-bench --report failed"
grep -q "report: $tmp/r/index.html" "$tmp/out.txt" || fail "no report line"
python3 -m json.tool "$tmp/r/results.json" > /dev/null || fail "results.json does not parse"
python3 - "$tmp/r/index.html" <<'PY' || fail "index.html is not a well-formed, self-contained page"
import sys, xml.etree.ElementTree as ET
text = open(sys.argv[1], encoding="utf-8").read()
body = text.split("\n", 1)[1]              # past <!DOCTYPE html>
root = ET.fromstring(body)                 # well-formed, every element closed
ns = "{http://www.w3.org/2000/svg}"
svgs = root.findall(".//" + ns + "svg")
assert len(svgs) >= 2, "expected the latency charts of limits"
assert not root.findall(".//script"), "the page must not need script"
for el in root.iter():
    for attr in ("src", "href"):
        v = el.get(attr, "")
        assert not v.startswith(("http:", "https:", "//")), "network reference: " + v
assert "cache-line round trip" in text
PY

chrome=""
for c in chromium chromium-browser; do
	command -v "$c" >/dev/null 2>&1 && { chrome=$c; break; }
done
if [ -z "$chrome" ]; then
	echo "SKIP (partly): chromium not installed; the page checked as XML only"
	exit 0
fi
# --enable-logging=stderr --v=0 prints the page's console messages as CONSOLE lines.
timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars \
	--user-data-dir="$tmp/profile" --enable-logging=stderr --v=0 \
	--window-size=1200,1600 --screenshot="$tmp/shot.png" "file://$tmp/r/index.html" \
	> "$tmp/chrome.out" 2> "$tmp/chrome.err"
[ -s "$tmp/shot.png" ] || fail "chromium wrote no screenshot: $(tail -5 "$tmp/chrome.err")"
grep -E "CONSOLE|Failed to load|net::ERR" "$tmp/chrome.err" && fail "console errors while rendering the report"
python3 - "$tmp/shot.png" <<'PY' || fail "the screenshot is blank"
import sys, zlib, struct
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w, h, bpp = 8, b"", 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    chunk = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", chunk[:10])
        bpp = {2: 3, 6: 4}[ctype]
    elif kind == b"IDAT":
        idat += chunk
    pos += 12 + n
raw = zlib.decompress(idat)
stride = w * bpp + 1
colours, dark = set(), 0
for y in range(0, h, 7):
    row = raw[y * stride + 1:(y + 1) * stride]   # the filter byte skipped; values are
    for x in range(0, w * bpp, bpp * 5):         # filtered, but a blank page filters to
        px = row[x:x + 3]                        # a handful of values only
        colours.add(bytes(px))
assert len(colours) > 20, "only %d distinct pixel values" % len(colours)
PY
echo "PASS: report renders ($chrome)"
exit 0
