"""Image update policies in a real agent process (fake engine): tags listed from a real
docker-registry on loopback, the chosen tag applied and written back to a real bare git
repository (seen by a second clone), notify mode announcing to a real HTTP receiver and changing
nothing, a failed update not retried; and the tag cache's reuse, rate limit and backoff against
the real registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.agent import updates
from reconciler.registry_client import CredentialStore, RegistryClient
from reconciler.runtime.fake import FakeRuntime
from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_notify import Receiver, receivers  # noqa: F401 - the fixture
from tests.execution.helpers import write
from tests.helpers.fault_server import Fault, FaultProxy
from tests.helpers.registry import RegistryServer
from tests.registry_client.imagegen import make_image
from tests.sources.gitrepos import Upstream, git

TAGS = ["1.2.0", "1.4.1", "1.9.0", "2.0.0"]
REPO = str(Path(__file__).resolve().parents[2])

pytestmark = pytest.mark.registry


@pytest.fixture
def tagged(tmp_path: Path) -> Iterator[RegistryServer]:
    """A real registry whose shop/web has the tags TAGS."""
    reg = RegistryServer(tmp_path / "registry").start()
    try:
        m, blobs = make_image()
        client = RegistryClient(credentials=CredentialStore(static={}, docker_config=Path("/nonexistent"), env={}))
        with client:
            client.push_image(f"{reg.host}/shop/web:{TAGS[0]}", m, lambda d: blobs[d.digest], tags=TAGS)
        yield reg
    finally:
        reg.stop()


def manifest(repo: str, tag: str, policy: str, mode: str = "apply") -> str:
    return (
        "# web: follows the 1.x line\n"
        "apiVersion: reconciler/v1\n"
        "kind: Container\n"
        "metadata:\n"
        "  name: web      # the shop's front\n"
        "spec:\n"
        "  image:\n"
        f"    track: \"{repo}:{tag}\"  # {{\"$imagepolicy\": \"web\"}}\n"
        f"    policy: {policy}\n"
        f"    mode: {mode}\n"
        "  restart: always\n"
    )


def fake(a: AgentProc, repo: str, tags: list[str] = TAGS) -> FakeRuntime:
    """The fake engine of `a`, able to pull each tag (its own registry stands in for pulls)."""
    rt = FakeRuntime.at_root(a.root)
    for t in tags:
        rt.publish(f"{repo}:{t}")
    return rt


def running(a: AgentProc) -> dict[str, tuple[str, str]]:
    return {c.name: (c.image, c.id) for c in FakeRuntime.at_root(a.root).list_containers()}


def test_apply_picks_the_newest_allowed_tag_and_writes_it_back_for_a_second_clone(
        tmp_path: Path, tagged: RegistryServer, agents: list[AgentProc], receivers: list[Receiver]) -> None:  # noqa: F811
    repo = f"{tagged.host}/shop/web"
    up = Upstream(tmp_path / "forge", "shop")
    text = manifest(repo, "1.4.1", '{semver: ">=1.4 <2"}')
    first = up.commit({"hosts/web1/web.yaml": text}, "web on 1.4.1")
    hook = Receiver()
    receivers.append(hook)
    src = {"name": "shop", "interval": "0.5s",
           "git": {"url": str(up.bare), "branch": "main", "path": "hosts/web1",
                   "write_back": {"message": "images of $source: $containers\n\n$updates",
                                  "author": {"name": "Image Bot", "email": "bot@example.invalid"}}}}
    a = AgentProc(tmp_path / "agent", sources=[src], image_updates={"interval": "1h"},
                  notify=[{"webhook": {"url": hook.url}}])
    a.tmp.mkdir(parents=True)
    fake(a, repo)
    agents.append(a.start())

    wait_for("1.9.0 running", lambda: running(a).get("web", ("", ""))[0] == f"{repo}:1.9.0")
    # written back: a second clone of the repository sees the tag, the rest of the file as it was
    clone = tmp_path / "clone"

    def cloned() -> str:
        if clone.exists():
            git(clone, "pull", "--quiet")
        else:
            git(tmp_path, "clone", "--quiet", str(up.bare), str(clone))
        return (clone / "hosts/web1/web.yaml").read_text()

    wait_for("the write-back commit", lambda: "1.9.0" in cloned())
    assert cloned() == text.replace(f"{repo}:1.4.1", f"{repo}:1.9.0")
    assert git(clone, "log", "-1", "--format=%an%n%B") == (
        f"Image Bot\nimages of shop: web\n\n- web: {repo}:1.4.1 -> 1.9.0")
    assert git(clone, "rev-parse", "HEAD~1") == first
    # the agent deploys its own commit without recreating the container (the tag is no spec change)
    pushed = git(clone, "rev-parse", "HEAD")
    image, cid = running(a)["web"]
    wait_for("the pushed commit applied", lambda: a.source("shop")["revision"] == pushed)
    a.reconcile("shop")
    assert running(a)["web"] == (image, cid)
    status = a.source("shop")
    assert status["last_result"] == "converged"
    checked = status["images"][0].pop("checked_at")
    assert status["images"][0].pop("listed_at") == checked
    assert status["images"] == [{"container": "web", "repository": repo, "manifest_tag": "1.9.0",
                                 "policy_tag": "1.9.0", "mode": "apply", "error": None, "refused": False,
                                 "policy": "semver '>=1.4 <2'"}]
    assert time.time() - 3600 < checked <= time.time()               # listed once this hour (interval 1h)
    kinds = [json.loads(body)["kind"] for _, body in hook.got]
    assert kinds.count("image_updated") == 1
    updated = next(json.loads(b) for _, b in hook.got if json.loads(b)["kind"] == "image_updated")
    assert updated["title"] == f"shop: web updated to {repo}:1.9.0"


def test_notify_mode_changes_nothing_and_announces_once(
        tmp_path: Path, tagged: RegistryServer, agents: list[AgentProc], receivers: list[Receiver]) -> None:  # noqa: F811
    repo = f"{tagged.host}/shop/web"
    hook = Receiver()
    receivers.append(hook)
    m = tmp_path / "m"
    text = manifest(repo, "1.4.1", '{pattern: "^1\\\\.(?P<minor>[0-9]+)\\\\.[0-9]+$", order: numeric}', mode="notify")
    write(m, "web.yaml", text)
    a = AgentProc(tmp_path, sources=[{"name": "local", "directory": str(m)}], image_updates={"interval": "1h"},
                  notify=[{"webhook": {"url": hook.url}, "events": ["image_update_available", "image_updated"]}])
    fake(a, repo)
    agents.append(a.start())

    wait_for("the announcement", lambda: hook.got)
    for _ in range(3):
        a.reconcile("local")
    assert running(a)["web"][0] == f"{repo}:1.4.1"                 # nothing changed
    assert (m / "web.yaml").read_text() == text
    [(_, body)] = hook.got                                           # announced once
    sent: dict[str, Any] = json.loads(body)
    assert sent["kind"] == "image_update_available"
    assert sent["title"] == f"local: web can run {repo}:1.9.0"
    assert sent["event"]["current"] == "1.4.1"
    assert a.source("local")["images"][0]["policy_tag"] == "1.9.0"
    a.stop()                                    # once per tag: a restart does not announce it again
    a.start()
    a.reconcile("local")
    assert a.source("local")["images"][0]["policy_tag"] == "1.9.0"
    assert [e for e in a.events() if e["type"].startswith("image_")] == []
    status = subprocess.run([sys.executable, "-m", "reconciler", "status", "--root", str(a.root)],
                            capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": REPO})
    assert f"  image policy: web: {repo}:1.4.1 -> 1.9.0 (notify)\n" in status.stdout


def test_an_update_is_announced_once_per_tag_across_restarts_of_the_agent(
        tmp_path: Path, tagged: RegistryServer, agents: list[AgentProc]) -> None:
    repo = f"{tagged.host}/shop/web"
    m = tmp_path / "m"
    write(m, "web.yaml", manifest(repo, "1.4.1", '{semver: "^1"}'))      # no write-back: the manifest stays
    a = AgentProc(tmp_path, sources=[{"name": "local", "directory": str(m)}], image_updates={"interval": "1h"})
    fake(a, repo)
    agents.append(a.start())
    wait_for("the update", lambda: [e for e in a.events() if e["type"] == "image_updated"])
    image, cid = running(a)["web"]
    assert image == f"{repo}:1.9.0"
    for _ in range(2):                            # systemctl restart: the tag runs already, nothing to tell
        a.stop()
        a.start()
        a.reconcile("local")
        assert running(a)["web"] == (image, cid)
        assert a.source("local")["images"][0]["policy_tag"] == "1.9.0"
        assert [e for e in a.events() if e["type"].startswith("image_")] == []


def test_a_failed_update_keeps_the_running_tag_and_is_not_tried_again(
        tmp_path: Path, tagged: RegistryServer, agents: list[AgentProc]) -> None:
    repo = f"{tagged.host}/shop/web"
    m = tmp_path / "m"
    write(m, "web.yaml", manifest(repo, "1.4.1", '{semver: "^1"}'))
    a = AgentProc(tmp_path, sources=[{"name": "local", "directory": str(m)}], image_updates={"interval": "1h"})
    fake(a, repo, ["1.4.1"])                      # 1.9.0 is listed but cannot be pulled
    agents.append(a.start())

    failed = wait_for("the failed update", lambda: [e for e in a.events() if e["type"] == "image_update_failed"])
    assert failed[0]["chosen"] == "1.9.0"
    assert "1.9.0" in failed[0]["error"]
    a.reconcile("local")
    status = a.source("local")
    assert status["last_result"] == "converged"                   # back on the manifest's tag
    assert running(a)["web"][0] == f"{repo}:1.4.1"
    assert status["images"][0]["refused"] is True
    assert len([e for e in a.events() if e["type"] == "image_update_failed"]) == 1


def test_a_failing_tag_listing_is_reported_while_the_last_good_one_decides(
        tmp_path: Path, tagged: RegistryServer, agents: list[AgentProc]) -> None:
    proxy = FaultProxy(tagged.port).start()
    try:
        repo = f"{proxy.host}/shop/web"
        m = tmp_path / "m"
        write(m, "web.yaml", manifest(repo, "1.4.1", '{semver: "^1"}'))
        a = AgentProc(tmp_path, sources=[{"name": "local", "directory": str(m)}], image_updates={"interval": "1s"})
        fake(a, repo)
        agents.append(a.start())
        listed = wait_for("the first listing", lambda: (i := a.source("local")["images"]) and i[0]["policy_tag"] and i[0])
        assert listed["error"] is None

        proxy.add(Fault("status", path="/tags/list", status=404, times=10_000))   # the registry stops listing
        failing = wait_for("the failed listing reported",
                           lambda: (a.reconcile("local") and (i := a.source("local")["images"][0])["error"]) and i)
        assert failing["policy_tag"] == "1.9.0"                            # the last good list still decides
        assert failing["listed_at"] == listed["listed_at"] == listed["checked_at"]   # when last listed
        assert failing["checked_at"] > failing["listed_at"]                # when last asked
        assert "image_tags_unlisted" in a.log()
        shown = subprocess.run([sys.executable, "-m", "reconciler", "status", "--socket", str(a.socket)],
                               capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": REPO})
        assert "(apply); tags not listed since " in shown.stdout

        proxy.faults.clear()                                               # it lists again
        again = wait_for("the listing again", lambda: (a.reconcile("local") and (
            i := a.source("local")["images"][0])["error"] is None) and i)
        assert again["listed_at"] == again["checked_at"] > listed["listed_at"]
    finally:
        proxy.stop()


def test_tag_listings_are_reused_rate_limited_per_repository_and_backed_off(tagged: RegistryServer) -> None:
    proxy = FaultProxy(tagged.port).start()
    lister = updates.RegistryLister(page_size=2, retries=0)
    try:
        now = [0.0]
        cache = updates.TagCache(lister, interval=60, clock=lambda: now[0])
        web = f"{proxy.host}/shop/web"
        assert sorted(cache.tags(web)) == TAGS
        for _ in range(5):
            assert sorted(cache.tags(web)) == TAGS                # reused: no request
        assert len(proxy.requests(path="/shop/web/tags/list")) == 1
        with pytest.raises(LookupError, match=r"NAME_UNKNOWN|not found|unknown"):
            cache.tags(f"{proxy.host}/shop/none")                 # another repository: its own listing
        now[0] = 61.0
        proxy.add(Fault("status", path="/tags/list", status=503, times=1000))
        assert sorted(cache.tags(web)) == TAGS                    # failed: the last good list stands in
        assert cache.error(web) is not None
        asked = len(proxy.requests(path="/shop/web/tags/list"))
        now[0] = 61.0 + 59                                        # backed off: not asked again yet
        cache.tags(web)
        assert len(proxy.requests(path="/shop/web/tags/list")) == asked
        now[0] = 61.0 + 121                                       # then asked, and the list is fresh again
        proxy.faults.clear()
        assert sorted(cache.tags(web)) == TAGS
        assert cache.error(web) is None
        assert cache.requests == 4                                # web, none, web (503), web
    finally:
        lister.close()
        proxy.stop()


def test_config_refuses_an_unknown_message_field_and_a_write_back_without_a_branch() -> None:
    from reconciler.agent import config as cfgmod

    def parse(git: str) -> cfgmod.AgentConfig:
        return cfgmod.parse_config(f"sources:\n  - name: shop\n    git: {git}\n", where="agent.yaml")

    with pytest.raises(cfgmod.ConfigError, match=r"agent.yaml:2: sources.0: git.write_back.message: unknown "
                                                 r"field \$commit.*\$source, \$updates, \$containers"):
        parse("{url: /srv/shop.git, branch: main, write_back: {message: 'bump $commit'}}")
    with pytest.raises(cfgmod.ConfigError, match=r"git\.write_back\.branch: name the branch to push to"):
        parse("{url: /srv/shop.git, tag: v1, write_back: {}}")
    wb = parse("{url: /srv/shop.git, branch: main, write_back: {}}").sources[0].git
    assert wb is not None
    assert (wb.write_back.branch, wb.write_back.author_name) == ("main", "reconciler")


@pytest.mark.root
@pytest.mark.slow
def test_native_an_update_that_fails_its_health_gate_is_rolled_back_and_notified(
        tmp_path: Path, tagged: RegistryServer, native_agent: AgentProc) -> None:
    """Real images, pulled by the native engine: 1.4.1 has /ok (its healthcheck passes), 1.9.0
    has not. Widening the policy to 1.9.0 replaces the container, the health gate fails, and the
    container that ran comes back; the tag is not tried again."""
    from reconciler.runtime.native.backend import NativeRuntime
    from reconciler.runtime.native.config import NativeConfig
    from tests.helpers import images

    repo = f"{tagged.host}/shop/app"
    for tag, extra in (("1.4.1", [images.Entry("ok", b"ok\n")]), ("1.9.0", [])):
        layout = tmp_path / f"layout-{tag}"
        images.write_layout(layout, [images.busybox_layer(extra)])
        images.push_layout(layout, f"{repo}:{tag}")

    def app(policy: str) -> str:
        return (f'apiVersion: reconciler/v1\nkind: Container\nmetadata: {{name: app}}\nspec:\n'
                f'  image: {{track: "{repo}:1.4.1", policy: {{semver: "{policy}"}}}}\n'
                '  command: [sh, -c, "sleep 3600"]\n  networks: [none]\n  restart: always\n'
                '  healthcheck: {test: [CMD, test, -e, /ok], interval: 0.5s, timeout: 2s, retries: 1}\n'
                '  update: {healthTimeout: 8s, onFailure: rollback}\n')

    def app_state() -> Any:
        rt = NativeRuntime(NativeConfig(root=native_agent.root, run_dir=native_agent.run_dir,
                                        name_prefix=native_agent.prefix))
        try:
            return next((c for c in rt.list_containers({"reconciler.owner": "host"}) if c.name == "app"), None)
        finally:
            rt.close()

    m = tmp_path / "m"
    (m / "app.yaml").write_text(app("~1.4"))
    native_agent.write_config(image_updates={"interval": "1s"})
    native_agent.start()
    first = wait_for("1.4.1 healthy", lambda: (c := app_state()) and c.health == "healthy" and c)
    assert first.image == f"{repo}:1.4.1"

    (m / "app.yaml").write_text(app(">=1.4 <2"))                 # 1.9.0 allowed now
    failed = wait_for("the failed update", lambda: [e for e in native_agent.events()
                                                     if e["type"] == "image_update_failed"])
    assert failed[0]["chosen"] == "1.9.0"
    back = wait_for("1.4.1 healthy again", lambda: (c := app_state()) and c.health == "healthy"
                    and str(c.status) == "running" and c)
    assert back.image_id == first.image_id                        # the container that ran, from 1.4.1's image
    assert back.id != first.id
    native_agent.reconcile("host")
    assert native_agent.source("host")["last_result"] == "converged"
    assert app_state().id == back.id                              # not tried again
    assert [e["type"] for e in native_agent.events()].count("image_update_failed") == 1


def test_a_refused_tag_gives_way_to_the_tag_that_ran_healthy_not_to_the_manifests(tmp_path: Path) -> None:
    """Decisions across passes (no engine): 1.9.0 runs healthy, 1.9.1 fails; the next pass runs
    1.9.0 again, not the manifest's 1.4.1; a new revision of the manifests tries 1.9.1 again."""
    from reconciler import spec

    (tmp_path / "web.yaml").write_text(manifest("reg.local:5000/shop/web", "1.4.1", '{semver: "^1"}'))
    desired = spec.load(tmp_path)
    published = ["1.4.1", "1.9.0"]
    now = [0.0]
    cache = updates.TagCache(lambda _repo: list(published), interval=10, clock=lambda: now[0])
    events: list[tuple[str, dict[str, Any]]] = []
    f = updates.Follower()

    def image(rev: str = "r1") -> str:
        return f.prepare(desired, cache, rev).containers["web"].image

    assert image() == "reg.local:5000/shop/web:1.9.0"
    f.settle("local", "r1", {}, lambda t, **e: events.append((t, e)))
    published.append("1.9.1")
    now[0] = 11.0
    assert image() == "reg.local:5000/shop/web:1.9.1"
    f.settle("local", "r1", {"web": "unhealthy"}, lambda t, **e: events.append((t, e)))
    assert [t for t, _ in events] == ["image_updated", "image_update_failed"]
    assert image() == "reg.local:5000/shop/web:1.9.0"               # what ran healthy
    assert image("r2") == "reg.local:5000/shop/web:1.9.1"           # the manifests changed: tried again


