"""Docker's default seccomp profile, translated for one container: an allowlist.

`seccomp_default.json` beside this file is moby's default profile, byte for byte:
github.com/moby/profiles `seccomp/default.json` at tag `seccomp/v0.2.3` (commit 836ae4d,
sha256 536529b6...; Apache-2.0, The Moby Authors). It is data and is never edited here: to
update it, copy the file from a newer tag and run tests/native/containers/test_seccomp.py.
(containers-common's /usr/share/containers/seccomp.json has the same format, but it is
podman's profile: it allows unshare, mount and namespace flags of clone to every container.)

The format has `defaultAction` (+ `defaultErrnoRet`), an `archMap` from the host's
architecture to those a filter also covers, and `syscalls` blocks whose `includes` and
`excludes` name capabilities, architectures and a minimum kernel. `linux_seccomp(caps)`
keeps the blocks that apply to this host and to the container's capability set, with the
rules of moby's `setupSeccomp` (profiles/seccomp/seccomp_linux.go), and gives the OCI
runtime-spec `linux.seccomp` object:

    includes.caps      every capability listed is in the container's set
    excludes.caps      none of them is
    includes.arches    the host's architecture (libseccomp's names: amd64, arm64, ...) is listed
    excludes.arches    it is not
    includes.minKernel the running kernel is at least that "major.minor"
    excludes.minKernel it is older

A syscall no kept block names, one added to the kernel after the profile was written too, gets
the default action: EPERM.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import functools
import json
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from reconciler.runtime import errors as rterrors

__all__ = ["PROFILE_FILE", "default_profile", "host_arch", "kernel_version", "linux_seccomp", "translate"]

PROFILE_FILE = "seccomp_default.json"

# uname's machine -> (libseccomp's name as profiles' `arches` use it, the runtime-spec arch)
ARCHES: Mapping[str, tuple[str, str]] = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "i686": ("x86", "SCMP_ARCH_X86"),
    "i386": ("x86", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "armv6l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "ppc64": ("ppc64", "SCMP_ARCH_PPC64"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "loongarch64": ("loong64", "SCMP_ARCH_LOONGARCH64"),
}

# a sub-architecture of `archMap` -> the kernel options that give it an ABI (any one of them)
_SUB_ABIS: Mapping[str, tuple[str, ...]] = {
    "SCMP_ARCH_X32": ("CONFIG_X86_X32_ABI", "CONFIG_X86_X32"),     # CONFIG_X86_X32 before Linux 5.18
    "SCMP_ARCH_X86": ("CONFIG_IA32_EMULATION",),
    "SCMP_ARCH_ARM": ("CONFIG_COMPAT",),
}

_REINSTALL = f"reinstall reconciler: its {PROFILE_FILE} is moby's default seccomp profile, unchanged"


def _bad(problem: str) -> rterrors.Unavailable:
    """A profile that does not follow the format: the engine cannot build a filter from it."""
    return rterrors.Unavailable(f"the seccomp profile is not in Docker's format: {problem}", hint=_REINSTALL)


def host_arch() -> tuple[str, str]:
    """(libseccomp name, runtime-spec arch) of this machine; ("", "") when unknown."""
    return ARCHES.get(os.uname().machine, ("", ""))      # platform.machine(), without its import


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """The running kernel's (major, minor): "6.1.0-18-amd64" -> (6, 1)."""
    release = release if release is not None else os.uname().release
    m = re.match(r"(\d+)\.(\d+)", release)
    if m is None:
        raise rterrors.Unavailable(f"cannot read the kernel version from {release!r}")
    return int(m.group(1)), int(m.group(2))


