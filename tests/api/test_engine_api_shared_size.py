"""An image's SharedSize, the bytes of its layers that other images have too, as dockerd counts it:
in `docker system df` (side by side with the host's dockerd 20.10) and, asked for with
`shared-size=1`, in the image list (API 1.42's parameter: Docker 23 counts it so among the images
it lists; dockerd 20.10 ignores it). Both answered -1 here."""

from __future__ import annotations

import json
import secrets
import urllib.parse
from pathlib import Path

from tests.api.test_engine_api import docker, request
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.api.test_engine_api_filters import Both
from tests.api.test_engine_api_filters import both as both  # the fixture: ours beside dockerd
from tests.helpers import images
from tests.helpers.registry import RegistryServer


def _push(registry: RegistryServer, where: Path, repo: str, layers: list[bytes]) -> str:
    images.write_layout(where, layers, config={"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "Labels": {"repo": repo}})
    ref = f"{registry.host}/{repo}:1"
    images.push_layout(where, ref)
    return ref


def _by_ref(docs: list[dict[str, object]], refs: dict[str, str]) -> dict[str, tuple[object, object]]:
    """(Size, SharedSize) of the images `refs` names (role -> reference), by role."""
    out = {}
    for doc in docs:
        tags = doc["RepoTags"]
        assert isinstance(tags, list)
        for role, ref in refs.items():
            if ref in tags:
                out[role] = (doc["Size"], doc["SharedSize"])
    assert sorted(out) == sorted(refs), out
    return out


def test_shared_size_counts_the_layers_other_images_have(both: Both, registry: RegistryServer,
                                                          tmp_path: Path) -> None:
    own = images.layer_tar([images.Entry("own", secrets.token_bytes(48 << 10))])      # no other engine has it
    more = images.layer_tar([images.Entry("more", secrets.token_bytes(16 << 10))])
    alone = images.layer_tar([images.Entry("alone", secrets.token_bytes(8 << 10))])
    refs = {
        "base": _push(registry, tmp_path / "base", f"{both.prefix}/base", [images.busybox_layer(), own]),
        "child": _push(registry, tmp_path / "child", f"{both.prefix}/child", [images.busybox_layer(), own, more]),
        "alone": _push(registry, tmp_path / "alone", f"{both.prefix}/alone", [alone]),
    }
    for ref in refs.values():
        both.run("pull", "-q", ref)

    seen = {}
    for side, sock in both.socks.items():
        code, _, body = request(sock, "GET", "/v1.41/system/df")
        assert code == 200, body
        seen[side] = _by_ref(json.loads(body)["Images"], refs)
    ours = seen["ours"]
    assert all(shared != -1 for _, shared in ours.values()), ours
    base_size = ours["base"][0]
    assert ours["base"][1] == base_size                         # busybox and its own layer: the child has both
    assert ours["child"][1] == base_size                        # all but its top layer
    assert ours["alone"][1] == 0
    assert len({json.dumps(v, sort_keys=True) for v in seen.values()}) == 1, seen      # dockerd says the same

    sock = both.socks["ours"]
    code, _, body = request(sock, "GET", "/v1.41/images/json?shared-size=1")
    assert _by_ref(json.loads(body), refs) == ours
    code, _, body = request(sock, "GET", "/v1.41/images/json")
    assert {shared for _, shared in _by_ref(json.loads(body), refs).values()} == {-1}      # not asked for
    # among the images listed: the child filtered out, the base shares nothing but its busybox layer
    listed = {"reference": [refs["base"], refs["alone"]]}
    code, _, body = request(sock, "GET", "/v1.41/images/json?shared-size=1&filters="
                            + urllib.parse.quote(json.dumps(listed)))
    narrowed = _by_ref(json.loads(body), {k: refs[k] for k in ("base", "alone")})
    assert (narrowed["base"][1], narrowed["alone"][1]) == (0, 0), narrowed
    table = docker(sock, "system", "df", "-v", "--format", "{{json .Images}}").stdout
    rows = {f"{r['Repository']}:{r['Tag']}": r for r in json.loads(table)}
    assert rows[refs["alone"]]["SharedSize"] == "0B"
    assert rows[refs["child"]]["SharedSize"] != "0B"
