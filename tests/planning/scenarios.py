"""The situations of the golden plan tests, as (desired, observed, inventory, options) literals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from reconciler.planning import implied
from reconciler.spec import models
from reconciler.state import inventory as inv
from reconciler.state import observed as obs
from tests.planning.builders import (
    D1,
    D2,
    OWNER,
    REF,
    REV,
    container,
    desired,
    entry,
    foreign,
    image,
    network,
    observed,
    onet,
    ovol,
    own,
    running,
    volume,
)

NOW = 1_800_000_000.0

Case = tuple[models.DesiredState, obs.ObservedState, inv.Inventory, dict[str, Any]]
SCENARIOS: dict[str, Callable[[], Case]] = {}


def scenario(fn: Callable[[], Case]) -> Callable[[], Case]:
    SCENARIOS[fn.__name__] = fn
    return fn


def case(d: models.DesiredState, o: obs.ObservedState, i: inv.Inventory | None = None, *,
         this_root: bool = True, **opts: Any) -> Case:
    """A situation; `this_root`: the objects observed with the owner's labels that the revision
    declares were made by this state root, so its inventory lists them (an entry from their
    labels where `i` has none); False: as `i` says (another state root made the others)."""
    i = i or inv.Inventory()
    if this_root:
        owner = opts.get("owner", OWNER)
        wanted = implied.keys(d)
        made = [inv.Entry(kind=x.owner.kind, name=x.owner.name, spec_hash=x.owner.spec_hash,
                          image_digest=x.owner.image_digest, revision=x.owner.revision)
                for x in [*o.containers.values(), *o.networks.values(), *o.volumes.values()]
                if x.owner is not None and x.owner.owner == owner and (x.owner.kind, x.owner.name) in wanted
                and (x.owner.kind, x.owner.name) not in i.entries]
        i = inv.Inventory(entries={**i.entries, **{(e.kind, e.name): e for e in made}}, failures=i.failures)
    return d, o, i, opts


WEB = container("web", networks=("shop",), volumes=(models.VolumeMount("volume", "data", "/data", False),))
SHOP = network("shop")
DATA = volume("data")
API = container("api", depends_on=("web",))
DB = container("db", healthcheck=models.Healthcheck(("CMD", "pg_isready"), 5, 3, 0, 3))
WEB_ON_DB = replace(WEB, depends_on=("db",))
PIN = f"registry.local:5000/shop/web@{D2}"


def up(*extra: Any, **kw: Any) -> obs.ObservedState:
    """WEB running with its network and volume, plus `extra`."""
    return observed(running(WEB), onet(SHOP), ovol("data"), *extra, **kw)


@scenario
def fresh_host() -> Case:
    return case(desired(WEB, SHOP, DATA), observed(images={}))


@scenario
def nothing_changed() -> Case:
    return case(desired(WEB, SHOP, DATA), up(), inv.Inventory.of([entry(WEB), entry(SHOP), entry(DATA)]))


@scenario
def env_change() -> Case:
    new = replace(WEB, env={"LOG_LEVEL": "debug", "TOKEN": "s3cret"}, spec_hash="h-web-2")
    return case(desired(new, SHOP, DATA), up(),
                inv.Inventory.of([entry(replace(WEB, env={"LOG_LEVEL": "info"}))]))


@scenario
def env_file_content_change() -> Case:
    old = replace(WEB, env={"A": "1"}, env_files=("/m/web.env",))
    new = replace(old, env={"A": "2"}, spec_hash="h-web-2")
    return case(desired(new, SHOP, DATA), up(), inv.Inventory.of([entry(old)]))


@scenario
def bind_file_content_change() -> Case:
    return case(desired(replace(WEB, spec_hash="h-web-2"), SHOP, DATA), up(), inv.Inventory.of([entry(WEB)]))


@scenario
def several_fields_change() -> Case:
    new = replace(WEB, ports=(models.PortSpec("127.0.0.1", 8080, 80, "tcp"),), command=("/bin/web", "-v"),
                  restart=models.RestartPolicy("always", 0), spec_hash="h-web-2")
    return case(desired(new, SHOP, DATA), up(), inv.Inventory.of([entry(WEB)]))


@scenario
def image_tag_moved() -> Case:
    return case(desired(WEB, SHOP, DATA), up(resolved={REF: D2}))


@scenario
def image_tag_unchanged() -> Case:
    return case(desired(WEB, SHOP, DATA), up(resolved={REF: D1}))


@scenario
def digest_pinned_present() -> Case:
    return case(desired(replace(WEB, image=PIN), SHOP, DATA),
                observed(running(WEB, digest=D2), onet(SHOP), ovol("data"), images={PIN: D2},
                         resolved={REF: "sha256:" + "9" * 64}))


@scenario
def digest_pin_changed() -> Case:
    return case(desired(replace(WEB, image=PIN), SHOP, DATA), up())


@scenario
def image_object_not_tracked() -> Case:
    return case(desired(replace(WEB, image_object="webimg"), image("webimg", REF), SHOP, DATA),
                up(resolved={REF: D2}))


@scenario
def local_image_named_by_another_digest() -> Case:
    """The container runs the very image its tag names here, which the engine now names by
    another digest (Docker: a built image by its id, then, once pushed, by a repository digest):
    no new image, no replacement."""
    return case(desired(WEB, SHOP, DATA),
                up(images={REF: D2}, image_ids={REF: "sha256:cfg1"}, resolved={REF: D2}))


@scenario
def local_image_replaced_under_its_tag() -> Case:
    """The tag names another image here than the one the container runs: replaced."""
    return case(desired(WEB, SHOP, DATA), up(images={REF: D2}, image_ids={REF: "sha256:cfg2"}))


@scenario
def pull_always_digest_unresolved() -> Case:
    """`pull: always` and the registry's digest not resolved: the pull is the only way to know
    whether the tag moved, so the container's replacement is planned in the same pass (the
    executor keeps it when the tag still names the image it runs)."""
    return case(desired(replace(WEB, image_object="webimg"), image("webimg", REF, pull="always"), SHOP, DATA), up())


@scenario
def pull_always_digest_resolved_unchanged() -> Case:
    return case(desired(replace(WEB, image_object="webimg"), image("webimg", REF, pull="always"), SHOP, DATA),
                up(resolved={REF: D1}))


@scenario
def image_object_pull_never_absent() -> Case:
    return case(desired(replace(WEB, image_object="webimg"), image("webimg", REF, pull="never"), SHOP, DATA),
                observed(onet(SHOP), ovol("data"), images={}))


def _stopped(policy: str, **kw: Any) -> Case:
    name, _, n = policy.partition(":")
    c = container("job", restart=models.RestartPolicy(name, int(n or 0)))
    kw.setdefault("exit_code", 137)
    return case(desired(c), observed(running(c, status="exited", **kw)))


@scenario
def stopped_restart_always() -> Case:
    return _stopped("always")


@scenario
def stopped_restart_unless_stopped() -> Case:
    return _stopped("unless-stopped")


@scenario
def stopped_by_hand_unless_stopped() -> Case:
    return _stopped("unless-stopped", manually_stopped=True)


@scenario
def stopped_on_failure_nonzero() -> Case:
    return _stopped("on-failure", exit_code=1)


@scenario
def stopped_on_failure_zero() -> Case:
    return _stopped("on-failure", exit_code=0)


@scenario
def stopped_on_failure_retries_exhausted() -> Case:
    return _stopped("on-failure:3", exit_code=1, restart_count=3)


@scenario
def stopped_restart_no() -> Case:
    return _stopped("no", exit_code=0)


@scenario
def created_never_started() -> Case:
    c = container("job")
    return case(desired(c), observed(running(c, status="created")))


@scenario
def start_cut_short_restart_no() -> Case:
    """Exited without ever having run (a CLI killed between create and start): started, as
    a created one is, whatever its restart policy says of an exit."""
    return _stopped("no", exit_code=1, cut_short=True)


@scenario
def restarting_is_converging() -> Case:
    c = container("job", restart=models.RestartPolicy("always", 0))
    return case(desired(c), observed(running(c, status="restarting")))


@scenario
def paused_is_noted_not_unpaused() -> Case:
    """Someone froze it on purpose (`docker pause`, a commit): the pass reports it down, the plan
    says so and does not thaw it."""
    c = container("web", restart=models.RestartPolicy("always", 0))
    return case(desired(c), observed(running(c, paused=True)))


@scenario
def stale_bind_is_noted() -> Case:
    """A bind-mounted file replaced on the host while the container runs: noted, not acted on
    (a restart is the operator's call: it may be serving)."""
    c = container("web", restart=models.RestartPolicy("always", 0))
    return case(desired(c), observed(running(c, stale_binds=("/srv/web/app.conf",))))


@scenario
def dead_container() -> Case:
    c = container("job")
    return case(desired(c), observed(running(c, status="dead")))


@scenario
def container_removed_by_hand() -> Case:
    return case(desired(WEB, SHOP, DATA), observed(onet(SHOP), ovol("data")), inv.Inventory.of([entry(WEB)]))


@scenario
def foreign_container_same_name() -> Case:
    return case(desired(WEB, API, SHOP, DATA), observed(foreign("web"), onet(SHOP), ovol("data")))


@scenario
def other_owners_container_same_name() -> Case:
    theirs = replace(running(WEB), owner=own("Container", "web", "x", owner="team-b"))
    return case(desired(WEB, SHOP, DATA), observed(theirs, onet(SHOP), ovol("data")))


@scenario
def foreign_network_same_name() -> Case:
    return case(desired(WEB, SHOP, DATA), observed(obs.ObservedNetwork("shop", None), ovol("data")))


@scenario
def foreign_volume_same_name() -> Case:
    # as `volume import` makes one on a host the manifests have not reached yet
    return case(desired(WEB, SHOP, DATA), observed(onet(SHOP), obs.ObservedVolume("data", None)))


@scenario
def dependency_chain_fresh() -> Case:
    return case(desired(WEB_ON_DB, DB, SHOP, DATA), observed(onet(SHOP), ovol("data")))


@scenario
def dependency_changed_dependent_kept() -> Case:
    new_db = replace(DB, env={"MAX": "9"}, spec_hash="h-db-2")
    return case(desired(WEB_ON_DB, new_db, SHOP, DATA), up(running(DB)), inv.Inventory.of([entry(DB)]))


@scenario
def dependency_chain_both_changed() -> Case:
    new_db = replace(DB, env={"MAX": "9"}, spec_hash="h-db-2")
    new_web = replace(WEB_ON_DB, env={"X": "1"}, spec_hash="h-web-2")
    return case(desired(new_web, new_db, SHOP, DATA), up(running(DB)),
                inv.Inventory.of([entry(DB), entry(WEB_ON_DB)]))


@scenario
def depends_on_added_only() -> Case:
    return case(desired(WEB_ON_DB, DB, SHOP, DATA), up(running(DB)))


@scenario
def network_change() -> Case:
    new = replace(SHOP, subnet="10.210.0.0/24", spec_hash="h-shop-2")
    return case(desired(WEB, new, DATA), up(), inv.Inventory.of([entry(SHOP), entry(WEB)]))


@scenario
def network_added_to_container() -> Case:
    back = network("back")
    new = replace(WEB, networks=("shop", "back"), spec_hash="h-web-2")
    return case(desired(new, SHOP, back, DATA), up(), inv.Inventory.of([entry(WEB)]))


@scenario
def container_pruned() -> Case:
    return case(desired(WEB, SHOP, DATA), up(running(API)), inv.Inventory.of([entry(WEB), entry(API)]))


@scenario
def pruned_container_already_gone() -> Case:
    return case(desired(WEB, SHOP, DATA), up(), inv.Inventory.of([entry(WEB), entry(API)]))


@scenario
def owned_but_not_in_inventory() -> Case:
    return case(desired(WEB, SHOP, DATA), up(running(API)), inv.Inventory.of([entry(WEB)]))


@scenario
def volume_removed_retained() -> Case:
    bare = replace(WEB, volumes=())
    return case(desired(bare, SHOP), observed(running(bare), onet(SHOP), ovol("data")),
                inv.Inventory.of([entry(bare), entry(DATA, deletion_policy="Retain")]))


@scenario
def volume_removed_deletion_policy_delete() -> Case:
    bare = replace(WEB, volumes=())
    return case(desired(bare, SHOP), observed(running(bare), onet(SHOP), ovol("data")),
                inv.Inventory.of([entry(bare), entry(volume("data", policy="Delete"), deletion_policy="Delete")]))


@scenario
def file_deleted_containers_pruned_volume_kept() -> Case:
    return case(desired(API, SHOP), observed(running(WEB), running(API), onet(SHOP), ovol("data")),
                inv.Inventory.of([entry(WEB), entry(API), entry(SHOP), entry(DATA, deletion_policy="Retain")]))


@scenario
def network_pruned() -> Case:
    c = container("web")
    return case(desired(c), observed(running(c), onet(SHOP)), inv.Inventory.of([entry(c), entry(SHOP)]))


@scenario
def partial_revision_prunes_nothing() -> Case:
    return case(desired(WEB, SHOP, DATA), up(running(API)), inv.Inventory.of([entry(WEB), entry(API)]),
                prune=False)


ALL = inv.Inventory.of([entry(WEB), entry(SHOP), entry(DATA, deletion_policy="Retain")])


@scenario
def empty_revision_refused() -> Case:
    return case(desired(), up(), ALL)


@scenario
def empty_revision_allowed() -> Case:
    return case(desired(), up(), ALL, allow_empty=True)


@scenario
def empty_revision_empty_inventory() -> Case:
    return case(desired(), observed(foreign("web")))


FAILED = inv.Failure("Container", "web", REV, "h-web-2", 2, NOW - 10, "health timeout")


@scenario
def failed_previous_attempt_held() -> Case:
    return case(desired(replace(WEB, spec_hash="h-web-2"), SHOP, DATA), up(), inv.Inventory.of([entry(WEB)], [FAILED]))


@scenario
def failed_previous_create_held() -> Case:
    return case(desired(replace(WEB, spec_hash="h-web-2"), API, SHOP, DATA), observed(onet(SHOP), ovol("data")),
                inv.Inventory.of([], [FAILED]))


@scenario
def failed_previous_attempt_new_revision() -> Case:
    return case(desired(replace(WEB, spec_hash="h-web-2"), SHOP, DATA, revision="rev-3"), up(),
                inv.Inventory.of([entry(WEB)], [FAILED]))


@scenario
def failed_previous_attempt_backoff_expired() -> Case:
    return case(desired(replace(WEB, spec_hash="h-web-2"), SHOP, DATA), up(),
                inv.Inventory.of([entry(WEB)], [replace(FAILED, failed_at=NOW - 1000)]))


SF = replace(WEB, update=models.UpdatePolicy("start-first", 30.0, 0.0, "rollback"), env={"V": "2"}, spec_hash="h-web-2")


@scenario
def start_first_update() -> Case:
    return case(desired(SF, SHOP, DATA), up(), inv.Inventory.of([entry(WEB)]), can_rename=True)


@scenario
def start_first_with_ports_falls_back() -> Case:
    sf = replace(SF, ports=(models.PortSpec("127.0.0.1", 8080, 80, "tcp"),))
    return case(desired(sf, SHOP, DATA), up(), inv.Inventory.of([entry(WEB)]), can_rename=True)


@scenario
def start_first_with_chosen_ports() -> Case:
    """Ports the engine chooses (host port 0) hold no fixed port: the new copy gets its own."""
    sf = replace(SF, ports=(models.PortSpec("0.0.0.0", 0, 80, "tcp"),))
    return case(desired(sf, SHOP, DATA), up(), inv.Inventory.of([entry(WEB)]), can_rename=True)


@scenario
def start_first_with_mac_falls_back() -> Case:
    """Two interfaces of one MAC on a bridge would make its forwarding table flap between them."""
    sf = replace(SF, mac_addresses={"shop": "02:00:00:00:00:01"})
    return case(desired(sf, SHOP, DATA), up(), inv.Inventory.of([entry(WEB)]), can_rename=True)


@scenario
def start_first_without_rename_falls_back() -> Case:
    return case(desired(SF, SHOP, DATA), up(), inv.Inventory.of([entry(WEB)]))


def leftover(c: models.Container, **kw: Any) -> obs.ObservedContainer:
    """The new container of `c`'s start-first replacement, left under `<name>.next` (its labels
    name `c`) by a process killed before it renamed it into place."""
    return replace(running(c, **kw), id=f"id-{c.name}.next", name=f"{c.name}.next")


@scenario
def start_first_leftover_renamed_into_place() -> Case:
    """Killed after the old container's removal: the new one is all that runs, as web.next."""
    return case(desired(SF, SHOP, DATA), observed(leftover(SF), onet(SHOP), ovol("data")),
                inv.Inventory.of([entry(WEB), entry(SHOP), entry(DATA)]), can_rename=True)


@scenario
def start_first_leftover_renamed_then_replaced() -> Case:
    """The same, and the manifest changed again since: renamed, then replaced as usual."""
    sf3 = replace(SF, env={"V": "3"}, spec_hash="h-web-3")
    return case(desired(sf3, SHOP, DATA), observed(leftover(SF), onet(SHOP), ovol("data")),
                inv.Inventory.of([entry(WEB), entry(SHOP), entry(DATA)]), can_rename=True)


@scenario
def start_first_leftover_beside_the_old() -> Case:
    """Killed between the new container's start and the old one's stop: both run."""
    return case(desired(SF, SHOP, DATA), up(leftover(SF)), inv.Inventory.of([entry(WEB), entry(SHOP), entry(DATA)]),
                can_rename=True)


@scenario
def start_first_leftover_of_a_removed_container() -> Case:
    """The manifest of a container whose replacement was killed midway is removed: its leftover
    goes with it, before its network."""
    return case(desired(DATA), observed(leftover(SF), onet(SHOP), ovol("data")),
                inv.Inventory.of([entry(WEB), entry(SHOP), entry(DATA)]), can_rename=True)


@scenario
def start_first_leftover_without_rename() -> Case:
    """An engine that cannot rename: the leftover is removed and the container made anew."""
    return case(desired(SF, SHOP, DATA), observed(leftover(SF, status="exited"), onet(SHOP), ovol("data")),
                inv.Inventory.of([entry(WEB), entry(SHOP), entry(DATA)]))


@scenario
def implicit_volume() -> Case:
    c = container("x", volumes=(models.VolumeMount("volume", "cache", "/c", False),))
    return case(desired(c), observed())


@scenario
def other_owner_objects_ignored() -> Case:
    theirs = replace(running(container("other")), owner=own("Container", "other", "x", owner="team-b"))
    return case(desired(WEB, SHOP, DATA), up(theirs), inv.Inventory.of([entry(WEB)]))


@scenario
def pruned_container_frees_its_port_before_a_new_one_starts() -> Case:
    port = (models.PortSpec("127.0.0.1", 8080, 80, "tcp"),)
    old = container("old", ports=port)
    new = container("new", ports=port)
    return case(desired(new), observed(running(old)), inv.Inventory.of([entry(old)]))


@scenario
def network_change_with_a_pruned_container_on_it() -> Case:
    new = replace(SHOP, subnet="10.210.0.0/24", spec_hash="h-shop-2")
    old_api = replace(API, networks=("shop",), depends_on=())
    return case(desired(WEB, new, DATA), up(running(old_api)),
                inv.Inventory.of([entry(SHOP), entry(WEB), entry(old_api)]))


@scenario
def tag_moved_but_pull_never() -> Case:
    return case(desired(replace(WEB, image_object="webimg"), image("webimg", REF, pull="never", track=True),
                        SHOP, DATA), up(resolved={REF: D2}))


# -- the agent's inputs: the revision applied last (a drift check) and the flapping containers

@scenario
def drift_reported_in_a_drift_check() -> Case:
    web = replace(WEB, drift="report")
    return case(desired(web, SHOP, DATA), observed(onet(SHOP), ovol("data")), inv.Inventory.of([entry(web)]),
                applied_revision=REV)


@scenario
def drift_corrected_with_a_new_revision() -> Case:
    web = replace(WEB, drift="report")
    return case(desired(web, SHOP, DATA), observed(onet(SHOP), ovol("data")), inv.Inventory.of([entry(web)]),
                applied_revision="rev-1")


@scenario
def drift_reported_holds_back_its_dependents() -> Case:
    new_db = replace(DB, env={"MAX": "9"}, spec_hash="h-db-2", drift="report")
    new_web = replace(WEB_ON_DB, env={"X": "1"}, spec_hash="h-web-2")
    return case(desired(new_web, new_db, SHOP, DATA), up(running(DB)),
                inv.Inventory.of([entry(DB), entry(WEB_ON_DB)]), applied_revision=REV)


@scenario
def flapping_container_left_stopped() -> Case:
    d, o, i, _ = _stopped("always")
    return case(d, o, i, flapping=frozenset({"job"}))


@scenario
def flapping_container_removed_by_hand_created_not_started() -> Case:
    return case(desired(WEB, SHOP, DATA), observed(onet(SHOP), ovol("data")), inv.Inventory.of([entry(WEB)]),
                flapping=frozenset({"web"}))


@scenario
def flapping_container_still_recreated_on_a_change() -> Case:
    new = replace(WEB, env={"LOG_LEVEL": "debug"}, spec_hash="h-web-2")
    return case(desired(new, SHOP, DATA), up(), inv.Inventory.of([entry(WEB)]), flapping=frozenset({"web"}))


# --- a cluster (Swarm services): updates in place, no pulls, images pinned by registry digest

def _service(c: models.Container, **kw: Any) -> obs.ObservedContainer:
    return running(c, digest=D2, replicas=c.replicas, **kw)


@scenario
def cluster_fresh() -> Case:
    return case(desired(WEB, SHOP, DATA), observed(images={}, resolved={REF: D2}), cluster=True)


@scenario
def cluster_nothing_changed() -> Case:
    return case(desired(WEB, SHOP, DATA), observed(_service(WEB), onet(SHOP), ovol("data"), images={},
                                                   resolved={REF: D2}), cluster=True)


@scenario
def cluster_env_change() -> Case:
    old = replace(WEB, env={"LOG_LEVEL": "info"}, spec_hash="h-web-1")
    new = replace(WEB, env={"LOG_LEVEL": "debug"}, spec_hash="h-web-2")
    return case(desired(new, SHOP, DATA),
                observed(_service(old), onet(SHOP), ovol("data"), images={}, resolved={REF: D2}),
                inv.Inventory.of([entry(old)]), cluster=True)


@scenario
def cluster_scale() -> Case:
    return case(desired(replace(WEB, replicas=3), SHOP, DATA),
                observed(_service(WEB), onet(SHOP), ovol("data"), images={}, resolved={REF: D2}), cluster=True)


@scenario
def cluster_tag_moved() -> Case:
    return case(desired(WEB, SHOP, DATA),
                observed(running(WEB, digest=D1, replicas=1), onet(SHOP), ovol("data"), images={},
                         resolved={REF: D2}), cluster=True)


@scenario
def cluster_digest_unresolved_new_service() -> Case:
    return case(desired(WEB, API, SHOP, DATA), observed(images={}), cluster=True)


@scenario
def cluster_digest_unresolved_running_service() -> Case:
    return case(desired(WEB, SHOP, DATA), observed(_service(WEB), onet(SHOP), ovol("data"), images={}),
                cluster=True)


@scenario
def cluster_network_change_recreates_the_service() -> Case:
    new = replace(SHOP, subnet="10.210.0.0/24", spec_hash="h-shop-2")
    return case(desired(WEB, new, DATA), observed(_service(WEB), onet(SHOP), ovol("data"), images={},
                                                  resolved={REF: D2}),
                inv.Inventory.of([entry(SHOP), entry(WEB, config={"name": "web", "image": REF})]), cluster=True)


_SETTINGS = {"labels": {}, "update": {"parallelism": 1, "order": "stop-first"}, "restart-delay": None}


@scenario
def cluster_service_settings_changed() -> Case:
    # the service's own settings (the spec hash leaves them out) differ from what the manifest
    # makes of them (ServiceEngine.service_settings): updated in place, the difference the cause
    now = {"labels": {"team": "shop"}, "update": {"parallelism": 2, "order": "stop-first"}, "restart-delay": 4.0}
    return case(desired(WEB, SHOP, DATA),
                observed(_service(WEB, service_settings=_SETTINGS), onet(SHOP), ovol("data"), images={},
                         resolved={REF: D2}), cluster=True, service_settings={"web": now})


@scenario
def cluster_service_settings_unchanged() -> Case:
    return case(desired(WEB, SHOP, DATA),
                observed(_service(WEB, service_settings=_SETTINGS), onet(SHOP), ovol("data"), images={},
                         resolved={REF: D2}), cluster=True, service_settings={"web": dict(_SETTINGS)})


@scenario
def cluster_compose_service_made_under_its_older_name() -> Case:
    # an older reconciler made compose service web of project shop as shop-web-1; it is
    # shop_web now (docker stack deploy's name): Swarm renames no service, so it is replaced
    compose = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}
    old = replace(WEB, name="shop-web-1", labels=compose)
    new = replace(WEB, name="shop_web", labels=compose)
    return case(desired(new, SHOP, DATA),
                observed(_service(old), onet(SHOP), ovol("data"), images={}, resolved={REF: D2}),
                inv.Inventory.of([entry(old), entry(SHOP), entry(DATA)]), cluster=True)


