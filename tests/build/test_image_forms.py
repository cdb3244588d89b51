"""`reconcile image history` (docker history) of an image built here, compared with what dockerd's
`docker history` shows of the same image loaded into it; and docker's `image build|tag|push|save|
load|pull|ls|rm` forms, each printing and exiting as its top-level command."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.build.conftest import Engine
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.root, pytest.mark.registry]

def cli(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    """`reconcile ARGS` on the test's engine, its flags after the command's words (`image history
    --root X IMAGE`)."""
    at = 2 if args[0] == "image" else 1
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args[:at], "--root", str(engine.config.root),
         "--run-dir", str(engine.config.run_dir), "--name-prefix", engine.config.name_prefix, *args[at:]],
        capture_output=True, text=True, check=False, timeout=300)


LONG = "echo 'a command line long enough for docker history to cut it at forty-five' > /long"


def docker_ok() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "version"], capture_output=True, check=False).returncode == 0


@pytest.fixture
def built(engine: Engine, context_dir: Callable[..., Path], busybox_image: str) -> str:
    """An image built here: steps with layers and without, a long command, a tab in one."""
    ctx = context_dir({
        "Dockerfile": f"FROM {busybox_image}\nLABEL a=b\nRUN dd if=/dev/zero of=/big bs=1k count=300 2>/dev/null\n"
                      f"ENV X=1\nCOPY f /f\nRUN {LONG}\nRUN echo\ttabbed > /t\nCMD [\"sh\"]\n",
        "f": "from the context\n",
    })
    tag = f"localhost/hist{secrets.token_hex(3)}:1"
    done = cli(engine, "build", "-q", "-t", tag, str(ctx))
    assert done.returncode == 0, done.stderr
    return tag


@pytest.fixture
def docker_names() -> Iterator[list[str]]:
    """Image names a test gives dockerd; removed afterwards (only those)."""
    names: list[str] = []
    yield names
    for n in names:
        subprocess.run(["docker", "rmi", "-f", n], capture_output=True, check=False)


def test_image_history_lists_the_steps_of_an_image_built_here(engine: Engine, built: str) -> None:
    steps = engine.config_of(built)["history"]
    image_id = engine.store.get(built).id
    table = cli(engine, "image", "history", built)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert re.split(r" {3,}", lines[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert len(lines) == 1 + len(steps)                         # a line a step, newest first
    assert lines[1].startswith(image_id.removeprefix("sha256:")[:12] + "   ")
    assert all(line.startswith("<missing>   ") for line in lines[2:])
    assert '/bin/sh -c #(nop)  CMD ["sh"]' in lines[1]
    long_line = next(line for line in lines if "a command line" in line)
    assert f"/bin/sh -c {LONG}"[:44] + "…" in long_line         # cut to 45 columns, as docker's
    assert "echo tabbed" in table.stdout                        # a tab printed as a space
    big = next(line for line in lines if "dd if=/dev/zero" in line)
    assert "307kB" in big.split()                               # the layer that step made

    doc = json.loads(cli(engine, "image", "history", "-o", "json", built).stdout)
    assert [d["created_by"] for d in doc] == [s.get("created_by", "") for s in reversed(steps)]
    assert [d["id"] for d in doc] == [image_id] + ["<missing>"] * (len(steps) - 1)
    sizes = [d["size"] for d in reversed(doc) if not d["empty_layer"]]
    assert sizes == engine.store.layer_sizes(image_id)
    assert all(d["size"] == 0 for d in doc if d["empty_layer"])
    assert cli(engine, "image", "history", "-q", built).stdout == "\n".join(
        [image_id.removeprefix("sha256:")[:12]] + ["<missing>"] * (len(steps) - 1)) + "\n"
    assert cli(engine, "image", "history", "-q", "--no-trunc", built).stdout.splitlines()[0] == image_id
    raw = cli(engine, "image", "history", "-H=false", "--no-trunc", built).stdout.splitlines()
    assert raw[0].split()[:3] == ["IMAGE", "CREATED", "AT"]
    assert f"/bin/sh -c {LONG}" in "\n".join(raw)
    dd = next(d for d in doc if "dd if=/dev/zero" in d["created_by"])
    assert dd["size"] >= 300 << 10
    assert str(dd["size"]) in next(line for line in raw if "dd if=/dev/zero" in line).split()
    missing = cli(engine, "image", "history", "nope:1")
    assert missing.returncode == 1
    assert "nope:1" in missing.stderr


@pytest.mark.docker
@pytest.mark.skipif(not docker_ok(), reason="needs a running dockerd")
def test_image_history_shows_what_docker_history_shows(
        engine: Engine, built: str, tmp_path: Path, docker_names: list[str]) -> None:
    archive = tmp_path / "built.tar"
    assert cli(engine, "save", "-o", str(archive), built).returncode == 0
    docker_names.append(built)
    loaded = subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True, text=True, check=False)
    assert loaded.returncode == 0, loaded.stderr
    fields = "{{.ID}}|{{.CreatedAt}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}"
    for flags in ((), ("--no-trunc",), ("-H=false",), ("--human=false", "--no-trunc"), ("-q",)):
        for fmt in ((), ("--format", fields), ("--format", "json")):
            if "-q" in flags and fmt:
                continue
            docker = subprocess.run(["docker", "history", *flags, *fmt, built], capture_output=True, text=True,
                                    check=True).stdout
            ours = cli(engine, "image", "history", *flags, *fmt, built)
            assert ours.returncode == 0, ours.stderr
            # (a table's last cells: docker pads them with spaces, reconciler's tables end no line so)
            theirs = "".join(line.rstrip() + "\n" for line in docker.splitlines())
            if any(f.startswith(("-H=", "--human=")) for f in flags):
                assert ours.stdout == theirs, (flags, fmt)              # times, sizes in bytes: exactly
            else:               # "3 seconds ago" may have moved on between the two (and the columns' widths)
                assert aged(ours.stdout) == aged(theirs), (flags, fmt)
                assert ours.stdout.count("ago") == theirs.count("ago")


def aged(text: str) -> str:
    """`text` with its ages ("3 seconds ago") made equal, and so its columns' widths."""
    ages = re.sub(r"\b(\d+ seconds?|Less than a second|About a minute|\d+ minutes) ago", "AGE ago", text)
    return re.sub(r"(?m) {2,}", "  ", ages)


