"""Corpus projects (tests/compose/corpus/*) made runnable on this host, the same way for every
engine that runs them (the compose oracle, the native corpus test).

Every image is the local test image (IMAGE), every entrypoint a shell that sleeps (the images'
programs are not there; `command:` stays as written), or with `serve`, one that first starts
busybox httpd (serving /) on each published tcp target port; a healthcheck's test is `true`
every second; every published host port is PORT_n and every fixed subnet SUBNET_n (the test
sets them); a `container_name` and a fixed network or volume `name:` are prefixed with the
project name; external networks and volumes get names of the test's own (`externals`: the test
makes them); `configs:` and the top-level `name:` are left out (docker-compose 1.29 ignores the
first on one host and refuses the second). Services that build are listed in `builds`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from reconciler.spec import compose

__all__ = ["KEEP_RUNNING", "Rewrite", "runnable", "variables"]

KEEP_RUNNING = ["/bin/sh", "-c", "exec sleep 3600", "--"]      # the command's words become $0, $1...


class Rewrite:
    """A corpus project made runnable here (the module docstring), the same for both tools."""

    def __init__(self, prefix: str, *, serve: bool = False) -> None:
        self.prefix = prefix
        self.serve = serve
        self.published: list[tuple[str, int, str]] = []     # PORT_n -> (service, target port, protocol)
        self.ports = 0
        self.subnets = 0
        self.externals: list[tuple[str, str]] = []      # ("networks" | "volumes", name) the test makes
        self.builds: list[str] = []
        self.docs: list[tuple[Path, dict[str, Any]]] = []      # the rewritten files, written by write()

    def port(self, service: str, item: Any) -> Any:
        var = f"${{PORT_{self.ports}}}"
        if isinstance(item, dict):
            if item.get("published") is None:
                return item
            self.ports += 1
            self.published.append((service, int(item["target"]), str(item.get("protocol") or "tcp")))
            return {**item, "published": var}
        text = str(item)
        body, slash, proto = text.partition("/")
        parts = [p.replace("\0", ":") for p in re.sub(r"\$\{[^}]*\}", lambda m: m[0].replace(":", "\0"), body).rsplit(":", 2)]
        if len(parts) < 2 or not parts[-2] or any("-" in x and "${" not in x for x in parts[-2:]):
            return item                 # a random host port or a range: as written
        self.ports += 1
        self.published.append((service, int(parts[-1]), proto or "tcp"))
        parts[-2] = var
        return ":".join(parts) + slash + proto

    def service(self, name: str, svc: dict[str, Any]) -> None:
        if "build" in svc:
            self.builds.append(name)
        svc.pop("configs", None)        # docker-compose 1.29 ignores configs on one host
        svc["image"] = "${IMAGE}"
        svc.pop("build", None)
        svc.pop("pull_policy", None)
        svc["entrypoint"] = KEEP_RUNNING
        hc = svc.get("healthcheck")
        if isinstance(hc, dict) and not hc.get("disable"):
            hc.update(test=["CMD", "true"], interval="1s")
        if "ports" in svc:
            svc["ports"] = [self.port(name, p) for p in svc["ports"]]
        if "container_name" in svc:
            svc["container_name"] = "${COMPOSE_PROJECT_NAME}-" + str(svc["container_name"])

    def file(self, path: Path) -> None:
        data = yaml.load(path.read_text(), Loader=compose._Yaml12Loader)      # a safe loader, YAML 1.2
        if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
            return
        for name, svc in data["services"].items():
            if isinstance(svc, dict):
                self.service(name, svc)
        data.pop("configs", None)
        data.pop("name", None)          # the project name is the run's (-p): docker-compose 1.29 has no name:
        for kind in ("networks", "volumes"):
            for key, cfg in (data.get(kind) or {}).items():
                if isinstance(cfg, dict) and cfg.get("external"):
                    cfg["name"] = f"{self.prefix}-{key}"
                    self.externals.append((kind, cfg["name"]))
                elif isinstance(cfg, dict) and cfg.get("name"):     # a fixed name: one per run
                    cfg["name"] = "${COMPOSE_PROJECT_NAME}-" + str(cfg["name"])
        for cfg in (data.get("networks") or {}).values():
            for item in ((cfg or {}).get("ipam") or {}).get("config") or ():
                if "subnet" in item:
                    item["subnet"] = f"${{SUBNET_{self.subnets}}}"
                    item.pop("gateway", None)
                    self.subnets += 1
        self.docs.append((path, data))

    def write(self) -> None:
        """Write the files back; with `serve`, every definition of a service starts httpd on every
        tcp target port any file publishes for it (an override file's entrypoint wins the merge)."""
        for path, data in self.docs:
            for name, svc in data["services"].items():
                targets = sorted({t for s, t, proto in self.published if s == name and proto == "tcp"})
                if self.serve and targets and isinstance(svc, dict) and svc.get("network_mode") != "host":
                    start = "".join(f"httpd -p {t} -h /; " for t in targets)
                    svc["entrypoint"] = ["/bin/sh", "-c", start + "exec sleep 3600", "--"]
            path.write_text(yaml.safe_dump(data, sort_keys=False))


def runnable(tree: Path, prefix: str, *, serve: bool = False) -> Rewrite:
    """Rewrite every compose file under `tree` (the module docstring)."""
    rewrite = Rewrite(prefix, serve=serve)
    for path in sorted(tree.rglob("*.y*ml")):
        if path.name != "native.yaml":
            rewrite.file(path)
    rewrite.write()
    return rewrite


def variables(tree: Path) -> set[str]:
    """Every variable the project's files name (`${X...}`, `$X`)."""
    names: set[str] = set()
    for path in tree.rglob("*"):
        if path.is_file() and (path.suffix in (".yaml", ".yml", ".env") or path.name == ".env"):
            names.update(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", path.read_text(errors="replace")))
    return names
