"""#20 item 1: the Dockerfile corpus (tests/build/corpus/, see tests/build/corpus.py).

- Every case's parse is its golden `expected.txt`: a missing or different golden fails. With
  `RECONCILER_WRITE_GOLDEN=1` the test writes the golden it got and still fails, so a changed
  golden is always a reviewed diff, never a silent pass.
- The `tree-*` cases are built by Docker (dockerd's legacy builder, DOCKER_BUILDKIT=0) and by
  the native builder from the same context and base image; the two images' file trees (paths,
  types, modes, owners, link targets, content hashes, as `docker export` gives them) and
  configs must be the same.
- The error cases Docker also refuses fail there with the same words.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime.native.build import push
from tests.build import corpus
from tests.build.conftest import Engine
from tests.helpers.registry import RegistryServer

CASES = corpus.cases()
TREES = [c for c in CASES if c.startswith("tree-")]
# error cases Docker's parser refuses too, and the words both errors say
DOCKER_ERRORS = {
    "error-bad-escape": "invalid escape token 'x' does not match ` or \\",
    "error-continuation-at-eof": "ENV requires at least one argument",
    "error-copy-one-arg": "COPY requires at least two arguments, but only one was provided",
    "error-empty-file": "file with no instructions",
    "error-env-no-args": "ENV requires at least one argument",
    "error-from-two-words": "FROM requires either one or three arguments",
    "error-healthcheck-duration": 'time: missing unit in duration "5"',
    "error-json-not-strings": "when using JSON array syntax, arrays must be comprised of strings only",
    "error-label-one-word": "LABEL must have two arguments",
    "error-label-default-with-blank": 'Syntax error - can\'t find = in "b}". Must be of the form: name=value',
    "error-no-from": "no build stage in current context",
    "error-onbuild-from": "FROM isn't allowed as an ONBUILD trigger",
    "error-onbuild-onbuild": "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
    "error-unknown-flag": "Unknown flag: nope",
    "error-bad-flag": "Unknown flag:",
    "error-unknown-instruction": "unknown instruction: COPPY",
}
# Where dockerd's legacy builder (the oracle here: BuildKit's frontend is an image from the
# internet) and BuildKit differ, the native builder does what BuildKit does; these lines of
# the legacy result are replaced by BuildKit's before the trees are compared.
BUILDKIT_DIFFERS = {
    # fsutil's Walk sends a directory .dockerignore excludes, but that holds a re-included path,
    # with its own stat (walker.go, `passedFilter`); the legacy tar leaves it out and the daemon
    # makes it 0755
    "tree-dockerignore": {"ctx/docs dir 40750 0:0": "ctx/docs dir 40755 0:0"},
    # BuildKit's copy makes the missing parents of the destination with --chown's owner
    # (fsutil copy.go: `MkdirAll(ensureDstPath, 0755, ci.Chown, ...)`); the legacy builder makes
    # them root's when the source is a directory
    "tree-copy-chown": {"nested dir 40755 12:34": "nested dir 40755 0:0"},
    # BuildKit makes WORKDIR's missing directories owned by USER (dockerfile2llb's dispatchWorkdir:
    # llb.Mkdir with llb.WithUser); the legacy builder makes them root's
    "tree-workdir-user": {"home/app/work dir 40755 1000:1000": "home/app/work dir 40755 0:0"},
}
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "User", "WorkingDir", "ExposedPorts", "Labels", "Volumes",
               "StopSignal", "Healthcheck", "OnBuild", "Shell")


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len(TREES) >= 15
    assert set(DOCKER_ERRORS) <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    here = corpus.CORPUS / case
    got = corpus.render((here / "Dockerfile").read_bytes().decode())
    golden = here / "expected.txt"
    want = golden.read_text() if golden.is_file() else None
    if got == want:
        return
    if os.environ.get("RECONCILER_WRITE_GOLDEN") == "1":
        golden.write_text(got)
        pytest.fail(f"{golden} written: review it (git diff) and run again")
    assert want is not None, f"{golden} is missing; RECONCILER_WRITE_GOLDEN=1 writes it for review"
    assert got == want


# ------------------------------------------------------------------------------ Docker's result

def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=300, env=env)


def _docker_ready() -> None:
    if shutil.which("docker") is None:
        pytest.skip("docker not installed")
    if docker("info", check=False).returncode != 0:
        pytest.skip("dockerd is not running")


@pytest.fixture
def docker_refs() -> Iterator[list[str]]:
    """Images this test makes in dockerd (references, and the ids `build()` saw its steps make);
    removed afterwards, only those: the tags first, then the steps' images, last first (one
    that another image still builds on stays)."""
    made: list[str] = []
    yield made
    ids = [x for x in made if re.fullmatch(r"[0-9a-f]{12}", x)]
    for ref in [x for x in made if x not in ids]:
        docker("rmi", "-f", ref, check=False)
    for image_id in reversed(ids):
        docker("rmi", image_id, check=False)


def build(made: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`docker build` (legacy builder) with its steps' images noted in `made` for removal: a
    multi-stage build leaves the images of the other stages untagged."""
    done = docker("build", "--force-rm", "--network", "none", *args, check=False)
    made.extend(re.findall(r"(?m)^ ---> ([0-9a-f]{12})$", done.stdout))
    return done


