"""reconciler.logs: structlog is set up at the first line logged, the same way as at once (#21).

Each case runs in a fresh interpreter (the set-up is process-wide, and whether structlog is
loaded is the point), with stderr a pipe: JSON lines, as a service's log has them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# a library module's logger made before the set-up, as module-level loggers are
SCRIPT = """
import sys
from reconciler import logs
log = logs.get_logger("reconciler.test").bind(owner="o")
{before}
logs.configure_logging(level="warning", json=None)
log.info("below_the_level", n=1)
print("structlog loaded before the first line:", "structlog" in sys.modules)
log.bind(revision="r1").warning("first_line", n=2)
log.error("second_line", n=3)
try:
    raise ValueError("boom")
except ValueError:
    log.exception("failed")
"""


def run(before: str) -> tuple[str, list[dict[str, object]]]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(before=before)], capture_output=True,
                          text=True, check=True, timeout=60)
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    for line in lines:
        assert line.pop("timestamp")            # set, and differs between runs; so do the
        for exc in line.get("exception", []):   # traceback's line numbers and locals
            assert exc.pop("frames")
    return proc.stdout, lines


def test_nothing_logged_at_the_level_loads_no_structlog() -> None:
    out, _ = run(before="")
    assert "structlog loaded before the first line: False" in out


@pytest.mark.parametrize("before", ["", "import structlog"])
def test_first_line_is_configured_as_at_once(before: str) -> None:
    """Loaded lazily (nothing before) or at once (structlog imported first, the set-up applied
    at the call): the same lines, level filter, bound context and traceback included."""
    _, lines = run(before)
    assert [line["event"] for line in lines] == ["first_line", "second_line", "failed"]
    assert lines[0] == {"event": "first_line", "owner": "o", "revision": "r1", "n": 2, "level": "warning"}
    assert lines[1] == {"event": "second_line", "owner": "o", "n": 3, "level": "error"}
    assert lines[2]["exception"][0]["exc_value"] == "boom"        # dict_tracebacks, as JSON has it


def test_lazy_and_eager_set_up_write_the_same() -> None:
    assert run("")[1] == run("import structlog")[1]


def test_library_code_logs_through_reconciler_logs() -> None:
    """A line written through structlog directly would skip a set-up not applied yet (it would
    come out in structlog's default format, on stdout): every logger comes from logs.get_logger."""
    package = Path(__file__).resolve().parents[1] / "reconciler"
    direct = [str(p.relative_to(package)) for p in sorted(package.rglob("*.py"))
              if p.name != "logs.py" and "structlog.get_logger" in p.read_text()]
    assert direct == []


# a pass of the controller loop that logs nothing at the level, then one that fails (a warning
# line, its reconcile_id bound), the way the agent runs them at `warning`
LOOP = """
import sys
from reconciler import logs
from reconciler.controller import loop
from reconciler.errors import TerminalError
logs.configure_logging(level="warning", json=None)
log = logs.get_logger("reconciler.test")
calls = []
def reconcile(request):
    calls.append(request.reconcile_id)
    log.info("in_the_pass")
    if len(calls) == 2:
        log.warning("second_pass_line")
        raise TerminalError("boom")
    return loop.Result()
ctl = loop.ControllerLoop(reconcile, workers=1, name="t").start()
ctl.trigger("k", "first")
assert ctl.wait_idle(60)
print("structlog after a quiet pass:", "structlog" in sys.modules)
ctl.trigger("k", "second")
assert ctl.wait_idle(60)
ctl.stop()
print("ids:", *calls)
"""


def test_bound_context_reaches_a_first_line_without_structlog_before_it() -> None:
    """`logs.bound_context` needs no structlog: an idle agent at `warning` never loads it, and
    the first line logged inside a pass still carries the pass's reconcile_id."""
    proc = subprocess.run([sys.executable, "-c", LOOP], capture_output=True, text=True, check=True, timeout=60)
    out = proc.stdout.splitlines()
    assert out[0] == "structlog after a quiet pass: False"
    second = out[1].split()[2]
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [(line["event"], line["reconcile_id"]) for line in lines] == [
        ("second_pass_line", second), ("reconcile_pass", second)]
    assert lines[0]["reconcile_key"] == "k"
    assert lines[1]["outcome"] == "terminal"


@pytest.mark.parametrize("before", ["", "import structlog"])
def test_bound_context_ends_with_its_block(before: str) -> None:
    script = f"""
{before}
from reconciler import logs
logs.configure_logging(level="warning", json=True)
log = logs.get_logger("reconciler.test").bind(resource="r")
with logs.bound_context(reconcile_id="a", resource="ignored"):
    with logs.bound_context(revision="v"):
        log.warning("inner")
    log.warning("outer")
log.warning("after")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    lines = [{k: v for k, v in json.loads(line).items() if k not in ("timestamp", "level")}
             for line in proc.stderr.splitlines()]
    assert lines == [{"event": "inner", "reconcile_id": "a", "revision": "v", "resource": "r"},
                     {"event": "outer", "reconcile_id": "a", "resource": "r"},
                     {"event": "after", "resource": "r"}]


RACE = """
import sys, threading
from reconciler import logs
sys.setswitchinterval(1e-5)          # switch threads often: the import is many switches long
def importer():
    import structlog  # noqa: F401
t = threading.Thread(target=importer)
t.start()
failed = None
while t.is_alive():
    try:
        with logs.bound_context(reconcile_id="x"):
            pass
    except AttributeError as exc:
        failed = exc
        break
t.join()
print(repr(failed))
"""


def test_bound_context_while_another_thread_imports_structlog() -> None:
    # an agent's pass thread entered bound_context while the main thread imported structlog (its
    # first line logged): the module was in sys.modules, partly initialized, without `contextvars`,
    # and the pass thread died (the agent never converged its source; seen in CI). A fresh
    # interpreter each time: whether and when structlog is imported is the point.
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=60,
                             check=True, cwd=Path(__file__).resolve().parent.parent)
        assert out.stdout.strip() == "None", out.stdout + out.stderr
