#!/usr/bin/env python3
"""Inclusive share of samples per frame in an inferno/FlameGraph folded file, hottest first:
what each function costs with everything it calls. Usage: folded-top.py FILE.folded [N] [FILTER]
FILTER keeps frames containing that text (e.g. `bayou::` or `tcp_`)."""
import re
import sys
from collections import Counter

path = sys.argv[1]
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 40
keep = sys.argv[3] if len(sys.argv) > 3 else ""
total, incl = 0, Counter()
for line in open(path):
    stack, _, n = line.rstrip("\n").rpartition(" ")
    if not n.isdigit():
        continue
    n = int(n)
    total += n
    frames = set()
    for f in stack.split(";"):
        f = re.sub(r"::h[0-9a-f]{16}$", "", f)
        f = re.sub(r"<(.{60}).*>", r"<\1...>", f) if len(f) > 140 else f
        frames.add(f)
    for f in frames:
        if keep in f:
            incl[f] += n
print(f"{total} samples; inclusive share per frame" + (f" (frames containing {keep!r})" if keep else ""))
for f, n in incl.most_common(limit):
    print(f"{100.0 * n / total:6.1f}%  {f[:160]}")