@functools.cache
def default_profile() -> Mapping[str, Any]:
    """The shipped profile as parsed JSON (read once; callers never change it)."""
    # next to this module (package data); importlib.resources would cost every `run` ~10 ms of imports
    source = Path(__file__).with_name(PROFILE_FILE)
    try:
        loaded = json.loads(source.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise rterrors.Unavailable(f"cannot read the default seccomp profile {source}: {exc}",
                                   hint=_REINSTALL) from exc
    if not isinstance(loaded, dict):
        raise rterrors.Unavailable(f"the default seccomp profile {source} is not a JSON object",
                                   hint=_REINSTALL)
    return loaded


@functools.cache
def kernel_config() -> str | None:
    """The running kernel's build configuration (/proc/config.gz, else /boot/config-RELEASE),
    or None where neither can be read."""
    try:
        packed = Path("/proc/config.gz").read_bytes()
    except OSError:
        pass
    else:
        import zlib  # not gzip: its module and io layers cost `run` ~1 ms more

        with contextlib.suppress(zlib.error):
            return zlib.decompress(packed, wbits=31).decode("ascii", "replace")
    try:
        return Path(f"/boot/config-{os.uname().release}").read_text("ascii", "replace")
    except OSError:
        return None


def linux_seccomp(caps: Collection[str]) -> dict[str, Any]:
    """The `linux.seccomp` object for a container with capability set `caps` on this host."""
    arch, spec_arch = host_arch()
    return translate(default_profile(), caps, arch=arch, spec_arch=spec_arch, kernel=kernel_version(),
                     kernel_config=kernel_config())


def translate(
    profile: Mapping[str, Any], caps: Collection[str], *, arch: str, spec_arch: str,
    kernel: tuple[int, int], kernel_config: str | None = None,
) -> dict[str, Any]:
    """A Docker-format profile as runtime-spec `linux.seccomp` for these caps, arch and kernel.

    `arch` is libseccomp's name of the host architecture (what `arches` filters name),
    `spec_arch` its SCMP_ARCH_ constant (what `archMap` keys), `kernel_config` the running
    kernel's build configuration (None: not known), which drops the sub-architectures it has no
    ABI for (`_runnable`). A profile that does not follow the format raises Unavailable naming
    the block and field.
    """
    action = profile.get("defaultAction")
    if not isinstance(action, str) or not action.startswith("SCMP_ACT_"):
        raise _bad(f"defaultAction {action!r} is not an SCMP_ACT_ action")
    out: dict[str, Any] = {"defaultAction": action}
    default_errno = _errno_of(profile, "defaultErrnoRet", "defaultErrno", "the profile")
    if default_errno is not None:
        out["defaultErrnoRet"] = default_errno
    arches = _runnable(_architectures(profile, spec_arch), kernel_config)
    if arches:
        out["architectures"] = arches
    if profile.get("flags"):
        out["flags"] = list(_strings(profile["flags"], "flags"))
    out["syscalls"] = [
        _rule(block, i) for i, block in enumerate(_blocks(profile))
        if _applies(block, i, caps=caps, arch=arch, kernel=kernel)
    ]
    return out


# ---------------------------------------------------------------------------- the parts

def _blocks(profile: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    blocks = profile.get("syscalls") or []
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise _bad("syscalls must be a list of objects")
    return blocks


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{where} must be a list of strings")
    return tuple(value)


def _architectures(profile: Mapping[str, Any], spec_arch: str) -> list[str]:
    """`architectures` as given, or the host's entry of `archMap` with its sub-architectures."""
    listed = _strings(profile.get("architectures"), "architectures")
    arch_map = profile.get("archMap") or []
    if listed and arch_map:
        raise _bad("both architectures and archMap are given; use one")
    if listed:
        return list(listed)
    if not isinstance(arch_map, list):
        raise _bad("archMap must be a list")
    for entry in arch_map:
        if isinstance(entry, dict) and entry.get("architecture") == spec_arch:
            return [spec_arch, *_strings(entry.get("subArchitectures"), "archMap subArchitectures")]
    return []           # an architecture the profile does not map: the runtime filters the native one


def _runnable(arches: list[str], config: str | None) -> list[str]:
    """`arches` (the native one first) less the sub-architectures the kernel was built without
    (`_SUB_ABIS`: none of its programs can run there). Each architecture a filter lists is
    compiled by libseccomp in every container's `runc init`: x32 alone costs ~5 ms of each start,
    on the many kernels built without it (and then, where the kernel would answer an x32 system
    call ENOSYS, the filter's bad-architecture action, SIGSYS, does). A configuration not known
    keeps them all, as Docker's filter has them."""
    if config is None or not arches:
        return arches
    def built(option: str) -> bool:
        return f"\n{option}=y\n" in config or config.startswith(f"{option}=y\n")

    return [arches[0], *(a for a in arches[1:] if a not in _SUB_ABIS or any(map(built, _SUB_ABIS[a])))]


def _filter(block: Mapping[str, Any], key: str, i: int) -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, int] | None]:
    """(caps, arches, minKernel) of a block's `includes` or `excludes` (absent = no condition)."""
    f = block.get(key) or {}
    if not isinstance(f, dict):
        raise _bad(f"syscalls[{i}].{key} must be an object")
    min_kernel = f.get("minKernel")
    version: tuple[int, int] | None = None
    if min_kernel is not None:
        m = re.fullmatch(r"(\d+)\.(\d+)", str(min_kernel))
        if m is None:
            raise _bad(f"syscalls[{i}].{key}.minKernel {min_kernel!r} is not major.minor")
        version = int(m.group(1)), int(m.group(2))
    return (_strings(f.get("caps"), f"syscalls[{i}].{key}.caps"),
            _strings(f.get("arches"), f"syscalls[{i}].{key}.arches"), version)


