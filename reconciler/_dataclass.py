"""`dataclass`, with the code it generates kept between processes (#21).

CPython's `dataclasses` writes each method it adds to a class (`__init__`, `__repr__`, `__eq__`,
`__hash__`, a frozen class's `__setattr__` and `__delattr__`) as source text and `exec`s it, so
every process parses and compiles that text again for every class: at a no-op `reconcile --once`
of 50 containers, the ~560 texts of reconciler's ~90 classes were 41 % of the process's
instructions (callgrind), more than all of its own work. A class's text is the same in every
process, and so is its code: this module compiles each text once and keeps the code objects,
marshalled, in `dataclass-code.<cache tag>.marshal` beside the package's bytecode (its
`__pycache__`, or under `sys.pycache_prefix`; each entry unmarshalled when first used), written as `.pyc` files are (not under
`sys.dont_write_bytecode`, nor when the directory is read-only) when a process compiled a text the
file lacked. The file holds code as a `.pyc` does, and is trusted as one: it is read only when owned
by root or this user and writable by no one else, and its entries are keyed by their whole text
(nothing is looked up by a hash), with the bytecode's magic number in its header.

The hook is `exec` set in the `dataclasses` module's namespace, where a global shadows the builtin
for that module alone: the text and the globals `dataclasses` passes are those it would `exec`, and
the code is what `exec` would compile (`dont_inherit`: no `__future__` flags of this module), so the
classes are the same (tests/test_dataclass_code.py compares each method's code). Installed by
importing this module, which every module of reconciler that makes a dataclass does (ruff bans
`dataclasses.dataclass` elsewhere: `pyproject.toml`); a Python whose `dataclasses` no longer calls
`exec` that way only gets no cache.
"""

from __future__ import annotations

import builtins
import marshal
import os
import sys
import types
from typing import Any


class _InspectOnUse(types.ModuleType):
    """What `dataclasses` is given as `inspect` when this module imports it: `dataclasses` uses
    `inspect` only to write a docstring for a class that has none (`inspect.signature`), and
    every class of reconciler has one (tests/test_dataclass_code.py), while importing `inspect`
    (with its `ast`, `dis`, `tokenize`, `linecache`) costs ~5 ms of every command's start (#21).
    An attribute asked of it is the real module's, imported then."""

    def __getattr__(self, name: str) -> Any:
        import inspect

        return getattr(inspect, name)


if "inspect" not in sys.modules and "dataclasses" not in sys.modules:
    sys.modules["inspect"] = _InspectOnUse("inspect")   # for dataclasses' `import inspect` alone
try:
    import dataclasses
    from dataclasses import asdict, dataclass, field, replace
finally:
    if type(sys.modules.get("inspect")) is _InspectOnUse:
        del sys.modules["inspect"]                       # any other `import inspect` is the real one

__all__ = ["asdict", "dataclass", "dataclasses", "field", "install", "replace", "stats", "uninstall"]

_MAX_ENTRIES = 10_000      # past this, a rewrite keeps only what the writing process compiled

_exec = builtins.exec
# text -> its marshalled code, read from the file on first use; an entry leaves when it is used (the
# agent keeps running: its classes' code lives in their methods, the bytes need not), unless the
# file says its text is shared (classes with the same fields have the same __eq__, __repr__...)
_codes: dict[str, bytes] | None = None
_shared: frozenset[str] = frozenset()
_taken: set[int] = set()        # hash() of the texts taken from the file
_new: dict[str, bytes] = {}     # texts this process compiled, for the file
_new_shared: set[str] = set()   # texts this process ran twice, to be marked shared in the file
_counts = {"compiled": 0, "used": 0}


def _cached_exec(source: Any, globals: Any = None, locals: Any = None, /, *args: Any, **kwargs: Any) -> Any:
    if type(source) is not str or args or kwargs or sys.flags.optimize:
        return _exec(source, globals, locals, *args, **kwargs)
    codes = _codes if _codes is not None else _load()
    kept = codes.get(source) if source in _shared else codes.pop(source, None)
    if kept is None and source in _new:
        kept = _new[source]
        _keep(source, kept, shared=True)
    code = _code(kept) if kept is not None else None
    if code is not None:
        _taken.add(hash(source))
    else:
        code = compile(source, "<string>", "exec", dont_inherit=True)
        _counts["compiled"] += 1
        _keep(source, marshal.dumps(code), shared=hash(source) in _taken)    # taken before: shared
    _counts["used"] += 1
    return _exec(code, globals, locals)