@scenario
def replicas_refused_on_a_single_host() -> Case:
    return case(desired(replace(WEB, replicas=2), SHOP, DATA), up())


# external networks and volumes: used by name, never made, changed or pruned

def _external(d: models.DesiredState, nets: tuple[str, ...] = ("shop",), vols: tuple[str, ...] = ("data",)) -> models.DesiredState:
    return replace(d, external_networks=nets, external_volumes=vols)


@scenario
def external_network_and_volume_present() -> Case:
    # made by someone else (no owner label): used as they are
    return case(_external(desired(WEB)), observed(obs.ObservedNetwork(name="shop", owner=None), ovol("data", owned=False)))


@scenario
def external_network_and_volume_missing() -> Case:
    return case(_external(desired(WEB)), observed())


@scenario
def managed_network_and_volume_declared_external() -> Case:
    # once made by this owner, now external: forgotten, not pruned, and the container keeps them
    return case(_external(desired(WEB)), up(),
                inv.Inventory.of([entry(WEB), entry(SHOP), entry(DATA, deletion_policy="Delete")]))


@scenario
def ingress_port_refused_on_a_single_host() -> Case:
    return case(desired(replace(WEB, ports=(models.PortSpec("0.0.0.0", 8080, 80, "tcp", ingress=True),)),
                        SHOP, DATA), up())


