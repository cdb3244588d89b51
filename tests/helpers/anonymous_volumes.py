"""One scenario for a compose project with an anonymous volume (`- /data`), run on every engine
(tests/compose/test_anonymous_volumes_e2e.py: native; tests/docker/test_anonymous_volumes.py:
Docker and Podman).

The image has a file at /data (`seeded_image`): the volume starts with it, as Docker's copy-up
fills a new volume. A file written into /data survives a replacement of the container (its
environment changed in `.env`), and the volume is gone after the prune that removes the service.
"""

from __future__ import annotations

import secrets
import tarfile
import textwrap
from collections.abc import Callable
from pathlib import Path

from reconciler.runtime import base
from reconciler.spec.building import ANONYMOUS_LABEL, anonymous_name
from tests.helpers import images
from tests.helpers.registry import RegistryServer

SEED = b"from-the-image\n"

COMPOSE = """
    name: {project}
    services:
      web:
        image: {image}
        command: ["sleep", "3600"]
        stop_signal: SIGKILL
        environment:
          ROUND: ${{ROUND}}
        volumes:
          - /data
    {keep}"""

KEEP = """
      keep:
        image: {image}
        command: ["sleep", "3600"]
        stop_signal: SIGKILL
"""


def seeded_image(registry: RegistryServer, layout: Path) -> str:
    """A busybox image in `registry` with /data/seed.txt (a repository of its own)."""
    extra = [images.Entry("data", type=tarfile.DIRTYPE, mode=0o755), images.Entry("data/seed.txt", SEED)]
    images.write_layout(layout, [images.busybox_layer(extra)], config={"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]})
    ref = f"{registry.host}/anonvol-{secrets.token_hex(3)}/busybox:latest"
    images.push_layout(layout, ref)
    return ref


def write(project_dir: Path, project: str, image: str, *, web: bool = True, round_: str = "1") -> None:
    text = COMPOSE.format(project=project, image=image, keep=KEEP.format(image=image))
    if not web:     # the project without `web`: the next apply prunes it
        text = textwrap.dedent(text)
        text = text[:text.index("  web:")] + text[text.index("  keep:"):]
    project_dir.mkdir(parents=True, exist_ok=True)
    (project_dir / "compose.yaml").write_text(textwrap.dedent(text))
    (project_dir / ".env").write_text(f"ROUND={round_}\n")


def run(rt: base.Runtime, apply: Callable[[Path], int], project_dir: Path, project: str, image: str, owner: str) -> None:
    """The scenario; `apply` converges the directory on the engine `rt` reads."""
    web, volume = f"{project}-web-1", anonymous_name(f"{project}-web-1", "/data")

    def ids() -> dict[str, str]:
        return {c.name: c.id for c in rt.list_containers({"reconciler.owner": owner})}

    def sh(script: str) -> str:
        res = rt.exec(web, ["sh", "-c", script])
        assert res.exit_code == 0, res.stderr
        return res.stdout.decode()

    write(project_dir, project, image)
    assert apply(project_dir) == 0
    first = ids()
    assert set(first) == {web, f"{project}-keep-1"}
    assert sh("cat /data/seed.txt").encode() == SEED              # the image's content, copied in
    sh("echo written-by-web > /data/mark")
    ours = {v.name: v for v in rt.list_volumes() if v.name == volume}
    assert ANONYMOUS_LABEL in ours[volume].labels

    write(project_dir, project, image, round_="2")             # a changed env: web is replaced
    assert apply(project_dir) == 0
    second = ids()
    assert second[web] != first[web]
    assert second[f"{project}-keep-1"] == first[f"{project}-keep-1"]
    assert sh("echo $ROUND; cat /data/mark") == "2\nwritten-by-web\n"      # the same data

    write(project_dir, project, image, web=False)              # web leaves the project: pruned
    assert apply(project_dir) == 0
    assert set(ids()) == {f"{project}-keep-1"}
    assert volume not in {v.name for v in rt.list_volumes()}
