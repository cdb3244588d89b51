"""Reference parsing/normalisation as Docker does it, and digest validation."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from reconciler.registry_client import digests, errors, references, refnames
from reconciler.runtime.native.images import digestpaths

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("raw", "canonical", "api_host"),
    [
        ("ubuntu", "docker.io/library/ubuntu:latest", "registry-1.docker.io"),
        ("library/ubuntu", "docker.io/library/ubuntu:latest", "registry-1.docker.io"),
        ("docker.io/ubuntu", "docker.io/library/ubuntu:latest", "registry-1.docker.io"),
        ("index.docker.io/ubuntu:22.04", "docker.io/library/ubuntu:22.04", "registry-1.docker.io"),
        ("user/app:v1", "docker.io/user/app:v1", "registry-1.docker.io"),
        ("localhost:5000/x", "localhost:5000/x:latest", "localhost:5000"),
        ("localhost/x", "localhost/x:latest", "localhost"),
        ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000"),
        ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000"),
        ("ghcr.io/o/r", "ghcr.io/o/r:latest", "ghcr.io"),
        (f"x@{D}", f"docker.io/library/x@{D}", "registry-1.docker.io"),
        (f"x:tag@{D}", f"docker.io/library/x:tag@{D}", "registry-1.docker.io"),
        ("a.b-c_d__e---f", "docker.io/library/a.b-c_d__e---f:latest", "registry-1.docker.io"),
    ],
)
def test_parse_normalises_like_docker(raw: str, canonical: str, api_host: str) -> None:
    ref = references.parse(raw)
    assert str(ref) == canonical
    assert ref.api_host == api_host
    assert references.parse(str(ref)) == ref


def test_digest_wins_over_tag() -> None:
    ref = references.parse(f"x:tag@{D}")
    assert ref.tag == "tag"
    assert ref.digest == D
    assert ref.reference == D
    assert references.parse("x").reference == "latest"
    assert references.parse(f"x@{D}").tag is None


@pytest.mark.parametrize(
    "raw",
    ["", "Ubuntu", "docker.io/Library/x", "x:", "x:-bad", "x:" + "t" * 129, "x@sha256:abc",
     "x@md5:" + "a" * 32, f"x@sha256:{'A' * 64}", "a//b", "/a", "a/", "x y", "-a", "a-",
     "docker.io/" + "a" * 64, "host:port:x/y", "a" * 256],
)
def test_invalid_references_raise(raw: str) -> None:
    with pytest.raises(errors.InvalidReference):
        references.parse(raw)


@pytest.mark.parametrize(
    "bad",
    ["sha256:../../x", "md5:" + "a" * 32, "sha256:" + "A" * 64, "sha256:" + "a" * 63,
     "sha512:" + "a" * 64, "sha256:" + "a" * 64 + "\n", None, 5, "sha256:" + "g" * 64],
)
def test_digest_validation_rejects(bad: object) -> None:
    with pytest.raises(errors.InvalidDigest):
        digests.validate(bad)


def test_digest_validation_accepts() -> None:
    assert digests.validate(D) == D
    s512 = "sha512:" + "0" * 128
    assert digests.validate(s512) == s512
    assert digests.compute(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(("given", "shown"), [
    ("nginx", "nginx:latest"), ("docker.io/library/nginx:1.25", "nginx:1.25"), ("me/app:1", "me/app:1"),
    ("localhost:5000/x:1", "localhost:5000/x:1"), ("ghcr.io/library/x:2", "ghcr.io/library/x:2"),
    (f"busybox@sha256:{'a' * 64}", f"busybox@sha256:{'a' * 64}"),
])
def test_familiar_names_are_what_docker_shows(given: str, shown: str) -> None:
    assert references.parse(given).familiar == shown


# normalize.go's expressions, as the reference rules were written before they were checked with
# sets of characters (refnames.py: no `re` on a re-pull's path, #21)
_C = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
EXPRESSIONS = {
    "is_domain": re.compile(rf"^(?:{_C}(?:\.{_C})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"),
    "is_path_component": re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$"),
    "is_tag": re.compile(r"^[\w][\w.-]{0,127}$"),
}


def _samples() -> list[str]:
    """Every string of up to 5 of the characters the rules tell apart, and random longer ones
    (unicode letters and digits, lengths around the tag's 128)."""
    short = ["".join(p) for n in range(6) for p in itertools.product("a1Z.-_:[]", repeat=n)]
    rng = random.Random(21)
    alphabet = "ab09AF.-_:[]/ é٣²\n@"
    rand = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 140))) for _ in range(20000)]
    edges = ["a" * 128, "a" * 129, "_" + "." * 127, "[::1]:5000", "[::1]", "[]:1", "[::1]:", "[::1]x", "a.b:",
             "a..b", "-a.b", "a-.b", "a_b", "a__b", "a___b", "a.-b", "a--b", "é", "٣x", "x\n", "[AbC:0]:0"]
    return short + rand + edges


@pytest.mark.parametrize("rule", sorted(EXPRESSIONS))
def test_each_reference_rule_is_its_expression(rule: str) -> None:
    check, expression = getattr(refnames, rule), EXPRESSIONS[rule]
    differ = [s for s in _samples() if check(s) != bool(expression.fullmatch(s))]
    assert differ == []


def test_a_stored_digest_is_sha256_hex_and_nothing_more() -> None:
    expression = re.compile(r"sha256:[a-f0-9]{64}")
    samples = [D, D[:-1], D + "a", D.upper(), "sha512:" + "a" * 64, "sha256:" + "g" * 64, "sha256:../" + "a" * 61,
               *(D[:i] + c + D[i + 1:] for i in range(0, 71, 7) for c in "A/:\n")]
    assert [s for s in samples if digestpaths.is_digest(s) != bool(expression.fullmatch(s))] == []
    assert not digestpaths.is_digest(D + "\n")        # re.match("^...$") took this one
