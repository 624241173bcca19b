#!/usr/bin/env python3
"""Print JSON (stdin) as readable YAML (stdout). Python 3 stdlib only.

Deliberately small: dicts, lists, strings, numbers, booleans, null. Multi-line strings
become literal block scalars (|-), every other string is double-quoted JSON (valid YAML),
so the output is unambiguous and diff-friendly. Key order is preserved; a few
well-known Prometheus rule keys are ordered first for readability.
"""
import json
import re
import sys

KEY_ORDER = ["name", "alert", "record", "expr", "for", "labels", "annotations", "rules",
             "severity", "summary", "description", "runbook_url"]
PLAIN_VALUE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}
PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def key(k):
    return k if PLAIN_KEY.match(k) else json.dumps(k)


def scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if PLAIN_VALUE.match(v) and v.lower() not in YAML_WORDS:
        return v
    if '"' in v and "\n" not in v and v == v.strip() and all(ch >= " " for ch in v):
        return "'" + v.replace("'", "''") + "'"
    return json.dumps(v, ensure_ascii=False)


def block_ok(s):
    lines = s.split("\n")
    return (
        "\n" in s
        and not s.endswith("\n")
        and not s.startswith((" ", "\t"))
        and all(line == line.rstrip() for line in lines)
        and "\t" not in s
    )


def ordered(d):
    first = [k for k in KEY_ORDER if k in d]
    return first + [k for k in d if k not in KEY_ORDER]


def emit(v, indent, out):
    pad = " " * indent
    if isinstance(v, dict):
        if not v:
            out.append(pad + "{}")
        for k in ordered(v):
            item = v[k]
            emit_kv(pad, key(k), item, indent, out)
    elif isinstance(v, list):
        if not v:
            out.append(pad + "[]")
        for item in v:
            if isinstance(item, dict) and item:
                sub = []
                emit(item, indent + 2, sub)
                sub[0] = pad + "- " + sub[0][indent + 2:]
                out.extend(sub)
            elif isinstance(item, list) and item:
                out.append(pad + "-")
                emit(item, indent + 2, out)
            else:
                out.append(pad + "- " + scalar_or_block(item, indent + 2))
    else:
        out.append(pad + scalar(v))


def scalar_or_block(v, indent):
    if isinstance(v, str) and block_ok(v):
        body = "\n".join((" " * indent + line) if line else "" for line in v.split("\n"))
        return "|-\n" + body
    if isinstance(v, dict) and not v:
        return "{}"
    if isinstance(v, list) and not v:
        return "[]"
    return scalar(v)


def emit_kv(pad, k, item, indent, out):
    if isinstance(item, (dict, list)) and item:
        out.append(pad + k + ":")
        emit(item, indent + 2 if isinstance(item, dict) else indent, out)
    else:
        out.append(pad + k + ": " + scalar_or_block(item, indent + 2))


def main():
    data = json.load(sys.stdin)
    out = []
    header = sys.argv[1] if len(sys.argv) > 1 else ""
    if header:
        out.extend("# " + line if line else "#" for line in header.split("\n"))
    emit(data, 0, out)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
