#!/usr/bin/env python3
"""The crate's top-level module graph, from the `crate::<module>` paths each
module uses (tests left out), and its cycles. Exits 1 on a cycle.

    python3 scripts/check-modules.py [src] [--graph]

Data is meant to flow one way (inputs -> queue -> classify -> store ->
publish / web); a cycle between top-level modules means two of them can no
longer be read, changed or tested apart.
"""
import os
import re
import sys

SKIP_ROOTS = {"lib", "main"}


def top_module(root, path):
    first = os.path.relpath(path, root).split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def strip(source):
    # Unit tests may reach anywhere; only what the module itself uses counts.
    cut = source.find("#[cfg(test)]\nmod tests")
    if cut >= 0:
        source = source[:cut]
    source = re.sub(r"//[^\n]*", "", source)  # comments and doc links
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', source)  # strings


def graph(root):
    edges = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            path = os.path.join(folder, name)
            module = top_module(root, path)
            if module in SKIP_ROOTS:
                continue
            with open(path, encoding="utf-8") as f:
                source = strip(f.read())
            used = set(re.findall(r"crate::([a-z_0-9]+)", source))
            for group in re.findall(r"crate::\{([^}]*)\}", source):
                used.update(re.findall(r"(?:^|,)\s*([a-z_0-9]+)", group))
            edges.setdefault(module, set()).update(used - {module})
    return edges


def cycles(edges):
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = args[0] if args else "src"
    edges = graph(root)
    if "--graph" in sys.argv:
        for module in sorted(edges):
            print(f"{module} -> {', '.join(sorted(edges[module])) or '(nothing)'}")
    found = cycles(edges)
    if found:
        for group in found:
            print("cycle between top-level modules: " + ", ".join(group), file=sys.stderr)
        return 1
    print(f"{len(edges)} top-level modules, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
