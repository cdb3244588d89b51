"""`logging:` on a Container (#16 item: logging options where they map): the manifest field, its
checks and hash, compose's `logging` mapped onto it, and the warnings loading for the native
engine gives for what it does not honour (it keeps the output itself and rotates json-file/local
logs by max-size and max-file)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.spec import compose
from reconciler.spec.errors import SpecError


def _container(tmp_path: Path, logging: str, engine: str | None = None) -> spec.DesiredState:
    (tmp_path / "c.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: busybox:1.36
        {logging}"""))
    return spec.load(tmp_path, engine=engine)


def test_logging_loads_is_hashed_and_leaves_other_hashes_alone(tmp_path: Path) -> None:
    plain = _container(tmp_path, "").containers["web"]
    assert plain.logging is None
    rotated = _container(tmp_path, "  logging: {driver: json-file, options: {max-size: 10m, max-file: '3'}}\n").containers["web"]
    assert rotated.logging == spec.models.LogConfig("json-file", {"max-file": "3", "max-size": "10m"})
    bigger = _container(tmp_path, "  logging: {driver: json-file, options: {max-size: 20m, max-file: '3'}}\n").containers["web"]
    assert len({plain.spec_hash, rotated.spec_hash, bigger.spec_hash}) == 3


@pytest.mark.parametrize(("options", "message"), [
    ("{max-size: lots}", "'lots' is not a valid size"),
    ("{max-file: '0'}", "'0' is not a whole number of files of 1 or more"),
])
def test_a_bad_size_or_count_is_a_load_error(tmp_path: Path, options: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        _container(tmp_path, f"  logging: {{options: {options}}}\n")


def test_the_native_engine_warns_about_what_it_does_not_honour(tmp_path: Path) -> None:
    logging = "  logging: {driver: syslog, options: {syslog-address: 'udp://127.0.0.1:514'}}\n"
    assert _container(tmp_path, logging, engine="docker").warnings == ()
    warned = [w.replace(str(tmp_path) + os.sep, "") for w in _container(tmp_path, logging, engine="native").warnings]
    assert warned == [
        "c.yaml:6:21: Container/web: spec.logging.driver: log driver syslog is not honoured on the native engine: "
        "it keeps each container's output itself (reconcile logs NAME)",
        "c.yaml:6:39: Container/web: spec.logging.options.syslog-address: log option syslog-address is not honoured "
        "on the native engine (it honours max-size and max-file)",
    ]
    assert _container(tmp_path, "  logging: {driver: local, options: {max-size: 1m, max-file: '2'}}\n",
                      engine="native").warnings == ()


def test_compose_logging_becomes_the_containers_logging(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent("""\
        name: shop
        services:
          web:
            image: busybox
            logging:
              driver: json-file
              options: {max-size: 1m, max-file: 2}
        """))
    desired = spec.load(tmp_path, compose=compose.Options(environ={}), engine="native")
    assert desired.containers["shop-web-1"].logging == spec.models.LogConfig("json-file", {"max-file": "2", "max-size": "1m"})
    assert desired.warnings == ()
