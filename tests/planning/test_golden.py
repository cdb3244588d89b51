"""Golden plan tests: desired + observed + inventory literals → the exact plan text (compose style).

Every expected text below was read and checked by hand against DESIGN §5 when it was written;
a change of planner behaviour shows up as a text diff here. The situations are in
`scenarios.py`.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest

from reconciler.planning import actions, planner
from reconciler.spec import models
from reconciler.state import inventory as inv
from tests.planning import scenarios
from tests.planning.builders import desired, observed

EXPECTED: dict[str, str] = {
    "fresh_host": """\
[] -> #1 network:shop, ensure-network, not found
[] -> #2 volume:data, ensure-volume, not found
[] -> #3 image:registry.local:5000/shop/web:1.4, pull-image, not present locally
[1,2,3] -> #4 container:web, create, not found
[4] -> #5 container:web, start, not found
""",
    "nothing_changed": "",
    "external_network_and_volume_present": """\
[] -> #1 container:web, create, not found
[1] -> #2 container:web, start, not found
""",
    "external_network_and_volume_missing": """\
[] -> #1 network:shop, fail, external network shop does not exist: create it (docker network create shop, or a Network manifest of another source) and converge again
[] -> #2 volume:data, fail, external volume data does not exist: create it (docker volume create data, or a Volume manifest of another source) and converge again
[1,2] -> #3 container:web, create, not found
[3] -> #4 container:web, start, not found
""",
    "managed_network_and_volume_declared_external": """\
[] -> #1 network:shop, forget, declared external now: no longer managed, left in place
[] -> #2 volume:data, forget, declared external now: no longer managed, left in place
""",
    "env_change": """\
[] -> #1 container:web, stop, spec hash changed: env
      env.LOG_LEVEL: changed
      env.TOKEN: added
[1] -> #2 container:web, remove, spec hash changed: env
[2] -> #3 container:web, create, spec hash changed: env
[3] -> #4 container:web, start, spec hash changed: env
""",
    "env_file_content_change": """\
[] -> #1 container:web, stop, spec hash changed: env
      env.A: changed
[1] -> #2 container:web, remove, spec hash changed: env
[2] -> #3 container:web, create, spec hash changed: env
[3] -> #4 container:web, start, spec hash changed: env
""",
    "bind_file_content_change": """\
[] -> #1 container:web, stop, spec hash changed: referenced file content
[1] -> #2 container:web, remove, spec hash changed: referenced file content
[2] -> #3 container:web, create, spec hash changed: referenced file content
[3] -> #4 container:web, start, spec hash changed: referenced file content
""",
    "several_fields_change": """\
[] -> #1 container:web, stop, spec hash changed: command, ports, restart
      command: (none) -> ['/bin/web', '-v']
      ports: [] -> [{'host_ip': '127.0.0.1', 'host_port': 8080, 'container_port': 80, 'protocol': 'tcp'}]
      restart.name: 'no' -> 'always'
[1] -> #2 container:web, remove, spec hash changed: command, ports, restart
[2] -> #3 container:web, create, spec hash changed: command, ports, restart
[3] -> #4 container:web, start, spec hash changed: command, ports, restart
""",
    "image_tag_moved": """\
[] -> #1 image:registry.local:5000/shop/web:1.4, pull-image, tag moved: sha256:111111111111 -> sha256:222222222222
[1] -> #2 container:web, stop, image digest changed: sha256:111111111111 -> sha256:222222222222
[2] -> #3 container:web, remove, image digest changed: sha256:111111111111 -> sha256:222222222222
[3] -> #4 container:web, create, image digest changed: sha256:111111111111 -> sha256:222222222222
[4] -> #5 container:web, start, image digest changed: sha256:111111111111 -> sha256:222222222222
""",
    "image_tag_unchanged": "",
    "digest_pinned_present": "",
    "digest_pin_changed": """\
[] -> #1 image:registry.local:5000/shop/web@sha256:2222222222222222222222222222222222222222222222222222222222222222, pull-image, not present locally
[1] -> #2 container:web, stop, image digest changed: sha256:111111111111 -> sha256:222222222222
[2] -> #3 container:web, remove, image digest changed: sha256:111111111111 -> sha256:222222222222
[3] -> #4 container:web, create, image digest changed: sha256:111111111111 -> sha256:222222222222
[4] -> #5 container:web, start, image digest changed: sha256:111111111111 -> sha256:222222222222
""",
    "image_object_not_tracked": "",
    # the pull alone tells whether the tag moved: the replacement is planned in the same pass, and
    # kept by the executor when the tag still names the image the container runs
    "local_image_named_by_another_digest": "",
    "local_image_replaced_under_its_tag": """\
[] -> #1 container:web, stop, image digest changed: sha256:111111111111 -> sha256:222222222222
[1] -> #2 container:web, remove, image digest changed: sha256:111111111111 -> sha256:222222222222
[2] -> #3 container:web, create, image digest changed: sha256:111111111111 -> sha256:222222222222
[3] -> #4 container:web, start, image digest changed: sha256:111111111111 -> sha256:222222222222
""",
    "pull_always_digest_unresolved": """\
[] -> #1 image:registry.local:5000/shop/web:1.4, pull-image, pull policy always (digest not resolved)
[1] -> #2 container:web, stop, image pulled (registry digest not resolved)
[2] -> #3 container:web, remove, image pulled (registry digest not resolved)
[3] -> #4 container:web, create, image pulled (registry digest not resolved)
[4] -> #5 container:web, start, image pulled (registry digest not resolved)
""",
    "pull_always_digest_resolved_unchanged": "",
    "image_object_pull_never_absent": """\
[] -> #1 image:registry.local:5000/shop/web:1.4, fail, not present locally and pull policy is never
[1] -> #2 container:web, create, not found
[2] -> #3 container:web, start, not found
""",
    "stopped_restart_always": """\
[] -> #1 container:job, start, exited (code 137); restart policy always
""",
    "stopped_restart_unless_stopped": """\
[] -> #1 container:job, start, exited (code 137); restart policy unless-stopped
""",
    "stopped_by_hand_unless_stopped": """\
note: container:job: stopped by hand; restart policy unless-stopped keeps it stopped
""",
    "stopped_on_failure_nonzero": """\