SIDECAR = container("sidecar", networks=("container:web",), depends_on=("web",))


@scenario
def a_container_joining_web_is_replaced_with_it() -> Case:
    new = replace(WEB, env={"LOG_LEVEL": "debug"}, spec_hash="h-web-2")
    return case(desired(new, SIDECAR, SHOP, DATA), up(running(SIDECAR)),
                inv.Inventory.of([entry(replace(WEB, env={"LOG_LEVEL": "info"})), entry(SIDECAR)]))


@scenario
def a_start_first_joiner_goes_before_its_start_first_target() -> Case:
    # web's tag moved: its old container stops only after the pull, and the sidecar with it
    sidecar = replace(SIDECAR, update=SF.update)
    return case(desired(SF, sidecar, SHOP, DATA), up(running(sidecar), resolved={REF: D2}),
                inv.Inventory.of([entry(WEB), entry(sidecar)]), can_rename=True)


@scenario
def a_swarm_service_cannot_join_a_container() -> Case:
    return case(desired(WEB, SIDECAR, SHOP, DATA), observed(images={}, resolved={REF: D2}), cluster=True)


MIGRATE = container("migrate", job=True)
APP = container("app", depends_on=("migrate",))


@scenario
def a_failed_job_holds_back_what_depends_on_it() -> Case:
    """compose's `service_completed_successfully`: a job left stopped after a non-zero exit is
    a failure in every later pass, and what depends on it is not started."""
    return case(desired(MIGRATE, APP), observed(running(MIGRATE, status="exited", exit_code=3)))


