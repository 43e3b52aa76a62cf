#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every atomic weaker than seq_cst says why, and its partner exists.

The house rule (lib/core/atomic_int.h): each call of a helper whose order is
weaker than seq_cst, and each raw __atomic_* builtin or C11 atomic_*_explicit
call with a weaker order, carries a comment on its own lines or in the comment
block directly above its statement that either

  - names what it pairs with: "pairs with ... X", where X is a function or
    macro defined somewhere under lib/, or "(Protocol NAME)", a labelled
    protocol defined exactly once under lib/ by a comment "Protocol NAME:";
  - or, for a relaxed operation, says why no ordering is needed:
    "relaxed: ..." (or "relaxed, <why>: ...").

A comment may cover a short run of statements: the block directly above a
statement covers it and the statements after it up to the next blank line,
comment or closing brace; and a function's header comment covers its body.
X may drop the shmq_/shmq__<module>_ prefix when it keeps an underscore of its
own ("cons_publish" for shmq__spsc_cons_publish); "f_*" matches any f_ name.

tests/atomics-allow.txt lists known violations (file:function:reason) that the
check reports but does not fail on; an entry that matches nothing fails, so the
list cannot go stale.  Run by make check with srcdir set; by hand:
	python3 tests/check-atomics.py [--top DIR] [--allow FILE]
"""
import argparse
import os
import re
import sys

WEAK = ("RELAXED", "CONSUME", "ACQUIRE", "RELEASE", "ACQ_REL")
C11_WEAK = ("memory_order_relaxed", "memory_order_consume", "memory_order_acquire",
            "memory_order_release", "memory_order_acq_rel")
# memory-model words a "pairs with" text may use that name no partner; the
# helpers' own names (load_acquire, fetch_add, ...) are added from atomic_int.h
VOCAB = {"seq_cst", "acq_rel", "fetch_add", "fetch_sub", "fetch_or", "fetch_and"}
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
	"""Split C text into per-line code (comments and literals blanked) and
	per-line comment text."""
	code, comm = [], []
	cont = set()  # lines whose block comment goes on to the next line
	cl, cm = [], []
	i, n = 0, len(text)
	state = None  # None, "block", "line", '"', "'"
	while i < n:
		c = text[i]
		if c == "\n":
			if state == "block":
				cont.add(len(code))
			code.append("".join(cl))
			comm.append("".join(cm))
			cl, cm = [], []
			if state == "line":
				state = None
			i += 1
			continue
		if state is None:
			if text.startswith("/*", i):
				state = "block"
				cl.append("  ")
				i += 2
				continue
			if text.startswith("//", i):
				state = "line"
				i += 2
				continue
			if c in "\"'":
				state = c
			cl.append(c)
		elif state == "block":
			if text.startswith("*/", i):
				state = None
				cl.append("  ")
				i += 2
				continue
			cm.append(c)
		elif state == "line":
			cm.append(c)
		else:
			if c == "\\":
				cl.append("  ")
				i += 2
				continue
			if c == state:
				state = None
				cl.append(c)
			else:
				cl.append(" ")
		i += 1
	code.append("".join(cl))
	comm.append("".join(cm))
	# the leading " * " of a block comment's inner lines is not text
	comm = Comments(re.sub(r"^\s*\*+(?!/)\s?", "", c) for c in comm)
	comm.cont = cont
	return code, comm


class Comments(list):
	"""Per-line comment text; .cont holds the lines whose block comment
	goes on to the next line."""
	cont = frozenset()


def weak_helpers(top):
	"""The helpers of lib/core/atomic_int.h whose definition names an order
	weaker than seq_cst; every helper's name joins VOCAB without its prefix."""
	path = os.path.join(top, "lib/core/atomic_int.h")
	text = open(path).read().replace("\\\n", " ")
	names = set()
	for m in re.finditer(r"^#define\s+(shmq__\w+)\(.*$", text, re.M):
		VOCAB.add(m.group(1)[len("shmq__"):])
		if any("__ATOMIC_" + w in m.group(0) for w in WEAK):
			names.add(m.group(1))
	return names


def sources(top):
	for d, _, files in sorted(os.walk(os.path.join(top, "lib"))):
		for f in sorted(files):
			if f.endswith((".c", ".h")):
				yield os.path.join(d, f)


