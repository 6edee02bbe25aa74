#!/usr/bin/env python3
"""Fails when a crate's files import each other in a circle, or when a
request stage imports another stage, the pipeline or the app state.

A file "imports" another when it names a path into it: `use crate::a::b`,
`crate::a::f()`, `super::x`. Comments are ignored. Each file is a node;
a strongly connected component of more than one file is a circle.

    python3 scripts/check_layers.py                 # every crate
    python3 scripts/check_layers.py --skip gateway  # all but these
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Stages of the request path (files or folders under crates/gateway/src/stages/):
# each may import what it needs below it, never another stage, the pipeline or the state.
STAGES_DIR = "stages"
FORBIDDEN_FOR_STAGES = ("pipeline", "state")

PATH_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP_RE = re.compile(r"\buse\s+(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def module_path(src: Path, file: Path) -> tuple:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def resolve(modules: dict, path: tuple):
    """The file of the longest prefix of `path` that is a module."""
    for n in range(len(path), 0, -1):
        if path[:n] in modules:
            return modules[path[:n]]
    return None


def references(text: str, here: tuple, is_mod_file: bool):
    """Module paths (from the crate root) this file names."""
    base_super = here[:-1] if not is_mod_file else here[:-1]
    found = []

    def absolute(root: str, tail: list):
        if root == "crate":
            return tuple(tail)
        # `super` from a file `a/b.rs` (module a::b) is `a`; from `a/b/mod.rs` also `a`.
        return tuple(base_super) + tuple(tail)

    for m in USE_GROUP_RE.finditer(text):
        root, prefix = m.group(1), [p for p in m.group(2).split("::") if p]
        for item in re.split(r",", m.group(3)):
            name = item.strip().split("::")[0].split(" ")[0].strip("{} \n")
            if name and name != "self":
                found.append(absolute(root, prefix + [name]))
            elif name == "self":
                found.append(absolute(root, prefix))
    for m in PATH_RE.finditer(text):
        found.append(absolute(m.group(1), [p for p in m.group(2).split("::") if p]))
    return found


def tarjan(graph: dict):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def check_crate(crate: Path):
    src = crate / "src"
    files = [f for f in src.rglob("*.rs")]
    modules = {module_path(src, f): f for f in files}
    graph, problems = {}, []
    for f in files:
        here = module_path(src, f)
        is_mod = f.name in ("mod.rs", "lib.rs", "main.rs")
        text = strip_comments(f.read_text())
        # Tests may reach anywhere: they are not part of the layering.
        if f.name == "tests.rs" or f.name.endswith("_tests.rs"):
            continue
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)[0]
        targets = set()
        for ref in references(text, here if not is_mod else here + ("_",), is_mod):
            target = resolve(modules, ref)
            if target is not None and target != f:
                targets.add(target)
        # A module's own folder file (`a/mod.rs`) and its children are one unit.
        graph[f] = {t for t in targets if not is_ancestor_file(src, t, f)}
        rel = f.relative_to(src)
        if crate.name == "gateway" and rel.parts[0] == STAGES_DIR and len(rel.parts) > 1:
            stage = rel.parts[1].removesuffix(".rs")
            for t in targets:
                trel = t.relative_to(src)
                top = trel.parts[0].removesuffix(".rs")
                if top in FORBIDDEN_FOR_STAGES:
                    problems.append(f"{crate.name}: stage {rel} imports {trel}")
                if trel.parts[0] == STAGES_DIR and len(trel.parts) > 1:
                    other = trel.parts[1].removesuffix(".rs")
                    if other not in (stage, "mod"):
                        problems.append(f"{crate.name}: stage {rel} imports another stage, {trel}")
    for comp in tarjan(graph):
        if len(comp) > 1:
            names = sorted(str(c.relative_to(src)) for c in comp)
            problems.append(f"{crate.name}: {len(comp)} files import each other in a circle: {', '.join(names)}")
    return problems


def is_ancestor_file(src: Path, maybe_parent: Path, child: Path) -> bool:
    """`a/mod.rs` (or lib.rs) declaring `child`'s module: not an import."""
    if maybe_parent.name not in ("mod.rs", "lib.rs", "main.rs"):
        return False
    return child.parent == maybe_parent.parent and child != maybe_parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", nargs="*", default=[], help="crate folder names to leave out")
    args = ap.parse_args()
    problems = []
    for crate in sorted((ROOT / "crates").iterdir()):
        if (crate / "src").is_dir() and crate.name not in args.skip:
            problems += check_crate(crate)
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print("no import circles; stages import no other stage, pipeline or state")


if __name__ == "__main__":
    main()