@scenario
def a_running_job_holds_back_what_depends_on_it() -> Case:
    return case(desired(MIGRATE, APP), observed(running(MIGRATE)))


# a job on a cluster: a Swarm job service (replicated-job), seen as a container that runs a job

@scenario
def cluster_job_then_what_depends_on_it() -> Case:
    # the job's start waits for its run to complete (the rollout of a job), then app is made
    return case(desired(MIGRATE, APP), observed(images={}, resolved={REF: D2}), cluster=True)


@scenario
def cluster_completed_job_lets_what_depends_on_it_start() -> Case:
    return case(desired(MIGRATE, APP), observed(_service(MIGRATE, status="exited", exit_code=0, job=True),
                                                images={}, resolved={REF: D2}), cluster=True)


@scenario
def cluster_failed_job_holds_back_what_depends_on_it() -> Case:
    return case(desired(MIGRATE, APP), observed(_service(MIGRATE, status="exited", exit_code=3, job=True,
                                                         restart_count=1),
                                                images={}, resolved={REF: D2}), cluster=True)


@scenario
def cluster_job_made_as_a_service_is_replaced() -> Case:
    # made before jobs were Swarm jobs (a replicated service whose copy exited): Swarm cannot
    # change a service's mode
    return case(desired(MIGRATE, APP), observed(_service(MIGRATE), _service(APP), images={}, resolved={REF: D2}),
                cluster=True)


