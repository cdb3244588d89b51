"""`reconcile logout [SERVER]`: forget the credentials `login` (or `docker login`) kept for a
registry, as `docker logout`: the credential helper's `erase`, and the `auths` entries of the
Docker config (`credentials.CredentialStore.erase`). Docker Hub when no SERVER is given.

What docker prints: "Removing login credentials for SERVER", also when there were none; a helper
that could not erase them (or a config file that could not be written) is a warning, "WARNING:
could not erase credentials:" and why, and the exit is 0, as docker's. Ours adds a warning where
reconciler would still find credentials for it (DOCKER_AUTH_CONFIG, Podman's auth file), which a
logout does not touch.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "logout", help="log out from a registry (forget the credentials login kept)",
        description="Remove the credentials kept for a registry, as `docker logout`: its credential helper's "
        "erase, else its auths entries in $DOCKER_CONFIG/config.json (else ~/.docker/config.json). Defaults to "
        "Docker Hub. Exit 0, as docker's, also when the helper could not erase them or the file could not be "
        "written: a warning says so.",
    )
    parser.add_argument("server", nargs="?", default=None, metavar="SERVER",
                        help="the registry, HOST[:PORT] (default: Docker Hub)")
    parser.set_defaults(run=run, no_logging=True)


def run(args: argparse.Namespace) -> int:
    from reconciler.registry_client import credentials, errors

    try:
        registry = credentials.login_registry(args.server)
    except errors.CredentialError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    key = credentials.server_key(registry)
    store = credentials.CredentialStore()
    print(f"Removing login credentials for {key}", flush=True)
    try:
        store.erase(registry)
    except errors.RegistryError as exc:         # docker's warning, and its exit 0
        print(f"WARNING: could not erase credentials:\n{key}: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
    try:
        left = store.elsewhere(registry)
    except errors.RegistryError as exc:         # (a DOCKER_AUTH_CONFIG that is not JSON: docker reads none)
        print(f"WARNING: {exc.message}", file=sys.stderr)
        left = []
    for place in left:
        undo = "unset it" if place == "DOCKER_AUTH_CONFIG" else f"podman logout {registry}"
        print(f"WARNING: {place} still holds credentials for {key}, which reconciler uses: {undo}", file=sys.stderr)
    return 0
