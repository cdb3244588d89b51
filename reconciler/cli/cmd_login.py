"""`reconcile login [SERVER]`: check credentials against a registry, then keep them where
`docker login` keeps them, so pulls and pushes (reconciler's and docker's) use them.

As docker's: `-u`/`-p`, `--password-stdin`, a prompt for what is missing on a terminal (an error
without one), Docker Hub when no SERVER is given; with neither `-u` nor `-p`, the credentials
kept already are tried first ("Authenticating with existing credentials..."). The registry is
asked first (GET /v2/ through its Basic or token flow: registry_client `check_login`); refused,
nothing is kept (exit 1). Kept by `credentials.CredentialStore.save`: the registry's credential
helper, else `auths` in `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`), 0600.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]

EXISTING_NOTE = ("To login with a different account, run 'reconcile logout' followed by 'reconcile login'")
UNENCRYPTED = ("\nWARNING! Your credentials are stored unencrypted in '{path}'.\n"
               "Configure a credential helper to remove this warning. See\n"
               "https://docs.docker.com/go/credential-store/\n")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "login", help="log in to a registry (credentials kept where docker keeps them)",
        description="Check credentials against a registry, then keep them where `docker login` does: the "
        "registry's credential helper (credHelpers, credsStore), else auths in $DOCKER_CONFIG/config.json "
        "(else ~/.docker/config.json, mode 0600). Defaults to Docker Hub. Exit 0 logged in, 1 refused or "
        "not kept (nothing kept), 2 usage.",
    )
    parser.add_argument("server", nargs="?", default=None, metavar="SERVER",
                        help="the registry, HOST[:PORT] (default: Docker Hub)")
    parser.add_argument("-u", "--username", default=None, help="username")
    parser.add_argument("-p", "--password", default=None,
                        help="password or access token (insecure: it shows in the process list and shell "
                        "history; use --password-stdin)")
    parser.add_argument("--password-stdin", action="store_true", help="take the password or access token from stdin")
    parser.set_defaults(run=run, no_logging=True)


def _password_from(args: argparse.Namespace) -> str | None:
    """The password -p or stdin gave (docker's rules and words), or None; _Usage on a usage error."""
    if args.password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
        if args.password_stdin:
            raise _Usage("conflicting options: cannot specify both --password and --password-stdin")
        return str(args.password) or None
    if args.password_stdin:
        if not args.username:
            raise _Usage("the --password-stdin option requires --username to be set")
        text = sys.stdin.read().removesuffix("\n").removesuffix("\r")
        if not text:
            raise _Usage("--password-stdin: stdin gave no password")
        return text
    return None


class _Usage(Exception):
    """A usage error: printed, exit 2, nothing asked or kept."""


def _prompt(username: str | None, password: str | None, default_user: str) -> tuple[str, str]:
    """Ask for what is missing, as docker's prompts do: on a terminal only."""
    if username and password:
        return username, password
    if not sys.stdin.isatty():
        raise _Refused("cannot perform an interactive login from a non TTY device",
                       "give the username with -u and the password on stdin with --password-stdin")
    if not username:
        shown = f"Username ({default_user}): " if default_user else "Username: "
        username = input(shown).strip() or default_user
        if not username:
            raise _Refused("a username is required", "type one, or give it with -u")
    if not password:
        import getpass

        password = getpass.getpass("Password: ").strip()
        if not password:
            raise _Refused("a password is required", "type it, or give it on stdin with --password-stdin")
    return username, password


class _Refused(Exception):
    """The login cannot go on (no terminal to ask on, nothing typed): exit 1, nothing kept."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(f"{message}\n  hint: {hint}")


def _check(registry: str, cred: Any) -> str | None:
    """Ask the registry whether it takes `cred`; the identity token its token server gave."""
    from reconciler.registry_client import client, credentials

    store = credentials.CredentialStore(static={registry: cred})
    with client.RegistryClient(credentials=store, retries=1, timeout=30.0) as reg:
        return reg.check_login(registry)


def _existing(store: Any, registry: str) -> tuple[str | None, str]:
    """Docker's first step with neither -u nor -p: the credentials kept already for `registry`,
    tried; (the status to print, or None when they did not do; the username to offer)."""
    from reconciler.registry_client import errors

    kept = store.stored(registry)
    if kept is None or not kept.username or not kept.password:
        return None, kept.username if kept is not None else ""
    print(f"Authenticating with existing credentials... [Username: {kept.username}]\n\n"
          f" Info -> {EXISTING_NOTE}\n\n", file=sys.stderr)
    try:
        token = _check(registry, kept)
    except errors.Unauthorized:
        print("Stored credentials invalid or expired", file=sys.stderr)
        return None, kept.username
    except errors.RegistryError as exc:
        print(f"Login did not succeed, error: {exc.message}", file=sys.stderr)
        return None, kept.username
    _keep(store, registry, kept, token)
    return "Login Succeeded", kept.username


def _keep(store: Any, registry: str, cred: Any, token: str | None) -> None:
    from reconciler.registry_client import credentials

    if token is not None:               # the token server's refresh token stands for the password
        cred = credentials.Credential(cred.username, "", identity_token=token)
    saved = store.save(registry, cred)
    if saved.in_clear:
        print(UNENCRYPTED.format(path=saved.where), file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from reconciler.registry_client import credentials, errors

    try:
        password = _password_from(args)
        registry = credentials.login_registry(args.server)
    except (_Usage, errors.CredentialError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = credentials.CredentialStore()
    try:
        if "DOCKER_AUTH_CONFIG" in store.elsewhere(registry):
            print(f"WARNING: DOCKER_AUTH_CONFIG has credentials for {credentials.server_key(registry)} and takes "
                  "precedence over the ones kept by login.\nUnset DOCKER_AUTH_CONFIG to use them.", file=sys.stderr)
        status, default_user = (None, "")
        if not args.username and password is None:
            status, default_user = _existing(store, registry)
        if status is None:
            username, password = _prompt(args.username, password, default_user)
            cred = credentials.Credential(username, password)
            _keep(store, registry, cred, _check(registry, cred))
            status = "Login Succeeded"
    except (_Refused, errors.RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except EOFError:                    # the terminal closed at a prompt
        print("error: no username or password typed: nothing kept", file=sys.stderr)
        return 1
    print(status)
    return 0