[] -> #1 container:job, start, exited (code 1); restart policy on-failure
""",
    "stopped_on_failure_zero": """\
note: container:job: exited with code 0; restart policy on-failure leaves it stopped
""",
    "stopped_on_failure_retries_exhausted": """\
note: container:job: exited (code 1) after 3 restarts; on-failure:3 gave up
""",
    "stopped_restart_no": """\
note: container:job: exited (code 0); restart policy no leaves it stopped
""",
    "created_never_started": """\
[] -> #1 container:job, start, created but never started
""",
    "start_cut_short_restart_no": """\
[] -> #1 container:job, start, exited before its start finished (its command never ran)
""",
    "restarting_is_converging": """\
note: container:job is restarting (converging, not drift)
""",
    "paused_is_noted_not_unpaused": """\
note: container:web is paused: it runs no process until unpaused (docker unpause); reconcile does not unpause it
""",
    "stale_bind_is_noted": """\
note: container:web runs with bind mount source(s) /srv/web/app.conf no longer what it mounted (deleted, or replaced by a new file, as an editor's save or a daemon's new socket does): it still uses the old one, and what it writes there is lost at its stop; restart it (reconcile stop, then start) to mount what is there now
""",
    "dead_container": """\
[] -> #1 container:job, stop, container is dead
[1] -> #2 container:job, remove, container is dead
[2] -> #3 container:job, create, container is dead
[3] -> #4 container:job, start, container is dead
""",
    "container_removed_by_hand": """\
[] -> #1 container:web, create, not found
[1] -> #2 container:web, start, not found
""",
    "foreign_container_same_name": """\
[] -> #1 container:web, fail, name taken by a foreign container (no reconciler.owner label); left untouched: rename or remove it by hand
[1] -> #2 container:api, create, not found
[2] -> #3 container:api, start, not found
""",
    "other_owners_container_same_name": """\
[] -> #1 container:web, fail, name taken by a container of owner 'team-b'; left untouched: rename or remove it by hand
""",
    "foreign_network_same_name": """\
[] -> #1 network:shop, fail, name taken by a foreign network (no reconciler.owner label); left untouched: rename or remove it by hand
[1] -> #2 container:web, create, not found
[2] -> #3 container:web, start, not found
""",
    "foreign_volume_same_name": """\
[] -> #1 volume:data, fail, name taken by a foreign volume (no reconciler.owner label); left untouched: rename or remove it by hand (to use it with its data as it is: declare it external, `external: true` in its Volume manifest or its compose `volumes:` entry: used, never changed or pruned; on the native engine, to have the manifests own it: `reconcile volume export` it, `volume rm` it, apply, then `volume import` into the empty volume the manifests made, which keeps their labels)
[1] -> #2 container:web, create, not found
[2] -> #3 container:web, start, not found
""",
    "a_failed_job_holds_back_what_depends_on_it": """\
[] -> #1 container:migrate, fail, job failed: exited (code 3); restart policy no leaves it stopped; what depends on it is not started until it exits 0 (run it again: `reconcile start migrate`, or change its spec)
[1] -> #2 container:app, create, not found
[2] -> #3 container:app, start, not found
""",
    "a_running_job_holds_back_what_depends_on_it": """\
[] -> #1 container:migrate, hold, job running: what depends on it starts once it exited with code 0 (a later pass)
[1] -> #2 container:app, create, not found
[2] -> #3 container:app, start, not found
""",
    "cluster_job_then_what_depends_on_it": """\
[] -> #1 container:migrate, create, not found
[1] -> #2 container:migrate, start, not found
[2] -> #3 container:app, create, not found
[3] -> #4 container:app, start, not found
""",
    "cluster_completed_job_lets_what_depends_on_it_start": """\
[] -> #1 container:app, create, not found
[1] -> #2 container:app, start, not found
note: container:migrate: exited (code 0); restart policy no leaves it stopped
""",
    "cluster_failed_job_holds_back_what_depends_on_it": """\
[] -> #1 container:migrate, fail, job failed: exited (code 3); restart policy no leaves it stopped; what depends on it is not started until it exits 0 (run it again: `reconcile start migrate`, or change its spec)
[1] -> #2 container:app, create, not found
[2] -> #3 container:app, start, not found
""",
    "cluster_job_made_as_a_service_is_replaced": """\
[] -> #1 container:migrate, stop, mode replicated -> replicated-job
[1] -> #2 container:migrate, remove, mode replicated -> replicated-job
[2] -> #3 container:migrate, create, mode replicated -> replicated-job
[3] -> #4 container:migrate, start, mode replicated -> replicated-job
""",
    "dependency_chain_fresh": """\
[] -> #1 container:db, create, not found
[1] -> #2 container:db, start, not found
[2] -> #3 container:web, create, not found
[3] -> #4 container:web, start, not found
""",
    "dependency_changed_dependent_kept": """\
[] -> #1 container:db, stop, spec hash changed: env
      env.MAX: added
[1] -> #2 container:db, remove, spec hash changed: env
[2] -> #3 container:db, create, spec hash changed: env
[3] -> #4 container:db, start, spec hash changed: env
""",
    "dependency_chain_both_changed": """\
[] -> #1 container:db, stop, spec hash changed: env
      env.MAX: added
[1] -> #2 container:db, remove, spec hash changed: env
[2] -> #3 container:db, create, spec hash changed: env
[3] -> #4 container:db, start, spec hash changed: env
[4] -> #5 container:web, stop, spec hash changed: env
      env.X: added
[5] -> #6 container:web, remove, spec hash changed: env
[6] -> #7 container:web, create, spec hash changed: env
[7] -> #8 container:web, start, spec hash changed: env
""",
    "depends_on_added_only": "",
    "network_change": """\
[] -> #1 container:web, stop, network shop recreated
[1] -> #2 container:web, remove, network shop recreated
[2] -> #3 network:shop, remove-network, spec hash changed: subnet
      subnet: (none) -> '10.210.0.0/24'
[3] -> #4 network:shop, ensure-network, spec hash changed: subnet
[2,4] -> #5 container:web, create, network shop recreated
[5] -> #6 container:web, start, network shop recreated
""",
    "network_added_to_container": """\
