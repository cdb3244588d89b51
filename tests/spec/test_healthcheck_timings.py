"""A healthcheck's start interval and a healthcheck without test (the image's test with other
timings), in the manifest language and from compose: the models they load into, their hash, the
warnings `validate` gives where a start would fail waiting for a first check that comes too late,
and compose's `start_interval` and timings-only `healthcheck` through `reconcile convert`."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from reconciler import spec
from reconciler.cli.main import main
from reconciler.spec import compose, hashing
from reconciler.spec.errors import SpecError

Healthcheck = spec.models.Healthcheck


def _load(tmp_path: Path, extra: str) -> spec.DesiredState:
    (tmp_path / "c.yaml").write_text(textwrap.dedent("""\
        apiVersion: reconciler/v1
        kind: Container
        metadata: {name: web}
        spec:
          image: busybox:1.36
        """) + textwrap.indent(textwrap.dedent(extra), "  "))
    return spec.load(tmp_path)


def _warnings(desired: spec.DesiredState, tmp_path: Path) -> list[str]:
    return [w.replace(str(tmp_path) + os.sep, "") for w in desired.warnings]


def test_start_interval_loads_and_is_hashed_only_when_set(tmp_path: Path) -> None:
    plain = _load(tmp_path, "healthcheck: {test: [CMD, /check], startPeriod: 1m}\n").containers["web"]
    assert plain.healthcheck == Healthcheck(("CMD", "/check"), 30.0, 30.0, 60.0, 3)
    assert b"start_interval" not in hashing.canonical(plain.healthcheck)   # the hashes of manifests without it stay
    quick = _load(tmp_path, "healthcheck: {test: [CMD, /check], startPeriod: 1m, startInterval: 500ms}\n")
    assert quick.containers["web"].healthcheck == Healthcheck(("CMD", "/check"), 30.0, 30.0, 60.0, 3, 0.5)
    assert quick.containers["web"].spec_hash != plain.spec_hash
    assert quick.warnings == ()


def test_a_healthcheck_without_test_is_the_images_with_these_timings(tmp_path: Path) -> None:
    """Every timing it leaves out is 0: the image's, as Docker's HealthConfig inherits them."""
    c = _load(tmp_path, "healthcheck: {startPeriod: 2m, startInterval: 1s}\n").containers["web"]
    assert c.healthcheck == Healthcheck((), 0.0, 0.0, 120.0, 0, 1.0)
    assert c.spec_hash != _load(tmp_path, "").containers["web"].spec_hash


def test_a_bad_start_interval_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="startInterval"):
        _load(tmp_path, "healthcheck: {test: [CMD, /check], startInterval: soon}\n")


@pytest.mark.parametrize(("extra", "warned"), [
    ("healthcheck: {test: [CMD, /check], interval: 2m}\n",
     ["c.yaml:6:48: Container/web: spec.healthcheck.interval: the first check comes 120s after a start, not "
      "within update.healthTimeout (60s): a start of this container fails waiting for healthy; set startPeriod "
      "with a startInterval below it, a shorter interval, or a longer update.healthTimeout"]),
    ("healthcheck: {test: [CMD, /check], interval: 30s}\nupdate: {healthTimeout: 20s}\n",
     ["c.yaml:6:48: Container/web: spec.healthcheck.interval: the first check comes 30s after a start, not "
      "within update.healthTimeout (20s): a start of this container fails waiting for healthy; set startPeriod "
      "with a startInterval below it, a shorter interval, or a longer update.healthTimeout"]),
    ("healthcheck: {test: [CMD, /check], startInterval: 1s}\n",
     ["c.yaml:6:53: Container/web: spec.healthcheck.startInterval: startInterval applies during the start period "
      "only, and this healthcheck sets no startPeriod (its image's applies, if it has one): set startPeriod too"]),
    ("healthcheck: {test: [CMD, /check], interval: 2m, startPeriod: 5m, startInterval: 1s}\n", []),
    ("healthcheck: {test: [CMD, /check], interval: 2m, startPeriod: 5m}\n", []),      # Docker's 5 s start interval
    ("healthcheck: {interval: 2m}\n", []),           # the image's test: its start period is not known here
    ("healthcheck: {test: [NONE], interval: 2m}\n", []),
    ("healthcheck: {test: [CMD, /check], interval: 2m}\njob: true\n", []),          # a job waits for its exit
])
def test_validate_warns_where_a_start_would_wait_out_its_first_check(
    tmp_path: Path, extra: str, warned: list[str],
) -> None:
    assert _warnings(_load(tmp_path, extra), tmp_path) == warned


COMPOSE = """\
    name: shop
    services:
      web:
        image: registry.local/web:1
        healthcheck: {test: [CMD, /check], interval: 1m, start_period: 30s, start_interval: 500ms}
      db:
        image: registry.local/db:1
        healthcheck: {start_period: 1m, start_interval: 1s, retries: 5}
      plain:
        image: registry.local/plain:1
        healthcheck: {}
    """


def test_compose_start_interval_and_a_healthcheck_without_test_convert_and_load_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(COMPOSE))
    desired = spec.load(tmp_path, compose=compose.Options(environ={}))
    containers = desired.containers
    assert containers["shop-web-1"].healthcheck == Healthcheck(("CMD", "/check"), 60.0, 30.0, 30.0, 3, 0.5)
    assert containers["shop-db-1"].healthcheck == Healthcheck((), 0.0, 0.0, 60.0, 5, 1.0)
    assert containers["shop-plain-1"].healthcheck is None            # nothing said: the image's as it is
    assert main(["convert", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    docs = {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(out) if d["kind"] == "Container"}
    assert docs["shop-db-1"]["healthcheck"] == {"startPeriod": "1m", "startInterval": "1s", "retries": 5}
    (tmp_path / "converted").mkdir()
    (tmp_path / "converted" / "m.yaml").write_text(out)
    native = spec.load(tmp_path / "converted")
    assert {n: c.spec_hash for n, c in native.containers.items()} == {n: c.spec_hash for n, c in containers.items()}


def test_compose_start_interval_is_reported_at_its_key_when_bad(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent("""\
        services:
          web:
            image: registry.local/web:1
            healthcheck: {start_period: 1m, start_interval: soon}
        """))
    with pytest.raises(SpecError, match=r"compose.yaml:4:.*start_interval"):
        spec.load(tmp_path, compose=compose.Options(environ={}))