def definitions(files):
	"""Functions and macros defined under lib/, and the Protocol labels."""
	defs, protos = set(), {}
	fdef = re.compile(r"^(?:[A-Za-z_][\w\s\*]*?[\s\*])?(" + IDENT + r")\s*\([^;]*$")
	for path, (code, comm) in files.items():
		for i, line in enumerate(code):
			m = re.match(r"\s*#\s*define\s+(" + IDENT + ")", line)
			if m:
				defs.add(m.group(1))
				continue
			# a definition starts at column 0 (kernel style), its name
			# before the parameter list; a declaration ends with ';'
			if line[:1].isalpha() or line[:1] == "_":
				m = fdef.match(line)
				if m and m.group(1) not in ("if", "while", "for", "switch", "return", "sizeof"):
					defs.add(m.group(1))
		for i, c in enumerate(comm):
			for m in re.finditer(r"\bProtocol\s+(" + IDENT + r")\s*:", c):
				protos.setdefault(m.group(1), []).append("%s:%d" % (path, i + 1))
	return defs, protos


def atomic_calls(code, helpers):
	"""(line index, name) of each weaker-than-seq_cst atomic in code."""
	hre = re.compile(r"\b(" + "|".join(sorted(helpers)) + r")\s*\(") if helpers else None
	raw = re.compile(r"\b(__atomic_\w+|atomic_\w+_explicit)\s*\(")
	joined = "\n".join(code)
	starts = [0]
	for line in code:
		starts.append(starts[-1] + len(line) + 1)

	def lineof(pos):
		lo, hi = 0, len(code)
		while lo + 1 < hi:
			mid = (lo + hi) // 2
			if starts[mid] <= pos:
				lo = mid
			else:
				hi = mid
		return lo

	out = []
	for i, line in enumerate(code):
		if hre:
			for m in hre.finditer(line):
				out.append((i, m.group(1)))
	for m in raw.finditer(joined):
		# the argument list, to the matching parenthesis
		depth, j = 0, m.end() - 1
		while j < len(joined):
			if joined[j] == "(":
				depth += 1
			elif joined[j] == ")":
				depth -= 1
				if depth == 0:
					break
			j += 1
		args = joined[m.end():j]
		weak = [w for w in WEAK if "__ATOMIC_" + w in args] + \
		       [w[len("memory_order_"):].upper() for w in C11_WEAK if w in args]
		if weak:
			out.append((lineof(m.start()), "%s(%s)" % (m.group(1), "/".join(weak))))
	return sorted(set(out))


def statement_start(code, i):
	"""First line of the statement that line i belongs to."""
	while i > 0:
		prev = code[i - 1].strip()
		if prev == "" or prev.endswith((";", "{", "}", ":")) or prev.startswith("#") \
		   or re.match(r"(else|do)\b", prev) or re.match(r"(if|for|while|switch)\b.*\)$", prev):
			break
		i -= 1
	return i


def covering_comment(code, comm, i):
	"""The comment text that speaks for the atomic on line i, or ''."""
	s = statement_start(code, i)
	e = i
	# the statement's own lines, to its end
	while e + 1 < len(code) and not code[e].strip().endswith((";", "{", "}")):
		e += 1
	own = " ".join(comm[s:e + 1]).strip()
	return (above(code, comm, s) + " " + own).strip()


def above(code, comm, s):
	"""The comment block above line s, over the run of statements between
	them (no blank line, closing brace or preprocessor line in between)."""
	j = s - 1
	while j >= 0:
		if comm[j].strip():
			break
		t = code[j].strip()
		if t == "" or t.endswith("}") or t.startswith("#"):
			return ""
		j -= 1
	if j < 0:
		return ""
	parts = []
	while j >= 0 and comm[j].strip() and not code[j].replace(" ", "").strip():
		parts.append(comm[j])
		j -= 1
	if j >= 0 and comm[j].strip() and (not parts or j in comm.cont):
		# a comment that starts after code: a trailing comment on the
		# statement above, or the head of the block we are in
		parts.append(comm[j])
	return " ".join(reversed(parts)).strip()


def function_of(code, i):
	"""Name and first line of the function (or macro) that line i lies in."""
	for j in range(i, -1, -1):
		m = re.match(r"\s*#\s*define\s+(" + IDENT + ")", code[j])
		if m:
			return m.group(1), j
		if code[j][:1].isalpha() or code[j][:1] == "_":
			m = re.search(r"(" + IDENT + r")\s*\(", code[j])
			if m:
				return m.group(1), j
	return "-", -1


def header_comment(code, comm, j):
	"""The comment block directly above line j (a function's header)."""
	parts = []
	j -= 1
	while j >= 0 and comm[j].strip() and not code[j].strip():
		parts.append(comm[j])
		j -= 1
	return " ".join(reversed(parts))


def resolves(w, defs):
	"""w names a function or macro: exactly, or without its shmq_/shmq__
	and module prefix ("cons_publish" for shmq__spsc_cons_publish) when it
	has an underscore of its own, so a plain word never matches by suffix."""
	if w in defs:
		return True
	if "_" not in w.strip("_"):
		return False
	return any(d.startswith("shmq") and d.endswith("_" + w) for d in defs)


