#!/usr/bin/env python3
"""Fails when the crate's top-level modules import each other in a circle, or a source file
grows past the size a reader takes in at one sitting.

Each file under src/ belongs to its top-level module (src/state/health.rs -> state). Every
`crate::NAME` path in a file (imports and inline paths alike, comments and doc comments left
out) is an edge from its module to NAME. `main.rs` and `lib.rs` are the crate's roots and may use
anything. Usage: scripts/module-cycles.py [--max-lines N]
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
ROOTS = {"main", "lib"}
PATH = re.compile(r"\bcrate::(?:\{([^}]*)\}|([a-z_][a-z0-9_]*))")


def module_of(rel):
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_comments(text):
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def graph():
    edges, sizes = {}, {}
    for dirpath, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, SRC)
            text = open(path, encoding="utf-8").read()
            sizes[rel] = text.count("\n")
            m = module_of(rel)
            if m in ROOTS:
                continue
            for group, name in PATH.findall(strip_comments(text)):
                names = [name] if name else [n.strip().split("::")[0] for n in group.split(",")]
                for n in names:
                    if n and n != m and n not in ("self", "super"):
                        edges.setdefault(m, set()).add(n)
    return edges, sizes


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    max_lines = 400
    if "--max-lines" in sys.argv:
        max_lines = int(sys.argv[sys.argv.index("--max-lines") + 1])
    edges, sizes = graph()
    bad = False
    for comp in cycles(edges):
        bad = True
        inner = {m: sorted(edges.get(m, set()) & set(comp)) for m in comp}
        print("import circle: " + ", ".join(f"{m} -> {'/'.join(t)}" for m, t in inner.items()))
    warn_sizes = "--warn-sizes" in sys.argv
    for rel, n in sorted(sizes.items()):
        if n > max_lines:
            bad = bad or not warn_sizes
            print(f"src/{rel}: {n} lines (at most {max_lines}: split it by concern)")
    if bad:
        sys.exit(1)
    print(f"modules: no import circles among {len(edges)} modules")


if __name__ == "__main__":
    main()