# a volume whose data the engine reports gone: refused naming what to do, never made again

@scenario
def volume_data_gone() -> Case:
    # the container that mounts it runs on (what it sees is its own business): left alone
    return case(desired(WEB, SHOP, DATA), observed(running(WEB), onet(SHOP), ovol("data", lost=True)),
                inv.Inventory.of([entry(WEB), entry(SHOP), entry(DATA)]))


@scenario
def volume_data_gone_holds_a_replacement_back() -> Case:
    # the old container is not stopped for a new one that could not mount the volume
    new = replace(WEB, env={"LOG_LEVEL": "debug"}, spec_hash="h-web-2")
    return case(desired(new, SHOP, DATA), observed(running(WEB), onet(SHOP), ovol("data", lost=True)),
                inv.Inventory.of([entry(WEB), entry(SHOP), entry(DATA)]))


@scenario
def external_volume_data_gone() -> Case:
    return case(_external(desired(WEB)), observed(obs.ObservedNetwork(name="shop", owner=None),
                                                  ovol("data", owned=False, lost=True)))


# a container off one of its networks (ObservedContainer.networks, observed.off_networks)

CONNECTS = frozenset({"created", "running", "exited"})     # dockerd's (the fake's)
NET_ID = "f" * 64
ALIASED = replace(WEB, aliases=("www",))