def judge(text, name, defs, protos):
	"""None when the comment justifies the atomic, else why not."""
	t = " ".join(text.split())
	low = t.lower()
	ok = False
	for m in re.finditer(r"pairs with\b(.*?)(?=[.;:](\s|$)|pairs with|$)", t, re.I):
		phrase = m.group(1)
		named = []
		for p in re.finditer(r"\(?Protocol\s+(" + IDENT + r")\)?", phrase):
			if p.group(1) not in protos:
				return "names Protocol %s, which no comment \"Protocol %s:\" defines" % (p.group(1), p.group(1))
			named.append(p.group(1))
		phrase = re.sub(r"\(?Protocol\s+" + IDENT + r"\)?", " ", phrase)
		for tok in re.finditer(r"(" + IDENT + r")(\*|\(\))?", phrase):
			w, tail = tok.group(1), tok.group(2)
			if w in VOCAB or w.startswith("__ATOMIC"):
				continue
			if tail == "*" or w.endswith("_"):
				if any(d.startswith(w) or (d.startswith("shmq") and "_" + w in d) for d in defs):
					named.append(w)
					continue
				return "names %s*, which matches no function or macro under lib/" % w
			if resolves(w, defs):
				named.append(w)
			elif "_" in w.strip("_") or tail:
				return "names %s, which is no function or macro under lib/" % w
		if not named:
			return "says what it pairs with but names no function, macro or (Protocol NAME)"
		ok = True
	if ok:
		return None
	if "relaxed" in name.lower():
		if re.search(r"\brelaxed\b[^:.;]*:", low):
			return None
		return "relaxed without \"relaxed: <why no ordering is needed>\" or \"pairs with\""
	return "no \"pairs with <function, macro or (Protocol NAME)>\" comment"


def main():
	ap = argparse.ArgumentParser()
	ap.add_argument("--top", default=os.environ.get("srcdir", "."))
	ap.add_argument("--allow", default=None)
	ap.add_argument("-v", action="store_true", help="print every violation, allowed or not")
	a = ap.parse_args()
	top = a.top
	allowf = a.allow or os.path.join(top, "tests/atomics-allow.txt")

	files = {}
	for p in sources(top):
		files[os.path.relpath(p, top)] = strip(open(p).read())
	helpers = weak_helpers(top)
	defs, protos = definitions(files)

	bad = 0
	for name, where in sorted(protos.items()):
		if len(where) > 1:
			print("check-atomics: Protocol %s is defined more than once: %s" % (name, ", ".join(where)), file=sys.stderr)
			bad += 1

	allow = {}
	if os.path.exists(allowf):
		for n, line in enumerate(open(allowf), 1):
			line = line.strip()
			if not line or line.startswith("#"):
				continue
			f = line.split(":", 2)
			if len(f) < 3 or not f[2].strip():
				print("check-atomics: %s:%d: want file:function:reason" % (allowf, n), file=sys.stderr)
				bad += 1
				continue
			allow[(f[0], f[1])] = [n, 0]

	total = allowed = 0
	for rel, (code, comm) in sorted(files.items()):
		if rel == "lib/core/atomic_int.h":
			continue
		for i, name in atomic_calls(code, helpers):
			total += 1
			fn, fl = function_of(code, i)
			why = judge(covering_comment(code, comm, i), name, defs, protos)
			if why is not None and fl >= 0:
				# a function's header comment may speak for its body
				if judge(header_comment(code, comm, fl), name, defs, protos) is None:
					why = None
			if why is None:
				continue
			key = (rel, fn)
			msg = "%s:%d: %s in %s: %s" % (rel, i + 1, name, fn, why)
			if key in allow:
				allow[key][1] += 1
				allowed += 1
				if a.v:
					print("check-atomics: allowed: " + msg, file=sys.stderr)
				continue
			print("check-atomics: " + msg, file=sys.stderr)
			bad += 1
	for (rel, fn), (n, hits) in sorted(allow.items()):
		if hits == 0:
			print("check-atomics: %s:%d: %s:%s is allowed but has no violation left: remove it" % (allowf, n, rel, fn), file=sys.stderr)
			bad += 1
	if bad:
		print("check-atomics: %d problem(s) in %d weaker-than-seq_cst atomics under lib/" % (bad, total), file=sys.stderr)
		return 1
	print("check-atomics: %d weaker-than-seq_cst atomics under lib/ say what they pair with (%d allowed, listed in %s)" % (total, allowed, os.path.relpath(allowf, top)))
	return 0


if __name__ == "__main__":
	sys.exit(main())
