"""Platform normalisation and choice from an index (pure)."""

from __future__ import annotations

import json

import pytest

from reconciler.registry_client import errors, models, platforms


def index(*entries: tuple[str, str, str] | dict[str, object]) -> models.Manifest:
    ms = []
    for i, e in enumerate(entries):
        d = {"mediaType": models.OCI_MANIFEST, "digest": "sha256:" + f"{i:x}" * 64, "size": 10}
        if isinstance(e, tuple):
            os_, arch, variant = e
            d["platform"] = {"os": os_, "architecture": arch, **({"variant": variant} if variant else {})}
        else:
            d.update(e)
        ms.append(d)
    return models.Manifest.from_bytes(json.dumps({"schemaVersion": 2, "mediaType": models.OCI_INDEX,
                                                  "manifests": ms}).encode())


@pytest.mark.parametrize(("arch", "variant", "want"), [
    ("x86_64", "", ("amd64", "")), ("aarch64", "", ("arm64", "")), ("arm64", "v8", ("arm64", "")),
    ("armhf", "", ("arm", "v7")), ("armel", "", ("arm", "v6")), ("arm", "", ("arm", "v7")),
    ("i386", "", ("386", "")), ("arm", "7", ("arm", "v7")),
])
def test_normalize(arch: str, variant: str, want: tuple[str, str]) -> None:
    p = platforms.normalize("Linux", arch, variant)
    assert (p.os, p.architecture, p.variant) == ("linux", *want)


def test_select_prefers_exact_then_compatible_and_skips_pseudo_images() -> None:
    idx = index(
        {"platform": {"os": "unknown", "architecture": "unknown"}},
        {"platform": {"os": "linux", "architecture": "amd64"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        ("linux", "386", ""), ("linux", "arm", "v6"), ("linux", "arm", "v7"), ("linux", "amd64", ""),
    )
    ms = idx.manifests
    assert platforms.select(idx, platforms.Platform("linux", "amd64")) == ms[5]
    assert platforms.select(idx, platforms.Platform("linux", "arm64")) == ms[4]  # arm/v7 before v6
    assert platforms.select(idx, platforms.Platform("linux", "arm", "v6")) == ms[3]
    only_386 = index(("linux", "386", ""))
    assert platforms.select(only_386, platforms.Platform("linux", "x86_64")) == only_386.manifests[0]


def test_no_match_lists_what_exists() -> None:
    idx = index({"platform": {"os": "unknown", "architecture": "unknown"}}, ("linux", "s390x", ""), ("windows", "amd64", ""))
    with pytest.raises(errors.PlatformNotFound) as ei:
        platforms.select(idx, platforms.Platform("linux", "amd64"))
    assert "linux/s390x" in str(ei.value)
    assert "windows/amd64" in str(ei.value)
    assert "unknown" not in str(ei.value).split("available:")[1]


def test_descriptors_with_bad_digests_are_refused() -> None:
    with pytest.raises(errors.InvalidDigest):
        index({"digest": "sha256:../../../etc/passwd"}).manifests  # noqa: B018