def _keep(source: str, data: bytes, *, shared: bool) -> None:
    """Note a text for the file (written at exit; nothing is held where it cannot be)."""
    if sys.dont_write_bytecode:
        return
    if not _new and not _new_shared:
        import atexit

        atexit.register(_save)
    _new[source] = data
    if shared:
        _new_shared.add(source)


def install() -> None:
    """Let `dataclasses` take its methods' code from the cache (done on import)."""
    dataclasses.exec = _cached_exec  # type: ignore[attr-defined]


def uninstall() -> None:
    """`dataclasses` compiles every text again (the builtin `exec`)."""
    vars(dataclasses).pop("exec", None)


def stats() -> dict[str, int]:
    """Texts this process compiled and texts it ran (each class's methods: a few texts)."""
    return dict(_counts)


def cache_file() -> str:
    """Where the code is kept: beside reconciler's bytecode, as importlib places a `.pyc`."""
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.pycache_prefix:
        base = os.path.join(sys.pycache_prefix, here.lstrip(os.sep))
    else:
        base = os.path.join(here, "__pycache__")
    return os.path.join(base, f"dataclass-code.{sys.implementation.cache_tag}.marshal")


def _magic() -> bytes:
    """The bytecode's magic number: importlib.util's, read where it comes from (importlib's own
    bootstrap, always loaded) rather than importing importlib.util and its `warnings` (#21)."""
    bootstrap = sys.modules.get("_frozen_importlib_external")
    magic = getattr(bootstrap, "MAGIC_NUMBER", None)
    if type(magic) is bytes:
        return magic
    from importlib.util import MAGIC_NUMBER

    return MAGIC_NUMBER


def _load() -> dict[str, bytes]:
    global _codes, _shared
    _codes, _shared = _read()
    return _codes


def _read() -> tuple[dict[str, bytes], frozenset[str]]:
    """The file's entries and shared texts; none when it is missing, torn, of another Python,
    or not trusted."""
    try:
        fd = os.open(cache_file(), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return {}, frozenset()
    try:
        st = os.fstat(fd)
        if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022:
            return {}, frozenset()              # another user's, or writable by others: not run
        with os.fdopen(fd, "rb", closefd=False) as f:
            magic, codes, shared = marshal.loads(f.read())  # noqa: S302 - trusted as a .pyc is (above)
        if magic != _magic() or type(codes) is not dict or type(shared) is not frozenset:
            return {}, frozenset()
        return ({k: v for k, v in codes.items() if type(k) is str and type(v) is bytes},
                frozenset(t for t in shared if type(t) is str))
    except Exception:                           # noqa: BLE001 - a torn or foreign file: compile again
        return {}, frozenset()
    finally:
        os.close(fd)


def _code(data: bytes) -> types.CodeType | None:
    """An entry's code, unmarshalled when first used (a process runs a few of the file's texts)."""
    try:
        code = marshal.loads(data)  # noqa: S302 - trusted as a .pyc is (_read)
    except (EOFError, ValueError, TypeError):
        return None
    return code if type(code) is types.CodeType else None


def _save() -> None:
    """At exit, if this process compiled texts the file lacked: the file read again (another
    process may have added to it since), with them added, written whole and renamed into place."""
    if not _new or sys.dont_write_bytecode:
        return
    codes, shared = _read()
    codes.update(_new)
    if len(codes) > _MAX_ENTRIES:
        codes, shared = dict(_new), frozenset()
    shared = frozenset(t for t in shared | _new_shared if t in codes)
    path = cache_file()
    tmp = f"{path}.{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(marshal.dumps((_magic(), codes, shared)))
        os.replace(tmp, path)
    except OSError:                             # a read-only install: nothing kept, as for bytecode
        try:
            os.unlink(tmp)
        except OSError:
            pass


install()
