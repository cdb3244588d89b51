"""Health without an agent, on the native engine (root, a real registry, runc + conmon): the
healthcheck probes run only while an agent or a `reconcile` session runs, so a status the
record kept is what a probe saw then. `ps`, `inspect` and `status` say it is stale; a
`--once` pass probes it before it judges, and reports what the probe saw (#22)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime import base, opening
from reconciler.runtime.native.containers import health, summaries
from tests.execution.helpers import write
from tests.helpers.host import Host
from tests.runtime.test_conformance import eventually

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

# stale 3 x 1 s + 1 s after the last probe (healthtimes.STALE_INTERVALS)
APP = """
    apiVersion: reconciler/v1
    kind: Container
    metadata: {{name: app}}
    spec:
      image: "{image}"
      command: [sh, -c, "touch /tmp/ok; exec sleep 600"]
      healthcheck: {{test: [CMD, test, -f, /tmp/ok], interval: 1s, timeout: 1s, retries: 3}}
      restart: always
      networks: [none]
    """


def ps_row(host: Host, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["ps", "-a", "-o", "json", *reads(host)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    return dict(row)


def reads(host: Host) -> list[str]:
    """The flags of the read-only commands (`ps`, `inspect`, `status`) for this engine."""
    return [a for a in host.cli_args() if a not in ("--runtime", "native")]


def test_ps_status_and_once_do_not_trust_a_health_no_probe_observed(
        host: Host, busybox_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "app.yaml", APP.format(image=busybox_image))
    assert host.cli("apply", str(m)) == 0                  # started, waited for healthy
    row = ps_row(host, capsys)
    assert (row["health"], row["health_stale"]) == ("healthy", False)

    # no agent: nothing probes it any more, and after 3 intervals and a timeout the status is stale
    eventually(lambda: ps_row(host, capsys)["health_stale"] is True, timeout=30)
    row = ps_row(host, capsys)
    assert row["health"] == "healthy"
    assert row["health_probed_at"]
    assert "(healthy, last probed " in str(row["status_text"])
    store = opening.open_records(opening.Place(root=host.config.root, run_dir=host.config.run_dir,
                                               name_prefix=host.config.name_prefix))
    try:
        # the rows alone (ps's fast path) and the record store say the same
        assert summaries.read(str(host.config.root), str(host.config.run_dir), host.config.name_prefix) == \
            opening.summaries(store)
    finally:
        store.db.close()
    capsys.readouterr()
    assert main(["ps", *reads(host)]) == 0
    assert "(healthy, last probed " in capsys.readouterr().out
    assert main(["inspect", "app", *reads(host)]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert (doc["State"]["Health"]["Status"], doc["State"]["Health"]["Stale"]) == ("healthy", True)
    assert main(["status", *reads(host)]) == 1             # not "ok" on a record's word
    out = capsys.readouterr().out
    assert "owner default: degraded" in out
    assert "down now: container app: health not observed: last probed " in out
    assert "healthy then; is the agent running? (`reconcile agent`)" in out

    # `--once` with nothing to do probes it first: healthy, converged, and fresh for a while
    assert host.cli("apply", str(m)) == 0
    row = ps_row(host, capsys)
    assert (row["health"], row["health_stale"]) == ("healthy", False)
    assert main(["status", *reads(host)]) == 0

    # the app breaks while nothing probes it: the record keeps `healthy`, until it is stale
    rt = host.runtime()
    try:
        assert rt.exec("app", ["rm", "/tmp/ok"]).exit_code == 0
    finally:
        rt.close()
    eventually(lambda: ps_row(host, capsys)["health_stale"] is True, timeout=30)
    assert ps_row(host, capsys)["health"] == "healthy"
    capsys.readouterr()
    assert main(["status", *reads(host)]) == 1

    # `--once` probes it: the probe fails, and after hours of no observation one failure is the
    # verdict (not 1 of 3 retries): unhealthy, not converged, as ps then says too
    assert host.cli("apply", str(m)) == 1
    assert "container app is not running as desired: running but unhealthy" in capsys.readouterr().err
    row = ps_row(host, capsys)
    assert (row["health"], row["health_stale"]) == ("unhealthy", False)
    assert "(unhealthy)" in str(row["status_text"])

    # mended while nothing probes it: `diff` probes the stale status as `--once` does, and agrees
    # with it: healthy, in sync (exit 0), not "health not observed" (exit 1) on the record's word
    rt = host.runtime()
    try:
        assert rt.exec("app", ["touch", "/tmp/ok"]).exit_code == 0
    finally:
        rt.close()
    eventually(lambda: ps_row(host, capsys)["health_stale"] is True, timeout=30)
    capsys.readouterr()
    assert host.cli("diff", str(m)) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "in sync"
    assert ps_row(host, capsys)["health"] == "healthy"
    assert host.cli("apply", str(m)) == 0


def test_a_probe_after_a_stale_gap_is_the_status_at_once(host: Host, busybox_image: str) -> None:
    """Docker's retries forgive failures between probes that follow each other; after a gap
    longer than the healthcheck allows there is no recent status to keep: the probe's is it."""
    rt = host.runtime()
    try:
        rt.pull_image(busybox_image)
        hc = base.Healthcheck(test=("CMD", "test", "-f", "/tmp/ok"), interval=0.2, timeout=0.5, retries=3)
        cid = rt.create_container(base.ContainerConfig(
            name="gap", image=busybox_image, command=("sh", "-c", "touch /tmp/ok; exec sleep 600"),
            networks=("none",), healthcheck=hc))
        rt.start_container(cid)
        checker = health.HealthChecker(rt.containers)
        eventually(lambda: checker.probe(cid) == "healthy")
        assert rt.exec(cid, ["rm", "/tmp/ok"]).exit_code == 0
        assert checker.probe(cid) == "healthy"             # 1 failure of 3, observed in time
        assert rt.inspect_container(cid).health_stale is False
        eventually(lambda: rt.inspect_container(cid).health_stale, timeout=10)     # 3 x 0.2 s + 0.5 s
        assert checker.probe(cid) == "unhealthy"           # 2 failures: the gap made it decide
        st = rt.inspect_container(cid)
        assert (st.health, st.health_stale) == ("unhealthy", False)
        assert rt.inspect_document(cid)["State"]["Health"]["FailingStreak"] == 2
    finally:
        rt.close()
