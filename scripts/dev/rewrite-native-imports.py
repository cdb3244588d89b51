#!/usr/bin/env python3
"""Rewrite imports of the flat `reconciler.runtime.native` modules to their subpackages (#15).

The native engine's modules moved from one flat folder into its parts: images/, containers/,
network/, volumes/. Code written against the old paths (a branch started before the move) is
brought up to date with

    python scripts/dev/rewrite-native-imports.py FILE...        # rewrites in place
    python scripts/dev/rewrite-native-imports.py --check FILE...  # lists what it would change

It rewrites, and touches nothing else:
  - `from reconciler.runtime.native import a, b` (one line or parenthesised): one import line per
    destination package, names that did not move left where they are;
  - every dotted path `reconciler.runtime.native.<old>` (imports, importlib strings, logger names);
  - file paths `native/<old>.py` (docs, comments) and `native/seccomp_default.json`.
It is idempotent: paths already of the new layout are left alone (a bare
`reconciler.runtime.native.images` is taken for the old module, except in `from ... import` of
the package's own modules and in `resources.files("...")`). Run
`ruff check --select I --fix` on the files afterwards to sort the split import lines.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PKG = "reconciler.runtime.native"

# old module (directly under runtime/native/) -> the subpackage it moved into (procs moved into
# containers/ and back: the network part identifies its DNS server by it, below the containers)
MOVED: dict[str, str] = {
    **dict.fromkeys(["archive", "content", "gc", "images", "layers", "snapshots"], "images"),
    **dict.fromkeys(["bundle", "cgroups", "conmon", "containers", "copying", "health", "inspection",
                     "logs", "mounts", "oci", "records", "recovery", "restart", "seccomp",
                     "stats"], "containers"),
    **dict.fromkeys(["dns", "firewall", "ipam", "netlink", "network"], "network"),
    "volumes": "volumes",
}
# modules added to the subpackages after the move (so that new paths are recognised as new)
ADDED: dict[str, str] = {"execs": "containers"}
DATA_FILES = {"seccomp_default.json": "containers"}

_NEW_MEMBERS: dict[str, set[str]] = {}
for _mod, _pkg in {**MOVED, **ADDED}.items():
    _NEW_MEMBERS.setdefault(_pkg, set()).add(_mod)
_ALT = "|".join(sorted(MOVED, key=len, reverse=True))

_FROM_PKG = re.compile(
    r"^(?P<indent>[ \t]*)from reconciler\.runtime\.native import "
    r"(?:\((?P<paren>[^)]*)\)|(?P<plain>[^\n#(]+?))(?P<comment>[ \t]*#[^\n]*)?$",
    re.MULTILINE,
)
_DOTTED = re.compile(r"reconciler\.runtime\.native\.(?P<mod>" + _ALT + r")\b(?P<rest>(?:\.\w+)?)")
_FROM_DOTTED = re.compile(
    r"from reconciler\.runtime\.native\.(?P<pkg>images|containers|network|volumes) import "
    r"(?:\((?P<paren>[^)]*)\)|(?P<plain>[\w ,]+))")
_PATH = re.compile(r"(?P<pre>\bnative/)(?P<mod>" + _ALT + r")\.py\b")
_DATA = re.compile(r"(?P<pre>\bnative/)(?P<name>" + "|".join(map(re.escape, DATA_FILES)) + r")")


def _split_names(text: str) -> list[str]:
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return [n.strip() for n in text.replace("\n", " ").split(",") if n.strip()]


def _rewrite_from_package(m: re.Match[str]) -> str:
    """`from reconciler.runtime.native import a, b` -> one line per destination."""
    names = _split_names(m.group("paren") or m.group("plain") or "")
    groups: dict[str, list[str]] = {}
    for name in names:
        module = name.split(" as ")[0].strip()
        dest = f"{PKG}.{MOVED[module]}" if module in MOVED else PKG
        groups.setdefault(dest, []).append(name)
    if list(groups) == [PKG]:
        return m.group(0)
    indent, comment = m.group("indent"), m.group("comment") or ""
    lines = [f"{indent}from {dest} import {', '.join(sorted(groups[dest]))}" for dest in sorted(groups)]
    lines[0] += comment
    return "\n".join(lines)


def _is_new_style_from(m: re.Match[str]) -> bool:
    """`from reconciler.runtime.native.images import images, content`: already the new layout."""
    names = _split_names(m.group("paren") or m.group("plain") or "")
    members = _NEW_MEMBERS[m.group("pkg")]
    return bool(names) and all(n.split(" as ")[0].strip() in members for n in names)


def _rewrite_dotted(text: str) -> str:
    protected = {mm.start() for mm in _FROM_DOTTED.finditer(text) if _is_new_style_from(mm)}

    def sub(m: re.Match[str]) -> str:
        mod, rest = m.group("mod"), m.group("rest")
        # `native.images.content`: `images` is the new package here, not the old module
        if mod in _NEW_MEMBERS and rest[1:] in _NEW_MEMBERS[mod]:
            return m.group(0)
        if m.start() - len("from ") in protected:
            return m.group(0)
        # `resources.files("reconciler.runtime.native.containers")`: a package's data, new layout
        if not rest and mod in _NEW_MEMBERS and text[max(0, m.start() - 7):m.start()] == 'files("':
            return m.group(0)
        return f"{PKG}.{MOVED[mod]}.{mod}{rest}"

    return _DOTTED.sub(sub, text)


def rewrite(text: str) -> str:
    text = _FROM_PKG.sub(_rewrite_from_package, text)
    text = _rewrite_dotted(text)
    text = _PATH.sub(lambda m: f"{m.group('pre')}{MOVED[m.group('mod')]}/{m.group('mod')}.py", text)
    return _DATA.sub(lambda m: f"{m.group('pre')}{DATA_FILES[m.group('name')]}/{m.group('name')}", text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true", help="only list the files that would change")
    args = ap.parse_args(argv)
    changed = []
    for path in args.files:
        old = path.read_text()
        new = rewrite(old)
        if new != old:
            changed.append(path)
            if not args.check:
                path.write_text(new)
    for path in changed:
        print(path)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
