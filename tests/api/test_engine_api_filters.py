"""The list filters, prunes and rmi of the native engine's Engine API, side by side with the host's
dockerd 20.10, driven by the same docker CLI commands: a filter dockerd knows selects the same
objects on both, one it does not know is refused on both (never ignored: `docker ps -q -f
health=unhealthy | xargs docker restart` must not restart every container), a prune is never
wider than its filters, and `docker rmi -f ID` keeps the tags of an image a container runs.

On dockerd everything a test makes carries its prefix (names, repositories) and the label
`reconciler-test=<prefix>`, each image is one of its own (a layer of random bytes: an id no
other image has), every listing is narrowed to those, and the test removes exactly them.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_engine_api import REPO, docker, engine_args
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.docker.conftest import push_busybox
from tests.helpers.host import Host
from tests.helpers.registry import RegistryServer

DOCKERD = "/var/run/docker.sock"
LABEL = "reconciler-test"


def _dockerd_usable() -> bool:
    if not os.path.exists(DOCKERD):
        return False
    return docker(DOCKERD, "version", "--format", "{{.Server.Version}}", check=False).returncode == 0


class Both:
    """The same docker commands on the native engine's API (`ours`) and on dockerd."""

    def __init__(self, ours: str, prefix: str, *, with_dockerd: bool) -> None:
        self.socks = {"ours": ours, **({"dockerd": DOCKERD} if with_dockerd else {})}
        self.prefix = prefix

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None,
            stdin: str | None = None) -> dict[str, subprocess.CompletedProcess[str]]:
        out = {}
        for side, sock in self.socks.items():
            if env or stdin is not None:
                full = {**os.environ, "DOCKER_HOST": f"unix://{sock}", **(env or {})}
                full.pop("DOCKER_CONTEXT", None)
                proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=full, input=stdin,
                                      timeout=180, check=False)
                assert not check or proc.returncode == 0, f"{side}: docker {' '.join(args)}: {proc.stderr}"
            else:
                proc = docker(sock, *args, check=False)
                assert not check or proc.returncode == 0, f"{side}: docker {' '.join(args)}: {proc.stderr}"
            out[side] = proc
        return out

    def same(self, *args: str, ordered: bool = False, narrowed: bool = False) -> list[str]:
        """The lines a command prints that name this test's objects (all of them when its filters
        narrowed it to those already), alike on both sides."""
        seen = {}
        for side, proc in self.run(*args).items():
            lines = [line for line in proc.stdout.split() if narrowed or self.prefix in line]
            seen[side] = lines if ordered else sorted(lines)
        assert len({tuple(v) for v in seen.values()}) == 1, f"docker {' '.join(args)}: {seen}"
        return seen["ours"]

    def refused(self, *args: str, words: str) -> None:
        """The command fails on both sides, saying `words`."""
        for side, proc in self.run(*args, check=False).items():
            assert proc.returncode != 0, f"{side}: docker {' '.join(args)} did not fail: {proc.stdout}"
            assert words in proc.stderr, f"{side}: {proc.stderr}"

    def cleanup(self) -> None:
        for sock in self.socks.values():
            label = f"label={LABEL}={self.prefix}"
            ids = docker(sock, "ps", "-aq", "--no-trunc", "-f", label, check=False).stdout.split()
            if ids:
                docker(sock, "rm", "-f", *ids, check=False)
            for kind in ("volume", "network"):
                names = docker(sock, kind, "ls", "--format", "{{.Name}}", "-f", f"name={self.prefix}",
                               check=False).stdout.split()
                names = [n for n in names if n.startswith(self.prefix)]
                if names:
                    docker(sock, kind, "rm", *names, check=False)
            refs = docker(sock, "images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
            ours = [r for r in refs if self.prefix in r]
            if ours:
                docker(sock, "rmi", "-f", *ours, check=False)
            labelled = docker(sock, "images", "-aq", "--no-trunc", "-f", f"label=proj={self.prefix}",
                              check=False).stdout.split()
            if labelled:
                docker(sock, "rmi", "-f", *dict.fromkeys(labelled), check=False)


@pytest.fixture
def both(engine_api: str) -> Iterator[Both]:
    prefix = "rtf" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))
    b = Both(engine_api, prefix, with_dockerd=_dockerd_usable())
    try:
        yield b
    finally:
        b.cleanup()


