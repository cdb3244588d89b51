"""The default seccomp filter: Docker's profile, an allowlist, translated for each container.

The translation is checked on the shipped profile and on small profiles of the same format;
the behaviour in real runc containers. busybox has no way to make an arbitrary syscall, so the
probes run the host's own python3 inside the container, with the host's /usr, /lib and /lib64
bound read-only (not chrooted: the kernel refuses a user namespace to a chrooted process).
"""

from __future__ import annotations

import errno
import json
import platform
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.containers import bundle, seccomp
from tests.runtime.conftest import cleanup, leftovers, make_native

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


def test_sub_architectures_the_kernel_was_built_without_are_left_out() -> None:
    """libseccomp compiles every listed architecture in each container's `runc init` (x32 alone
    ~5 ms of a start): one the running kernel has no ABI for (its build configuration says so)
    is left out; a configuration not known keeps Docker's list."""
    profile = seccomp.default_profile()

    def arches(config: str | None, arch: str = "amd64", spec_arch: str = "SCMP_ARCH_X86_64") -> list[str]:
        return list(seccomp.translate(profile, bundle.DEFAULT_CAPS, arch=arch, spec_arch=spec_arch, kernel=(6, 1),
                                      kernel_config=config)["architectures"])

    x86_64, x86, x32 = "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"
    assert arches(None) == [x86_64, x86, x32]
    assert arches("CONFIG_IA32_EMULATION=y\n# CONFIG_X86_X32_ABI is not set\nCONFIG_SECCOMP=y\n") == [x86_64, x86]
    assert arches("CONFIG_IA32_EMULATION=y\nCONFIG_X86_X32_ABI=y\n") == [x86_64, x86, x32]
    assert arches("CONFIG_X86_X32=y\nCONFIG_IA32_EMULATION=y\n") == [x86_64, x86, x32]     # before Linux 5.18
    assert arches("# CONFIG_IA32_EMULATION is not set\nCONFIG_X86_X32_ABI_X=y\n") == [x86_64]
    assert arches("CONFIG_COMPAT=y\n", "arm64", "SCMP_ARCH_AARCH64") == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert arches("# CONFIG_COMPAT is not set\n", "arm64", "SCMP_ARCH_AARCH64") == ["SCMP_ARCH_AARCH64"]


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


# ------------------------------------------------------------------------ real containers

PROBE = r"""
import ctypes, json, os, platform
NR = {"x86_64": {"clone": 56, "io_uring_setup": 425},
      "aarch64": {"clone": 220, "io_uring_setup": 425}}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.personality.argtypes = [ctypes.c_ulong]
def result(r):
    return 0 if r >= 0 else ctypes.get_errno()
def clone(flags):
    pid = libc.syscall(ctypes.c_long(NR["clone"]), ctypes.c_long(flags | 17), *[ctypes.c_long(0)] * 4)
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
    return result(pid)
out = {
    "personality query": result(libc.personality(0xFFFFFFFF)),
    "personality PER_LINUX32": result(libc.personality(0x0008)),
    "personality ADDR_NO_RANDOMIZE": result(libc.personality(0x0040000)),
    "clone": clone(0),
    "clone CLONE_NEWUSER": clone(0x10000000),
    "io_uring_setup": result(libc.syscall(ctypes.c_long(NR["io_uring_setup"]), ctypes.c_long(1), None)),
}
libc.personality(0)
out["unshare CLONE_NEWUSER"] = result(libc.unshare(0x10000000))
print(json.dumps(out))
"""


@pytest.fixture
def native(tmp_path: Path, busybox_image: str) -> Iterator[tuple[NativeRuntime, str]]:
    rt, ref = make_native(tmp_path, busybox_image)
    try:
        yield rt, ref
    finally:
        cleanup(rt)
        left = leftovers(rt.config)
        rt.close()
        assert left == [], left


def host_python() -> tuple[base.Mount, ...]:
    """The host's /usr, /lib and /lib64 bound read-only at the same places: its python3 runs."""
    return tuple(base.Mount(type="bind", source=str(Path(top).resolve()), target=top, read_only=True)
                 for top in ("/usr", "/lib", "/lib64") if Path(top).exists())