def on(c: models.Container, networks: dict[str, str], aliases: dict[str, tuple[str, ...]] | None = None,
       **kw: Any) -> obs.ObservedContainer:
    return running(c, networks=networks, aliases=aliases or {}, **kw)


@scenario
def a_container_on_its_networks_is_in_sync() -> Case:
    return case(desired(ALIASED, SHOP, DATA),
                observed(on(ALIASED, {"shop": NET_ID}, {"shop": ("www", "id-web")}),
                         replace(onet(SHOP), id=NET_ID), ovol("data")), connects=CONNECTS)


@scenario
def a_container_off_its_network_is_connected() -> Case:
    """`docker network disconnect shop web`: its spec did not change, its peers cannot reach it."""
    return case(desired(ALIASED, SHOP, DATA), observed(on(ALIASED, {}), onet(SHOP), ovol("data")),
                connects=CONNECTS)


@scenario
def a_container_without_its_alias_is_reconnected() -> Case:
    """Connected again by hand without `--alias`: attached, but `www` resolves to nothing."""
    return case(desired(ALIASED, SHOP, DATA),
                observed(on(ALIASED, {"shop": NET_ID}, {"shop": ("id-web",)}), replace(onet(SHOP), id=NET_ID),
                         ovol("data")), connects=CONNECTS)


