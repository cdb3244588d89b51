"""`reconcile rollback` without an agent on the native engine (root, a real registry, runc + conmon):
apply v1, apply v2 (an env file changed), rollback: v1's container is back, history shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.state import labels as labelmod
from tests.execution.helpers import write
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


def web(h: Host) -> tuple[dict[str, str], str]:
    """The web container's labels and its MODE as the process sees it."""
    rt = h.runtime()
    try:
        c = rt.inspect_container("web")
        out = rt.exec("web", ["sh", "-c", "echo $MODE; cat /etc/conf.txt"])
        return dict(c.labels), out.stdout.decode()
    finally:
        rt.close()


def test_rollback_brings_back_the_previous_container(tmp_path: Path, host: Host, busybox_image: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "app.env", "MODE=one\n")
    write(m, "conf.txt", "conf-one\n")
    write(m, "web.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          envFiles: [app.env]
          networks: [none]
          volumes: ["./conf.txt:/etc/conf.txt:ro"]
        """)
    assert host.cli("apply", str(m)) == 0
    v1, seen = web(host)
    assert seen == "one\nconf-one\n"
    write(m, "app.env", "MODE=two\n")
    write(m, "conf.txt", "conf-two\n")
    assert host.cli("apply", str(m)) == 0
    v2, seen = web(host)
    assert seen == "two\nconf-two\n"
    assert v2[labelmod.SPEC_HASH] != v1[labelmod.SPEC_HASH]

    capsys.readouterr()
    assert host.cli("rollback", "nope") == 2
    assert v1[labelmod.REVISION][:12] in capsys.readouterr().err
    assert web(host)[0] == v2                                # an unknown revision changes nothing

    assert host.cli("rollback") == 0
    back, seen = web(host)
    assert seen == "one\nconf-one\n"                         # the env file's and the bind file's v1
    assert back[labelmod.REVISION] == v1[labelmod.REVISION]
    # bind-mounting a kept file names the copy in its spec; without the bind the hash is v1's
    write(m, "web.yaml", (m / "web.yaml").read_text().replace('\n  volumes: ["./conf.txt:/etc/conf.txt:ro"]', ""))
    write(m, "app.env", "MODE=one\n")
    assert host.cli("apply", str(m)) == 0
    plain1, _ = web(host)
    write(m, "app.env", "MODE=two\n")
    assert host.cli("apply", str(m)) == 0
    assert host.cli("rollback") == 0
    assert web(host)[0][labelmod.SPEC_HASH] == plain1[labelmod.SPEC_HASH]

    capsys.readouterr()
    assert host.cli("history", "--output", "json") == 0
    passes = json.loads(capsys.readouterr().out)
    assert passes[0]["cause"] == f"rollback to {plain1[labelmod.REVISION][:12]}"
    assert [p["cause"] for p in passes].count(f"rollback to {v1[labelmod.REVISION][:12]}") == 1
