#!/usr/bin/env python3
"""check-lengths.py: the project's size rule (STYLE.md, issue 15): no source file over 800
lines and no function over 80, unless a reason is written beside it.

A reason is "(long: WHY)" in the comment right above the function, or "(long file: WHY)" in
the file's opening comment. Checked: C, C++/CUDA and Python sources outside tests/ and the
build folders. Prints each offender as FILE:LINE and exits 1 when there is one.

    tools/check-lengths.py [ROOT]          check ROOT (default: the repository)
    tools/check-lengths.py --list [ROOT]   also list the functions with a reason
"""
import os
import re
import sys

MAX_FILE, MAX_FUNC = 800, 80
SOURCES = (".c", ".h", ".cu", ".cuh", ".py")
SKIP_DIRS = {"tests", ".git", "demo-out", "__pycache__"}

C_START = re.compile(r"^[A-Za-z_][\w\s\*\(\),\[\]]*\(")


def comment_above(lines, i):
    """The comment block that ends right above line i (an index), as one string."""
    j = i - 1
    block = []
    while j >= 0 and (lines[j].startswith(("/*", " *", "\t*", "//", "#")) or
                      lines[j].rstrip().endswith("*/")):
        block.append(lines[j])
        if lines[j].startswith("/*"):
            break
        j -= 1
    return "\n".join(reversed(block))


def c_functions(lines):
    """(name line index, end index) of each top-level function body: a line at column 0
    that is not a declaration, then a body from its '{' to the next '}' at column 0."""
    i = 0
    while i < len(lines):
        line = lines[i]
        if C_START.match(line) and not line.startswith(("typedef", "struct", "enum",
                                                          "union", "static const",
                                                          "const ", "return")):
            if "{" in line and line.rstrip().endswith("}"):
                i += 1  # a function on one line
                continue
            j = i
            while j < len(lines) and not lines[j].rstrip().endswith(("{", ";")) and \
                    lines[j] != "{" and lines[j].strip():
                j += 1  # a signature has no blank line: one ends a macro's call
            if j < len(lines) and lines[j].rstrip().endswith("{") and \
                    not lines[j].rstrip().endswith("= {"):
                k = j
                while k < len(lines) and not lines[k].startswith("}"):
                    k += 1
                yield i, k
                i = k + 1
                continue
        i += 1


def py_functions(lines):
    """(def index, end index) of each function, top-level or a method."""
    defs = [(i, len(l) - len(l.lstrip())) for i, l in enumerate(lines)
            if re.match(r"^\s*(async\s+)?def\s", l)]
    for i, indent in defs:
        k = i + 1
        while k < len(lines) and (not lines[k].strip() or
                                  len(lines[k]) - len(lines[k].lstrip()) > indent):
            k += 1
        while k - 1 > i and not lines[k - 1].strip():
            k -= 1
        yield i, k - 1


def check(root, listing):
    bad = 0
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        top = rel.split(os.sep)[0]
        if top in SKIP_DIRS or top.startswith("build"):
            dirs[:] = []
            continue
        for name in sorted(files):
            if not name.endswith(SOURCES):
                continue
            path = os.path.join(d, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().split("\n")
            shown = os.path.relpath(path, root)
            head = "\n".join(lines[:40])
            if len(lines) > MAX_FILE and "(long file:" not in head:
                print(f"{shown}:1: {len(lines)} lines (at most {MAX_FILE}, or a "
                      f"'(long file: why)' in its opening comment)")
                bad += 1
            funcs = py_functions(lines) if name.endswith(".py") else c_functions(lines)
            for start, end in funcs:
                n = end - start + 1
                if n <= MAX_FUNC:
                    continue
                above = comment_above(lines, start)
                if name.endswith(".py"):
                    above += "\n" + "\n".join(lines[start + 1:start + 4])
                if "(long:" in above:
                    if listing:
                        print(f"{shown}:{start + 1}: {n} lines, with its reason")
                    continue
                print(f"{shown}:{start + 1}: {lines[start].strip()[:60]} is {n} lines "
                      f"(at most {MAX_FUNC}, or a '(long: why)' in the comment above it)")
                bad += 1
    return bad


def main():
    args = [a for a in sys.argv[1:] if a != "--list"]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    bad = check(root, "--list" in sys.argv)
    if bad:
        print(f"check-lengths: {bad} over the limits")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