[] -> #1 network:back, ensure-network, not found
[1] -> #2 container:web, stop, spec hash changed: networks
      networks: ['shop'] -> ['shop', 'back']
[2] -> #3 container:web, remove, spec hash changed: networks
[3] -> #4 container:web, create, spec hash changed: networks
[4] -> #5 container:web, start, spec hash changed: networks
""",
    "container_pruned": """\
[] -> #1 container:api, stop, not in desired state (prune)
[1] -> #2 container:api, remove, not in desired state (prune)
""",
    "pruned_container_already_gone": """\
[] -> #1 container:api, forget, not in desired state; already gone
""",
    "owned_but_not_in_inventory": """\
note: container:api carries our owner label but is not in this state root's inventory: left untouched (made from another state root on this engine, or by one whose state was lost; remove it by hand if unwanted)
""",
    "volume_removed_retained": """\
[] -> #1 volume:data, forget, not in desired state; data kept (deletionPolicy Retain): no longer tracked, remove it by hand if unwanted
""",
    "volume_removed_deletion_policy_delete": """\
[] -> #1 volume:data, remove-volume, not in desired state; deletionPolicy Delete
""",
    "file_deleted_containers_pruned_volume_kept": """\
[] -> #1 container:web, stop, not in desired state (prune)
[1] -> #2 container:web, remove, not in desired state (prune)
[] -> #3 volume:data, forget, not in desired state; data kept (deletionPolicy Retain): no longer tracked, remove it by hand if unwanted
""",
    "network_pruned": """\
[] -> #1 network:shop, remove-network, not in desired state (prune)
""",
    "partial_revision_prunes_nothing": "",
    "empty_revision_refused": """\
[] -> #1 revision:rev-2, fail, the revision declares nothing: refusing to prune 3 objects (pass --allow-empty to remove everything)
""",
    "empty_revision_allowed": """\
[] -> #1 container:web, stop, not in desired state (prune)
[1] -> #2 container:web, remove, not in desired state (prune)
[2] -> #3 network:shop, remove-network, not in desired state (prune)
[] -> #4 volume:data, forget, not in desired state; data kept (deletionPolicy Retain): no longer tracked, remove it by hand if unwanted
""",
    "empty_revision_empty_inventory": "",
    "failed_previous_attempt_held": """\
[] -> #1 container:web, hold, previous attempt failed (2x: health timeout); retry after 2027-01-15T08:00:50Z or with a new revision
""",
    "failed_previous_create_held": """\
[] -> #1 container:web, hold, previous attempt failed (2x: health timeout); retry after 2027-01-15T08:00:50Z or with a new revision
[1] -> #2 container:api, create, not found
[2] -> #3 container:api, start, not found
""",
    "failed_previous_attempt_new_revision": """\
[] -> #1 container:web, stop, spec hash changed: referenced file content
[1] -> #2 container:web, remove, spec hash changed: referenced file content
[2] -> #3 container:web, create, spec hash changed: referenced file content
[3] -> #4 container:web, start, spec hash changed: referenced file content
""",
    "failed_previous_attempt_backoff_expired": """\
[] -> #1 container:web, stop, spec hash changed: referenced file content
[1] -> #2 container:web, remove, spec hash changed: referenced file content
[2] -> #3 container:web, create, spec hash changed: referenced file content
[3] -> #4 container:web, start, spec hash changed: referenced file content
""",
    "start_first_update": """\
[] -> #1 container:web, create web.next, spec hash changed: env
      env.V: added
      update.health_timeout: 60.0 -> 30.0
      update.order: 'stop-first' -> 'start-first'
[1] -> #2 container:web, start web.next, spec hash changed: env
[2] -> #3 container:web, stop, spec hash changed: env
[3] -> #4 container:web, remove, spec hash changed: env
[4] -> #5 container:web, rename web.next -> web, spec hash changed: env
""",
    "start_first_with_ports_falls_back": """\
[] -> #1 container:web, stop, spec hash changed: env, ports
      env.V: added
      ports: [] -> [{'host_ip': '127.0.0.1', 'host_port': 8080, 'container_port': 80, 'protocol': 'tcp'}]
      update.health_timeout: 60.0 -> 30.0
      update.order: 'stop-first' -> 'start-first'
[1] -> #2 container:web, remove, spec hash changed: env, ports
[2] -> #3 container:web, create, spec hash changed: env, ports
[3] -> #4 container:web, start, spec hash changed: env, ports
note: container:web: start-first falls back to stop-first: it publishes host ports
""",
    "start_first_with_chosen_ports": """\
[] -> #1 container:web, create web.next, spec hash changed: env, ports
      env.V: added
      ports: [] -> [{'host_ip': '0.0.0.0', 'host_port': 0, 'container_port': 80, 'protocol': 'tcp'}]
      update.health_timeout: 60.0 -> 30.0
      update.order: 'stop-first' -> 'start-first'
[1] -> #2 container:web, start web.next, spec hash changed: env, ports
[2] -> #3 container:web, stop, spec hash changed: env, ports
[3] -> #4 container:web, remove, spec hash changed: env, ports
[4] -> #5 container:web, rename web.next -> web, spec hash changed: env, ports
""",
    "start_first_with_mac_falls_back": """\
[] -> #1 container:web, stop, spec hash changed: env, mac_addresses
      env.V: added
      mac_addresses: (none) -> {'shop': '02:00:00:00:00:01'}
      update.health_timeout: 60.0 -> 30.0
      update.order: 'stop-first' -> 'start-first'
[1] -> #2 container:web, remove, spec hash changed: env, mac_addresses
[2] -> #3 container:web, create, spec hash changed: env, mac_addresses
[3] -> #4 container:web, start, spec hash changed: env, mac_addresses
note: container:web: start-first falls back to stop-first: it has a fixed MAC address
""",
    "start_first_without_rename_falls_back": """\
[] -> #1 container:web, stop, spec hash changed: env
      env.V: added
      update.health_timeout: 60.0 -> 30.0
      update.order: 'stop-first' -> 'start-first'
