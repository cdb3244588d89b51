"""`reconcile rollback [REVISION]` without an agent, and the revisions `apply` keeps for it
(`--runtime fake`: state in --root; the native end-to-end is in test_rollback_native.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime.fake import FakeRuntime
from reconciler.spec import lock
from reconciler.state import labels as labelmod
from tests.execution.helpers import IMG, container_doc, fake_root, write
from tests.execution.helpers import fake_cli as cli


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return fake_root(tmp_path)


def config(root: Path, name: str = "web") -> dict[str, Any]:
    return dict(FakeRuntime.at_root(root)._get(name)["config"])


def history(root: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert cli(root, "history", "--output", "json") == 0
    return list(json.loads(capsys.readouterr().out))


def kept(root: Path) -> set[str]:
    d = root / "revisions"
    return {p.name for p in d.iterdir() if not p.name.startswith(".")} if d.exists() else set()


def test_rollback_restores_the_previous_container_and_records_the_cause(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    m = tmp_path / "m"
    write(m, "app.env", "MODE=one\n")
    write(m, "web.yaml", container_doc("web", extra="envFiles: [app.env]\nenv: {LOG: info}"))
    assert cli(root, "apply", str(m)) == 0
    v1 = config(root)["labels"]
    write(m, "app.env", "MODE=two\n")                       # v2: only the env file changed
    assert cli(root, "apply", str(m)) == 0
    v2 = config(root)["labels"]
    assert v2[labelmod.SPEC_HASH] != v1[labelmod.SPEC_HASH]
    capsys.readouterr()

    assert cli(root, "rollback") == 0
    out = capsys.readouterr().out
    assert f"rollback to {v1[labelmod.REVISION][:12]}" in out
    assert "converged" in out
    back = config(root)
    assert back["labels"][labelmod.SPEC_HASH] == v1[labelmod.SPEC_HASH]
    assert back["labels"][labelmod.REVISION] == v1[labelmod.REVISION]
    assert back["env"]["MODE"] == "one"
    # the env file on disk is untouched (still v2): the kept copy was applied
    assert (m / "app.env").read_text() == "MODE=two\n"

    passes = history(root, capsys)
    assert passes[0]["cause"] == f"rollback to {v1[labelmod.REVISION][:12]}"
    assert passes[0]["revision"] == v1[labelmod.REVISION]
    assert passes[0]["result"] == "converged"
    assert all(p["rollback"]["available"] for p in passes)
    assert cli(root, "history") == 0
    table = capsys.readouterr().out
    assert "ROLLBACK" in table
    assert f"rollback to {v1[labelmod.REVISION][:12]}" in table

    # the next apply follows the files again (v2); the diff against the files shows the drift first
    assert cli(root, "diff", str(m)) == 1
    assert cli(root, "apply", str(m)) == 0
    assert config(root)["labels"][labelmod.SPEC_HASH] == v2[labelmod.SPEC_HASH]


def test_rollback_to_a_named_revision_and_back_again(tmp_path: Path, root: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    hashes = []
    for v in ("1", "2", "3"):
        write(m, "web.yaml", container_doc("web", extra=f"env: {{V: '{v}'}}"))
        assert cli(root, "apply", str(m)) == 0
        hashes.append(config(root)["labels"])
    first = hashes[0][labelmod.REVISION]
    assert cli(root, "rollback", first[:10]) == 0
    assert config(root)["env"]["V"] == "1"
    assert config(root)["labels"][labelmod.SPEC_HASH] == hashes[0][labelmod.SPEC_HASH]
    # default target: the newest converged revision other than the applied one (v3 here)
    assert cli(root, "rollback") == 0
    assert config(root)["env"]["V"] == "3"


def test_unknown_revision_exits_2_with_the_available_ones_and_changes_nothing(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    m = tmp_path / "m"
    assert cli(root, "rollback") == 2                       # nothing applied yet
    assert "can be rolled back" in capsys.readouterr().err
    write(m, "web.yaml", container_doc("web", extra="env: {V: '1'}"))
    assert cli(root, "apply", str(m)) == 0
    rev = config(root)["labels"][labelmod.REVISION]
    assert cli(root, "rollback") == 2                       # only one revision: nothing older
    err = capsys.readouterr().err
    assert "older than the applied one" in err
    assert rev[:12] in err
    write(m, "web.yaml", container_doc("web", extra="env: {V: '2'}"))
    assert cli(root, "apply", str(m)) == 0
    before = config(root)
    capsys.readouterr()
    assert cli(root, "rollback", "deadbeef") == 2
    err = capsys.readouterr().err
    assert "no converged revision 'deadbeef'" in err
    assert "revisions that can be rolled back to" in err
    assert rev[:12] in err
    assert config(root) == before
    assert cli(root, "rollback", "x", "y") == 2             # SOURCE REVISION needs an agent


def test_revisions_beyond_keep_are_pruned_but_the_last_converged_stays(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    m = tmp_path / "m"
    revs = []
    for v in range(5):
        write(m, "web.yaml", container_doc("web", extra=f"env: {{V: '{v}'}}"))
        assert cli(root, "apply", str(m), "--keep-revisions", "3") == 0
        revs.append(config(root)["labels"][labelmod.REVISION])
    assert kept(root) == set(revs[2:])
    assert cli(root, "apply", str(m), "--keep-revisions", "0") == 0   # the last converged is kept always
    assert kept(root) == {revs[-1]}
    capsys.readouterr()
    assert cli(root, "rollback", revs[0][:12]) == 2
    assert "is not kept" in capsys.readouterr().err
    passes = history(root, capsys)
    assert passes[0]["rollback"] == {"available": True, "reason": ""}
    assert passes[-1]["rollback"]["available"] is False
    assert "no copy kept" in passes[-1]["rollback"]["reason"]


def test_keep_revisions_counts_per_owner_so_one_owner_never_prunes_anothers(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    def apply(owner: str, v: int, *flags: str) -> str:
        m = tmp_path / owner
        write(m, "web.yaml", container_doc(f"{owner}-web", extra=f"env: {{V: '{v}'}}"))
        assert cli(root, "apply", str(m), "--owner", owner, *flags) == 0
        return str(config(root, f"{owner}-web")["labels"][labelmod.REVISION])

    a = [apply("a", v) for v in range(2)]
    b = [apply("b", v, "--keep-revisions", "2") for v in range(3)]
    assert kept(root) == {*a, *b[1:]}                       # b's oldest went, none of a's
    capsys.readouterr()
    assert cli(root, "history", "--owner", "a", "--output", "json") == 0
    assert all(p["rollback"]["available"] for p in json.loads(capsys.readouterr().out))
    assert cli(root, "rollback", "--owner", "a") == 0
    assert config(root, "a-web")["env"]["V"] == "0"
    b.append(apply("b", 3, "--keep-revisions", "1"))         # b keeps one of its own, a still both
    assert kept(root) == {*a, b[-1]}


def test_bind_files_come_from_the_kept_copy_bind_directories_from_their_place(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    m = tmp_path / "m"
    write(m, "conf.txt", "one\n")
    (m / "data").mkdir()
    (m / "data" / "big.bin").write_bytes(b"x" * 1000)
    write(m, "web.yaml", container_doc("web", extra="volumes: ['./conf.txt:/etc/conf.txt:ro', './data:/data']"))
    assert cli(root, "apply", str(m)) == 0
    rev1 = config(root)["labels"][labelmod.REVISION]
    write(m, "conf.txt", "two\n")
    assert cli(root, "apply", str(m)) == 0
    assert cli(root, "rollback") == 0
    mounts = {x["target"]: x["source"] for x in config(root)["mounts"]}
    assert Path(mounts["/etc/conf.txt"]).read_text() == "one\n"       # the revision's content
    assert Path(mounts["/etc/conf.txt"]).is_relative_to(root / "revisions" / rev1)
    assert mounts["/data"] == str(m / "data")                         # data stays where it is
    assert not list((root / "revisions").rglob("big.bin"))


def test_relative_source_with_a_lock_file_and_a_file_outside_the_manifest_dir(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    digest = FakeRuntime.at_root(root).resolve_digest(IMG)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "shared", "common.env", "A=1\n")
    write(tmp_path / "m", "web.yaml", container_doc("web", extra="envFiles: [../shared/common.env]"))
    lock.write(tmp_path / "m" / lock.LOCK_NAME, {IMG: digest})
    assert cli(root, "apply", "m") == 0
    v1 = config(root)
    write(tmp_path / "shared", "common.env", "A=2\n")
    assert cli(root, "apply", "m") == 0
    assert cli(root, "rollback") == 0
    back = config(root)
    assert back["env"]["A"] == "1"
    assert back["image"] == v1["image"]
    assert "@sha256:" in back["image"]
    assert back["labels"][labelmod.SPEC_HASH] == v1["labels"][labelmod.SPEC_HASH]


def test_revisions_read_from_stdin_are_listed_as_not_rollbackable(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import io
    import sys

    doc = container_doc("web", extra="env: {V: '1'}")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(doc.encode())))
    assert cli(root, "apply", "-") == 0
    assert "cannot be rolled back to later: read from stdin" in capsys.readouterr().out
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", extra="env: {V: '2'}"))
    assert cli(root, "apply", str(m)) == 0
    passes = history(root, capsys)
    assert passes[-1]["rollback"]["available"] is False
    assert "stdin" in passes[-1]["rollback"]["reason"]
    assert cli(root, "rollback") == 2
    assert "read from stdin" in capsys.readouterr().err
    assert config(root)["env"]["V"] == "2"


def test_a_tampered_copy_is_refused(tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", extra="env: {V: '1'}"))
    assert cli(root, "apply", str(m)) == 0
    rev1 = config(root)["labels"][labelmod.REVISION]
    write(m, "web.yaml", container_doc("web", extra="env: {V: '2'}"))
    assert cli(root, "apply", str(m)) == 0
    copy = next((root / "revisions" / rev1 / "tree").rglob("web.yaml"))
    copy.write_text(copy.read_text().replace("'1'", "'9'"))
    capsys.readouterr()
    assert cli(root, "rollback") == 2
    assert "was changed" in capsys.readouterr().err
    assert config(root)["env"]["V"] == "2"
    assert os.path.exists(m / "web.yaml")


def test_a_revision_that_builds_an_image_is_kept_as_not_rollbackable(tmp_path: Path) -> None:
    from reconciler import spec
    from reconciler.state import revisions

    m = tmp_path / "m"
    write(m / "ctx", "Dockerfile", "FROM scratch\n")
    write(m, "app.yaml", "apiVersion: reconciler/v1\nkind: Image\nmetadata: {name: app}\n"
          "spec: {ref: '127.0.0.1:5000/app:1', build: {context: ./ctx}}\n" + container_doc("web", image="app"))
    desired = spec.load(m)
    store = revisions.RevisionStore(tmp_path / "root")
    snap = store.save(desired, str(m))
    assert snap.rollback is False
    assert "builds image app from a context directory" in snap.reason
    assert store.get(desired.revision) == snap
    with pytest.raises(revisions.SnapshotError, match="cannot be re-applied"):
        store.load(snap)


def test_a_stale_agent_file_means_no_agent(tmp_path: Path, root: Path) -> None:
    (root / "agent.json").write_text(json.dumps({"pid": 1, "socket": str(tmp_path / "gone.sock")}))
    m = tmp_path / "m"
    for v in ("1", "2"):
        write(m, "web.yaml", container_doc("web", extra=f"env: {{V: '{v}'}}"))
        assert cli(root, "apply", str(m)) == 0
    assert cli(root, "rollback") == 0
    assert config(root)["env"]["V"] == "1"


def test_kept_bind_files_keep_their_mode_and_owner(tmp_path: Path, root: Path) -> None:
    m = tmp_path / "m"
    script = write(m, "run.sh", "#!/bin/sh\necho hi\n")
    script.chmod(0o750)
    if os.geteuid() == 0:
        os.chown(script, 1234, 1234)
    write(m, "web.yaml", container_doc("web", extra="volumes: ['./run.sh:/run.sh:ro']"))
    assert cli(root, "apply", str(m)) == 0
    rev = config(root)["labels"][labelmod.REVISION]
    copy = next((root / "revisions" / rev / "tree").rglob("run.sh"))
    assert copy.stat().st_mode & 0o777 == 0o750
    assert (copy.stat().st_uid, copy.stat().st_gid) == (script.stat().st_uid, script.stat().st_gid)


def test_a_compose_project_rolls_back_under_its_own_name(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kept copy of a compose project sits in a directory of another name: it must still load
    as the same project (same containers, same revision), .env and env files included."""
    for var in ("MODE", "TAG", "COMPOSE_PROFILES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    m = tmp_path / "shop"
    write(m, "compose.yaml", f"services:\n  web:\n    image: {IMG}\n    env_file: app.env\n"
                             "    environment: {TAG: '${TAG}'}\n")
    write(m, ".env", "TAG=one\n")
    write(m, "app.env", "MODE=one\n")
    assert cli(root, "apply", str(m)) == 0
    v1 = config(root, "shop-web-1")
    write(m, ".env", "TAG=two\n")
    write(m, "app.env", "MODE=two\n")
    assert cli(root, "apply", str(m)) == 0
    [snap] = [json.loads((root / "revisions" / r / "revision.json").read_text()) for r in kept(root)
              if r == v1["labels"][labelmod.REVISION]]
    assert snap["rollback"], snap["reason"]
    assert snap["project"] == "shop"
    capsys.readouterr()
    assert cli(root, "rollback") == 0
    back = config(root, "shop-web-1")
    assert back["labels"][labelmod.SPEC_HASH] == v1["labels"][labelmod.SPEC_HASH]
    assert (back["env"]["TAG"], back["env"]["MODE"]) == ("one", "one")


def test_a_secret_file_comes_back_from_the_kept_copy_readable_as_the_original(tmp_path: Path, root: Path) -> None:
    """A rollback's secret file is the revision's content, from the kept copy as a bind-mounted
    file is, and the copy keeps the original's mode and owner: the Docker engine bind-mounts a
    plain secret file, so a container user who could read the original reads the copy. (The
    copy was made private, 0600, as the reconciler's own files are.)"""
    m = tmp_path / "m"
    secret = write(m, "db.password", "one")
    secret.chmod(0o644)
    if os.geteuid() == 0:
        os.chown(secret, 1234, 1234)
    write(m, "web.yaml", container_doc("web", extra="secrets: [{source: db.password, uid: 1234}]"))
    assert cli(root, "apply", str(m)) == 0
    rev1 = config(root)["labels"][labelmod.REVISION]
    write(m, "db.password", "two")
    assert cli(root, "apply", str(m)) == 0
    assert cli(root, "rollback") == 0
    back = config(root)
    assert back["labels"][labelmod.REVISION] == rev1
    source = Path(next(x["source"] for x in back["mounts"] if x["type"] == "secret"))
    assert source.is_relative_to(root / "revisions" / rev1)
    assert source.read_text() == "one"                                  # the revision's content
    assert source.stat().st_mode & 0o777 == 0o644
    assert (source.stat().st_uid, source.stat().st_gid) == (secret.stat().st_uid, secret.stat().st_gid)
