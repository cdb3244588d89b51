"""Per-source policy (spec/policy.py): what a manifest may ask of the host.

Each field issue 14 showed to be root on the host (capAdd ALL, networks host, a bind of /, an
env file or build context outside the source, a push to a foreign registry) is a validation
error under `restricted`, in the loader's format and naming the rule, and is accepted under
`host`. The commands run as `reconcile validate/apply --policy` in-process.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.agent import config as agentcfg
from reconciler.cli.main import main
from reconciler.runtime.fake import FakeRuntime
from reconciler.spec import policy

HEAD = "apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: 127.0.0.1:5000/shop/web:1\n"


VOLUME = "apiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: v}\n"


def image(body: str) -> str:
    return "apiVersion: reconciler/v1\nkind: Image\nmetadata: {name: app}\nspec:\n" + body


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/src is the source; tmp/outside holds what it must not reach."""
    (tmp_path / "src").mkdir()
    outside = tmp_path / "outside"
    (outside / "ctx").mkdir(parents=True)
    (outside / "secret.env").write_text("PASSWORD=hunter2\n")
    (outside / "ctx" / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


@pytest.fixture(autouse=True)
def any_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """validate checks for no particular engine (the native one refuses volume drivers itself)."""
    monkeypatch.delenv("RECONCILER_RUNTIME", raising=False)


def validate(src: Path, pol: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["validate", str(src), "--policy", pol])
    out = capsys.readouterr().out
    return code, [line.replace(str(src) + "/", "") for line in out.splitlines() if not line.startswith("valid:")]


REFUSED: dict[str, tuple[str, dict[str, str], str]] = {
    # case: (manifest, extra files relative to the source, the expected line, as a regex)
    "cap_all": (HEAD + "  capAdd: [ALL]\n", {},
                r"m\.yaml:6:12: Container/web: spec\.capAdd\[0\]: every capability refused by policy 'restricted' "
                r"\(rule capabilities: only Docker's default set unless listed\); list ALL under capabilities:"),
    "cap_sys_admin": (HEAD + "  capAdd: [NET_BIND_SERVICE, sys_admin]\n", {},
                      r"m\.yaml:6:30: Container/web: spec\.capAdd\[1\]: capability CAP_SYS_ADMIN refused by policy "
                      r"'restricted' \(rule capabilities: .*list SYS_ADMIN under capabilities: in a policy file"),
    "host_network": (HEAD + "  networks: [host]\n", {},
                     r"m\.yaml:6:14: Container/web: spec\.networks\[0\]: the host network namespace is refused by "
                     r"policy 'restricted' \(rule hostNetwork: false\)"),
    "host_network_entry": (HEAD + "  networks: [{name: host, priority: 10}]\n", {},
                           r"m\.yaml:6:14: Container/web: spec\.networks\[0\]: the host network namespace is refused "
                           r"by policy 'restricted' \(rule hostNetwork: false\)"),
    "bind_root": (HEAD + "  volumes: ['/:/host']\n", {},
                  r"m\.yaml:6:13: Container/web: spec\.volumes\[0\]: bind source / is outside the source root .* "
                  r"refused by policy 'restricted' \(rule bindPrefixes: none; .*list a directory holding it under "
                  r"bindPrefixes: in a policy file"),
    "env_file_dotdot": (HEAD + "  envFiles: [../outside/secret.env]\n", {},
                        r"m\.yaml:6:14: Container/web: spec\.envFiles\[0\]: env file .*/outside/secret\.env is outside "
                        r"the source root .* refused by policy 'restricted' \(rule filePrefixes: none;"),
    "env_file_symlink": (HEAD + "  envFiles: [link/secret.env]\n", {"link": "->../outside"},
                         r"m\.yaml:6:14: Container/web: spec\.envFiles\[0\]: env file link/secret\.env \(which leads to "
                         r".*/outside/secret\.env\) is outside the source root .* \(rule filePrefixes: none; symlinks count where they lead\)"),
    "build_context": (image("  build: {context: ../outside/ctx}\n"), {},
                      r"m\.yaml:5:20: Image/app: spec\.build\.context: build context .*/outside/ctx is outside the "
                      r"source root .* refused by policy 'restricted' \(rule filePrefixes: none;"),
    "dockerfile_symlink": (image("  build: {context: ./ctx, file: Dockerfile.link}\n"),
                           {"ctx": "dir", "ctx/Dockerfile.link": "->../../outside/ctx/Dockerfile"},
                           r"m\.yaml:5:33: Image/app: spec\.build\.file: Dockerfile ctx/Dockerfile\.link \(which "
                           r"leads to .*/outside/ctx/Dockerfile\) is outside the source root"),
    "external_network": ("apiVersion: reconciler/v1\nkind: Network\nmetadata: {name: tenant-b}\nspec: {external: true}\n", {},
                         r"m\.yaml:4:18: Network/tenant-b: spec\.external: an external Network \(made outside this source\) is "
                         r"refused by policy 'restricted' \(rule external: false\); declare it in the source, or set external: true"),
    "external_volume": ("apiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: their-data}\nspec: {external: true}\n", {},
                        r"m\.yaml:4:18: Volume/their-data: spec\.external: an external Volume \(made outside this source\) "
                        r"is refused by policy 'restricted' \(rule external: false\)"),
    "privileged": (HEAD + "  privileged: true\n", {},
                   r"m\.yaml:6:15: Container/web: spec\.privileged: a privileged container is refused by policy "
                   r"'restricted' \(rule privileged: false\); name what it needs"),
    "device": (HEAD + "  devices: [/dev/fuse]\n", {},
               r"m\.yaml:6:13: Container/web: spec\.devices\[0\]: the host device /dev/fuse is refused by policy "
               r"'restricted' \(rule devices: none\); list it under devices: in a policy file"),
    "secret_env": (HEAD + "  secrets: [{env: HOME, target: /run/secrets/home}]\n", {},
                   r"m\.yaml:6:19: Container/web: spec\.secrets\[0\]\.env: reading the agent's environment variable HOME "
                   r"is refused by policy 'restricted' \(rule secretEnv: none\)"),
    "volume_bind_device": ("apiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: etc}\n"
                           "spec:\n  driverOpts: {type: none, o: bind, device: /etc}\n", {},
                           r"m\.yaml:5:45: Volume/etc: spec\.driverOpts\.device: the volume's device /etc is outside the "
                           r"source root .* refused by policy 'restricted' \(rule bindPrefixes: none;"),
    "volume_block_device": ("apiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: disk}\n"
                            "spec:\n  driverOpts: {type: ext4, device: /dev/sda1}\n", {},
                            r"m\.yaml:5:36: Volume/disk: spec\.driverOpts\.device: the volume's device /dev/sda1 is "
                            r"outside the source root .* \(rule bindPrefixes: none;"),
    "bind_writable": (HEAD + "  volumes: ['./data:/data']\n", {"data": "dir"},
                      r"m\.yaml:6:13: Container/web: spec\.volumes\[0\]: a writable bind of \./data is refused by "
                      r"policy 'restricted' \(rule writableBinds: false\): a restricted source's files are the "
                      r"repository's.*bind them read-only.*keep data in a named volume"),
    "bind_writable_long": (HEAD + "  volumes: [{type: bind, source: ./data, target: /data, readOnly: false}]\n",
                           {"data": "dir"},
                           r"m\.yaml:6:13: Container/web: spec\.volumes\[0\]: a writable bind of \./data is "
                           r"refused by policy 'restricted' \(rule writableBinds: false\)"),
    "volume_overlay": (VOLUME + "spec:\n  driverOpts: {type: overlay, device: overlay, "
                       "o: 'lowerdir=/etc,upperdir=/tmp/u,workdir=/tmp/w'}\n", {},
                       r"m\.yaml:5:22: Volume/v: spec\.driverOpts\.type: a local volume of type overlay is refused by "
                       r"policy 'restricted' \(rule volumeTypes: tmpfs\): its options can name host paths"),
    "volume_nfs": (VOLUME + "spec:\n  driverOpts: {type: nfs, o: 'addr=127.0.0.1,rw', device: ':/export'}\n", {},
                   r"m\.yaml:5:22: Volume/v: spec\.driverOpts\.type: a local volume of type nfs is refused by "
                   r"policy 'restricted' \(rule volumeTypes: tmpfs\)"),
    "volume_no_type": (VOLUME + "spec:\n  driverOpts: {o: 'lowerdir=/etc'}\n", {},
                       r"m\.yaml:5:15: Volume/v: spec\.driverOpts: a local volume of type \(none\) is refused"),
    "volume_tmpfs_option": (VOLUME + "spec:\n  driverOpts: {type: tmpfs, device: tmpfs, o: 'size=1m,remount'}\n", {},
                            r"m\.yaml:5:47: Volume/v: spec\.driverOpts\.o: the tmpfs option remount is refused by "
                            r"policy 'restricted' \(rule volumeTypes: a tmpfs takes"),
    "volume_relative_bind": (VOLUME + "spec:\n  driverOpts: {type: none, o: bind, device: ./etc}\n", {},
                             r"m\.yaml:5:45: Volume/v: spec\.driverOpts\.device: the bind volume's device \./etc is "
                             r"refused by policy 'restricted' \(rule bindPrefixes\): the engine mounts a relative device "
                             r"from its own working directory"),
    "volume_plugin": (VOLUME + "spec:\n  driver: local-persist\n  driverOpts: {mountpoint: /etc}\n", {},
                      r"m\.yaml:5:11: Volume/v: spec\.driver: the volume driver local-persist is refused by policy "
                      r"'restricted' \(rule volumeDrivers: local\)"),
    "oom_score_negative": (HEAD + "  oomScoreAdj: -1000\n", {},
                           r"m\.yaml:6:16: Container/web: spec\.oomScoreAdj: oomScoreAdj -1000 \(the OOM killer would "
                           r"take the host's processes before this container's\) is refused by policy 'restricted' "
                           r"\(rule priority: false; 0 to 1000 allowed\); leave it out, or set priority: true"),
    "ulimit_rtprio": (HEAD + "  ulimits: {nofile: 4096, rtprio: 99}\n", {},
                      r"m\.yaml:6:35: Container/web: spec\.ulimits\.rtprio: ulimit rtprio above 0 \(it lets the "
                      r"container's processes take a real-time scheduling policy without CAP_SYS_NICE, ahead of the "
                      r"host's\) is refused by policy 'restricted' \(rule priority: false\)"),
    "ulimit_nice_hard": (HEAD + "  ulimits: {nice: {soft: 0, hard: -1}}\n", {},
                         r"m\.yaml:6:19: Container/web: spec\.ulimits\.nice: ulimit nice above 20 \(it lets the "
                         r"container's processes take a nice value below 0 .*\(rule priority: false\)"),
    "log_driver_gelf": (HEAD + "  logging: {driver: gelf, options: {gelf-address: 'udp://10.0.0.1:12201'}}\n", {},
                        r"m\.yaml:6:21: Container/web: spec\.logging\.driver: the log driver gelf is refused by "
                        r"policy 'restricted' \(rule logDrivers: json-file, local, journald, none\): the engine "
                        r"would send the container's output from the host.*list it under logDrivers: in a policy file"),
    "push_foreign": (image("  ref: 127.0.0.1:5000/app:1\n  push: [some.registry/loot:1]\n"), {},
                     r"m\.yaml:6:10: Image/app: spec\.push\[0\]: pushing to registry some\.registry refused by policy "
                     r"'restricted' \(rule pushRegistries: none\); list some\.registry under pushRegistries:"),
}


def _write(tree: Path, manifest: str, files: dict[str, str]) -> Path:
    src = tree / "src"
    (src / "m.yaml").write_text(manifest)
    for rel, content in files.items():
        if content == "dir":
            (src / rel).mkdir()
        elif content.startswith("->"):
            (src / rel).symlink_to(content[2:])
        else:
            (src / rel).write_text(content)
    return src


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_restricted_refuses_the_field_and_names_the_rule(
    case: str, tree: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    manifest, files, expected = REFUSED[case]
    src = _write(tree, manifest, files)
    code, lines = validate(src, "restricted", capsys)
    assert code == 2
    assert len(lines) == 1, lines
    assert re.match(expected, lines[0]), lines[0]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_host_accepts_all_of_it(case: str, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, files, _ = REFUSED[case]
    src = _write(tree, manifest, files)
    assert validate(src, "host", capsys) == (0, [])
    assert main(["validate", str(src)]) == 0            # host is the CLI's default
    capsys.readouterr()


def test_restricted_accepts_what_stays_inside(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tree / "src"
    (src / "app.env").write_text("A=1\n")
    (src / "data").mkdir()
    (src / "ctx").mkdir()
    (src / "ctx" / "Dockerfile").write_text("FROM scratch\n")
    (src / "m.yaml").write_text(
        HEAD + "  envFiles: [app.env]\n  volumes: ['./data:/data:ro', 'cache:/cache', /anonymous,\n"
        "    {type: bind, source: ./data, target: /ro, readOnly: true}]\n"
        "  capAdd: [NET_BIND_SERVICE, CAP_CHOWN]\n  networks: [n]\n"
        "---\napiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: cache}\n"
        "---\napiVersion: reconciler/v1\nkind: Network\nmetadata: {name: n}\n"
        "---\n" + image("  build: {context: ./ctx}\n") + "---\n"
        + image("  ref: docker.io/library/busybox:1\n").replace("name: app", "name: pulled")
        + "---\napiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: scratch}\n"
        "spec: {driverOpts: {type: tmpfs, device: tmpfs, o: 'size=10m,mode=1770,uid=1000,noexec'}}\n"
        "---\napiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: mine}\n"
        f"spec: {{driverOpts: {{type: none, o: bind, device: {src / 'data'}}}}}\n"
    )
    assert validate(src, "restricted", capsys) == (0, [])


def test_a_policy_file_allows_what_it_lists(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tree, HEAD + "  capAdd: [SYS_ADMIN]\n  envFiles: [../outside/secret.env]\n  volumes: ['/srv/x:/x']\n"
                 "---\n" + image("  ref: 127.0.0.1:5000/app:1\n  push: [some.registry/loot:1]\n"), {})
    pol = tree / "policy.yaml"
    pol.write_text(f"base: restricted\ncapabilities: [sys_admin]\nfilePrefixes: [{tree / 'outside'}]\n"
                   "bindPrefixes: [/srv]\npushRegistries: ['*.registry']\nwritableBinds: true\n")
    assert validate(src, str(pol), capsys) == (0, [])
    # and only that: a registry allow-list narrows pulls too
    pol.write_text("registries: [registry.example]\ncapabilities: ['*']\nbindPrefixes: [/]\nfilePrefixes: [/]\n"
                   "pushRegistries: ['*']\nwritableBinds: true\n")
    code, lines = validate(src, str(pol), capsys)
    assert code == 2
    assert [re.sub(r" \(rule.*", "", line) for line in lines] == [
        "m.yaml:5:10: Container/web: spec.image: pulling from registry 127.0.0.1:5000 refused by policy "
        f"'{pol}'",
        f"m.yaml:14:8: Image/app: spec.ref: pulling from registry 127.0.0.1:5000 refused by policy '{pol}'",
    ]


def test_a_bad_policy_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.yaml").write_text(HEAD)
    pol = tmp_path / "p.yaml"
    pol.write_text("base: restricted\ncapabilties: [NET_ADMIN]\nbindPrefixes: [srv]\n")
    assert main(["validate", str(tmp_path / "m.yaml"), "--policy", str(pol)]) == 2
    err = capsys.readouterr().err
    assert f"{pol}:2: capabilties: unknown setting 'capabilties' (did you mean 'capabilities'?)" in err
    assert f"{pol}:3: bindPrefixes: 'srv' is not an absolute path" in err
    assert main(["validate", str(tmp_path / "m.yaml"), "--policy", "strict"]) == 2
    assert "unknown policy 'strict': give host or restricted, or a policy file's path" in capsys.readouterr().err
    with pytest.raises(policy.PolicyError, match="cannot read the policy file"):
        policy.load_policy(str(tmp_path / "missing.yaml"))


def test_apply_under_restricted_changes_nothing(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tree, HEAD + "  capAdd: [ALL]\n  volumes: ['/:/host']\n", {})
    root = tree / "state"
    code = main(["apply", str(src), "--policy", "restricted", "--runtime", "fake", "--root", str(root),
                 "--run-dir", str(tree / "run")])
    assert code == 2
    assert "spec.capAdd[0]: every capability refused by policy 'restricted'" in capsys.readouterr().err
    assert not root.exists() or os.listdir(root) == []
    assert main(["--once", str(src), "--policy", "host", "--runtime", "fake", "--root", str(root),
                 "--run-dir", str(tree / "run"), "--dry-run"]) == 0


def test_spec_load_takes_a_policy_object(tree: Path) -> None:
    src = _write(tree, HEAD + "  networks: [host]\n", {})
    assert spec.load(src, policy=policy.HOST).containers["web"].networks == ("host",)
    with pytest.raises(spec.SpecError) as info:
        spec.load(src, policy=policy.RESTRICTED)
    assert [p.field for p in info.value.problems] == ["spec.networks[0]"]


def test_registry_of_reads_references_like_docker() -> None:
    assert policy.registry_of("busybox:1") == "docker.io"
    assert policy.registry_of("library/busybox") == "docker.io"
    assert policy.registry_of("127.0.0.1:5000/a/b:1") == "127.0.0.1:5000"
    assert policy.registry_of("localhost/app:latest") == "localhost"
    assert policy.registry_of("Ghcr.IO/x/y") == "ghcr.io"
    assert policy.registry_of("index.docker.io/library/busybox") == "docker.io"     # Docker Hub's old name
    assert policy.registry_of("[::1]:5000/x@sha256:" + "a" * 64) == "[::1]:5000"


def test_the_agent_defaults_git_sources_to_restricted_and_directories_to_host(tmp_path: Path) -> None:
    pol = tmp_path / "shop.yaml"
    pol.write_text("hostNetwork: true\n")
    cfg = agentcfg.parse_config(
        "sources:\n"
        "  - {name: local, directory: /etc/reconciler/manifests.d}\n"
        "  - {name: shop, git: {url: 'https://git.example/shop.git'}}\n"
        "  - {name: lab, git: {url: 'https://git.example/lab.git'}, policy: host}\n"
        f"  - {{name: web, git: {{url: 'https://git.example/web.git'}}, policy: {pol}}}\n"
    )
    by_name = {s.name: s.policy for s in cfg.sources}
    assert by_name["local"] is policy.HOST
    assert by_name["shop"] is policy.RESTRICTED
    assert by_name["lab"] is policy.HOST
    assert by_name["web"].host_network
    assert by_name["web"].bind_prefixes == ()
    with pytest.raises(agentcfg.ConfigError, match=r"<config>:2: sources\.0: policy: unknown policy 'nope'"):
        agentcfg.parse_config("sources:\n  - {name: a, directory: /x, policy: nope}\n")


SWAP = """\
apiVersion: reconciler/v1
kind: Container
metadata: {name: writer}
spec:
  image: 127.0.0.1:5000/shop/web:1
  job: true
  volumes: ["./data:/data"]
  command: [sh, -c, "rm -rf /data/esc; ln -s / /data/esc"]
---
apiVersion: reconciler/v1
kind: Container
metadata: {name: reader}
spec:
  image: 127.0.0.1:5000/shop/web:1
  volumes: ["./data/esc:/host"]
  dependsOn: [writer]
"""


def test_no_writable_bind_of_the_source_so_no_swap_for_a_symlink(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The attack: data/esc is a real directory when the revision is checked, the writer job turns
    it into a symlink to / before the reader is made, and the engine follows it when it mounts.
    Under restricted neither writable bind loads, so nothing runs at all."""
    src = _write(tree, SWAP, {"data": "dir", "data/esc": "dir", "data/esc/.keep": ""})
    code, lines = validate(src, "restricted", capsys)
    assert code == 2
    assert [line.split(" is refused")[0] for line in lines] == [
        "m.yaml:7:13: Container/writer: spec.volumes[0]: a writable bind of ./data",
        "m.yaml:15:13: Container/reader: spec.volumes[0]: a writable bind of ./data/esc",
    ]
    root = tree / "state"
    assert main(["apply", str(src), "--policy", "restricted", "--runtime", "fake", "--root", str(root),
                 "--run-dir", str(tree / "run")]) == 2
    assert "rule writableBinds: false" in capsys.readouterr().err
    assert not root.exists() or os.listdir(root) == []
    # read-only, the same binds load: the writer can no longer change the tree
    (src / "m.yaml").write_text(SWAP.replace('"./data:/data"', '"./data:/data:ro"').replace('/host"', '/host:ro"'))
    assert validate(src, "restricted", capsys) == (0, [])
    # a policy file may allow writable binds (and so the swap: docs/security.md)
    (src / "m.yaml").write_text(SWAP)
    pol = tree / "p.yaml"
    pol.write_text("writableBinds: true\n")
    assert validate(src, str(pol), capsys) == (0, [])


def test_every_writable_way_to_bind_the_source_is_refused(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A local bind Volume mounted read-write reaches the directory as a bind does; compose's
    short, long (create_host_path) and volume forms end up as the same manifests."""
    src = _write(tree, HEAD + "  volumes: ['bv:/bv', 'bv:/ro:ro', {type: volume, source: bv, target: /l}]\n---\n"
                 "apiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: bv}\n"
                 f"spec: {{driverOpts: {{type: none, o: bind, device: {tree / 'src' / 'data'}}}}}\n", {"data": "dir"})
    code, lines = validate(src, "restricted", capsys)
    assert code == 2
    assert [line.split(", which")[0] for line in lines] == [
        "m.yaml:6:13: Container/web: spec.volumes[0]: a writable mount of Volume bv",
        "m.yaml:6:36: Container/web: spec.volumes[2]: a writable mount of Volume bv",
    ]
    (src / "m.yaml").unlink()
    (src / "compose.yaml").write_text(
        "services:\n  a:\n    image: 127.0.0.1:5000/shop/web:1\n    volumes:\n"
        "      - ./data:/data\n"
        "      - ./data:/ro:ro\n"
        "      - {type: bind, source: ./new, target: /x, bind: {create_host_path: true}}\n"
        "      - {type: bind, source: ./data, target: /y, read_only: true}\n"
        "      - {type: volume, source: lb, target: /lb}\n"
        "      - {type: volume, source: lb, target: /lbro, read_only: true}\n"
        f"volumes:\n  lb: {{driver_opts: {{type: none, o: bind, device: {tree / 'src' / 'data'}}}}}\n")
    (src / "new").mkdir()
    code, lines = validate(src, "restricted", capsys)
    assert code == 2
    assert [line.split(" is refused")[0].split(", which")[0] for line in lines] == [
        "compose.yaml:5:9: services.a.volumes[0]: a writable bind of ./data",
        "compose.yaml:7:9: services.a.volumes[2]: a writable bind of ./new",
        "compose.yaml:9:9: services.a.volumes[4]: a writable mount of Volume src_lb",
    ]


def test_no_spelling_of_the_host_network_gets_through(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """compose's `networks: {x: {priority: 10}}` with a top-level `x: {name: host}` converts to
    the entry `{name: host}`, which the engine runs on the host's network namespace; so do
    `network_mode: host` and `networks: [host]`. Each is refused under restricted, nothing made."""
    src = tree / "src"
    (src / "compose.yaml").write_text(
        "services:\n  a:\n    image: 127.0.0.1:5000/shop/web:1\n    networks: {x: {priority: 10}}\n"
        "  b:\n    image: 127.0.0.1:5000/shop/web:1\n    network_mode: host\n"
        "networks:\n  x: {name: host}\n")
    code, lines = validate(src, "restricted", capsys)
    assert code == 2
    assert [line.split(": the host network")[0] for line in lines] == [
        "compose.yaml:4:19: services.a.networks.x", "compose.yaml:7:19: services.b.network_mode"], lines
    root = tree / "state"
    assert main(["apply", str(src), "--policy", "restricted", "--runtime", "fake", "--root", str(root),
                 "--run-dir", str(tree / "run")]) == 2
    assert "(rule hostNetwork: false)" in capsys.readouterr().err
    assert not root.exists() or os.listdir(root) == []
    (src / "compose.yaml").unlink()
    with pytest.raises(spec.SpecError) as info:        # the models say host: the engine's own word
        spec.load(_write(tree, HEAD + "  networks: [{name: host}]\n", {}), policy=policy.RESTRICTED)
    assert [p.field for p in info.value.problems] == ["spec.networks[0]"]
    assert spec.load(src / "m.yaml", policy=policy.HOST).containers["web"].networks == ("host",)


def test_a_volume_carries_no_host_path_unless_a_policy_file_lists_its_type(
    tree: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The attack on the Docker runtime: a local overlay volume whose lowerdir is the host's /etc
    gave a container /etc/shadow, the device rule (bindPrefixes) seeing no path in `device:
    overlay`. Refused when the revision loads (apply changes nothing); a policy file may list a
    type (nfs) or a plugin driver, and the path rule still holds for what it lists."""
    shadow = (HEAD + "  volumes: ['etc:/x:ro']\n---\napiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: etc}\n"
              "spec:\n  driverOpts: {type: overlay, device: overlay, o: 'lowerdir=/etc,upperdir=/tmp/u,workdir=/tmp/w'}\n")
    src = _write(tree, shadow, {})
    root = tree / "state"
    assert main(["apply", str(src), "--policy", "restricted", "--runtime", "fake", "--root", str(root),
                 "--run-dir", str(tree / "run")]) == 2
    assert "spec.driverOpts.type: a local volume of type overlay is refused" in capsys.readouterr().err
    assert not root.exists() or os.listdir(root) == []
    pol = tree / "p.yaml"
    pol.write_text("volumeTypes: [tmpfs, nfs]\nvolumeDrivers: [local, local-persist]\n")
    _write(tree, VOLUME + "spec:\n  driverOpts: {type: nfs, o: 'addr=10.0.0.1', device: ':/export'}\n---\n"
           + VOLUME.replace("name: v", "name: p") + "spec: {driver: local-persist, driverOpts: {mountpoint: /x}}\n", {})
    assert validate(src, str(pol), capsys) == (0, [])
    code, lines = validate(src, "restricted", capsys)
    assert code == 2
    assert [line.split(": ")[2] for line in lines] == ["spec.driverOpts.type", "spec.driver"]
    _write(tree, VOLUME + "spec:\n  driverOpts: {type: nfs, device: /dev/sda1}\n", {})
    code, lines = validate(src, str(pol), capsys)
    assert code == 2
    assert "(rule bindPrefixes: none;" in lines[0], lines


INTERPOLATED = """\
services:
  a:
    image: 127.0.0.1:5000/shop/web:1
    environment:
      LEAK: "${XSEC_AGENT_SECRET}"
      DEFAULT: "${XSEC_AGENT_SECRET:-fallback}"
      FROM_DOTENV: "${IN_DOTENV}"
      XSEC_AGENT_SECRET:
"""


def test_compose_interpolation_reads_no_agent_environment(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """`secrets: {s: {environment: VAR}}` is refused by secretEnv, and `${VAR}` (or a bare
    `environment:` key) read the same variable of the loading process (the agent's) into the
    container. Under restricted only the project's .env and defaults interpolate."""
    monkeypatch.setenv("XSEC_AGENT_SECRET", "agent-credential")
    src = tree / "src"
    (src / "compose.yaml").write_text(INTERPOLATED)
    (src / ".env").write_text("IN_DOTENV=from-the-source\n")

    def env(pol: policy.Policy) -> dict[str, str]:
        return dict(next(iter(spec.load(src, policy=pol).containers.values())).env)

    assert env(policy.RESTRICTED) == {"LEAK": "", "DEFAULT": "fallback", "FROM_DOTENV": "from-the-source"}
    assert env(policy.HOST) == {"LEAK": "agent-credential", "DEFAULT": "agent-credential",
                                "FROM_DOTENV": "from-the-source", "XSEC_AGENT_SECRET": "agent-credential"}
    listed = policy.parse_policy("secretEnv: ['XSEC_*']\n")
    assert env(listed)["LEAK"] == "agent-credential"
    # a real apply (fake engine, whose record keeps a container's env): the container gets none of it
    for pol, leaks in (("restricted", False), ("host", True)):
        root = tree / pol
        FakeRuntime.at_root(root).publish("127.0.0.1:5000/shop/web:1")
        assert main(["apply", str(src), "--policy", pol, "--runtime", "fake", "--root", str(root),
                     "--run-dir", str(tree / "run"), "--settle", "0"]) == 0, capsys.readouterr()
        assert ("agent-credential" in (root / "fake-runtime.json").read_text()) is leaks


def test_shared_tags_refuses_moving_a_tag_another_owner_holds_when_the_source_chose_the_content() -> None:
    """Rule sharedTags (refuse_tag; the pass gathers its inputs, tests/execution/
    test_shared_tags_native.py): a build or a pull by digest of a tag another owner runs or moved
    is refused; a plain pull (the registry's content under the name) only over an image made
    here; a tag nobody else holds, `host`, and a policy file with sharedTags: true are free."""
    runs = {"admin": ["priv", "db"]}

    def refused(p: policy.Policy = policy.RESTRICTED, **kw: object) -> str | None:
        args: dict[str, object] = {"build": False, "pinned": False, "runs": {}, "moved": None, "made_here": False}
        return policy.refuse_tag(p, "localhost/app:1", **{**args, **kw})  # type: ignore[arg-type]

    message = refused(build=True, runs=runs, moved=("admin", "build"))
    assert message == ("a build would move the local tag localhost/app:1, which another owner holds (owner 'admin' "
                       "built it and runs it in Container/db, Container/priv): refused by policy 'restricted' (rule "
                       "sharedTags: false), since their containers would then run what this source chose under "
                       "their own settings; give the Image a ref of its own (a tag no other owner uses), or set "
                       "sharedTags: true in a policy file")
    assert "owner 'ci' pulled it here" in (refused(build=True, moved=("ci", "pull")) or "")
    assert "a pull by digest" in (refused(pinned=True, runs=runs) or "")
    assert refused(runs=runs) is None                                   # the registry's content
    assert "a pull over the image made on this host" in (refused(runs=runs, made_here=True) or "")
    assert refused(build=True) is None
    assert refused(pinned=True, made_here=True) is None
    assert refused(policy.HOST, build=True, runs=runs) is None
    shared = policy.parse_policy("sharedTags: true\n", where="p.yaml")
    assert shared.shared_tags
    assert not shared.unrestricted
    assert refused(shared, build=True, runs=runs) is None
    assert not policy.RESTRICTED.shared_tags
    assert policy.HOST.unrestricted


def test_compose_priority_keys_meet_the_priority_rule(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """compose's `oom_score_adj` and `ulimits` become oomScoreAdj and ulimits: restricted refuses
    the values that rank a container above the host's processes, names the compose file's lines,
    and a policy file with priority: true (or host) lets them through; harmless values pass."""
    src = tree / "src"
    (src / "compose.yaml").write_text(
        "services:\n  web:\n    image: 127.0.0.1:5000/shop/web:1\n    oom_score_adj: -500\n"
        "    ulimits:\n      rtprio: 10\n      nice: 19\n      nofile: {soft: 1024, hard: 4096}\n")
    code, lines = validate(src, "restricted", capsys)
    assert code == 2
    assert [re.sub(r": (oomScoreAdj|ulimit) .*", "", line) for line in lines] == [
        "compose.yaml:4:20: services.web.oom_score_adj",
        "compose.yaml:6:15: services.web.ulimits.rtprio",
    ], lines
    pol = tree / "p.yaml"
    pol.write_text("priority: true\n")
    assert validate(src, str(pol), capsys) == (0, [])
    assert validate(src, "host", capsys) == (0, [])
    (src / "compose.yaml").write_text(
        "services:\n  web:\n    image: 127.0.0.1:5000/shop/web:1\n    oom_score_adj: 500\n"
        "    ulimits: {nice: 20, rtprio: 0, memlock: -1}\n")
    assert validate(src, "restricted", capsys) == (0, [])