[1] -> #2 container:web, remove, spec hash changed: env
[2] -> #3 container:web, create, spec hash changed: env
[3] -> #4 container:web, start, spec hash changed: env
note: container:web: start-first falls back to stop-first: the runtime cannot rename containers
""",
    "start_first_leftover_renamed_into_place": """\
[] -> #1 container:web, rename web.next -> web, left by an interrupted start-first replacement of web: its new container, renamed into place
""",
    "start_first_leftover_renamed_then_replaced": """\
[] -> #1 container:web, rename web.next -> web, left by an interrupted start-first replacement of web: its new container, renamed into place
[1] -> #2 container:web, create web.next, spec hash changed: env
      env.V: added
      update.health_timeout: 60.0 -> 30.0
      update.order: 'stop-first' -> 'start-first'
[2] -> #3 container:web, start web.next, spec hash changed: env
[3] -> #4 container:web, stop, spec hash changed: env
[4] -> #5 container:web, remove, spec hash changed: env
[5] -> #6 container:web, rename web.next -> web, spec hash changed: env
""",
    "start_first_leftover_beside_the_old": """\
[] -> #1 container:web.next, stop, left by an interrupted start-first replacement of web
[1] -> #2 container:web.next, remove, left by an interrupted start-first replacement of web
[2] -> #3 container:web, create web.next, spec hash changed: env
      env.V: added
      update.health_timeout: 60.0 -> 30.0
      update.order: 'stop-first' -> 'start-first'
[3] -> #4 container:web, start web.next, spec hash changed: env
[4] -> #5 container:web, stop, spec hash changed: env
[5] -> #6 container:web, remove, spec hash changed: env
[6] -> #7 container:web, rename web.next -> web, spec hash changed: env
""",
    "start_first_leftover_of_a_removed_container": """\
[] -> #1 container:web, forget, not in desired state; already gone
[] -> #2 container:web.next, stop, left by an interrupted start-first replacement of web
[2] -> #3 container:web.next, remove, left by an interrupted start-first replacement of web
[3] -> #4 network:shop, remove-network, not in desired state (prune)
""",
    "start_first_leftover_without_rename": """\
[] -> #1 container:web.next, remove, left by an interrupted start-first replacement of web
[1] -> #2 container:web, create, not found
[2] -> #3 container:web, start, not found
""",
    "implicit_volume": """\
[] -> #1 volume:cache, ensure-volume, not found (mounted, not declared)
[1] -> #2 container:x, create, not found
[2] -> #3 container:x, start, not found
""",
    "other_owner_objects_ignored": "",
    "pruned_container_frees_its_port_before_a_new_one_starts": """\
[] -> #1 container:old, stop, not in desired state (prune)
[1] -> #2 container:old, remove, not in desired state (prune)
[2] -> #3 container:new, create, not found
[3] -> #4 container:new, start, not found
""",
    "network_change_with_a_pruned_container_on_it": """\
[] -> #1 container:api, stop, not in desired state (prune)
[1] -> #2 container:api, remove, not in desired state (prune)
[2] -> #3 container:web, stop, network shop recreated
[3] -> #4 container:web, remove, network shop recreated
[2,4] -> #5 network:shop, remove-network, spec hash changed: subnet
      subnet: (none) -> '10.210.0.0/24'
[5] -> #6 network:shop, ensure-network, spec hash changed: subnet
[4,6] -> #7 container:web, create, network shop recreated
[7] -> #8 container:web, start, network shop recreated
""",
    "tag_moved_but_pull_never": "",
    # the agent's inputs: in a pass over the revision applied last, a `drift: report`
    # container's corrections are reported, not made, nor what waits for them
    "drift_reported_in_a_drift_check": """\
note: drift (reported only): container:web: not found
""",
    "drift_corrected_with_a_new_revision": """\
[] -> #1 container:web, create, not found
[1] -> #2 container:web, start, not found
""",
    "drift_reported_holds_back_its_dependents": """\
note: container:web: waits for container:db, held back
note: drift (reported only): container:db: spec hash changed: env
""",
    # a container over the flap limit is not started again, but a change still recreates it
    "flapping_container_left_stopped": """\
note: container:job: over the flap limit: left stopped (reported, not restarted; `reconcile start job` tries again)
""",
    "flapping_container_removed_by_hand_created_not_started": """\
[] -> #1 container:web, create, not found
note: container:web: over the flap limit: left stopped (reported, not restarted; `reconcile start web` tries again)
""",
    "flapping_container_still_recreated_on_a_change": """\
[] -> #1 container:web, stop, spec hash changed: env
      env.LOG_LEVEL: added
[1] -> #2 container:web, remove, spec hash changed: env
[2] -> #3 container:web, create, spec hash changed: env
[3] -> #4 container:web, start, spec hash changed: env
""",
    "cluster_fresh": """\
[] -> #1 network:shop, ensure-network, not found
[] -> #2 volume:data, ensure-volume, not found
[1,2] -> #3 container:web, create, not found
[3] -> #4 container:web, start, not found
""",
    "cluster_nothing_changed": "",
    "cluster_env_change": """\
[] -> #1 container:web, update, spec hash changed: env
      env.LOG_LEVEL: changed
""",
    "cluster_scale": """\
[] -> #1 container:web, update, replicas 1 -> 3
""",
    "cluster_tag_moved": """\
[] -> #1 container:web, update, image digest changed: sha256:111111111111 -> sha256:222222222222
""",
    "cluster_digest_unresolved_new_service": """\
[] -> #1 network:shop, ensure-network, not found
[] -> #2 volume:data, ensure-volume, not found
[] -> #3 image:registry.local:5000/shop/web:1.4, fail, registry digest not resolved: a service runs its image pinned by digest; check the reference and that the registry answers
[1,2,3] -> #4 container:web, create, not found
[4] -> #5 container:web, start, not found
[3,5] -> #6 container:api, create, not found
[6] -> #7 container:api, start, not found
""",
    "cluster_digest_unresolved_running_service": "",
    "cluster_service_settings_changed": """\
[] -> #1 container:web, update, service settings changed: labels, restart-delay (none) -> 4, update parallelism 1 -> 2
""",
    "cluster_service_settings_unchanged": "",
    "cluster_compose_service_made_under_its_older_name": """\