def probe_in_container(rt: NativeRuntime, image: str, name: str, cap_add: tuple[str, ...] = ()) -> dict[str, int]:
    cid = rt.create_container(base.ContainerConfig(
        name=name, image=image, networks=NONE, cap_add=cap_add, mounts=host_python(),
        command=("/usr/bin/python3", "-I", "-c", PROBE)))
    rt.start_container(cid)
    assert rt.wait_container(cid, timeout=60) == 0, [ln.data for ln in rt.logs(cid)]
    return json.loads(b"".join(ln.data for ln in rt.logs(cid) if ln.stream == "stdout"))  # type: ignore[no-any-return]


def shell_in_container(rt: NativeRuntime, image: str, name: str, script: str,
                       cap_add: tuple[str, ...] = ()) -> str:
    cid = rt.create_container(base.ContainerConfig(name=name, image=image, networks=NONE, cap_add=cap_add,
                                                   command=("sh", "-c", script)))
    rt.start_container(cid)
    rt.wait_container(cid, timeout=30)
    return "\n".join(ln.data.decode() for ln in rt.logs(cid) if ln.stream == "stdout")


@pytest.fixture(scope="module")
def on_the_host() -> dict[str, int]:
    """The probe outside any container: each call is there, so a refusal inside is the filter's."""
    if platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("the probe knows syscall numbers of x86_64 and aarch64 only")
    out = subprocess.run(["/usr/bin/python3", "-I", "-c", PROBE], capture_output=True, check=True).stdout
    host: dict[str, int] = json.loads(out)
    assert host["personality ADDR_NO_RANDOMIZE"] == 0
    assert host["clone CLONE_NEWUSER"] == 0, "the host must allow user namespaces for this test"
    assert host["io_uring_setup"] == errno.EFAULT, "the host's kernel must have io_uring for this test"
    return host


CALLS = ("personality query", "personality PER_LINUX32", "personality ADDR_NO_RANDOMIZE", "clone",
         "clone CLONE_NEWUSER", "io_uring_setup", "unshare CLONE_NEWUSER")


@pytest.mark.root
def test_default_container_gets_only_what_the_profile_allows(
    native: tuple[NativeRuntime, str], on_the_host: dict[str, int],
) -> None:
    rt, image = native
    inside = probe_in_container(rt, image, "probe")
    assert {k: inside[k] for k in CALLS} == {
        "personality query": 0, "personality PER_LINUX32": 0, "clone": 0,
        "personality ADDR_NO_RANDOMIZE": errno.EPERM,     # argument rule: only the listed personas
        "clone CLONE_NEWUSER": errno.EPERM,               # argument rule: no namespace flags
        "io_uring_setup": errno.EPERM,                    # not in the profile at all
        "unshare CLONE_NEWUSER": errno.EPERM,             # CAP_SYS_ADMIN only
    }
    spec = json.loads(rt.containers.paths(rt.inspect_container("probe").id).config_json.read_text())
    filt = spec["linux"]["seccomp"]
    assert (filt["defaultAction"], filt["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", errno.EPERM)
    assert "io_uring_setup" not in {n for r in filt["syscalls"] for n in r["names"]}
    assert filt == seccomp.linux_seccomp(spec["process"]["capabilities"]["bounding"])
    out = shell_in_container(rt, image, "busy", "busybox unshare -U true && echo unshare || echo no-unshare; "
                             "mkdir /m; busybox mount -t tmpfs t /m && echo mount || echo no-mount")
    assert out.splitlines() == ["no-unshare", "no-mount"]


@pytest.mark.root
def test_sys_admin_container_gets_namespaces_but_still_no_more(
    native: tuple[NativeRuntime, str], on_the_host: dict[str, int],
) -> None:
    rt, image = native
    inside = probe_in_container(rt, image, "admin", cap_add=("SYS_ADMIN",))
    assert {k: inside[k] for k in CALLS} == {
        "personality query": 0, "personality PER_LINUX32": 0, "clone": 0,
        "clone CLONE_NEWUSER": 0, "unshare CLONE_NEWUSER": 0,
        "personality ADDR_NO_RANDOMIZE": errno.EPERM, "io_uring_setup": errno.EPERM,
    }
    out = shell_in_container(rt, image, "busy", "busybox unshare -U true && echo unshare || echo no-unshare; "
                             "mkdir /m; busybox mount -t tmpfs t /m && echo mount || echo no-mount",
                             cap_add=("SYS_ADMIN",))
    assert out.splitlines() == ["unshare", "mount"]
