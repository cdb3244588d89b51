"""compose's labels on the containers of a compose project, for real on the native engine (root,
a real registry, runc + conmon): `com.docker.compose.project`, `.service`, `.container-number`,
`.oneoff`, `.project.working_dir` and `.project.config_files`, which docker compose stamps and
`docker compose ls/ps`, Portainer and Dozzle group by; `reconcile ps --filter label=...` finds the
project by them. The two that say where the checkout is are no part of the spec hash: the project
moved to another directory replaces nothing, and a container replaced for another reason then
carries the new place. One engine per test (tests/helpers/host.py); teardown removes everything
and fails the test if anything is left.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

COMPOSE = """
    name: labelled
    services:
      web:
        image: {image}
        command: ["sleep", "{seconds}"]
        network_mode: none
        stop_grace_period: 1s
    """


def labels(host: Host) -> dict[str, dict[str, str]]:
    rt = host.runtime()
    try:
        return {c.name: dict(c.labels) for c in rt.list_containers({"com.docker.compose.project": "labelled"})}
    finally:
        rt.close()


def test_compose_labels_find_the_project_and_a_moved_checkout_replaces_nothing(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    first = tmp_path / "checkout-a" / "app"
    first.mkdir(parents=True)
    (first / "compose.yaml").write_text(textwrap.dedent(COMPOSE.format(image=busybox_image, seconds=3600)))

    assert host.cli("apply", str(first)) == 0
    capsys.readouterr()
    assert host.cli("ps", "-a", "-o", "json", "--filter", "label=com.docker.compose.project=labelled") == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)] == ["labelled-web-1"]
    made = labels(host)["labelled-web-1"]
    assert {k: v for k, v in made.items() if k.startswith("com.docker.compose.")} == {
        "com.docker.compose.project": "labelled", "com.docker.compose.service": "web",
        "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
        "com.docker.compose.project.working_dir": str(first),
        "com.docker.compose.project.config_files": str(first / "compose.yaml")}
    ids = host.ids()

    # the checkout moved: the same project, nothing replaced, nothing to do
    second = tmp_path / "checkout-b" / "app"
    second.parent.mkdir()
    first.rename(second)
    assert host.cli("diff", str(second)) == 0
    assert host.cli("apply", str(second)) == 0
    assert host.ids() == ids
    assert labels(host)["labelled-web-1"]["com.docker.compose.project.working_dir"] == str(first)

    # replaced for another reason, it carries where the project is now
    (second / "compose.yaml").write_text(textwrap.dedent(COMPOSE.format(image=busybox_image, seconds=3601)))
    assert host.cli("apply", str(second)) == 0
    assert host.ids()["labelled-web-1"] != ids["labelled-web-1"]
    now = labels(host)["labelled-web-1"]
    assert (now["com.docker.compose.project.working_dir"], now["com.docker.compose.project.config_files"]) == (
        str(second), str(second / "compose.yaml"))
