"""Literal builders for golden plan tests: desired models, observed objects, inventory entries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from reconciler.spec import models
from reconciler.state import inventory as inv
from reconciler.state import labels
from reconciler.state import observed as obs

ORIGIN = models.Origin("m.yaml", 1, 1)
OWNER = "default"
REV = "rev-2"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
REF = "registry.local:5000/shop/web:1.4"


def container(name: str, *, spec_hash: str | None = None, **kw: Any) -> models.Container:
    base = models.Container(
        name=name, labels={}, origin=ORIGIN, image=REF, image_object=None, command=None,
        args=None, env={}, env_files=(), ports=(), networks=(), aliases=(), volumes=(),
        restart=models.RestartPolicy("no", 0), healthcheck=None,
        resources=models.Resources(None, None, None), depends_on=(),
        update=models.UpdatePolicy("stop-first", 60.0, 0.0, "rollback"), drift="correct",
        user=None, workdir=None, hostname=None, read_only=False, cap_add=(), cap_drop=(),
        stop_signal=None, stop_timeout=10.0, init=False, spec_hash=spec_hash or f"h-{name}",
    )
    return replace(base, **kw)


def network(name: str, *, spec_hash: str | None = None, **kw: Any) -> models.Network:
    return replace(models.Network(name=name, labels={}, origin=ORIGIN, subnet=None, gateway=None,
                                  internal=False, mtu=1500, spec_hash=spec_hash or f"h-{name}"), **kw)


def volume(name: str, *, policy: str = "Retain", spec_hash: str | None = None) -> models.Volume:
    return models.Volume(name=name, labels={}, origin=ORIGIN, deletion_policy=policy,  # type: ignore[arg-type]
                         spec_hash=spec_hash or f"h-{name}")


def image(name: str, ref: str, *, pull: str = "missing", track: bool = False) -> models.Image:
    return models.Image(name=name, labels={}, origin=ORIGIN, ref=ref, pull=pull,  # type: ignore[arg-type]
                        track=track, build=None, push=(), spec_hash=f"h-{name}")


def desired(*objs: Any, revision: str = REV) -> models.DesiredState:
    return models.DesiredState(
        containers={o.name: o for o in objs if isinstance(o, models.Container)},
        images={o.name: o for o in objs if isinstance(o, models.Image)},
        networks={o.name: o for o in objs if isinstance(o, models.Network)},
        volumes={o.name: o for o in objs if isinstance(o, models.Volume)},
        revision=revision,
        sources=("m.yaml",),
    )


def own(kind: str, name: str, spec_hash: str, digest: str = "", owner: str = OWNER) -> labels.Ownership:
    return labels.Ownership(owner=owner, kind=kind, name=name, spec_hash=spec_hash,
                            image_digest=digest, revision="rev-1")


def running(c: models.Container, *, status: str = "running", spec_hash: str | None = None,
            digest: str = D1, **kw: Any) -> obs.ObservedContainer:
    return obs.ObservedContainer(
        id=f"id-{c.name}", name=c.name, status=status,
        owner=own("Container", c.name, spec_hash or c.spec_hash, digest), image_id="sha256:cfg1", **kw)


def foreign(name: str) -> obs.ObservedContainer:
    return obs.ObservedContainer(id=f"id-{name}", name=name, status="running", owner=None)


def observed(
    *items: Any, images: Mapping[str, str] | None = None, resolved: Mapping[str, str] | None = None,
    image_ids: Mapping[str, str] | None = None,
) -> obs.ObservedState:
    return obs.ObservedState(
        containers={i.name: i for i in items if isinstance(i, obs.ObservedContainer)},
        networks={i.name: i for i in items if isinstance(i, obs.ObservedNetwork)},
        volumes={i.name: i for i in items if isinstance(i, obs.ObservedVolume)},
        images={obs.normalize_ref(k): v for k, v in (images if images is not None else {REF: D1}).items()},
        resolved={obs.normalize_ref(k): v for k, v in (resolved or {}).items()},
        image_ids={obs.normalize_ref(k): v for k, v in (image_ids or {}).items()},
    )


def onet(n: models.Network, spec_hash: str | None = None) -> obs.ObservedNetwork:
    return obs.ObservedNetwork(name=n.name, owner=own("Network", n.name, spec_hash or n.spec_hash))


def ovol(name: str, owned: bool = True, *, lost: bool = False) -> obs.ObservedVolume:
    """An observed volume (`lost`: its data gone, as the native engine reports it)."""
    return obs.ObservedVolume(name=name, owner=own("Volume", name, f"h-{name}") if owned else None,
                              problem="data directory gone (deleted outside the engine)" if lost else None,
                              hint=f"remove the volume (`reconcile volume rm {name}`), then restore it" if lost else None)


def entry(obj: Any, **kw: Any) -> inv.Entry:
    kind = type(obj).__name__
    return inv.Entry(kind=kind, name=obj.name, spec_hash=obj.spec_hash, revision="rev-1",
                     spec=inv.spec_document(obj), **kw)
