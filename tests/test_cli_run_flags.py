"""`reconcile run` flags mean what the same manifest fields mean (one parser: spec.units)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from reconciler.cli import cmd_run
from reconciler.cli.main import build_parser
from reconciler.spec import units


def config_of(*flags: str) -> Any:
    args = build_parser("run").parse_args(["run", *flags, "img"])
    return cmd_run.build_config(args)


def test_flags_take_the_manifest_syntax() -> None:
    c = config_of("-p", "[::1]:8080:80/udp", "-p", "9090:90", "--health-cmd", "true",
                  "--health-interval", "1m30s", "--health-timeout", "500ms",
                  "--restart", "on-failure:3", "--cpus", "500m", "-m", "64m")
    ports = [(p.host_ip, p.host_port, p.container_port, p.protocol) for p in c.ports]
    assert ports == [("::1", 8080, 80, "udp"), ("0.0.0.0", 9090, 90, "tcp")]
    assert c.healthcheck.interval == units.parse_duration("1m30s") == 90.0
    assert c.healthcheck.timeout == 0.5
    assert (c.restart.name, c.restart.max_retries) == ("on-failure", 3)
    assert c.resources.cpus == 0.5
    assert c.resources.memory == 64 << 20


def test_health_timings_without_a_command_are_the_images_check_with_them() -> None:
    """As docker run: --health-* without --health-cmd keep the image's test (and its other timings)."""
    from reconciler.runtime import base

    assert config_of().healthcheck is None
    assert config_of("--health-start-period", "1m", "--health-start-interval", "500ms").healthcheck == \
        base.Healthcheck((), interval=0, timeout=0, retries=0, start_period=60.0, start_interval=0.5)
    assert config_of("--health-cmd", "true", "--health-start-interval", "1s").healthcheck == \
        base.Healthcheck(("CMD-SHELL", "true"), interval=30.0, timeout=30.0, retries=3, start_interval=1.0)


def test_publish_without_a_host_port_leaves_it_to_the_engine_as_docker_run_does() -> None:
    """`docker run -p 80` (and `:80`, `IP::80`) publishes on a host port the engine chooses:
    host port 0 (the manifest language keeps asking for one: its long form leaves it out)."""
    c = config_of("-p", "80", "-p", ":81/udp", "-p", "127.0.0.1::82", "-p", "[::1]::83")
    ports = [(p.host_ip, p.host_port, p.container_port, p.protocol) for p in c.ports]
    assert ports == [("0.0.0.0", 0, 80, "tcp"), ("0.0.0.0", 0, 81, "udp"), ("127.0.0.1", 0, 82, "tcp"),
                     ("::1", 0, 83, "tcp")]
    with pytest.raises(ValueError, match="has no host port"):
        units.parse_port("80")


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("-p", "8080:", "container port '' is not a number"),
    ("-p", "localhost:80:80", "is not an IP address"),
    ("--restart", "on-failure:x", "is not a valid restart policy"),
    ("--health-interval", "10 s", "is not a valid duration"),
    ("--cpus", "0", "out of range"),
    ("-m", "lots", "is not a valid size"),
])
def test_a_bad_flag_is_a_usage_error_with_the_manifest_message(flag: str, value: str, message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "reconciler", "run", flag, value, "img"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 125             # docker run's for its own usage error: 2 may be the container's
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
