"""`image: {track, policy, mode}` in a Container: what loads, what is refused (file:line:column:
field), which tag a policy picks from a tag list, and that the tag is not in the spec hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import spec
from reconciler.cli.main import main
from reconciler.spec import policy as policy_mod
from reconciler.spec import tagpolicy


def doc(image: str, name: str = "web") -> str:
    return f"apiVersion: reconciler/v1\nkind: Container\nmetadata:\n  name: {name}\nspec:\n  image:\n{image}"


GOOD = ('    track: reg.local:5000/shop/web:1.4.1 # {"$imagepolicy": "web"}\n'
        '    policy: {semver: ">=1.4 <2"}\n')

BAD: dict[str, tuple[str, str]] = {
    "semver_typo": ('    track: reg.local:5000/shop/web:1.4.1\n    policy: {semver: ">=1.4 <<2"}\n',
                    "m.yaml:8:22: Container/web: spec.image.policy.semver: '>=1.4 <<2' is not a valid semver "
                    "range (write it like '>=1.4 <2', '^1.4', '~1.4.2' or '1.x || >=3')"),
    "regex": ('    track: reg.local:5000/shop/web:main-1\n    policy:\n      pattern: "^main-(?P<ts>[0-9]+$"\n',
              "m.yaml:9:16: Container/web: spec.image.policy.pattern: '^main-(?P<ts>[0-9]+$' is not a valid "
              "regular expression: missing ), unterminated subpattern at position 6"),
    "both": ('    track: reg.local:5000/shop/web:1\n    policy: {semver: "1.x", pattern: "a"}\n',
             "m.yaml:8:13: Container/web: spec.image.policy: set exactly one of semver (a version range) or "
             "pattern (a regular expression)"),
    "numeric_without_group": ('    track: reg.local:5000/shop/web:1\n    policy: {pattern: "^[0-9]+$", order: numeric}\n',
                              "m.yaml:8:42: Container/web: spec.image.policy.order: numeric order needs a named "
                              "group to read the number from, like '^main-(?P<ts>[0-9]+)$'"),
    "order_with_semver": ('    track: reg.local:5000/shop/web:1\n    policy: {semver: "1.x", order: numeric}\n',
                          "m.yaml:8:36: Container/web: spec.image.policy.order: order applies to pattern, not "
                          "to semver (versions have their own order)"),
    "no_tag": ('    track: reg.local:5000/shop/web\n    policy: {semver: "1.x"}\n',
               "m.yaml:7:12: Container/web: spec.image.track: 'reg.local:5000/shop/web' is not an image "
               "reference with a tag (like registry:5000/repo/name:1.4.1): the policy moves the tag, so it "
               "names one and no digest"),
    "mode": ('    track: reg.local:5000/shop/web:1\n    policy: {semver: "1.x"}\n    mode: auto\n',
             "m.yaml:9:11: Container/web: spec.image.mode: 'auto' is not one of apply, notify"),
    "unknown_field": ('    track: reg.local:5000/shop/web:1\n    policy: {semver: "1.x", semvar: "2.x"}\n',
                      "m.yaml:8:29: Container/web: spec.image.policy.semvar: unknown field 'semvar' (did you "
                      "mean 'semver'?)"),
    "no_policy": ("    track: reg.local:5000/shop/web:1\n",
                  "m.yaml:6:3: Container/web: spec.image.policy: required field is missing"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_policy_is_a_validation_error_naming_file_line_and_field(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body, expected = BAD[name]
    (tmp_path / "m.yaml").write_text(doc(body))
    assert main(["validate", str(tmp_path)]) == 2
    out = capsys.readouterr().out.replace(f"{tmp_path}/", "")
    assert out.splitlines() == [expected]


def test_a_policy_loads_into_the_model_with_the_place_of_its_track_line(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(doc(GOOD + "    mode: notify\n"))
    c = spec.load(tmp_path).containers["web"]
    assert c.image == "reg.local:5000/shop/web:1.4.1"
    assert c.image_object is None
    u = c.image_update
    assert u is not None
    assert (u.repository, u.tag, u.mode) == ("reg.local:5000/shop/web", "1.4.1", "notify")
    assert u.policy == tagpolicy.Policy(semver=">=1.4 <2")
    assert (u.at.file, u.at.line, u.at.column) == (str(tmp_path / "m.yaml"), 7, 12)


def test_the_tag_is_not_in_the_spec_hash_but_the_repository_is(tmp_path: Path) -> None:
    def spec_hash(image: str) -> str:
        (tmp_path / "m.yaml").write_text(doc(image))
        return spec.load(tmp_path).containers["web"].spec_hash

    first = spec_hash(GOOD)
    assert spec_hash(GOOD.replace(":1.4.1", ":1.9.0")) == first      # a write-back recreates nothing
    assert spec_hash(GOOD.replace("shop/web", "shop/api")) != first
    plain = "  image: reg.local:5000/shop/web:1.4.1\n"
    (tmp_path / "m.yaml").write_text(doc("").removesuffix("  image:\n") + plain)
    assert spec.load(tmp_path).containers["web"].spec_hash != first


def test_a_restricted_policy_checks_the_tracked_registry(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(doc(GOOD))
    pol = tmp_path / "policy.yaml"
    pol.write_text("registries: [registry.example]\n")
    with pytest.raises(spec.SpecError) as info:
        spec.load(tmp_path / "m.yaml", policy=policy_mod.load_policy(str(pol)))
    [problem] = info.value.problems
    assert (problem.line, problem.field) == (7, "spec.image.track")
    assert "reg.local:5000" in problem.message


TAGS = ["1.2.0", "1.4.1", "1.9.0", "2.0.0", "latest", "1.9.1-rc.1", "v1.5.0", "main-9", "main-10", "main-x"]


@pytest.mark.parametrize(("policy", "expected"), [
    (tagpolicy.Policy(semver=">=1.4 <2"), "1.9.0"),              # no pre-release, nothing of 2.x
    (tagpolicy.Policy(semver="^1.4"), "1.9.0"),
    (tagpolicy.Policy(semver="~1.4"), "1.4.1"),
    (tagpolicy.Policy(semver="1.5.x"), "v1.5.0"),                 # a leading v is a version too
    (tagpolicy.Policy(semver=">=1.9.1-rc.0 <2"), "1.9.1-rc.1"),  # a range naming a pre-release
    (tagpolicy.Policy(semver=">=3"), None),
    (tagpolicy.Policy(pattern=r"^main-(?P<ts>[0-9]+)$", order="numeric"), "main-10"),
    (tagpolicy.Policy(pattern=r"^main-(?P<ts>[0-9]+)$"), "main-9"),     # alphabetical: "9" > "10"
    (tagpolicy.Policy(pattern=r"main-(?P<ts>.+)", order="numeric"), "main-10"),   # main-x is no number
    (tagpolicy.Policy(pattern=r"ain-1"), None),                   # the whole tag must match
])
def test_the_newest_allowed_tag_is_chosen(policy: tagpolicy.Policy, expected: str | None) -> None:
    assert tagpolicy.problem(policy) is None
    assert tagpolicy.choose(TAGS, policy) == expected
