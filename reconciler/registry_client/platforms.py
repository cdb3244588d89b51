"""Platform normalisation and choice from an index (after containerd/platforms).

Architectures are normalised (x86_64 → amd64, aarch64 → arm64, armhf → arm/v7, ...). For a
wanted platform the acceptable ones are ranked (arm64 accepts arm/v8..v5 after arm64; amd64
accepts 386; arm/v7 accepts v6, v5). Attestation manifests and `unknown/unknown` entries are
skipped.
"""

from __future__ import annotations

import platform as _platform

from reconciler._dataclass import dataclass
from reconciler.registry_client import errors, models

__all__ = ["Platform", "candidates", "host", "normalize", "select"]

_ARCH_ALIASES = {
    "x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"), "armel": ("arm", "v6"), "arm": ("arm", ""),
    "i386": ("386", ""), "i686": ("386", ""), "386": ("386", ""),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
}


@dataclass(frozen=True)
class Platform:
    """An image's platform: os, architecture and variant."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return f"{s}/{self.variant}" if self.variant else s


def normalize(os: str, arch: str, variant: str = "") -> Platform:
    os = os.lower()
    arch = arch.lower()
    variant = (variant or "").lower()
    arch, default_variant = _ARCH_ALIASES.get(arch, (arch, ""))
    variant = variant or default_variant
    if arch == "arm64" and variant in ("v8", "8"):
        variant = ""
    if arch == "arm" and not variant:
        variant = "v7"
    if arch == "arm" and variant in ("5", "6", "7", "8"):
        variant = "v" + variant
    if arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(os, arch, variant)


def host() -> Platform:
    return normalize("linux", _platform.machine())


def candidates(want: Platform) -> list[Platform]:
    """Acceptable platforms for `want`, best first."""
    p = normalize(want.os, want.architecture, want.variant)
    out = [p]
    if p.architecture == "amd64":
        if p.variant.startswith("v") and p.variant[1:].isdigit():
            out += [Platform(p.os, "amd64", f"v{n}" if n > 1 else "") for n in range(int(p.variant[1:]) - 1, 0, -1)]
        out.append(Platform(p.os, "386"))
    elif p.architecture == "arm64":
        out += [Platform(p.os, "arm", f"v{n}") for n in (8, 7, 6, 5)]
    elif p.architecture == "arm" and p.variant[1:].isdigit():
        out += [Platform(p.os, "arm", f"v{n}") for n in range(int(p.variant[1:]) - 1, 4, -1)]
    return out


def _is_pseudo(d: models.Descriptor) -> bool:
    if d.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return True
    plat = d.platform or {}
    return plat.get("os") == "unknown" and plat.get("architecture") == "unknown"


def select(index: models.Manifest, want: Platform) -> models.Descriptor:
    """The best manifest descriptor of `index` for `want`; PlatformNotFound lists what exists.

    A nested index without a platform is returned only when nothing matches directly; the
    caller (client.pull_plan) then searches it, with a depth limit."""
    ranked = candidates(want)
    best: tuple[int, models.Descriptor] | None = None
    seen: list[str] = []
    for d in index.manifests:
        if _is_pseudo(d):
            continue
        if not d.platform and d.media_type in models.INDEX_TYPES:
            # A nested index without a platform of its own: a fallback, searched by the caller.
            if best is None:
                best = (len(ranked), d)
            continue
        plat = d.platform or {}
        got = normalize(str(plat.get("os", "")), str(plat.get("architecture", "")), str(plat.get("variant", "")))
        seen.append(str(got))
        if got in ranked:
            rank = ranked.index(got)
            if best is None or rank < best[0]:
                best = (rank, d)
    if best is None:
        raise errors.PlatformNotFound(
            f"no manifest for platform {normalize(want.os, want.architecture, want.variant)} "
            f"in index {index.descriptor.digest}; available: {', '.join(seen) or 'none'}",
            hint="pick a platform the image provides, or an image built for this host",
        )
    return best[1]