[] -> #1 container:shop-web-1, stop, renamed to shop_web (docker stack deploy's name for a compose service, <project>_<service>; Swarm cannot rename a service): removed, then made anew
[1] -> #2 container:shop-web-1, remove, renamed to shop_web (docker stack deploy's name for a compose service, <project>_<service>; Swarm cannot rename a service): removed, then made anew
[2] -> #3 container:shop_web, create, not found; replaces shop-web-1 (docker stack deploy's name for a compose service, <project>_<service>; Swarm cannot rename a service)
[3] -> #4 container:shop_web, start, not found; replaces shop-web-1 (docker stack deploy's name for a compose service, <project>_<service>; Swarm cannot rename a service)
""",
    "cluster_network_change_recreates_the_service": """\
[] -> #1 container:web, stop, network shop recreated
[1] -> #2 container:web, remove, network shop recreated
[2] -> #3 network:shop, remove-network, spec hash changed: subnet
      subnet: (none) -> '10.210.0.0/24'
[3] -> #4 network:shop, ensure-network, spec hash changed: subnet
[2,4] -> #5 container:web, create, network shop recreated
[5] -> #6 container:web, start, network shop recreated
""",
    "replicas_refused_on_a_single_host": """\
[] -> #1 container:web, fail, replicas: 2: this runtime runs one container per Container object (load the manifests for a single host: spec.load without cluster)
""",
    "ingress_port_refused_on_a_single_host": """\
[] -> #1 container:web, fail, spec.ports[0]: mode: ingress is Swarm's routing mesh (for --runtime swarm); on one host a port is published on the host: mode host
""",
    # the sidecar's network namespace was web's: it goes before web (Podman refuses to remove a
    # container another one joins) and is made again in the new one
    "a_container_joining_web_is_replaced_with_it": """\
[] -> #1 container:sidecar, stop, container:web replaced
[1] -> #2 container:sidecar, remove, container:web replaced
[2] -> #3 container:web, stop, spec hash changed: env
      env.LOG_LEVEL: changed
[3] -> #4 container:web, remove, spec hash changed: env
[4] -> #5 container:web, create, spec hash changed: env
[5] -> #6 container:web, start, spec hash changed: env
[2,6] -> #7 container:sidecar, create, container:web replaced
[7] -> #8 container:sidecar, start, container:web replaced
""",
    # the sidecar stops once the new web runs (start-first), before the old web goes
    "a_start_first_joiner_goes_before_its_start_first_target": """\
[] -> #1 image:registry.local:5000/shop/web:1.4, pull-image, tag moved: sha256:111111111111 -> sha256:222222222222
[1] -> #2 container:web, create web.next, spec hash changed: env; image digest changed: sha256:111111111111 -> sha256:222222222222
      env.V: added
      update.health_timeout: 60.0 -> 30.0
      update.order: 'stop-first' -> 'start-first'
[2] -> #3 container:web, start web.next, spec hash changed: env; image digest changed: sha256:111111111111 -> sha256:222222222222
[1,3] -> #4 container:sidecar, stop, image digest changed: sha256:111111111111 -> sha256:222222222222; container:web replaced
[4] -> #5 container:sidecar, remove, image digest changed: sha256:111111111111 -> sha256:222222222222; container:web replaced
[3,5] -> #6 container:web, stop, spec hash changed: env; image digest changed: sha256:111111111111 -> sha256:222222222222
[6] -> #7 container:web, remove, spec hash changed: env; image digest changed: sha256:111111111111 -> sha256:222222222222
[7] -> #8 container:web, rename web.next -> web, spec hash changed: env; image digest changed: sha256:111111111111 -> sha256:222222222222
[1,5,8] -> #9 container:sidecar, create, image digest changed: sha256:111111111111 -> sha256:222222222222; container:web replaced
[9] -> #10 container:sidecar, start, image digest changed: sha256:111111111111 -> sha256:222222222222; container:web replaced
note: container:sidecar: start-first falls back to stop-first: it joins container:web, which is replaced, and goes before it
""",
    "a_swarm_service_cannot_join_a_container": """\
[] -> #1 network:shop, ensure-network, not found
[] -> #2 volume:data, ensure-volume, not found
[1,2] -> #3 container:web, create, not found
[3] -> #4 container:web, start, not found
[] -> #5 container:sidecar, fail, networks: container:web: a Swarm service cannot join a container's network namespace; put both on one network, or run them with --runtime native or docker
""",
    "volume_data_gone": """\
[] -> #1 volume:data, fail, data directory gone (deleted outside the engine): remove the volume (`reconcile volume rm data`), then restore it
""",
    "volume_data_gone_holds_a_replacement_back": """\
[] -> #1 volume:data, fail, data directory gone (deleted outside the engine): remove the volume (`reconcile volume rm data`), then restore it
[1] -> #2 container:web, stop, spec hash changed: env
      env.LOG_LEVEL: added
[2] -> #3 container:web, remove, spec hash changed: env
[3] -> #4 container:web, create, spec hash changed: env
[4] -> #5 container:web, start, spec hash changed: env
""",
    "external_volume_data_gone": """\
[] -> #1 volume:data, fail, data directory gone (deleted outside the engine): remove the volume (`reconcile volume rm data`), then restore it
[1] -> #2 container:web, create, not found
[2] -> #3 container:web, start, not found
""",
    "a_container_on_its_networks_is_in_sync": "",
    "a_container_off_its_network_is_connected": """\
[] -> #1 container:web, connect, not attached to network shop
""",
    "a_container_without_its_alias_is_reconnected": """\
[] -> #1 container:web, reconnect, on network shop without alias www
""",
    "a_network_removed_and_made_again_is_connected_again": """\
[] -> #1 network:shop, ensure-network, not found
[1] -> #2 container:api, connect, not attached to network shop
[1] -> #3 container:web, connect, not attached to network shop
""",
    "a_stopped_container_on_a_network_since_removed_is_reconnected_before_its_start": """\
[] -> #1 network:shop, ensure-network, not found
[1] -> #2 container:web, reconnect, attached to network shop as it was before it was removed (network id eeeeeeeeeeee is gone)
[1,2] -> #3 container:web, start, exited (code 0); restart policy always
""",
    "a_container_off_its_network_is_replaced_where_the_runtime_cannot_connect": """\
