"""`reconcile agent --config FILE`: the daemon (sources, controller loop, supervision, API).

Runs in the foreground (systemd: contrib/reconciler.service, Type=notify). SIGTERM (and ^C)
stop the pass in flight after its actions in flight and exit 0, leaving containers running; a
second signal exits at once (143/130); SIGHUP re-reads the config file (an invalid file is
reported and the running config stays). Flags override the file.
`--check` validates the config and exits (0 valid, 2 invalid).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "agent", help="run the daemon: watch sources, converge, supervise, serve the API",
        description="Run the agent in the foreground with the configuration in --config "
        "(see contrib/agent.yaml). SIGTERM stops it (containers keep running), SIGHUP reloads.",
    )
    parser.add_argument("--config", default=os.environ.get("RECONCILER_CONFIG", "/etc/reconciler/agent.yaml"),
                        help="the agent's YAML config (default: $RECONCILER_CONFIG or /etc/reconciler/agent.yaml)")
    parser.add_argument("--root", default=None, help="state root (overrides the config's root)")
    parser.add_argument("--run-dir", default=None, help="run directory (overrides run_dir)")
    parser.add_argument("--socket", default=None, help="API socket (overrides socket)")
    parser.add_argument("--runtime", default=None, choices=("native", "docker", "swarm", "fake"),
                        help="engine (overrides runtime; supervision of restarts is the native engine's, dockerd does its own)")
    parser.add_argument("--name-prefix", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--drift-interval", default=None, help="seconds or 30s/5m between drift checks")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.agent import config, daemon

    overrides = {"root": args.root, "run_dir": args.run_dir, "socket": args.socket, "runtime": args.runtime,
                 "name_prefix": args.name_prefix, "drift_interval": args.drift_interval}
    cfg = config.load_config(args.config, overrides=overrides, aside=not args.check)   # the agent maps no validator
    if args.check:
        names = ", ".join(f"{s.name} ({s.kind})" for s in cfg.sources) or "none"
        print(f"{args.config}: valid; sources: {names}")
        return 0
    return daemon.run_agent(cfg)