def own_image(both: Both, registry: RegistryServer, tmp_path: Path, name: str) -> str:
    """An image of this test's own (an id nothing else has) in the registry, pulled on both sides."""
    ref, _ = push_busybox(registry, tmp_path / name, f"{both.prefix}/{name}", unique=True)
    both.run("pull", "-q", ref)
    return ref


def wait_health(both: Both, name: str, status: str) -> None:
    for side, sock in both.socks.items():
        deadline = time.monotonic() + 60
        while (now := docker(sock, "inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()) != status:
            assert time.monotonic() < deadline, f"{side}: {name} is {now}, not {status}"
            time.sleep(0.3)


def test_the_container_list_filters_as_dockerd(both: Both, registry: RegistryServer, tmp_path: Path) -> None:
    p, label = both.prefix, f"{LABEL}={both.prefix}"
    base = own_image(both, registry, tmp_path, "base")
    run = ("run", "-d", "--network", "none", "-l", label)
    both.run(*run, "--name", f"{p}-ok", "--health-cmd", "true", "--health-interval", "1s", base, "sleep", "600")
    both.run(*run, "--name", f"{p}-bad", "--health-cmd", "false", "--health-interval", "1s", "--health-retries", "1",
             base, "sleep", "600")
    both.run(*run, "--name", f"{p}-vol", "-v", f"{p}-data:/data", base, "sleep", "600")
    both.run("run", "--network", "none", "-l", label, "--name", f"{p}-ex3", base, "sh", "-c", "exit 3", check=False)
    both.run("create", "--network", "none", "-l", label, "--name", f"{p}-new", base, "true")
    both.run("build", "-q", "-t", f"{p}-derived:1", "-", env={"DOCKER_BUILDKIT": "0"},
             stdin=f"FROM {base}\nLABEL proj={p}\n")
    both.run(*run, "--name", f"{p}-child", f"{p}-derived:1", "sleep", "600")
    wait_health(both, f"{p}-bad", "unhealthy")
    wait_health(both, f"{p}-ok", "healthy")
    names = ("ps", "-a", "--format", "{{.Names}}", "-f", f"label={label}")
    everything = both.same(*names)
    assert len(everything) == 6

    assert both.same(*names, "-f", "health=unhealthy") == [f"{p}-bad"]
    assert both.same("ps", "--format", "{{.Names}}", "-f", "health=healthy") == [f"{p}-ok"]
    assert both.same(*names, "-f", "health=none") == sorted(f"{p}-{n}" for n in ("vol", "ex3", "new", "child"))
    assert both.same(*names, "-f", "exited=3") == [f"{p}-ex3"]
    assert both.same(*names, "-f", "exited=0") == []                   # never started: no exit code
    assert both.same(*names, "-f", f"volume={p}-data") == [f"{p}-vol"]
    assert both.same(*names, "-f", "volume=/data") == [f"{p}-vol"]
    assert both.same(*names, "-f", "is-task=true") == []
    assert both.same(*names, "-f", "is-task=false") == everything
    assert both.same(*names, "-f", "isolation=default") == everything
    assert both.same(*names, "-f", "status=created") == [f"{p}-new"]

    # ancestor: the image by reference (normalised), id or short id, and what was built from it
    from_base = sorted(set(everything))
    assert both.same(*names, "-f", f"ancestor={base}") == from_base
    assert both.same(*names, "-f", f"ancestor={base.removesuffix(':latest')}") == from_base
    assert both.same(*names, "-f", f"ancestor={p}-derived:1") == [f"{p}-child"]
    assert both.same(*names, "-f", f"ancestor=docker.io/library/{p}-derived:1") == [f"{p}-child"]
    assert both.same(*names, "-f", f"ancestor={p}-derived") == []          # :latest, which it has not
    assert both.same(*names, "-f", f"ancestor={p}-absent:1") == []
    for side, sock in both.socks.items():
        image_id = docker(sock, "image", "inspect", "-f", "{{.Id}}", base).stdout.strip()
        for value in (image_id, image_id[7:19]):
            found = sorted(docker(sock, *names, "-f", f"ancestor={value}").stdout.split())
            assert found == from_base, f"{side}: ancestor={value}: {found}"

    # newest first; -n/-l also list stopped ones; before/since a container
    newest = both.same("ps", "-n", "3", "--format", "{{.Names}}", "-f", f"label={label}", ordered=True)
    assert newest == [f"{p}-child", f"{p}-new", f"{p}-ex3"]
    assert both.same("ps", "-l", "--format", "{{.Names}}", "-f", f"label={label}") == [f"{p}-child"]
    assert both.same(*names, "-f", f"since={p}-ex3", ordered=True) == [f"{p}-child", f"{p}-new"]
    assert both.same(*names, "-f", f"before={p}-vol") == sorted([f"{p}-ok", f"{p}-bad"])

    both.refused("ps", "-f", "bogus=1", words="Invalid filter 'bogus'")
    both.refused("ps", "-a", "-f", "status=sleepy", words="Invalid filter 'status=sleepy'")
    both.refused("ps", "-a", "-f", "health=sick", words="Unrecognised filter value for health: sick")
    both.refused("ps", "-a", "-f", f"before={p}-nobody", words=f"no such container {p}-nobody")
    both.refused("ps", "-a", "-f", "is-task=maybe", words="Invalid filter 'is-task")


def test_published_and_exposed_ports_and_networks_filter_the_list(engine_api: str, registry: RegistryServer,
                                                                   tmp_path: Path) -> None:
    """publish, expose and network (on the native engine alone: dockerd's would need its bridge)."""
    both = Both(engine_api, "rtp", with_dockerd=False)
    base = own_image(both, registry, tmp_path, "ports")
    sock = engine_api
    net_id = docker(sock, "network", "create", "rtp-net").stdout.strip()      # (inspect's Id is its name)
    try:
        docker(sock, "run", "-d", "--name", "rtp-web", "--network", "rtp-net", "-p", "127.0.0.1::80",
               "--expose", "81", base, "sleep", "600")
        docker(sock, "run", "-d", "--name", "rtp-off", "--network", "none", base, "sleep", "600")
        port = docker(sock, "port", "rtp-web", "80").stdout.strip().rpartition(":")[2]
        names = ("ps", "--format", "{{.Names}}")
        assert docker(sock, *names, "-f", f"publish={port}").stdout.split() == ["rtp-web"]
        assert docker(sock, *names, "-f", f"publish={port}/udp").stdout.split() == []
        assert docker(sock, *names, "-f", "expose=80").stdout.split() == ["rtp-web"]
        assert docker(sock, *names, "-f", "expose=70-90/tcp").stdout.split() == ["rtp-web"]
        assert docker(sock, *names, "-f", "network=rtp-net").stdout.split() == ["rtp-web"]
        assert docker(sock, *names, "-f", f"network={net_id[:6]}").stdout.split() == ["rtp-web"]
        refused = docker(sock, *names, "-f", "publish=127.0.0.1:80", check=False)
        assert refused.returncode != 0
        assert "should not contain ':'" in refused.stderr
    finally:
        docker(sock, "rm", "-f", "rtp-web", "rtp-off", check=False)
        docker(sock, "network", "rm", "rtp-net", check=False)


def test_docker_py_limit_and_filters(engine_api: str, registry: RegistryServer, tmp_path: Path) -> None:
    docker_py = pytest.importorskip("docker")
    both = Both(engine_api, "rtl", with_dockerd=False)
    base = own_image(both, registry, tmp_path, "limit")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}")
    try:
        for n in range(3):
            client.containers.create(base, ["true"], name=f"rtl-{n}", network_mode="none", labels={"n": str(n)})
            time.sleep(0.01)
        assert [c.name for c in client.containers.list(all=True)] == ["rtl-2", "rtl-1", "rtl-0"]
        assert [c.name for c in client.containers.list(all=True, limit=2)] == ["rtl-2", "rtl-1"]
        assert [c.name for c in client.containers.list(limit=1)] == ["rtl-2"]     # a limit lists stopped ones
        assert [c.name for c in client.containers.list(all=True, filters={"label": "n=1"})] == ["rtl-1"]
        with pytest.raises(docker_py.errors.APIError, match="Invalid filter 'bogus'") as info:
            client.containers.list(all=True, filters={"bogus": "x"})
        assert info.value.status_code == 400
        assert client.containers.list(all=True, filters={"health": "unhealthy"}) == []
    finally:
        for n in range(3):
            docker(engine_api, "rm", "-f", f"rtl-{n}", check=False)
        client.close()


def test_the_volume_list_filters_as_dockerd(both: Both, registry: RegistryServer, tmp_path: Path) -> None:
    p = both.prefix
    base = own_image(both, registry, tmp_path, "vols")
    both.run("volume", "create", "--label", "proj=x", f"{p}-a")
    both.run("volume", "create", "--label", "proj=y", f"{p}-b")
    both.run("volume", "create", f"{p}-c")
    both.run("create", "--network", "none", "-l", f"{LABEL}={p}", "--name", f"{p}-user", "-v", f"{p}-c:/c", base)
    ls = ("volume", "ls", "-q")
    assert both.same(*ls) == [f"{p}-a", f"{p}-b", f"{p}-c"]
    assert both.same(*ls, "-f", "label=proj=x") == [f"{p}-a"]
    assert both.same(*ls, "-f", "label=proj") == [f"{p}-a", f"{p}-b"]
    assert both.same(*ls, "-f", f"name={p}-b") == [f"{p}-b"]
    assert both.same(*ls, "-f", f"name=^{p}-[ab]$") == [f"{p}-a", f"{p}-b"]
    assert both.same(*ls, "-f", "dangling=true") == [f"{p}-a", f"{p}-b"]
    assert both.same(*ls, "-f", "dangling=0") == [f"{p}-c"]
    assert both.same(*ls, "-f", "driver=local") == [f"{p}-a", f"{p}-b", f"{p}-c"]
    assert both.same(*ls, "-f", "driver=nfs") == []
    both.refused(*ls, "-f", "bogus=1", words="Invalid filter 'bogus'")
    both.refused(*ls, "-f", "dangling=maybe", words="Invalid filter 'dangling=[maybe]'")


def test_the_image_list_filters_as_dockerd(both: Both, registry: RegistryServer, tmp_path: Path) -> None:
    p = both.prefix
    base = own_image(both, registry, tmp_path, "imgs")
    for tag in (f"{p}-bb:1", f"{p}-bb:2", f"{p}-cc:1"):
        both.run("tag", base, tag)
    build = ("build", "-q", "-t", f"{p}-dd:1", "-")
    both.run(*build, env={"DOCKER_BUILDKIT": "0"}, stdin=f"FROM {base}\nLABEL proj={p} v=1\nRUN true\n")
    old = {side: docker(sock, "image", "inspect", "-f", "{{.Id}}", f"{p}-dd:1").stdout.strip()
           for side, sock in both.socks.items()}
    time.sleep(1.1)    # created a second later (RUN: the native builder dates an image by its newest layer)
    both.run(*build, env={"DOCKER_BUILDKIT": "0"}, stdin=f"FROM {base}\nLABEL proj={p} v=2\nRUN true\n")
    refs = ("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert both.same(*refs, f"{p}-bb") == [f"{p}-bb:1", f"{p}-bb:2"]          # not the image's other tags
    assert both.same(*refs, "-f", f"reference={p}-cc") == [f"{p}-cc:1"]
    assert both.same(*refs, "-f", f"reference={p}-bb:2") == [f"{p}-bb:2"]
    assert both.same(*refs, "-f", f"reference={p}-?c:1") == [f"{p}-cc:1"]
    assert both.same(*refs, "-f", f"reference={p}-??:1") == [f"{p}-bb:1", f"{p}-cc:1", f"{p}-dd:1"]
    assert both.same(*refs, "-f", f"reference={p}-*") == [f"{p}-bb:1", f"{p}-bb:2", f"{p}-cc:1", f"{p}-dd:1"]
    for side, sock in both.socks.items():
        ids = docker(sock, "images", "-q", f"{p}-bb:1").stdout.split()
        assert len(ids) == 1, f"{side}: {ids}"                             # once, not once per tag
    # the old build, its tag gone: dangling, shown as <none> (RepoDigests <none>@<none>, as dockerd)
    dangling = ("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "-f", "dangling=true",
                "-f", f"label=proj={p}")
    for side, sock in both.socks.items():
        rows = docker(sock, *dangling).stdout.splitlines()
        assert rows == [f"<none>:<none> {old[side][7:19]}"], f"{side}: {rows}"
        listed = docker(sock, "images", "--format", "{{.ID}}").stdout.split()
        assert old[side][7:19] in listed, f"{side}: the dangling image is not in docker images: {listed}"
        doc = json.loads(docker(sock, "image", "inspect", old[side]).stdout)[0]
        assert (doc["RepoTags"], doc["RepoDigests"]) == ([], []), side
    mine = ("-f", f"label=proj={p}")
    assert both.same(*refs, *mine, narrowed=True) == ["<none>:<none>", f"{p}-dd:1"]
    assert both.same(*refs, *mine, "-f", "label=v=2") == [f"{p}-dd:1"]
    assert both.same(*refs, *mine, "-f", "dangling=false") == [f"{p}-dd:1"]
    assert both.same(*refs, *mine, "-f", f"before={p}-dd:1", narrowed=True) == ["<none>:<none>"]
    assert both.same(*refs, *mine, "-f", f"since={p}-dd:1", narrowed=True) == []
    both.refused("images", "-f", "bogus=1", words="Invalid filter 'bogus'")
    both.refused("images", "-f", "dangling=maybe", words="Invalid filter 'dangling=[maybe]'")
    both.refused("images", "-f", f"since={p}-absent:1", words=f"No such image: {p}-absent:1")

    # prune: until keeps what is newer, label narrows; dangling only unless -a
    assert "Total reclaimed space: 0B" in both.run("image", "prune", "-f", "--filter", "until=1h",
                                                    "--filter", f"label=proj={p}")["ours"].stdout
    for side, proc in both.run("image", "prune", "-f", "--filter", f"label=proj={p}").items():
        assert f"deleted: {old[side]}" in proc.stdout, f"{side}: {proc.stdout}"
    assert both.same(*refs, *mine, narrowed=True) == [f"{p}-dd:1"]
    both.refused("image", "prune", "-f", "--filter", "bogus=1", words="Invalid filter 'bogus'")


def test_prunes_take_until_and_labels_and_refuse_what_they_do_not_know(both: Both, registry: RegistryServer,
                                                                        tmp_path: Path) -> None:
    p, label = both.prefix, f"{LABEL}={both.prefix}"
    base = own_image(both, registry, tmp_path, "prune")
    for n in ("a", "b"):
        both.run("create", "--network", "none", "-l", label, "-l", f"n={n}", "--name", f"{p}-{n}", base, "true")
    both.run("network", "create", "--internal", "--label", label, f"{p}-net")
    both.run("volume", "create", "--label", label, f"{p}-vol")
    ps = ("ps", "-a", "--format", "{{.Names}}", "-f", f"label={label}")

    # until=1h: everything here is newer, so nothing goes (it used to go whatever until said)
    both.run("container", "prune", "-f", "--filter", "until=1h", "--filter", f"label={label}")
    assert both.same(*ps) == [f"{p}-a", f"{p}-b"]
    both.run("network", "prune", "-f", "--filter", "until=1h", "--filter", f"label={label}")
    assert both.same("network", "ls", "--format", "{{.Name}}") == [f"{p}-net"]
    # label! excludes only what has every label! given (dockerd's rule)
    both.run("container", "prune", "-f", "--filter", f"label={label}", "--filter", "label!=n=a",
             "--filter", "label!=n=b")
    assert both.same(*ps) == []
    # a volume prune has no until in dockerd 20.10: refused, nothing goes
    both.refused("volume", "prune", "-f", "--filter", "until=1h", words="Invalid filter 'until'")
    assert both.same("volume", "ls", "-q") == [f"{p}-vol"]
    both.refused("container", "prune", "-f", "--filter", "bogus=1", words="Invalid filter 'bogus'")
    both.refused("network", "prune", "-f", "--filter", "until=1h", "--filter", "until=2h",
                 words="more than one until filter specified")
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    both.run("network", "prune", "-f", "--filter", f"until={future}", "--filter", f"label={label}")
    assert both.same("network", "ls", "--format", "{{.Name}}") == []
    both.run("volume", "prune", "-f", "--filter", f"label={label}")
    assert both.same("volume", "ls", "-q") == []


def test_rmi_force_by_id_keeps_the_tags_of_an_image_a_container_runs(both: Both, registry: RegistryServer,
                                                                     tmp_path: Path, host: Host) -> None:
    p = both.prefix
    base = own_image(both, registry, tmp_path, "rmi")
    both.run("tag", base, f"{p}-keep:1")
    both.run("run", "-d", "--network", "none", "-l", f"{LABEL}={p}", "--name", f"{p}-runner", base, "sleep", "600")
    ids = {side: docker(sock, "image", "inspect", "-f", "{{.Id}}", base).stdout.strip() for side, sock in both.socks.items()}
    refs = ("images", "--format", "{{.Repository}}:{{.Tag}}")
    tags = both.same(*refs)
    assert tags == sorted([base, f"{p}-keep:1"])
    for side, sock in both.socks.items():
        refused = docker(sock, "rmi", "-f", ids[side], check=False)
        assert refused.returncode != 0, f"{side}: {refused.stdout}"
        assert (f"unable to delete {ids[side][7:19]} (cannot be forced) - image is being used by running container"
                in refused.stderr), f"{side}: {refused.stderr}"
    assert both.same(*refs) == tags                                  # every tag kept
    # the reconciler's own rmi decides the same (images.removal): refused, exit 1, tags kept
    own = subprocess.run([sys.executable, "-m", "reconciler", "rmi", "-f", ids["ours"], *engine_args(host)],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert own.returncode == 1, own.stdout
    assert "(cannot be forced) - image is being used by running container" in own.stderr
    assert both.same(*refs) == tags
    # by tag, forced: only that tag goes, the image stays for its container
    both.run("rmi", "-f", f"{p}-keep:1")
    assert both.same(*refs) == [base]
    # stopped: forced by id, its tags go (dockerd also deletes the image; the native engine keeps
    # it, untagged, while the container's layers are its own)
    both.run("stop", "-t", "0", f"{p}-runner")
    for side, sock in both.socks.items():
        removed = docker(sock, "rmi", "-f", ids[side]).stdout
        assert f"Untagged: {base}" in removed, f"{side}: {removed}"
    assert both.same(*refs) == []
    both.run("start", f"{p}-runner")                                # its container still runs


def test_repo_digests_name_only_the_repositories_an_image_came_from_or_went_to_as_dockerd(
        both: Both, registry: RegistryServer, tmp_path: Path) -> None:
    """RepoDigests as dockerd keeps them: a pulled image has its repository's digest, a tag into
    another repository adds none, a build has none until it is pushed, then the pushed one."""
    p = both.prefix
    base = own_image(both, registry, tmp_path, "digests")
    repo = base.rsplit(":", 1)[0]
    both.run("tag", base, f"{p}-local:1")
    both.run("build", "-q", "-t", f"{p}-built:1", "-", env={"DOCKER_BUILDKIT": "0"},
             stdin=f"FROM {base}\nLABEL proj={p}\nRUN true\n")
    digests = ("image", "inspect", "-f", "{{json .RepoDigests}}")
    for side, sock in both.socks.items():
        pulled = json.loads(docker(sock, *digests, base).stdout)
        assert [d.split("@")[0] for d in pulled] == [repo], f"{side}: {pulled}"
        assert json.loads(docker(sock, *digests, f"{p}-local:1").stdout) == pulled, side
        assert json.loads(docker(sock, *digests, f"{p}-built:1").stdout) == [], side
        pushed = f"{registry.host}/{p}/{side}:1"
        docker(sock, "tag", f"{p}-built:1", pushed)
        out = docker(sock, "push", pushed).stdout
        digest = out.split("digest: ")[1].split()[0]
        assert json.loads(docker(sock, *digests, pushed).stdout) == [f"{registry.host}/{p}/{side}@{digest}"], side
        assert docker(sock, "images", "--digests", "--format", "{{.Digest}}", f"{registry.host}/{p}/{side}"
                      ).stdout.split() == [digest], side