def _applies(block: Mapping[str, Any], i: int, *, caps: Collection[str], arch: str,
             kernel: tuple[int, int]) -> bool:
    """moby's rules: any exclude that matches drops the block, every include must match."""
    ex_caps, ex_arches, ex_kernel = _filter(block, "excludes", i)
    if arch in ex_arches or any(c in caps for c in ex_caps):
        return False
    if ex_kernel is not None and kernel >= ex_kernel:
        return False
    in_caps, in_arches, in_kernel = _filter(block, "includes", i)
    if in_arches and arch not in in_arches:
        return False
    if not all(c in caps for c in in_caps):
        return False
    return in_kernel is None or kernel >= in_kernel


def _rule(block: Mapping[str, Any], i: int) -> dict[str, Any]:
    """One runtime-spec `syscalls` entry: names, action, errnoRet, args."""
    name, names = block.get("name"), _strings(block.get("names"), f"syscalls[{i}].names")
    if name and names:
        raise _bad(f"syscalls[{i}] has both name and names; use one")
    if name:
        names = _strings([name], f"syscalls[{i}].name")
    if not names:
        raise _bad(f"syscalls[{i}] names no syscall")
    action = block.get("action")
    if not isinstance(action, str) or not action.startswith("SCMP_ACT_"):
        raise _bad(f"syscalls[{i}].action {action!r} is not an SCMP_ACT_ action")
    rule: dict[str, Any] = {"names": list(names), "action": action}
    errno_ret = _errno_of(block, "errnoRet", "errno", f"syscalls[{i}]")
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    args = block.get("args") or []
    if not isinstance(args, list):
        raise _bad(f"syscalls[{i}].args must be a list")
    if args:
        rule["args"] = [_arg(a, f"syscalls[{i}].args[{j}]") for j, a in enumerate(args)]
    return rule


def _arg(arg: Any, where: str) -> dict[str, Any]:
    if not isinstance(arg, dict):
        raise _bad(f"{where} must be an object")
    index, value, value_two, op = arg.get("index"), arg.get("value"), arg.get("valueTwo", 0), arg.get("op")
    if not all(isinstance(n, int) and n >= 0 for n in (index, value, value_two)):
        raise _bad(f"{where}: index, value and valueTwo must be non-negative integers")
    if not isinstance(op, str) or not op.startswith("SCMP_CMP_"):
        raise _bad(f"{where}.op {op!r} is not an SCMP_CMP_ operator")
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


def _errno_of(obj: Mapping[str, Any], number_key: str, name_key: str, where: str) -> int | None:
    """An errno given as a number (`errnoRet`) or a name (`errno`: "EPERM"); the name wins, as in containers/common."""
    name = obj.get(name_key)
    if name:
        value = getattr(_errno, str(name), None) if str(name).startswith("E") else None
        if not isinstance(value, int):
            raise _bad(f"{where}: {name_key} {name!r} is not an errno name")
        return value
    number = obj.get(number_key)
    if number is None:
        return None
    if not isinstance(number, int) or number < 0:
        raise _bad(f"{where}: {number_key} {number!r} is not an errno number")
    return number

