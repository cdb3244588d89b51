"""Docker's filter semantics (api/dockerfilters.py) on plain values: what dockerd 20.10 accepts,
how values match, the container list's order, limit, before and since, the images' references,
`until` times. The same rules, live and beside dockerd: tests/api/test_engine_api_filters.py."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from reconciler.api import dockerfilters as df
from reconciler.runtime import errors

S = 1_000_000_000


def view(name: str, created: int, *, state: str = "running", exit_code: int | None = None, started: bool = True,
         health: str = "none", labels: Mapping[str, str] | None = None, image: str = "sha256:i",
         mounts: tuple[tuple[str, str], ...] = (), ports: tuple[tuple[int, int, str], ...] = ()) -> df.ContainerView:
    return df.ContainerView(id=f"{name}{'0' * 10}", name=name, state=state, created_ns=created * S,
                            labels=labels or {}, image_id=image, exit_code=exit_code, started=started, health=health,
                            networks={"net": "abcdef"}, mounts=mounts, ports=ports)


VIEWS = [view("a", 1), view("b", 2, state="exited", exit_code=3), view("c", 3, state="created", started=False),
         view("d", 4, health="unhealthy", labels={"x": "1"}, mounts=(("data", "/data"),), ports=((80, 8080, "tcp"),)),
         view("e", 5, state="exited", exit_code=0, image="sha256:j")]


def names(fl: Mapping[str, list[str]], *, all_: bool = True, limit: int = 0) -> list[str]:
    return [c.name for c in df.containers(VIEWS, fl, all_=all_, limit=limit,
                                          ancestors=lambda v: {"sha256:j"} if v == "child" else set())]


def test_the_container_list_is_newest_first_and_filters_as_dockerd() -> None:
    assert names({}) == ["e", "d", "c", "b", "a"]
    assert names({}, all_=False) == ["d", "a"]
    assert names({}, all_=False, limit=2) == ["e", "d"]                 # a limit lists stopped ones too
    assert names({"status": ["exited"]}, all_=False) == ["e", "b"]      # a status filter lists all
    assert names({"exited": ["3"]}) == ["b"]
    assert names({"exited": ["0"]}) == ["e"]                            # not c: it never started
    assert names({"health": ["unhealthy"]}) == ["d"]
    assert names({"health": ["none"]}) == ["e", "c", "b", "a"]
    assert names({"volume": ["data"]}) == names({"volume": ["/data"]}) == ["d"]
    assert names({"publish": ["8080"]}) == names({"expose": ["79-81/tcp"]}) == ["d"]
    assert names({"publish": ["8080/udp"]}) == []
    assert names({"label": ["x"]}) == names({"label": ["x=1"]}) == ["d"]
    assert names({"label": ["x=2"]}) == []
    assert names({"name": ["^[ab]$"]}) == ["b", "a"]
    assert names({"id": ["d0"]}) == ["d"]
    assert names({"ancestor": ["child"]}) == ["e"]
    assert names({"ancestor": ["nothing"]}) == []
    assert names({"network": ["net"]}) == names({"network": ["abc"]}) == names({})
    assert names({"is-task": ["true"]}) == []
    assert names({"is-task": ["false"]}) == names({"isolation": ["default"]}) == names({})
    assert names({"since": ["b"]}) == ["e", "d", "c"]
    assert names({"before": ["d"]}) == ["c", "b", "a"]
    assert names({"before": ["d"]}, limit=1) == ["c"]


@pytest.mark.parametrize(("fl", "words"), [
    ({"bogus": ["1"]}, "Invalid filter 'bogus'"),
    ({"status": ["sleepy"]}, "Invalid filter 'status=sleepy'"),
    ({"health": ["sick"]}, "Unrecognised filter value for health: sick"),
    ({"is-task": ["maybe"]}, "Invalid filter 'is-task=[maybe]'"),
    ({"exited": ["x"]}, 'parsing "x": invalid syntax'),
    ({"publish": ["127.0.0.1:80"]}, "should not contain ':'"),
    ({"expose": ["90-80"]}, "invalid port range"),
])
def test_a_container_filter_dockerd_refuses_is_refused(fl: Mapping[str, list[str]], words: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=words.replace("[", r"\[").replace("]", r"\]")):
        names(fl)


def test_before_and_since_name_a_container() -> None:
    with pytest.raises(errors.NotFound, match="no such container nobody"):
        names({"before": ["nobody"]})


def test_labels_and_label_not_as_dockerd_prunes_read_them() -> None:
    labels = {"a": "1", "b": "2"}
    assert df.labels_match({"label": ["a", "b=2"]}, labels)
    assert not df.labels_match({"label": ["a", "c"]}, labels)
    assert not df.labels_match({"label": ["a"]}, {})
    assert not df.labels_match({"label!": ["a=1"]}, labels)
    assert df.labels_match({"label!": ["a=1", "c"]}, labels)              # not every label! holds
    assert not df.labels_match({"label!": ["a", "b"]}, labels)


def test_the_volume_list() -> None:
    class V:
        def __init__(self, name: str, labels: Mapping[str, str]) -> None:
            self.name, self.labels = name, labels

    vols = [V("a", {"proj": "x"}), V("b", {"proj": "y"}), V("c", {})]

    def ls(fl: Mapping[str, list[str]]) -> list[str]:
        return [v.name for v in df.volumes(vols, fl, used={"c"})]

    assert ls({"label": ["proj=x"]}) == ["a"]
    assert ls({"label": ["proj"]}) == ["a", "b"]
    assert ls({"name": ["b"]}) == ["b"]
    assert ls({"dangling": ["true"]}) == ls({"dangling": ["1"]}) == ["a", "b"]
    assert ls({"dangling": ["0"]}) == ["c"]
    assert ls({"driver": ["local"]}) == ["a", "b", "c"]
    assert ls({"driver": ["nfs"]}) == []
    with pytest.raises(errors.InvalidArgument, match=r"Invalid filter 'dangling=\[maybe\]'"):
        ls({"dangling": ["maybe"]})
    with pytest.raises(errors.InvalidArgument, match="Invalid filter 'until'"):
        ls({"until": ["1h"]})


@pytest.mark.parametrize(("pattern", "ref", "matches"), [
    ("busybox", "busybox:1.36", True),              # the name alone
    ("busybox:1.36", "busybox:1.36", True),
    ("busybox:1.36", "busybox:1.37", False),
    ("busybox:1.36", "busybox@sha256:abc", False),
    ("busybox", "busybox@sha256:abc", True),
    ("busy*", "busybox:1", True),
    ("*", "library/busybox:1", False),               # * stops at a /
    ("*/*", "library/busybox:1", True),
    ("reg:5000/a/b", "reg:5000/a/b:1", True),
    ("b?[a-z]", "bbc:1", True),
    ("b[^a-z]", "b1:1", True),
    ("b\\*", "b*:1", True),
])
def test_the_reference_filter_is_a_path_pattern_over_the_familiar_reference(pattern: str, ref: str,
                                                                           matches: bool) -> None:
    assert df.reference_match(pattern, ref) is matches


@pytest.mark.parametrize("pattern", ["[", "a[]", "a\\", "[-a]"])
def test_a_bad_reference_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="syntax error in pattern"):
        df.reference_match(pattern, "a:1")


def test_the_image_list_shows_the_matching_references_and_dangling_images_as_dockerd() -> None:
    imgs = [df.ImageView("sha256:1", 1 * S, {"p": "x"}, ("bb:1", "bb:2", "cc:1"), ("bb@sha256:m", "cc@sha256:m"),
                         has_children=False),
            df.ImageView("sha256:2", 2 * S, {"p": "x"}, (), (), has_children=False),
            df.ImageView("sha256:3", 3 * S, None, (), (), has_children=True)]

    def ls(fl: Mapping[str, list[str]], *, all_: bool = False) -> list[tuple[str, list[str], list[str]]]:
        return [(v.id, tags, digests) for v, tags, digests in
                df.images(imgs, fl, all_=all_, find=lambda ref: imgs[0])]

    none = (["<none>:<none>"], ["<none>@<none>"])
    assert ls({}) == [("sha256:2", *none), ("sha256:1", ["bb:1", "bb:2", "cc:1"], ["bb@sha256:m", "cc@sha256:m"])]
    assert ls({}, all_=True)[0] == ("sha256:3", *none)                 # made into others: with -a only
    assert ls({"reference": ["bb"]}) == [("sha256:1", ["bb:1", "bb:2"], ["bb@sha256:m"])]
    assert ls({"reference": ["bb:2"]}) == [("sha256:1", ["bb:2"], [])]
    assert ls({"dangling": ["true"]}) == [("sha256:2", *none)]
    assert ls({"dangling": ["false"]}) == [("sha256:1", ["bb:1", "bb:2", "cc:1"], ["bb@sha256:m", "cc@sha256:m"])]
    assert [i for i, _, _ in ls({"label": ["p=x"]}, all_=True)] == ["sha256:2", "sha256:1"]
    assert [i for i, _, _ in ls({"since": ["bb:1"]}, all_=True)] == ["sha256:3", "sha256:2"]
    assert ls({"before": ["bb:1"]}) == []
    with pytest.raises(errors.InvalidArgument, match=r"Invalid filter 'dangling=\[1\]'"):
        ls({"dangling": ["1"]})                     # the list takes true or false only (dockerd 20.10)


def test_descendants_are_the_images_that_begin_with_an_image() -> None:
    lineage: dict[str, df.Lineage] = {"base": (("l1",), ("h1",)), "label": (("l1",), ("h1", "h2")),
                                      "run": (("l1", "l2"), ("h1", "h2", "h3")), "other": (("l9",), ("h1",)),
                                      "same": (("l1",), ("h1",))}
    assert df.descendants(lineage, "base") == {"label", "run"}
    assert df.descendants(lineage, "label") == {"run"}
    assert df.descendants(lineage, "absent") == set()


def test_until_reads_durations_times_and_timestamps_as_dockerd() -> None:
    now = 1_700_000_000 * S
    assert df.prune_until({"until": ["1h"]}, now) == now - 3600 * S
    assert df.prune_until({"until": ["1h30m"]}, now) == now - 5400 * S
    assert df.prune_until({"until": ["-1h"]}, now) == now + 3600 * S
    assert df.prune_until({"until": ["1699999000"]}, now) == 1_699_999_000 * S
    assert df.prune_until({"until": ["1699999000.5"]}, now) == 1_699_999_000 * S + S // 2
    assert df.prune_until({"until": ["2023-11-14T22:13:20Z"]}, now) == now
    assert df.prune_until({"until": ["2023-11-14T23:13:20+01:00"]}, now) == now
    assert df.prune_until({"until": ["2023-11-14Z"]}, now) == (1_700_000_000 - 80_000) * S
    assert df.prune_until({}, now) is None
    with pytest.raises(errors.InvalidArgument, match="more than one until"):
        df.prune_until({"until": ["1h", "2h"]}, now)
    for bad in ("yesterday", "2023-13-45"):
        with pytest.raises(errors.InvalidArgument):
            df.prune_until({"until": [bad]}, now)


def test_the_filters_parameter() -> None:
    assert df.parse('{"label": {"a=1": true, "b": false}, "name": ["x"]}') == {"label": ["a=1"], "name": ["x"]}
    assert df.parse(None) == {}
    with pytest.raises(errors.InvalidArgument, match="invalid filters"):
        df.parse("{not json")