@scenario
def a_network_removed_and_made_again_is_connected_again() -> Case:
    """Both containers disconnected and `docker network rm shop`: the pass makes it again, and
    connects them to it after it."""
    api = replace(API, networks=("shop",), depends_on=())
    return case(desired(WEB, api, SHOP, DATA), observed(on(WEB, {}), on(api, {}), ovol("data")),
                inv.Inventory.of([entry(SHOP)]), connects=CONNECTS)


@scenario
def a_stopped_container_on_a_network_since_removed_is_reconnected_before_its_start() -> Case:
    """Docker keeps a stopped container's endpoint by network id: after `docker network rm shop`
    (allowed while it is stopped) its start fails, "network ... not found"."""
    web = replace(WEB, restart=models.RestartPolicy("always", 0))
    return case(desired(web, SHOP, DATA),
                observed(on(web, {"shop": "e" * 64}, status="exited", exit_code=0), ovol("data")),
                inv.Inventory.of([entry(SHOP)]), connects=CONNECTS)


@scenario
def a_container_off_its_network_is_replaced_where_the_runtime_cannot_connect() -> Case:
    return case(desired(ALIASED, SHOP, DATA), observed(on(ALIASED, {}), onet(SHOP), ovol("data")))


@scenario
def a_stopped_container_off_its_network_is_noted_where_the_runtime_connects_running_ones_only() -> Case:
    return case(desired(WEB, SHOP, DATA), observed(on(WEB, {}, status="exited", exit_code=0), onet(SHOP), ovol("data")),
                connects=frozenset({"running"}))


