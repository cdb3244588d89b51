"""The default seccomp filter: Docker's profile, an allowlist, translated for each container.

The translation is checked on the shipped profile and on small profiles of the same format.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import Any

import pytest

from reconciler.runtime import errors as rterrors
from reconciler.runtime.native import bundle, seccomp

NONE = ("none",)
SYS_ADMIN = [*bundle.DEFAULT_CAPS, "CAP_SYS_ADMIN"]


def x86_64(caps: list[str] | tuple[str, ...], profile: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`profile` (the shipped one by default) translated for an x86_64 host on Linux 6.1."""
    return seccomp.translate(seccomp.default_profile() if profile is None else profile, caps,
                             arch="amd64", spec_arch="SCMP_ARCH_X86_64", kernel=(6, 1))


def allowed(filt: Mapping[str, Any]) -> set[str]:
    """Names an ALLOW rule lists without argument conditions."""
    return {n for r in filt["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r for n in r["names"]}


def rules_for(filt: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in filt["syscalls"] if name in r["names"]]


# ------------------------------------------------------------------------ the shipped profile

def test_shipped_profile_refuses_what_it_does_not_name() -> None:
    filt = x86_64(bundle.DEFAULT_CAPS)
    assert filt["defaultAction"] == "SCMP_ACT_ERRNO"
    assert filt["defaultErrnoRet"] == errno.EPERM
    assert filt["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = {n for r in filt["syscalls"] for n in r["names"]}
    assert {"read", "write", "openat", "execve", "clone", "futex", "arch_prctl"} <= names
    # not in the profile (a syscall of a newer kernel is like these): the default action, EPERM
    assert names.isdisjoint({"io_uring_setup", "kexec_load", "userfaultfd", "no_such_call_yet"})
    # granted with a capability the default set lacks
    assert names.isdisjoint({"unshare", "mount", "setns", "pivot_root", "init_module",
                             "settimeofday", "reboot", "syslog", "bpf", "perf_event_open", "vhangup"})
    # the only non-allow rule: clone3 answers ENOSYS so libc falls back to clone and its flag check
    assert [(r["names"], r.get("errnoRet")) for r in filt["syscalls"] if r["action"] != "SCMP_ACT_ALLOW"] \
        == [(["clone3"], errno.ENOSYS)]


def test_argument_rules_without_and_with_sys_admin() -> None:
    plain = x86_64(bundle.DEFAULT_CAPS)
    admin = x86_64(SYS_ADMIN)
    new_ns = 0x7E020000       # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
    assert rules_for(plain, "clone") == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                                          "args": [{"index": 0, "value": new_ns, "valueTwo": 0,
                                                    "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert {"clone", "clone3"} <= allowed(admin)
    assert not any(r["action"] == "SCMP_ACT_ERRNO" for r in admin["syscalls"])
    assert {"unshare", "mount", "umount2", "setns", "fsopen", "move_mount"} <= allowed(admin)
    assert "pivot_root" not in allowed(admin)          # Docker's profile never allows it
    personas = sorted(r["args"][0]["value"] for r in rules_for(plain, "personality"))
    assert personas == [0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert rules_for(admin, "personality") == rules_for(plain, "personality")


def test_per_capability_arch_and_kernel() -> None:
    profile = seccomp.default_profile()
    ptrace = x86_64([*bundle.DEFAULT_CAPS, "CAP_SYS_PTRACE", "CAP_SYS_TIME"])
    assert {"kcmp", "pidfd_getfd", "process_madvise", "settimeofday", "clock_settime"} <= allowed(ptrace)
    old_kernel = seccomp.translate(profile, bundle.DEFAULT_CAPS, arch="amd64", spec_arch="SCMP_ARCH_X86_64",
                                   kernel=(4, 7))
    assert "ptrace" in allowed(x86_64(bundle.DEFAULT_CAPS))
    assert "ptrace" not in allowed(old_kernel)                       # includes.minKernel 4.8
    arm = seccomp.translate(profile, bundle.DEFAULT_CAPS, arch="arm64", spec_arch="SCMP_ARCH_AARCH64",
                            kernel=(6, 1))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "set_tls" in allowed(arm)
    assert "arch_prctl" not in allowed(arm)
    s390 = seccomp.translate(profile, bundle.DEFAULT_CAPS, arch="s390x", spec_arch="SCMP_ARCH_S390X",
                             kernel=(6, 1))
    assert [r["args"][0]["index"] for r in rules_for(s390, "clone")] == [1]   # s390 swaps clone's arguments
    unknown = seccomp.translate(profile, bundle.DEFAULT_CAPS, arch="", spec_arch="", kernel=(6, 1))
    assert "architectures" not in unknown        # the runtime then filters the native one


def test_the_format_as_containers_common_writes_it() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "ENOSYS",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"name": "read", "action": "SCMP_ACT_ALLOW"},
            {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errno": "EPERM", "args": [],
             "includes": {}, "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
            {"names": ["x"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
            {"names": ["y"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}},
        ],
    }
    out = x86_64([], profile)
    assert out == {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS,
                   "architectures": ["SCMP_ARCH_X86_64"],
                   "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                                {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}]}
    assert [r["names"] for r in x86_64(["CAP_SYS_CHROOT"], profile)["syscalls"]] == [["read"]]


@pytest.mark.parametrize(("change", "words"), [
    ({"defaultAction": "ALLOW"}, "defaultAction 'ALLOW' is not an SCMP_ACT_ action"),
    ({"archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}, "both architectures and archMap"),
    ({"syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}, "syscalls[0] has both name and names"),
    ({"syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]},
     "syscalls[0].args[0].op 'EQ' is not an SCMP_CMP_ operator"),
    ({"syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO", "errno": "EWHAT"}]}, "errno 'EWHAT' is not an errno name"),
    ({"syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "six"}}]},
     "syscalls[0].includes.minKernel 'six' is not major.minor"),
])
def test_a_malformed_profile_is_refused_naming_the_field(change: dict[str, Any], words: str) -> None:
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [], **change}
    with pytest.raises(rterrors.Unavailable) as err:
        x86_64([], profile)
    assert words in str(err.value)
    assert "reinstall reconciler" in str(err.value)


def test_kernel_version() -> None:
    assert seccomp.kernel_version("6.1.0-18-amd64") == (6, 1)
    assert seccomp.kernel_version("4.8") == (4, 8)
    with pytest.raises(rterrors.Unavailable):
        seccomp.kernel_version("weird")
