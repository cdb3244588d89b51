"""`reconcile apply|--once|diff|history` end to end with `--runtime fake` (state in --root)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.fake import STATE_FILE, FakeRuntime
from tests.execution.helpers import IMG, container_doc, fake_root, write
from tests.execution.helpers import fake_cli as cli

VOLUME = """
---
apiVersion: reconciler/v1
kind: Volume
metadata: {name: data}
spec: {}
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return fake_root(tmp_path)


def fake(root: Path) -> FakeRuntime:
    return FakeRuntime.at_root(root)


def running(root: Path) -> dict[str, str]:
    return {c.name: str(c.status) for c in fake(root).list_containers()}


def test_apply_converges_then_nothing_to_do(tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", extra="volumes: ['data:/data']") + VOLUME)
    assert cli(root, "apply", str(m)) == 0
    out = capsys.readouterr().out
    assert "container:web" in out
    assert "created" in out
    assert running(root) == {"web": "running"}
    assert cli(root, "apply", str(m)) == 0
    assert "converged" in capsys.readouterr().out
    assert cli(root, "diff", str(m)) == 0
    assert capsys.readouterr().out.strip() == "in sync"


def test_diff_of_a_container_still_converging_is_not_in_sync(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A container in its restart backoff needs no action (the engine restarts it), but it does
    not run as desired: diff notes it and is not in sync, exit 1, as it is for a stopped
    container it would start (and for a Swarm service whose copies do not all run)."""
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", extra="restart: always"))
    assert cli(root, "apply", str(m)) == 0
    rt = fake(root)
    rt.s["containers"][next(iter(rt.s["containers"]))]["status"] = "restarting"
    rt._save()
    capsys.readouterr()
    assert cli(root, "diff", str(m)) == 1
    out = capsys.readouterr().out
    assert "note: container:web is restarting (converging, not drift)" in out
    assert out.strip().endswith("not in sync: 1 converging")
    assert cli(root, "diff", str(m), "--output", "json") == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["in_sync"], data["converging"], data["actions"]) == (False, ["container:web"], [])


def test_once_is_an_alias_of_apply(tmp_path: Path, root: Path) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    proc = subprocess.run([sys.executable, "-m", "reconciler", "--once", str(m), "--root", str(root),
                           "--runtime", "fake"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert running(root) == {"web": "running"}


def test_diff_reports_drift_with_field_changes(tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", extra="env: {LOG: info, KEY: old-secret}"))
    assert cli(root, "apply", str(m)) == 0
    write(m, "web.yaml", container_doc("web", extra="env: {LOG: debug, KEY: new-secret}\nports: ['127.0.0.1:8080:80']"))
    capsys.readouterr()
    assert cli(root, "diff", str(m)) == 1
    text = capsys.readouterr().out
    assert "container:web, stop, spec hash changed: env, ports" in text
    assert "env.LOG: changed" in text
    assert "secret" not in text
    assert cli(root, "diff", str(m), "--output", "json") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["in_sync"] is False
    assert {"path": "env.KEY", "change": "changed"} in data["actions"][0]["changes"]
    assert running(root) == {"web": "running"}                # diff changed nothing
    assert fake(root).config_of("web").env["LOG"] == "info"


def test_broken_file_exits_2_and_changes_nothing(tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    write(m, "api.yaml", container_doc("api"))
    assert cli(root, "apply", str(m)) == 0
    state_before = (root / STATE_FILE).read_bytes()
    write(m, "web.yaml", container_doc("web", extra="env: {V: '2'}"))
    write(m, "api.yaml", "apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: api}\nspec: {imagee: x}\n")
    capsys.readouterr()
    assert cli(root, "apply", str(m)) == 2
    assert "api.yaml" in capsys.readouterr().err
    assert (root / STATE_FILE).read_bytes() == state_before  # not even the valid change was applied
    assert cli(root, "diff", str(m)) == 2


def test_failed_action_exits_1_and_unrelated_work_is_done(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("bad", image="registry.local:5000/nope/missing:1") + container_doc("good"))
    assert cli(root, "apply", str(m)) == 1
    out = capsys.readouterr().out
    assert "container:bad" in out
    assert "skipped" in out
    assert "failed" in out
    assert running(root) == {"good": "running"}


def test_foreign_container_with_the_same_name_is_left_alone(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from reconciler.runtime import base

    rt = fake(root)
    rt.pull_image(IMG)
    foreign_id = rt.create_container(base.ContainerConfig(name="web", image=IMG, env={"MINE": "1"}))
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    assert cli(root, "apply", str(m)) == 1
    assert "foreign" in capsys.readouterr().out
    [c] = fake(root).list_containers()
    assert c.id == foreign_id
    assert c.status == "created"


def test_deleted_file_prunes_its_containers_and_keeps_its_volume(tmp_path: Path, root: Path) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", extra="volumes: ['data:/data']") + VOLUME)
    write(m, "api.yaml", container_doc("api"))
    assert cli(root, "apply", str(m)) == 0
    (m / "web.yaml").unlink()
    assert cli(root, "apply", str(m)) == 0
    assert running(root) == {"api": "running"}
    assert [v.name for v in fake(root).list_volumes()] == ["data"]


def test_volume_with_deletion_policy_delete_is_pruned(tmp_path: Path, root: Path) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", extra="volumes: ['data:/data']")
          + VOLUME.replace("spec: {}", "spec: {deletionPolicy: Delete}"))
    write(m, "api.yaml", container_doc("api"))
    assert cli(root, "apply", str(m)) == 0
    (m / "web.yaml").unlink()
    assert cli(root, "apply", str(m)) == 0
    assert fake(root).list_volumes() == []


def test_empty_revision_needs_allow_empty(tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    assert cli(root, "apply", str(m)) == 0
    (m / "web.yaml").unlink()
    capsys.readouterr()
    assert cli(root, "apply", str(m)) == 1
    assert "--allow-empty" in capsys.readouterr().out
    assert running(root) == {"web": "running"}
    assert cli(root, "apply", str(m), "--allow-empty") == 0
    assert running(root) == {}


def test_dry_run_prints_the_plan_and_changes_nothing(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    assert cli(root, "apply", str(m), "--dry-run") == 0
    assert "container:web, create, not found" in capsys.readouterr().out
    assert running(root) == {}


def test_history_lists_passes_newest_first(tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    assert cli(root, "apply", str(m)) == 0
    assert cli(root, "apply", str(m)) == 0                  # no-op passes are not recorded
    write(m, "web.yaml", container_doc("web", image="registry.local:5000/nope/missing:1"))
    assert cli(root, "apply", str(m)) == 1
    capsys.readouterr()
    assert main(["history", "--root", str(root), "--output", "json"]) == 0
    passes = json.loads(capsys.readouterr().out)
    assert [p["result"] for p in passes] == ["failed", "converged"]
    assert passes[1]["counts"] == {"created": 1, "pulled": 1}
    assert main(["history", "--root", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["ID", "OWNER", "TIME"]    # every owner's, by default
    assert len(lines) == 3
    assert main(["history", "--root", str(root), "--owner", "default"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:2] == ["ID", "TIME"]


def test_tag_moved_pulls_and_recreates(tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    assert cli(root, "apply", str(m)) == 0
    first = fake(root).inspect_container("web")
    new_digest = fake(root).publish(IMG, "sha256:" + "7" * 64)
    # the digest cache (TTL) still says the old digest: no registry lookup, no change yet
    assert cli(root, "diff", str(m)) == 0
    from reconciler._sqlite import Database

    with Database(root / "state.db").tx() as conn:       # let the cached answer expire
        conn.execute("UPDATE inv_digests SET resolved_at = 0")
    capsys.readouterr()
    assert cli(root, "diff", str(m)) == 1
    assert "tag moved" in capsys.readouterr().out
    assert cli(root, "apply", str(m)) == 0
    now = fake(root).inspect_container("web")
    assert now.id != first.id
    assert now.labels["reconciler.image-digest"] == new_digest


def test_a_single_host_runs_replicas_as_numbered_containers(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", extra="replicas: 3") + container_doc("one", extra="replicas: global"))
    assert cli(root, "apply", str(m)) == 0
    assert running(root) == {"web-1": "running", "web-2": "running", "web-3": "running", "one": "running"}
    capsys.readouterr()
    write(m, "web.yaml", container_doc("web", extra="replicas: 2") + container_doc("one", extra="replicas: global"))
    assert cli(root, "apply", str(m)) == 0               # scaled down: the last copy goes
    assert re.search(r"container:web-3 +deleted +stop,remove", capsys.readouterr().out)
    assert running(root) == {"web-1": "running", "web-2": "running", "one": "running"}


def test_the_collector_is_off_while_a_pass_starts_and_on_for_its_actions(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cli/collector.py: `apply` pauses the cyclic collector while it loads and opens the engine
    (a no-op runs with it off), and turns it on before the first action and when it returns."""
    import gc

    seen: list[tuple[str, bool]] = []

    def probe(name: str) -> None:
        real = getattr(FakeRuntime, name)

        def observed(self: FakeRuntime, *args: object, **kwargs: object) -> object:
            seen.append((name, gc.isenabled()))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(FakeRuntime, name, observed)

    probe("list_containers")                                # the pass's observation
    probe("create_container")                               # its first action
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    assert gc.isenabled()
    assert cli(root, "apply", str(m)) == 0
    assert ("list_containers", False) in seen
    assert ("create_container", True) in seen
    assert ("create_container", False) not in seen
    assert gc.isenabled()
    assert cli(root, "apply", str(m)) == 0                  # nothing to do: no action
    assert gc.isenabled()


def test_an_unresolvable_tag_is_warned_of_once(tmp_path: Path, root: Path) -> None:
    """`--once` when the registry no longer knows a running tag: one `warning:` line a person reads,
    not beside it the pass's log line of the same (a JSON line at the CLI's log level)."""
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    assert cli(root, "apply", str(m)) == 0
    state = json.loads((root / "fake-runtime.json").read_text())
    state["registry"] = {}                                  # the tag is gone from the registry
    (root / "fake-runtime.json").write_text(json.dumps(state))
    from reconciler._sqlite import Database

    with Database(root / "state.db").tx() as conn:       # let the cached answer expire
        conn.execute("UPDATE inv_digests SET resolved_at = 0")
    proc = subprocess.run([sys.executable, "-m", "reconciler", "apply", str(m), "--root", str(root),
                           "--runtime", "fake"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("manifest unknown") == 1, proc.stderr
    assert "warning: could not resolve" in proc.stderr