def file_tree(ref: str) -> list[str]:
    """`docker export` of a container of `ref`: one line per entry (hardlinks as the file they
    link to; mtimes left out)."""
    cid = docker("create", ref, "/nonexistent").stdout.strip()
    try:
        data = subprocess.run(["docker", "export", cid], capture_output=True, check=True, timeout=120).stdout
    finally:
        docker("rm", "-f", cid, check=False)
    digests: dict[str, str] = {}
    lines: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            name = m.name.rstrip("/")
            if name == ".dockerenv":
                continue
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                digests[name] = hashlib.sha256(f.read()).hexdigest()[:16]
                what = f"file {digests[name]}"
            elif m.islnk():
                what = f"file {digests[m.linkname.rstrip('/')]}"
            elif m.issym():
                what = f"symlink -> {m.linkname}"
            elif m.isdir():
                what = "dir"
            else:
                what = f"type {m.type!r}"
            lines[name] = f"{name} {what} {m.mode:04o} {m.uid}:{m.gid}"
    return [lines[k] for k in sorted(lines)]


def image_config(ref: str) -> dict[str, object]:
    cfg = json.loads(docker("image", "inspect", ref).stdout)[0]["Config"]
    return {k: cfg.get(k) or None for k in CONFIG_KEYS}


@pytest.mark.root
@pytest.mark.registry
@pytest.mark.docker
@pytest.mark.parametrize("case", TREES)
def test_tree_matches_docker(
    case: str, engine: Engine, busybox_image: str, registry: RegistryServer, docker_refs: list[str],
    tmp_path: Path,
) -> None:
    _docker_ready()
    ctx = tmp_path / "context"
    corpus.make_context(ctx, case)
    repo = f"{registry.host}/corpus{secrets.token_hex(3)}"
    theirs, ours = f"{repo}/docker:1", f"{repo}/native:1"
    docker_refs.extend([theirs, ours])
    built = build(docker_refs, "--build-arg", f"BASE={busybox_image}", "-t", theirs, str(ctx))
    assert built.returncode == 0, built.stderr

    engine.build(ctx, tags=(ours,), build_args={"BASE": busybox_image})
    push.push(engine.store, ours)
    docker("pull", "-q", ours)

    legacy = {v: k for k, v in BUILDKIT_DIFFERS.get(case, {}).items()}
    want = [legacy.get(line, line) for line in file_tree(theirs)]
    got = file_tree(ours)
    assert set(legacy.values()) <= set(got)
    assert got == want, "\n".join(difflib.unified_diff(want, got, "docker", "native", lineterm=""))
    assert image_config(ours) == image_config(theirs)


@pytest.mark.docker
@pytest.mark.parametrize("case", sorted(DOCKER_ERRORS))
def test_error_matches_docker(case: str, tmp_path: Path) -> None:
    _docker_ready()
    words = DOCKER_ERRORS[case]
    ours = corpus.render((corpus.CORPUS / case / "Dockerfile").read_bytes().decode())
    assert ours.startswith("error: ")
    assert words in ours
    ctx = tmp_path / "context"
    ctx.mkdir()
    shutil.copy(corpus.CORPUS / case / "Dockerfile", ctx / "Dockerfile")
    built = docker("build", "-q", "--force-rm", "--network", "none", str(ctx), check=False)
    assert built.returncode != 0
    assert words in built.stderr