[] -> #1 container:web, stop, not attached to network shop
[1] -> #2 container:web, remove, not attached to network shop
[2] -> #3 container:web, create, not attached to network shop
[3] -> #4 container:web, start, not attached to network shop
""",
    "a_stopped_container_off_its_network_is_noted_where_the_runtime_connects_running_ones_only": """\
note: container:web is exited, not attached to network shop: connected (or replaced) when it is to run
note: container:web: exited (code 0); restart policy no leaves it stopped
""",
    "an_exited_container_off_its_network_to_be_started_is_replaced_where_the_runtime_cannot_connect_it": """\
[] -> #1 container:web, stop, not attached to network shop
[1] -> #2 container:web, remove, not attached to network shop
[2] -> #3 container:web, create, not attached to network shop
[3] -> #4 container:web, start, not attached to network shop
""",
    "a_drift_report_container_off_its_network_is_reported": """\
note: drift (reported only): container:web: not attached to network shop
""",
    "an_engine_that_cannot_tell_its_networks_is_not_judged_by_them": "",
    "renamed_by_hand_is_named_back": """\
[] -> #1 container:web, rename, renamed to webold outside reconcile: named back
""",
    "renamed_by_hand_and_stopped_is_named_back_then_started": """\
[] -> #1 container:job, rename, renamed to job-x outside reconcile: named back
[1] -> #2 container:job, start, exited (code 137); restart policy always
""",
    "renamed_by_hand_on_a_runtime_that_cannot_rename_is_made_anew": """\
[] -> #1 container:webold, stop, renamed to webold outside reconcile; the runtime cannot rename it back: made anew
[1] -> #2 container:webold, remove, renamed to webold outside reconcile; the runtime cannot rename it back: made anew
[2] -> #3 container:web, create, not found
[3] -> #4 container:web, start, not found
""",
    "renamed_by_hand_and_changed_is_named_back_then_replaced": """\
[] -> #1 container:web, rename, renamed to webold outside reconcile: named back
[1] -> #2 container:web, stop, spec hash changed: env
      env.LOG_LEVEL: added
[2] -> #3 container:web, remove, spec hash changed: env
[3] -> #4 container:web, create, spec hash changed: env
[4] -> #5 container:web, start, spec hash changed: env
""",
    "renamed_by_hand_and_its_name_taken_by_a_stranger": """\
[] -> #1 container:web, fail, name taken by a foreign container (no reconciler.owner label); left untouched: rename or remove it by hand (its own container runs as webold: named back once the name is free)
""",
    "renamed_by_hand_onto_the_name_of_another_object": """\
[] -> #1 container:api, rename, renamed to web outside reconcile: named back
[] -> #2 container:web, fail, name taken by container:api of this owner, renamed so outside reconcile; left untouched: this pass names it back to api: converge again
""",
    "a_second_copy_of_an_object_is_removed": """\
[] -> #1 container:webold, stop, a second copy of container:web (its labels): one container per object, web is kept
[1] -> #2 container:webold, remove, a second copy of container:web (its labels): one container per object, web is kept
[2] -> #3 container:web, start, created but never started
""",
    "a_pruned_object_is_removed_whatever_its_name": """\
[] -> #1 container:api, stop, not in desired state (prune; renamed to api-old outside reconcile)
[1] -> #2 container:api, remove, not in desired state (prune; renamed to api-old outside reconcile)
""",
    "another_state_roots_objects_are_left_untouched": """\
[] -> #1 network:shop, fail, carries the labels of owner 'default', but this state root's inventory does not list it: made from another state root on this engine (or from one whose state was lost); left untouched: apply from the state root that made it, give these manifests an --owner of their own, or take the network over with --adopt
[] -> #2 volume:data, fail, carries the labels of owner 'default', but this state root's inventory does not list it: made from another state root on this engine (or from one whose state was lost); left untouched: apply from the state root that made it, give these manifests an --owner of their own, or take the volume over with --adopt
[] -> #3 container:web, fail, carries the labels of owner 'default', but this state root's inventory does not list it: made from another state root on this engine (or from one whose state was lost); left untouched: apply from the state root that made it, give these manifests an --owner of their own, or take the container over with --adopt
""",
    "another_state_roots_objects_taken_over_with_adopt": """\