def test_update_notifications_are_sent_once_per_tag_and_a_write_back_failure_once() -> None:
    from reconciler.agent import notify

    d = notify.Deduper()
    ev = {"source": "s", "container": "web", "repository": "r/web", "current": "1.4.1", "chosen": "1.9.0"}
    assert [n.kind for n in d({"type": "image_update_available", **ev})] == ["image_update_available"]
    assert d({"type": "image_update_available", **ev}) == []
    assert [n.severity for n in d({"type": "image_update_available", **ev, "chosen": "1.9.1"})] == ["info"]
    assert [n.severity for n in d({"type": "image_update_failed", **ev, "error": "unhealthy"})] == ["error"]
    failed = {"type": "write_back_failed", "source": "s", "error": "push refused"}
    assert [n.kind for n in d(failed)] == ["write_back_failed"]
    assert d(failed) == []
    assert d({"type": "written_back", "source": "s"}) == []       # recovered silently...
    assert [n.kind for n in d(failed)] == ["write_back_failed"]  # ...so a new failure is news


def test_flux_field_markers_get_the_running_tag_name_and_digest(
        tmp_path: Path, tagged: RegistryServer, agents: list[AgentProc]) -> None:
    """`NS:NAME:tag`, `:name` and `:digest` lines (#22): the agent writes the tag it chose, the
    repository, and the manifest digest of the image the container runs."""
    repo = f"{tagged.host}/shop/web"
    up = Upstream(tmp_path / "forge", "shop")
    text = manifest(repo, "1.4.1", '{semver: ">=1.4 <2"}').replace('"web"}', '"flux-system:web"}') + (
        "  env:\n"
        "    WEB_TAG: '1.4.1'          # {\"$imagepolicy\": \"flux-system:web:tag\"}\n"
        "    WEB_REPO: none            # {\"$imagepolicy\": \"flux-system:web:name\"}\n"
        "    WEB_DIGEST: \"none\"        # {\"$imagepolicy\": \"flux-system:web:digest\"}\n")
    up.commit({"hosts/web1/web.yaml": text}, "web on 1.4.1")
    src = {"name": "shop", "interval": "0.5s",
           "git": {"url": str(up.bare), "branch": "main", "path": "hosts/web1", "write_back": {}}}
    a = AgentProc(tmp_path / "agent", sources=[src], image_updates={"interval": "1h"})
    a.tmp.mkdir(parents=True)
    fake(a, repo)
    agents.append(a.start())

    wait_for("1.9.0 running", lambda: running(a).get("web", ("", ""))[0] == f"{repo}:1.9.0")
    digest = FakeRuntime.at_root(a.root).inspect_container("web").labels["reconciler.image-digest"]
    assert digest.startswith("sha256:")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(up.bare), str(clone))

    def cloned() -> str:
        git(clone, "pull", "--quiet")
        return (clone / "hosts/web1/web.yaml").read_text()

    wait_for("the write-back commit", lambda: "1.9.0" in cloned())
    assert cloned() == (
        text.replace(f"{repo}:1.4.1", f"{repo}:1.9.0").replace("'1.4.1'", "'1.9.0'")
        .replace("WEB_REPO: none", f"WEB_REPO: {repo}").replace('"none"', f'"{digest}"'))