def test_the_image_forms_print_and_exit_as_their_commands(
        engine: Engine, built: str, busybox_image: str, registry: RegistryServer, context_dir: Callable[..., Path],
        tmp_path: Path) -> None:
    def same(command: tuple[str, ...], form: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        before, got, after = cli(engine, *command), cli(engine, *form), cli(engine, *command)
        assert (got.returncode, got.stdout, got.stderr) in {(p.returncode, p.stdout, p.stderr) for p in (before, after)}, \
            (form, got)
        return got

    assert same(("images",), ("image", "ls")).returncode == 0
    assert same(("images", "-q"), ("image", "list", "-q")).stdout
    assert "up to date" in same(("pull", busybox_image), ("image", "pull", busybox_image)).stdout
    remote = f"{registry.host}/forms{secrets.token_hex(3)}/img:1"
    assert same(("tag", built, remote), ("image", "tag", built, remote)).returncode == 0
    assert cli(engine, "push", remote).returncode == 0
    pushed = [cli(engine, "push", remote), cli(engine, "image", "push", remote)]    # its layers there already
    # what each said, in any order (its layers' lines are printed by its threads as each ends)
    said = [(p.returncode, sorted(re.findall(r"[0-9a-f]{12}: Layer already exists|digest: \S+ size: \d+|"
                                             r"The push refers to repository \S+", p.stdout)), p.stderr)
            for p in pushed]
    assert said[0] == said[1]
    assert "digest: sha256:" in pushed[1].stdout
    one, two = tmp_path / "one.tar", tmp_path / "two.tar"
    assert cli(engine, "save", "-o", str(one), built).returncode == 0
    assert cli(engine, "image", "save", "-o", str(two), built).returncode == 0
    assert one.read_bytes() == two.read_bytes()
    assert same(("load", "-i", str(one)), ("image", "load", "-i", str(two))).stdout == f"Loaded image: {built}\n"
    ctx = context_dir({"Dockerfile": f"FROM {built}\nRUN echo again > /again\n"})
    assert same(("build", "-t", "localhost/again:1", str(ctx)), ("image", "build", "-t", "localhost/again:1",
                                                                 str(ctx))).returncode == 0
    for command, name in ((("rmi",), "localhost/gone-a:1"), (("image", "rm"), "localhost/gone-b:1"),
                          (("image", "remove"), "localhost/gone-c:1")):
        assert cli(engine, "tag", built, name).returncode == 0
        removed = cli(engine, *command, name)
        assert (removed.returncode, removed.stdout) == (0, f"Untagged: {name}\n")
    assert same(("rmi", "nope:1"), ("image", "rm", "nope:1")).returncode == 1
