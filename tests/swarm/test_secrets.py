"""Secret files (`spec.secrets`) on a real single-node Swarm: each becomes a Swarm secret named
by the stored file's digest, so a changed file rolls the service out without hitting a
secret's immutability, and the old secret goes once the rollout is done; prune takes them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.main import main
from tests.execution.helpers import write
from tests.swarm.conftest import LABEL, Scope

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow, pytest.mark.root,
              pytest.mark.xdist_group("swarm")]


def cli(s: Scope, *args: str) -> int:
    return main([args[0], *args[1:], "--root", str(s.root), "--runtime", "swarm", "--owner", s.owner])


def doc(s: Scope, image: str) -> str:
    return f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {s.owner}-app}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          restart: always
          stopTimeout: 1s
          update: {{minReady: 1s}}
          secrets:
            - {{source: db.password}}
            - {{source: app.conf, target: /etc/app/app.conf, mode: "0440", uid: 1000, gid: 1000}}
        """


def owned_secrets(s: Scope) -> dict[str, dict[str, Any]]:
    return {str(x["Spec"]["Name"]): x for x in s.rt.api.secret_list({LABEL: s.owner})}


def in_copy(s: Scope, *argv: str) -> str:
    sid = s.rt.api.service_inspect(f"{s.owner}-app")["ID"]
    (task,) = [t for t in s.rt.api.task_list({"service": [sid], "desired-state": ["running"]})
               if t["Status"]["State"] == "running"]
    return s.daemon.docker("exec", task["Status"]["ContainerStatus"]["ContainerID"], *argv).stdout


def test_secret_files_become_swarm_secrets_that_rotate_by_content_and_are_pruned(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p = tmp_path / "m", swarm.owner
    write(m, "app.yaml", doc(swarm, busybox_image))
    (m / "db.password").write_text("first-pw\n")
    (m / "app.conf").write_text("level=1\n")
    assert cli(swarm, "apply", str(m)) == 0
    first = owned_secrets(swarm)
    assert len(first) == 2
    assert all(n.startswith(f"{p}-app-") for n in first)
    assert in_copy(swarm, "cat", "/run/secrets/db.password") == "first-pw\n"
    assert in_copy(swarm, "stat", "-c", "%a %u %g", "/etc/app/app.conf").strip() == "440 1000 1000"
    assert in_copy(swarm, "cat", "/etc/app/app.conf") == "level=1\n"
    spec = swarm.rt.api.service_inspect(f"{p}-app")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert {ref["SecretName"] for ref in spec["Secrets"]} == set(first)
    assert cli(swarm, "diff", str(m)) == 0
    capsys.readouterr()

    # a changed file: a new secret, the service rolled out to it, the old secret gone
    (m / "db.password").write_text("second-pw\n")
    assert cli(swarm, "diff", str(m)) == 1
    assert f"container:{p}-app, update, spec hash changed: secrets" in capsys.readouterr().out
    assert cli(swarm, "apply", str(m)) == 0
    assert in_copy(swarm, "cat", "/run/secrets/db.password") == "second-pw\n"
    second = owned_secrets(swarm)
    assert len(second) == 2
    kept = set(first) & set(second)           # app.conf did not change: its secret stays
    assert len(kept) == 1
    assert cli(swarm, "diff", str(m)) == 0

    # prune: the service and every secret made for it
    for f in m.iterdir():
        f.unlink()
    assert cli(swarm, "apply", str(m), "--allow-empty") == 0
    assert owned_secrets(swarm) == {}


def test_a_swarm_secret_nobody_made_for_the_service_is_left_alone(
    tmp_path: Path, swarm: Scope, busybox_image: str,
) -> None:
    m, p, d = tmp_path / "m", swarm.owner, swarm.daemon
    other = tmp_path / "other"
    other.write_text("x")
    d.docker("secret", "create", "--label", f"{LABEL}={p}", f"{p}-other", str(other))
    d.docker("secret", "create", f"{p}-plain", str(other))
    try:
        write(m, "app.yaml", doc(swarm, busybox_image))
        (m / "db.password").write_text("pw\n")
        (m / "app.conf").write_text("c\n")
        assert cli(swarm, "apply", str(m)) == 0
        for f in m.iterdir():
            f.unlink()
        assert cli(swarm, "apply", str(m), "--allow-empty") == 0
        left = {str(x["Spec"]["Name"]) for x in swarm.rt.api.secret_list()}
        assert {f"{p}-other", f"{p}-plain"} <= left
        assert not any(n.startswith(f"{p}-app-") for n in left)
    finally:
        d.docker("secret", "rm", f"{p}-other", f"{p}-plain", check=False)