[] -> #1 container:web, stop, spec hash changed: spec
[1] -> #2 container:web, remove, spec hash changed: spec
[2] -> #3 container:web, create, spec hash changed: spec
[3] -> #4 container:web, start, spec hash changed: spec
note: network:shop: not in this state root's inventory: taken over (--adopt)
note: volume:data: not in this state root's inventory: taken over (--adopt)
note: container:web: not in this state root's inventory: taken over (--adopt)
""",
}


def render(name: str) -> str:
    d, o, i, opts = scenarios.SCENARIOS[name]()
    return planner.plan(d, o, i, planner.PlanOptions(now=scenarios.NOW, **opts)).render()


def test_every_scenario_has_an_expected_text() -> None:
    assert set(EXPECTED) == set(scenarios.SCENARIOS)
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("name", sorted(scenarios.SCENARIOS))
def test_golden_plan(name: str) -> None:
    got = render(name)
    assert got == textwrap.dedent(EXPECTED[name]).rstrip("\n"), "\n" + got


@pytest.mark.parametrize("name", ["nothing_changed", "image_tag_unchanged", "digest_pinned_present", "stale_bind_is_noted",
                                  "depends_on_added_only", "other_owner_objects_ignored",
                                  "cluster_nothing_changed", "cluster_digest_unresolved_running_service",
                                  "cluster_service_settings_unchanged",
                                  "a_container_on_its_networks_is_in_sync",
                                  "an_engine_that_cannot_tell_its_networks_is_not_judged_by_them"])
def test_in_sync_plans_are_empty(name: str) -> None:
    d, o, i, opts = scenarios.SCENARIOS[name]()
    p = planner.plan(d, o, i, planner.PlanOptions(now=scenarios.NOW, **opts))
    assert p.is_empty(), "\n" + p.render()


def test_plan_is_deterministic_whatever_the_input_order() -> None:
    d, o, i, opts = scenarios.SCENARIOS["dependency_chain_both_changed"]()
    first = planner.plan(d, o, i, planner.PlanOptions(**opts)).render()
    reversed_d = replace(d, containers=dict(reversed(list(d.containers.items()))),
                         networks=dict(reversed(list(d.networks.items()))))
    reversed_o = replace(o, containers=dict(reversed(list(o.containers.items()))))
    assert planner.plan(reversed_d, reversed_o, i, planner.PlanOptions(**opts)).render() == first


def test_env_values_never_appear_in_plan_text_or_json() -> None:
    d, o, i, opts = scenarios.SCENARIOS["env_change"]()
    p = planner.plan(d, o, i, planner.PlanOptions(**opts))
    assert "s3cret" not in p.render()
    assert "s3cret" not in str(p.to_json())


def test_actions_carry_what_the_executor_needs() -> None:
    d, o, i, opts = scenarios.SCENARIOS["fresh_host"]()
    fresh = planner.plan(d, o, i, planner.PlanOptions(owner="blue", **opts))
    create = next(a for a in fresh.actions if a.kind is actions.ActionKind.CREATE)
    assert create.target == "web"
    assert create.spec is d.containers["web"]
    assert create.labels["reconciler.owner"] == "blue"
    assert create.image_digest == ""        # not known before the pull: the executor reads it after
    d, o, i, opts = scenarios.SCENARIOS["image_tag_moved"]()
    p = planner.plan(d, o, i, planner.PlanOptions(**opts))
    create = next(a for a in p.actions if a.kind is actions.ActionKind.CREATE)
    assert create.labels["reconciler.image-digest"] == scenarios.D2
    assert create.labels["reconciler.spec-hash"] == d.containers["web"].spec_hash
    assert create.labels["reconciler.revision"] == d.revision
    stop = next(a for a in p.actions if a.kind is actions.ActionKind.STOP)
    assert stop.target == "id-web"          # acts on the observed container's id


def test_a_pull_whose_digest_is_unknown_replaces_unless_the_image_stays() -> None:
    d, o, i, opts = scenarios.SCENARIOS["pull_always_digest_unresolved"]()
    p = planner.plan(d, o, i, planner.PlanOptions(**opts))
    steps = [a for a in p.actions if a.resource == "container:web"]
    assert {a.keep_if_image for a in steps} == {(scenarios.REF, "sha256:cfg1")}
    create = next(a for a in steps if a.kind is actions.ActionKind.CREATE)
    assert create.image_digest == ""        # the label: the digest the pull brought, read after it


def test_stop_first_update_carries_rollback_to_previous_config_and_image() -> None:
    d, o, i, opts = scenarios.SCENARIOS["env_change"]()
    old = next(iter(i.entries.values()))
    i = inv.Inventory.of([replace(old, config={"name": "web", "image": "x"})])
    p = planner.plan(d, o, i, planner.PlanOptions(**opts))
    start = next(a for a in p.actions if a.kind is actions.ActionKind.START)
    assert start.rollback == {"config": {"name": "web", "image": "x"}, "image_id": "sha256:cfg1"}


def test_a_leftover_renamed_into_place_carries_what_the_inventory_records_of_it() -> None:
    """The rename of a leftover that runs the desired spec carries that spec, its labels and
    the digest it runs (the inventory's config of it, as a create's); one that runs another
    spec carries none (it is replaced in the same plan, whose create records it), and its
    replacement has no config of the inventory to roll back to."""
    d, o, i, opts = scenarios.SCENARIOS["start_first_leftover_renamed_into_place"]()
    (rename,) = planner.plan(d, o, i, planner.PlanOptions(**opts)).actions
    assert (rename.kind, rename.target, rename.new_name) == (actions.ActionKind.RENAME, "web.next", "web")
    assert rename.spec == d.containers["web"]
    assert rename.image_digest == o.containers["web.next"].owner.image_digest    # type: ignore[union-attr]
    assert rename.labels["reconciler.name"] == "web"
    d, o, i, opts = scenarios.SCENARIOS["start_first_leftover_renamed_then_replaced"]()
    first = planner.plan(d, o, i, planner.PlanOptions(**opts)).actions[0]
    assert first.kind is actions.ActionKind.RENAME
    assert first.spec is None
    sf = replace(d.containers["web"], update=models.UpdatePolicy("stop-first", 30.0, 0.0, "rollback"))
    i = inv.Inventory.of([replace(e, config={"name": "web"}) for e in i.entries.values()])
    plan = planner.plan(replace(d, containers={"web": sf}), o, i, planner.PlanOptions(**opts))
    assert [a.rollback for a in plan.actions if a.kind is actions.ActionKind.START] == [None]


def test_leftovers_are_the_owners_with_their_name_label() -> None:
    _, o, _, _ = scenarios.SCENARIOS["start_first_leftover_beside_the_old"]()
    assert planner.leftovers(o.containers, "default") == {"web.next": "web"}
    assert planner.leftovers(o.containers, "other") == {}
    named = replace(o.containers["web.next"], owner=replace(o.containers["web.next"].owner, name="web.next"))
    assert planner.leftovers({"web.next": named}) == {}      # a container a manifest names web.next


def test_healthcheck_makes_start_wait_for_healthy() -> None:
    d, o, i, opts = scenarios.SCENARIOS["dependency_chain_fresh"]()
    p = planner.plan(d, o, i, planner.PlanOptions(**opts))
    db_start = next(a for a in p.actions if a.resource == "container:db" and a.kind is actions.ActionKind.START)
    web_create = next(a for a in p.actions if a.resource == "container:web" and a.kind is actions.ActionKind.CREATE)
    assert db_start.wait == actions.Wait(timeout=60.0, healthcheck=True)
    assert db_start.id in web_create.depends_on


def test_a_start_without_a_healthcheck_of_its_own_waits_for_its_images() -> None:
    """The plan cannot know the image's HEALTHCHECK (it may pull the image): the wait says to
    wait for healthy if the started container has a health status; `test: [NONE]` turns it off."""
    d, o, i, opts = scenarios.SCENARIOS["dependency_chain_fresh"]()
    web_start = next(a for a in planner.plan(d, o, i, planner.PlanOptions(**opts)).actions
                     if a.resource == "container:web" and a.kind is actions.ActionKind.START)
    assert web_start.wait == actions.Wait(timeout=60.0, healthcheck=False, image_health=True)
    off = replace(d.containers["web"], healthcheck=models.Healthcheck(("NONE",), 30, 30, 0, 3))
    d = replace(d, containers={**d.containers, "web": off})
    web_start = next(a for a in planner.plan(d, o, i, planner.PlanOptions(**opts)).actions
                     if a.resource == "container:web" and a.kind is actions.ActionKind.START)
    assert web_start.wait is None


def test_plan_json_lists_actions_with_causes_and_changes() -> None:
    d, o, i, opts = scenarios.SCENARIOS["network_change"]()
    data = planner.plan(d, o, i, planner.PlanOptions(**opts)).to_json()
    assert data["revision"] == "rev-2"
    rm = data["actions"][2]
    assert rm == {
        "id": 3, "kind": "remove-network", "resource": "network:shop",
        "cause": "spec hash changed: subnet", "depends_on": [2], "group": "recreate:network:shop",
        "changes": [{"path": "subnet", "old": None, "new": "10.210.0.0/24"}],
    }


def test_reported_drift_is_data_for_the_agent() -> None:
    d, o, i, opts = scenarios.SCENARIOS["drift_reported_holds_back_its_dependents"]()
    p = planner.plan(d, o, i, planner.PlanOptions(now=scenarios.NOW, **opts))
    assert p.is_empty()
    assert p.drift == ("container:db: spec hash changed: env",)
    assert p.to_json()["drift"] == ["container:db: spec hash changed: env"]
    assert "drift" not in planner.plan(d, o, i, planner.PlanOptions(now=scenarios.NOW)).to_json()


def test_empty_desired_on_empty_host_is_empty_plan() -> None:
    assert planner.plan(desired(), observed(), inv.Inventory(), planner.PlanOptions()).is_empty()


def test_a_cluster_pins_the_image_by_digest_and_waits_for_each_rollout() -> None:
    d, o, i, opts = scenarios.SCENARIOS["cluster_fresh"]()
    p = planner.plan(d, o, i, planner.PlanOptions(rollout_timeout=42.0, **opts))
    create = next(a for a in p.actions if a.kind is actions.ActionKind.CREATE)
    start = next(a for a in p.actions if a.kind is actions.ActionKind.START)
    assert create.image == f"{scenarios.REF}@{scenarios.D2}"
    assert create.labels["reconciler.image-digest"] == scenarios.D2
    assert start.wait == actions.Wait(timeout=42.0, healthcheck=False, rollout=True)
    d, o, i, opts = scenarios.SCENARIOS["cluster_env_change"]()
    (update,) = planner.plan(d, o, i, planner.PlanOptions(rollout_timeout=42.0, **opts)).actions
    assert (update.target, update.image, update.rollback) == ("id-web", f"{scenarios.REF}@{scenarios.D2}", None)
    assert update.wait == actions.Wait(timeout=42.0, healthcheck=False, rollout=True)
    assert update.labels["reconciler.spec-hash"] == "h-web-2"


@pytest.mark.parametrize(("engine", "network", "volume"), [
    ("native", "(reconcile network create shop, or a Network manifest of another source)",
     "(reconcile volume create data, or a Volume manifest of another source)"),
    ("podman", "(podman network create shop, or a Network manifest of another source)",
     "(podman volume create data, or a Volume manifest of another source)"),
    ("docker", "(docker network create shop, or a Network manifest of another source)",
     "(docker volume create data, or a Volume manifest of another source)"),
])
def test_a_missing_external_resource_names_a_command_of_the_engine_in_use(engine: str, network: str,
                                                                          volume: str) -> None:
    """The hint names the command of the engine in use: docker's does not reach the native engine
    (whose CLI has `network create` and `volume create`)."""
    d, o, i, opts = scenarios.SCENARIOS["external_network_and_volume_missing"]()
    causes = {a.resource: a.cause for a in planner.plan(d, o, i, planner.PlanOptions(engine=engine, **opts)).actions}
    assert causes["network:shop"] == f"external network shop does not exist: create it {network} and converge again"
    assert causes["volume:data"] == f"external volume data does not exist: create it {volume} and converge again"


def test_an_image_built_here_is_built_whatever_container_names_its_tag_first() -> None:
    """Two containers run the tag an Image object builds: one names the Image, the other (first
    by name) the tag as a plain string. The build is the reference's either way; it was skipped
    when the plain-string user came first."""
    from tests.planning.builders import container, image

    ref = "localhost/app:1"
    app = replace(image("app", ref), build=models.BuildSpec(context="/src/app", file="Dockerfile", args={},
                                                           target=None))
    d = desired(app, container("aa-plain", image=ref), container("zz-named", image=ref, image_object="app"))
    o = observed(images={})
    plan = planner.plan(d, o, inv.Inventory(), planner.PlanOptions(now=scenarios.NOW, builds={})).render()
    assert "image:localhost/app:1, build-image, not built yet" in plan
    assert "pull-image" not in plan


def test_a_connect_carries_what_the_executor_needs() -> None:
    d, o, i, opts = scenarios.SCENARIOS["a_container_without_its_alias_is_reconnected"]()
    [a] = planner.plan(d, o, i, planner.PlanOptions(**opts)).actions
    assert (a.kind, a.target, a.network, a.spec) == (actions.ActionKind.RECONNECT, "id-web", "shop", d.containers["web"])


def test_a_restarting_container_is_converging_with_no_action() -> None:
    """No action (the engine restarts it), but not in sync: `Plan.converging` names it, which
    `diff` counts (exit 1) and the plan's JSON lists."""
    d, o, i, opts = scenarios.SCENARIOS["restarting_is_converging"]()
    p = planner.plan(d, o, i, planner.PlanOptions(now=scenarios.NOW, **opts))
    assert (p.is_empty(), p.converging, p.to_json()["converging"]) == (True, ("container:job",), ["container:job"])
    d, o, i, opts = scenarios.SCENARIOS["nothing_changed"]()
    assert planner.plan(d, o, i, planner.PlanOptions(now=scenarios.NOW, **opts)).converging == ()
