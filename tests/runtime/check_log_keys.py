#!/usr/bin/env python3
"""check_log_keys.py: every swarm_log format in the sources splits into key=value pairs, and no
pair reuses a key of the line's prefix (ts, level, comp, pid).

The JSON form (--log-format json, runtime/log.c) makes an object of those pairs: a token that
is no pair lands in "msg", and a pair named like the prefix would overwrite the prefix's value
(in the kv line, a logfmt parser keeps the last of two pid= as well). So a format such as
"event=worker_died pid=%d" (the worker's pid, not the logging process's) is refused here.

usage: check_log_keys.py SOURCE_DIR
"""
import glob
import os
import re
import sys

PREFIX = {"ts", "level", "comp", "pid"}
KEY = re.compile(r"(?:[a-z0-9_]|%s)+")


def pairs(fmt):
    """The keys of fmt, as log.c's JSON form splits it; None for a token that is no pair."""
    i = 0
    while i < len(fmt):
        if fmt[i] == " ":
            i += 1
            continue
        j = i
        while j < len(fmt) and fmt[j] not in " =":
            j += 1
        key = fmt[i:j]
        if j == len(fmt) or fmt[j] != "=":
            yield key, False
            i = j
            continue
        j += 1
        if j < len(fmt) and fmt[j] == '"':
            end = fmt.find('"', j + 1)
            j = len(fmt) if end < 0 else end + 1
        else:
            while j < len(fmt) and fmt[j] != " ":
                j += 1
        yield key, True
        i = j


def main():
    src = sys.argv[1]
    files = []
    for sub in ("runtime", "registry", "kernels", "ipc"):
        files += glob.glob(os.path.join(src, sub, "**", "*.c"), recursive=True)
    call = re.compile(r'swarm_log\(\s*[^,;]+?,\s*((?:"(?:[^"\\]|\\.)*"\s*)+)', re.S)
    problems = checked = 0
    for path in sorted(files):
        if path.endswith(os.path.join("runtime", "log.c")):
            continue
        text = open(path, encoding="utf-8").read()
        for m in call.finditer(text):
            fmt = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))).replace('\\"', '"')
            checked += 1
            line = text.count("\n", 0, m.start()) + 1
            for key, is_pair in pairs(fmt):
                why = None
                if not is_pair:
                    why = "is no key=value pair"
                elif key in PREFIX:
                    why = "reuses a key of the line's prefix (ts, level, comp, pid)"
                elif not KEY.fullmatch(key):
                    why = "is not a key of [a-z0-9_]"
                if why:
                    problems += 1
                    print(f"{os.path.relpath(path, src)}:{line}: \"{key}\" {why}: {fmt}")
    print(f"check_log_keys: {checked} formats, {problems} problems")
    return 1 if problems or checked < 100 else 0


if __name__ == "__main__":
    sys.exit(main())
