"""An in-memory Runtime: the Runtime protocol's semantics without an engine.

For fast executor tests and as a dry-run/testing backend of the CLI (`--runtime fake`, its state
kept in a JSON file under `--root` so a CLI process and a test can share it). It follows the
protocol contract of `runtime.base`: idempotent `ensure_*`, NotFound on removing a missing
object, AlreadyExists on a taken name, Conflict on removing a running container or a network
or volume in use, ImageError on an unknown reference, host-port clashes refused on start.

What a fake cannot have is simulated simply and deterministically:
- a "registry": `publish(ref, digest)` makes a reference pullable (tests move tags with it);
  references are keyed by `imagenames.key`, the rule the native store tags by (`busybox:1` and
  `docker.io/busybox:1` are one image, `docker.io/library/busybox:1`);
- a process: a container whose command or args contain "false" exits with code 1 on start,
  any other one runs until stopped, with a made-up PID and an address on each of its networks
  (the next free one of the subnet); it is a PID 1 without signal handlers, so stop ends it as
  the engines end `sleep`: the stop signal does nothing and the kill after the timeout (not
  waited for) leaves exit code 137;
- health: a container with a healthcheck (its own, else its image's: `publish(config=...)`
  gives an image a config, `{"Healthcheck": {"Test": [...]}}`) starts "starting" and becomes
  "healthy" on the next inspect, "unhealthy" if its test contains "false", or stays "starting"
  for ever if it contains "sleep" (so health gates, failures and timeouts can be exercised); its
  `first_probe` is what an engine with Docker 25's start interval says;
- `op_delay` makes every mutating call take that long, and `max_in_flight` records the most
  calls seen running at once (how executor tests observe parallelism without timing).

Capabilities beyond the protocol: `base.Renaming` (start-first updates need it), `base.Connecting`
(with `disconnect_container` beside it, for tests of a container off its network), `base.Sizing`
(`ps -s`: what it truly keeps, no files of a container's own, its image's IMAGE_SIZE); not building,
pushing, supervision loops or archive transfer.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler import imagenames
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors

__all__ = ["FakeRuntime"]

STATE_FILE = "fake-runtime.json"
FIRST_PID = 1000                # the made-up PIDs of running containers count up from here
IMAGE_SIZE = 1024               # every image's size (the fake keeps no layers)
SUBNETS = ipaddress.IPv4Network("10.89.0.0/16")     # networks without a subnet get a /24 of it


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeRuntime:
    """The Runtime protocol in memory (optionally persisted to a JSON file)."""

    name = "fake"

    def __init__(self, state_path: str | os.PathLike[str] | None = None, *, op_delay: float = 0.0) -> None:
        self.state_path = Path(state_path) if state_path is not None else None
        self.op_delay = op_delay
        self._lock = threading.RLock()
        self._in_flight = 0
        self.max_in_flight = 0
        self.calls: list[tuple[str, str]] = []
        self.s: dict[str, Any] = {"registry": {}, "images": {}, "containers": {}, "networks": {}, "volumes": {}}
        if self.state_path is not None and self.state_path.exists():
            self.s = json.loads(self.state_path.read_text())
        self.s.setdefault("next_pid", FIRST_PID)

    @classmethod
    def at_root(cls, root: str | os.PathLike[str]) -> FakeRuntime:
        """The fake whose state lives in `<root>/fake-runtime.json`."""
        Path(root).mkdir(parents=True, exist_ok=True)
        return cls(Path(root) / STATE_FILE)

    # --- bookkeeping

    def _save(self) -> None:
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.s, indent=1, sort_keys=True))
        os.replace(tmp, self.state_path)

    def _op(self, op: str, subject: str) -> None:
        """Count a mutating call (and take `op_delay` outside the lock, like real work)."""
        with self._lock:
            self.calls.append((op, subject))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.op_delay:
                time.sleep(self.op_delay)
        finally:
            with self._lock:
                self._in_flight -= 1

    def publish(self, ref: str, digest: str | None = None, *, config: Mapping[str, Any] | None = None) -> str:
        """Make `ref` pullable at `digest` (default: derived from the ref), its image's config
        `config` (the "config" object: Env, Cmd, Healthcheck...); returns the digest."""
        digest = digest or "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        with self._lock:
            self.s["registry"][imagenames.key(ref)] = digest
            if config is not None:
                self.s.setdefault("configs", {})[digest] = dict(config)
            self._save()
        return digest

    # --- images

    def resolve_digest(self, ref: str) -> str:
        n = imagenames.key(ref)
        if "@" in n:
            return n.rpartition("@")[2]
        with self._lock:
            digest = self.s["registry"].get(n)
        if digest is None:
            raise rterrors.ImageError(f"{ref}: manifest unknown to the registry")
        return str(digest)

    def pull_image(self, ref: str, *, progress: base.ProgressCallback | None = None) -> base.ImageInfo:
        self._op("pull", ref)
        n = imagenames.key(ref)
        with self._lock:
            if "@" in n:
                digest = n.rpartition("@")[2]
                repo = n.rpartition("@")[0]
                if digest not in self.s["registry"].values():
                    raise rterrors.ImageError(f"{ref}: manifest unknown to the registry")
                tags: list[str] = []
            else:
                digest = self.s["registry"].get(n)
                if digest is None:
                    raise rterrors.ImageError(f"{ref}: manifest unknown to the registry",
                                              hint="check the reference and that it was pushed")
                repo, tags = n.rpartition(":")[0], [n]
            image_id = "sha256:" + hashlib.sha256(("config" + digest).encode()).hexdigest()
            for other in self.s["images"].values():     # a moved tag leaves the old image untagged
                other["repo_tags"] = [t for t in other["repo_tags"] if t not in tags]
            img = self.s["images"].setdefault(image_id, {
                "id": image_id, "digest": digest, "repo_tags": [], "repo": repo, "created": _now(),
                "config": self.s.get("configs", {}).get(digest, {}),
            })
            img["repo_tags"] = sorted(set(img["repo_tags"]) | set(tags))
            self._save()
            info = self._image_info(img)
        if progress:
            progress("done", {"ref": ref})
        return info

    @staticmethod
    def _image_info(img: Mapping[str, Any]) -> base.ImageInfo:
        return base.ImageInfo(id=img["id"], digest=img["digest"], repo_tags=tuple(img["repo_tags"]),
                              size=IMAGE_SIZE, created=img["created"], config=dict(img.get("config") or {}))

    def container_sizes(self, ids: Collection[str]) -> dict[str, tuple[int, int]]:
        """base.Sizing (`ps -s`): the fake keeps no files, so a container's writable layer is 0
        bytes and its root file system its image's (IMAGE_SIZE), by full id, of the `ids` it has."""
        with self._lock:
            return {cid: (0, IMAGE_SIZE) for cid in ids if cid in self.s["containers"]}

    def _find_image(self, ref: str) -> Mapping[str, Any] | None:
        n = imagenames.key(ref) if not ref.startswith("sha256:") else ref
        for img in self.s["images"].values():
            if ref == img["id"] or n in img["repo_tags"] or n == f"{img['repo']}@{img['digest']}":
                return dict(img)
        return None

    def list_images(self) -> list[base.ImageInfo]:
        with self._lock:
            return [self._image_info(i) for i in self.s["images"].values()]

    def inspect_image(self, ref: str) -> base.ImageInfo:
        with self._lock:
            img = self._find_image(ref)
        if img is None:
            raise rterrors.NotFound(f"image {ref} is not present locally")
        return self._image_info(img)

    def remove_image(self, ref: str, *, force: bool = False) -> list[str]:
        self._op("remove_image", ref)
        with self._lock:
            img = self._find_image(ref)
            if img is None:
                raise rterrors.NotFound(f"image {ref} is not present locally")
            if not force and any(c["image_id"] == img["id"] for c in self.s["containers"].values()):
                raise rterrors.Conflict(f"image {ref} is used by a container")
            del self.s["images"][img["id"]]
            self._save()
            return [img["id"]]

    # --- containers

    def _get(self, name_or_id: str) -> dict[str, Any]:
        cs = self.s["containers"]
        if name_or_id in cs:
            return dict(cs[name_or_id])
        for c in cs.values():
            if c["config"]["name"] == name_or_id:
                return dict(c)
        raise rterrors.NotFound(f"container {name_or_id} does not exist")

    def _put(self, c: Mapping[str, Any]) -> None:
        self.s["containers"][c["id"]] = dict(c)
        self._save()

    def _publishes(self, c: Mapping[str, Any]) -> bool:
        """Whether the container's ports are published now: it runs, on some network with a way
        out (as Docker: none for a container on internal networks only)."""
        nets = c["config"].get("networks") or ()
        known = self.s["networks"]
        return c["status"] == "running" and not (nets and all(known.get(n, {}).get("internal") for n in nets))

    def _state(self, c: Mapping[str, Any]) -> base.ContainerState:
        cfg = c["config"]
        hc = None if c.get("health") is None else self._healthcheck(c)
        nets = [n for n in cfg.get("networks") or () if n not in ("host", "none") and not n.startswith("container:")]
        return base.ContainerState(
            id=c["id"], name=cfg["name"], image=cfg["image"], image_id=c["image_id"],
            labels=dict(cfg["labels"]), status=base.ContainerStatus(c["status"]), created=c["created"],
            exit_code=c.get("exit_code"), started_at=c.get("started_at"), finished_at=c.get("finished_at"),
            pid=c.get("pid") if c["status"] == "running" else None, health=c.get("health"),
            restart_count=c.get("restart_count", 0), ip_addresses=dict(c.get("ip_addresses") or {}),
            ports=tuple(base.PortMapping(**p) for p in cfg["ports"]) if self._publishes(c) else (),
            manually_stopped=c.get("manually_stopped", False),
            first_probe=None if hc is None else base.first_probe(hc),
            networks=dict.fromkeys(nets, ""),
            aliases={n: tuple((c.get("network_aliases") or {}).get(n, cfg.get("aliases") or ())) for n in nets},
        )

    def list_containers(self, selector: Mapping[str, str] | None = None) -> list[base.ContainerState]:
        with self._lock:
            return [self._state(c) for c in self.s["containers"].values()
                    if base.labels_match(c["config"]["labels"], selector)]

    def create_container(self, config: base.ContainerConfig) -> str:
        self._op("create", config.name)
        with self._lock:
            if any(c["config"]["name"] == config.name for c in self.s["containers"].values()):
                raise rterrors.AlreadyExists(f"container name {config.name} is taken",
                                             hint="remove it first or choose another name")
            img = self._find_image(config.image_id or config.image)
            if img is None:
                raise rterrors.NotFound(f"image {config.image_id or config.image} is not present locally",
                                        hint="pull it first")
            missing = base.secret_env_missing(config)
            if missing:         # as the native engine: a record keeps no SOPS env value (nor does this one)
                raise rterrors.InvalidArgument(
                    f"env {', '.join(missing)} came from a SOPS-encrypted file and has no value: a container "
                    "config read back from a record never carries one", hint="apply the manifests: they give it again")
            for net in config.networks:
                if net.startswith("container:"):
                    self._get(net.removeprefix("container:"))      # the container whose namespace it joins
                elif net not in ("host", "none") and net not in self.s["networks"]:
                    raise rterrors.NotFound(f"network {net} does not exist")
            for m in config.mounts:
                if m.type == "volume" and m.source not in self.s["volumes"]:
                    self.s["volumes"][m.source] = {"name": m.source, "labels": {}, "created": _now()}
            cid = hashlib.sha256(f"{config.name}{time.time_ns()}".encode()).hexdigest()
            self._put({"id": cid, "config": base.config_to_json(config), "image_id": img["id"], "status": "created",
                       "created": _now(), "exit_code": None, "health": None, "restart_count": 0})
            return cid

    def start_container(self, name_or_id: str) -> None:
        self._op("start", name_or_id)
        with self._lock:
            c = self._get(name_or_id)
            if c["status"] == "running":
                return
            cfg = c["config"]
            for other in self.s["containers"].values():
                if other["id"] == c["id"] or other["status"] != "running":
                    continue
                taken = {(p["host_ip"], p["host_port"], p["protocol"]) for p in other["config"]["ports"]}
                for p in cfg["ports"]:
                    if p["host_port"] and (p["host_ip"], p["host_port"], p["protocol"]) in taken:
                        raise rterrors.PortInUse(
                            f"container {cfg['name']}: port {p['host_port']} is in use by "
                            f"{other['config']['name']}")
            argv = [*(cfg.get("command") or []), *(cfg.get("args") or [])]
            c.update(started_at=_now(), manually_stopped=False)
            if "false" in argv:
                self._exit(c, 1)
                return
            pid = self.s["next_pid"]
            self.s["next_pid"] = pid + 1
            c.update(status="running", exit_code=None, health="starting" if self._health_test(c) else None,
                     pid=pid, ip_addresses=self._addresses(cfg["name"], cfg["networks"]))
            self._put(c)

    def _healthcheck(self, c: Mapping[str, Any]) -> base.Healthcheck | None:
        """The container's healthcheck over its image's, as the engines merge them (None: none, or NONE)."""
        own = c["config"].get("healthcheck")
        img = self.s["images"].get(c["image_id"]) or {}
        return base.healthcheck_of(None if own is None else base.Healthcheck(**{**own, "test": tuple(own["test"])}),
                                   (img.get("config") or {}).get("Healthcheck"))

    def _health_test(self, c: Mapping[str, Any]) -> list[str]:
        """The test of the container's healthcheck ([]: none, or NONE)."""
        hc = self._healthcheck(c)
        return [] if hc is None else list(hc.test)

    def _addresses(self, container: str, networks: list[str]) -> dict[str, str]:
        """The next free address of each user-defined network (not the gateway, not a running
        container's), as the engines' IPAM hands them out at start."""
        out = {}
        for name in networks:
            net = self.s["networks"].get(name)
            if net is None:
                continue
            taken = {net["gateway"]} | {c["ip_addresses"][name] for c in self.s["containers"].values()
                                        if c["status"] == "running" and name in (c.get("ip_addresses") or {})}
            free = next((a for a in ipaddress.IPv4Network(net["subnet"]).hosts() if str(a) not in taken), None)
            if free is None:
                raise rterrors.Conflict(f"container {container}: network {name} has no free address left",
                                        hint="stop containers on it or give it a larger subnet")
            out[name] = str(free)
        return out

    def _exit(self, c: dict[str, Any], code: int, **changes: Any) -> None:
        """The container's process ended with `code`: no PID, no address; `unhealthy` where it
        has a healthcheck, as dockerd says of a stopped container."""
        c.update(status="exited", exit_code=code, finished_at=_now(),
                 health="unhealthy" if c.get("health") else None, pid=None, ip_addresses={}, **changes)
        self._put(c)

    def stop_container(self, name_or_id: str, *, timeout: float | None = None) -> None:
        self._op("stop", name_or_id)
        with self._lock:
            c = self._get(name_or_id)
            if c["status"] in ("running", "restarting"):
                self._exit(c, 137, manually_stopped=True)

    def kill_container(self, name_or_id: str, signal: str = "KILL") -> None:
        self._op("kill", name_or_id)
        with self._lock:
            c = self._get(name_or_id)
            if c["status"] != "running":
                raise rterrors.Conflict(f"container {name_or_id} is not running")
            self._exit(c, 137)

    def remove_container(self, name_or_id: str, *, force: bool = False) -> None:
        self._op("remove", name_or_id)
        with self._lock:
            c = self._get(name_or_id)
            if c["status"] == "running" and not force:
                raise rterrors.Conflict(f"container {name_or_id} is running", hint="stop it first")
            del self.s["containers"][c["id"]]
            self._save()

    connects = frozenset({"created", "running", "exited"})      # as dockerd's

    def connect_container(self, name_or_id: str, network: str, config: base.ContainerConfig, *,
                          again: bool = False) -> None:
        """base.Connecting: on `network` with `config`'s aliases there (an address too, running)."""
        self._op("connect", name_or_id)
        with self._lock:
            c = self._get(name_or_id)
            if network not in self.s["networks"]:
                raise rterrors.NotFound(f"network {network} does not exist")
            nets = list(c["config"]["networks"])
            if network in nets and not again:
                raise rterrors.Conflict(f"container {name_or_id} is already connected to network {network}")
            self._off(c, network)
            c["config"] = {**c["config"], "networks": [*(n for n in nets if n != network), network]}
            c["network_aliases"] = {**(c.get("network_aliases") or {}), network: list(config.aliases)}
            if c["status"] == "running":
                c["ip_addresses"] = {**(c.get("ip_addresses") or {}), **self._addresses(c["config"]["name"], [network])}
            self._put(c)

    def disconnect_container(self, name_or_id: str, network: str) -> None:
        """`docker network disconnect` (for tests: a container off one of its networks)."""
        self._op("disconnect", name_or_id)
        with self._lock:
            c = self._get(name_or_id)
            if network not in c["config"]["networks"]:
                raise rterrors.NotFound(f"container {name_or_id} is not connected to network {network}")
            self._off(c, network)
            c["config"] = {**c["config"], "networks": [n for n in c["config"]["networks"] if n != network]}
            self._put(c)

    @staticmethod
    def _off(c: dict[str, Any], network: str) -> None:
        """Forget the container's address and aliases on `network` (a connect gives it its own there)."""
        c["ip_addresses"] = {n: a for n, a in (c.get("ip_addresses") or {}).items() if n != network}
        c["network_aliases"] = {n: a for n, a in (c.get("network_aliases") or {}).items() if n != network}

    def rename_container(self, name_or_id: str, new_name: str) -> None:
        self._op("rename", name_or_id)
        with self._lock:
            c = self._get(name_or_id)
            if any(o["config"]["name"] == new_name for o in self.s["containers"].values()):
                raise rterrors.AlreadyExists(f"container name {new_name} is taken")
            c["config"] = {**c["config"], "name": new_name}
            self._put(c)

    def inspect_container(self, name_or_id: str) -> base.ContainerState:
        with self._lock:
            c = self._get(name_or_id)
            if c.get("health") == "starting":
                test = self._health_test(c)
                if any("sleep" in t for t in test):
                    return self._state(c)           # never becomes healthy: a health timeout
                c["health"] = "unhealthy" if any("false" in t for t in test) else "healthy"
                self._put(c)
                return self._state({**c, "health": "starting"})
            return self._state(c)

    def wait_container(self, name_or_id: str, *, timeout: float | None = None) -> int:
        with self._lock:
            c = self._get(name_or_id)
        if c["status"] == "running":
            raise rterrors.Unavailable(f"container {name_or_id} is still running (a fake never exits)")
        return int(c.get("exit_code") or 0)

    def logs(
        self, name_or_id: str, *, follow: bool = False, since: str | None = None, tail: int | None = None,
    ) -> Iterator[base.LogLine]:
        with self._lock:
            self._get(name_or_id)
        return iter(())

    def exec(
        self, name_or_id: str, argv: list[str], *, tty: bool = False, user: str | None = None,
        workdir: str | None = None, env: Sequence[str] = (),
    ) -> base.ExecResult:
        with self._lock:
            c = self._get(name_or_id)
        if c["status"] != "running":
            raise rterrors.Conflict(f"container {name_or_id} is not running")
        return base.ExecResult(exit_code=1 if "false" in argv else 0, stdout=b"", stderr=b"")

    # --- networks and volumes

    def _network_state(self, n: Mapping[str, Any]) -> base.NetworkState:
        return base.NetworkState(id=n["id"], name=n["name"], subnet=n["subnet"], gateway=n["gateway"],
                                 internal=n["internal"], labels=dict(n["labels"]))

    def list_networks(self, selector: Mapping[str, str] | None = None) -> list[base.NetworkState]:
        with self._lock:
            return [self._network_state(n) for n in self.s["networks"].values() if base.labels_match(n["labels"], selector)]

    def ensure_network(self, config: base.NetworkConfig) -> base.NetworkState:
        self._op("ensure_network", config.name)
        with self._lock:
            n = self.s["networks"].get(config.name)
            if n is None:
                subnet = self._subnet(config)
                n = {"id": hashlib.sha256(config.name.encode()).hexdigest()[:12], "name": config.name,
                     "subnet": str(subnet), "gateway": config.gateway or str(subnet.network_address + 1),
                     "internal": config.internal, "labels": dict(config.labels)}
            else:
                _check_same_network(n, config)
                n["labels"] = dict(config.labels)        # labels follow the config, as native's do
            self.s["networks"][config.name] = n
            self._save()
            return self._network_state(n)

    def _subnet(self, config: base.NetworkConfig) -> ipaddress.IPv4Network:
        """The configured subnet (Conflict if another network overlaps it), or the first /24 of
        SUBNETS that none overlaps."""
        taken = [ipaddress.IPv4Network(n["subnet"]) for n in self.s["networks"].values()]
        if config.subnet:
            net = ipaddress.IPv4Network(config.subnet, strict=False)
            clash = next((t for t in taken if t.overlaps(net)), None)
            if clash is not None:
                raise rterrors.Conflict(f"subnet {net} of network {config.name!r} overlaps {clash} of another network",
                                        hint="choose a subnet no other network uses, or omit it to get one from the pool")
            return net
        free = next((s for s in SUBNETS.subnets(new_prefix=24) if not any(s.overlaps(t) for t in taken)), None)
        if free is None:
            raise rterrors.Conflict(f"network {config.name}: every /24 of {SUBNETS} is taken",
                                    hint="remove networks that are no longer needed")
        return free

    def remove_network(self, name: str) -> None:
        self._op("remove_network", name)
        with self._lock:
            if name not in self.s["networks"]:
                raise rterrors.NotFound(f"network {name} does not exist")
            users = [c["config"]["name"] for c in self.s["containers"].values() if name in c["config"]["networks"]]
            if users:
                raise rterrors.Conflict(f"network {name} is in use by {', '.join(sorted(users))}")
            del self.s["networks"][name]
            self._save()

    def list_volumes(self, selector: Mapping[str, str] | None = None) -> list[base.VolumeState]:
        with self._lock:
            return [base.VolumeState(name=v["name"], mountpoint=f"/fake/volumes/{v['name']}",
                                     labels=dict(v["labels"]), created=v["created"])
                    for v in self.s["volumes"].values() if base.labels_match(v["labels"], selector)]

    def ensure_volume(self, config: base.VolumeConfig) -> base.VolumeState:
        self._op("ensure_volume", config.name)
        with self._lock:
            v = self.s["volumes"].setdefault(
                config.name, {"name": config.name, "labels": dict(config.labels), "created": _now()})
            self._save()
            return base.VolumeState(name=v["name"], mountpoint=f"/fake/volumes/{v['name']}",
                                    labels=dict(v["labels"]), created=v["created"])

    def remove_volume(self, name: str) -> None:
        self._op("remove_volume", name)
        with self._lock:
            if name not in self.s["volumes"]:
                raise rterrors.NotFound(f"volume {name} does not exist")
            users = [c["config"]["name"] for c in self.s["containers"].values()
                     if any(m["type"] == "volume" and m["source"] == name for m in c["config"]["mounts"])]
            if users:
                raise rterrors.Conflict(f"volume {name} is in use by {', '.join(sorted(users))}")
            del self.s["volumes"][name]
            self._save()

    def close(self) -> None:
        with self._lock:
            self._save()

    # --- test helpers (not part of the protocol)

    def config_of(self, name_or_id: str) -> base.ContainerConfig:
        """The config a container was created with."""
        with self._lock:
            return base.config_from_json(self._get(name_or_id)["config"])


def _check_same_network(found: Mapping[str, Any], config: base.NetworkConfig) -> None:
    """An existing network must agree with `config` on subnet, gateway and internal (as the
    engines require); otherwise it is a Conflict."""
    diffs = []
    if config.subnet and ipaddress.IPv4Network(config.subnet, strict=False) != ipaddress.IPv4Network(found["subnet"]):
        diffs.append(f"subnet {found['subnet']} (want {config.subnet})")
    if config.gateway and config.gateway != found["gateway"]:
        diffs.append(f"gateway {found['gateway']} (want {config.gateway})")
    if config.internal != found["internal"]:
        diffs.append(f"internal={found['internal']} (want {config.internal})")
    if diffs:
        raise rterrors.Conflict(f"network {config.name} exists with a different configuration: {'; '.join(diffs)}",
                                hint="remove it so that it can be re-created")


def _conforms(runtime: FakeRuntime) -> tuple[base.Runtime, base.Renaming, base.Connecting]:
    """mypy checks here that the fake implements the whole protocol, renaming and connecting."""
    return runtime, runtime, runtime