@scenario
def an_exited_container_off_its_network_to_be_started_is_replaced_where_the_runtime_cannot_connect_it() -> Case:
    web = replace(WEB, restart=models.RestartPolicy("always", 0))
    return case(desired(web, SHOP, DATA), observed(on(web, {}, status="exited", exit_code=1), onet(SHOP), ovol("data")),
                connects=frozenset({"running"}))


@scenario
def a_drift_report_container_off_its_network_is_reported() -> Case:
    web = replace(WEB, drift="report")
    return case(desired(web, SHOP, DATA), observed(on(web, {}), onet(SHOP), ovol("data")),
                connects=CONNECTS, applied_revision=REV)


@scenario
def an_engine_that_cannot_tell_its_networks_is_not_judged_by_them() -> Case:
    # (ObservedContainer.networks None: Swarm's services)
    return case(desired(ALIASED, SHOP, DATA), up(), connects=CONNECTS)
# a container is the object its owner and name labels say, whatever the engine names it now

def renamed(c: models.Container, to: str, **kw: Any) -> obs.ObservedContainer:
    """`c`'s container, renamed by hand (`docker rename`): its labels kept."""
    return replace(running(c, **kw), name=to, id=f"id-{to}")


@scenario
def renamed_by_hand_is_named_back() -> Case:
    return case(desired(WEB, SHOP, DATA), observed(renamed(WEB, "webold"), onet(SHOP), ovol("data")), can_rename=True)


@scenario
def renamed_by_hand_and_stopped_is_named_back_then_started() -> Case:
    c = container("job", restart=models.RestartPolicy("always", 0))
    app = container("app", depends_on=("job",))
    return case(desired(c, app), observed(renamed(c, "job-x", status="exited", exit_code=137), running(app)),
                can_rename=True)


@scenario
def renamed_by_hand_on_a_runtime_that_cannot_rename_is_made_anew() -> Case:
    return case(desired(WEB, SHOP, DATA), observed(renamed(WEB, "webold"), onet(SHOP), ovol("data")))


@scenario
def renamed_by_hand_and_changed_is_named_back_then_replaced() -> Case:
    new = replace(WEB, env={"LOG_LEVEL": "debug"}, spec_hash="h-web-2")
    return case(desired(new, SHOP, DATA), observed(renamed(WEB, "webold"), onet(SHOP), ovol("data")),
                inv.Inventory.of([entry(WEB)]), can_rename=True)


@scenario
def renamed_by_hand_and_its_name_taken_by_a_stranger() -> Case:
    return case(desired(WEB, SHOP, DATA), observed(renamed(WEB, "webold"), foreign("web"), onet(SHOP), ovol("data")),
                can_rename=True)


@scenario
def renamed_by_hand_onto_the_name_of_another_object() -> Case:
    # `docker rename api web`: api is named back; web is made once its name is free (next pass)
    return case(desired(WEB, API, SHOP, DATA), observed(renamed(API, "web"), onet(SHOP), ovol("data")),
                can_rename=True)


@scenario
def a_second_copy_of_an_object_is_removed() -> Case:
    # what a version without the rule left: `web` made beside the renamed `webold`, its start
    # failed (webold holds its host port): webold goes first
    return case(desired(WEB, SHOP, DATA), observed(running(WEB, status="created"), renamed(WEB, "webold"), onet(SHOP),
                                                   ovol("data")), can_rename=True)


@scenario
def a_pruned_object_is_removed_whatever_its_name() -> Case:
    return case(desired(WEB, SHOP, DATA), up(renamed(API, "api-old")), inv.Inventory.of([entry(WEB), entry(API)]))


# what this state root's inventory does not list is another root's (a shared engine)

@scenario
def another_state_roots_objects_are_left_untouched() -> Case:
    new = replace(WEB, env={"LOG_LEVEL": "debug"}, spec_hash="h-web-2")
    return case(desired(new, SHOP, DATA), up(renamed(WEB, "webold")), this_root=False, can_rename=True)


@scenario
def another_state_roots_objects_taken_over_with_adopt() -> Case:
    new = replace(WEB, env={"LOG_LEVEL": "debug"}, spec_hash="h-web-2")
    return case(desired(new, SHOP, DATA), up(), this_root=False, adopt=True)
