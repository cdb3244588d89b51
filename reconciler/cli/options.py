"""Options shared by the commands that talk to the native engine: where its state lives.

    add_engine_options(parser)      --root, --run-dir, --oci-runtime (env: RECONCILER_ROOT,
                                    RECONCILER_RUN_DIR, RECONCILER_OCI_RUNTIME, RECONCILER_PREFIX)
    resolve(args)                   the run dir and name prefix a state root recorded (runtime.parts)

Stdlib only at import time: every CLI module imports this.
"""

from __future__ import annotations

import os

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["COMPOSE", "DECRYPTION", "DEFAULT_ROOT", "DEFAULT_RUN_DIR", "NO_DEPS", "POLICY", "SERVICES",
           "add_compose_flags", "add_decryption_flag", "add_engine_options", "add_policy_flag", "add_selection_flags",
           "add_target_flag", "check_target", "compose_source", "decryption_keys", "engine_defaults", "selection"]

DEFAULT_ROOT = "/var/lib/reconciler"
DEFAULT_RUN_DIR = "/run/reconciler"


def engine_defaults() -> dict[str, str | None]:
    """The engine options' values when not given (their environment variables, else the
    defaults): add_engine_options' defaults, and the fast path's (cli/fastpath.py)."""
    return {"root": os.environ.get("RECONCILER_ROOT", DEFAULT_ROOT), "run_dir": os.environ.get("RECONCILER_RUN_DIR"),
            "oci_runtime": os.environ.get("RECONCILER_OCI_RUNTIME", "runc"),
            "name_prefix": os.environ.get("RECONCILER_PREFIX")}


def add_engine_options(parser: argparse.ArgumentParser, *, under: bool = False) -> None:
    """Add the native engine's location options to a subcommand; `under`: to a subcommand of a
    command that has them too (`network --root X ls` and `network ls --root X` alike): no
    defaults of its own, which would override what the command's options parsed."""
    import argparse

    defaults = engine_defaults() if not under else dict.fromkeys(
        ("root", "run_dir", "oci_runtime", "name_prefix"), argparse.SUPPRESS)
    parser.add_argument("--root", default=defaults["root"],
                        help=f"state root of the native engine (default: $RECONCILER_ROOT or {DEFAULT_ROOT})")
    parser.add_argument("--run-dir", default=defaults["run_dir"],
                        help=f"run directory (default: $RECONCILER_RUN_DIR; {DEFAULT_RUN_DIR} for the default "
                        "root, /run/reconciler-<hash of the root> for any other)")
    from reconciler.cli import fastpath

    parser.add_argument("--oci-runtime", default=defaults["oci_runtime"],
                        choices=fastpath.OCI_RUNTIMES,
                        help="OCI runtime for new containers (default: runc; crun 1.8 refuses hybrid-cgroup hosts)")
    parser.add_argument("--name-prefix", default=defaults["name_prefix"],
                        help="prefix of the engine's host objects: cgroups, bridges, veths, nft table "
                        "(default: $RECONCILER_PREFIX; rcl for the default root, r<hash> for any other; "
                        "recorded in the root on first use; one root's alone on the host: a second root "
                        "with the same prefix is refused)")


def resolve(args: argparse.Namespace) -> None:
    """Fill in the run dir and name prefix a command did not name: what its state root recorded
    when first opened, else names of its own (runtime.parts.locations), once, right
    after parsing."""
    if getattr(args, "root", None) is None or not hasattr(args, "run_dir"):
        return
    if args.run_dir is not None and getattr(args, "name_prefix", "") is not None:
        return
    from reconciler.runtime import parts

    run_dir, prefix = parts.locations(args.root, args.run_dir, getattr(args, "name_prefix", None))
    if args.run_dir is None:
        args.run_dir = str(run_dir)
    if hasattr(args, "name_prefix") and args.name_prefix is None:
        args.name_prefix = prefix


def engine_exists(args: argparse.Namespace) -> bool:
    """Whether the state root the options name holds an engine yet. A read-only command (ps,
    images, volume ls) on one that does not answers with nothing instead of creating it."""
    return os.path.exists(os.path.join(args.root, "state.db"))     # no pathlib: ps starts faster (#21)


# --policy and --sops-age-key-file, described once for every parser that takes them and for apply's
# fast path (cmd_apply.SPEC): add_argument's keywords
POLICY: tuple[tuple[str, ...], str, dict[str, Any]] = (("--policy",), "policy", {
    "default": "host", "metavar": "NAME|FILE",
    "help": "what the manifests may ask of the host: host (default: anything; the caller is root already), "
            "restricted (files beneath the source, Docker's default capabilities, no host network, no push), "
            "or a policy file (docs/security.md); a refused field is a validation error"})
DECRYPTION: tuple[tuple[str, ...], str, dict[str, Any]] = (("--sops-age-key-file",), "sops_age_key_file", {
    "metavar": "FILE", "default": None,
    "help": "age identities (age-keygen's file) that open SOPS-encrypted env files; default: $SOPS_AGE_KEY_FILE, "
            "or the identities in $SOPS_AGE_KEY, as sops reads them; files encrypted to a PGP key open with "
            "gpg's keyring ($GNUPGHOME)"})


# compose's -f, -p, --project-directory and --profile, described once for validate, diff, apply (and
# its fast path: cmd_apply.SPEC) and convert: add_argument's keywords
COMPOSE: tuple[tuple[tuple[str, ...], str, dict[str, Any]], ...] = (
    (("-f", "--file"), "files", {
        "action": "append", "default": [], "metavar": "FILE",
        "help": "a compose file, relative to the current directory; repeat to merge several in order, as docker "
                "compose does (default: the files COMPOSE_FILE names, or compose.yaml and its override file, in "
                "the directory given instead); the project directory is the first file's"}),
    (("-p", "--project-name"), "project_name", {
        "default": None, "metavar": "NAME",
        "help": "the compose project's name (default: COMPOSE_PROJECT_NAME, the file's name:, or the project "
                "directory's name)"}),
    (("--project-directory",), "project_directory", {
        "default": None, "metavar": "DIR",
        "help": "with -f: the project directory (relative paths and .env start there; default: the first "
                "file's directory)"}),
    (("--profile",), "profiles", {
        "action": "append", "default": [], "metavar": "PROFILE",
        "help": "enable the services of this compose profile; repeat for several, * for all (default: "
                "COMPOSE_PROFILES, the shell's or the project's .env's); services without profiles always run"}),
)


# the services a command converges (`apply SOURCE web worker`, as `docker compose up web worker`), and
# --no-deps, described once for apply (and its fast path: cmd_apply.SPEC), diff and validate:
# (dest, metavar, help) of the positionals after SOURCE, and (flags, dest, help) of the flag
SERVICES = ("services", "SERVICE", "converge only these compose services (or Containers of manifests, by name) "
            "and what they depend on, as `docker compose up SERVICE...`: nothing else is made, changed or "
            "removed, and the result is about them; with -f every name after the options is a service")
NO_DEPS = (("--no-deps",), "no_deps", "with SERVICE names: not what they depend on, as `docker compose up "
           "--no-deps` (their containers are made and started without waiting for those)")


def add_selection_flags(parser: argparse.ArgumentParser, *, no_deps: bool = True,
                        help_text: str = SERVICES[2]) -> None:
    """SERVICE... after the source, anywhere among the options, and --no-deps (diff, validate;
    convert's without it, as `docker compose config SERVICE...`, whose output must stand alone;
    apply's are in its SPEC)."""
    from reconciler.cli import parsing

    dest, metavar, _ = SERVICES
    parser.add_argument(dest, nargs="*", metavar=metavar, help=help_text)
    parsing.intermixed(parser)
    if no_deps:
        flags, dest, help_text = NO_DEPS
        parser.add_argument(*flags, dest=dest, action="store_true", help=help_text)


def selection(args: argparse.Namespace, dest: str = "source") -> Any:
    """The services the command line selects (a spec.models.Selection; None: all of them): the
    SERVICE names, and with -f the positional `dest` too (the project directory is then the
    first file's: every name after the options is a service, as after `docker compose -f FILE
    up`). TerminalError (exit 2) for --no-deps without a name."""
    from reconciler.errors import TerminalError

    names = list(getattr(args, "services", None) or ())
    if getattr(args, "files", None) and getattr(args, dest, None) is not None:
        names.insert(0, str(getattr(args, dest)))
    if not names:
        if getattr(args, "no_deps", False):
            raise TerminalError("--no-deps leaves out what the services named depend on, and no service is named",
                                hint="name the services after the source: reconcile apply SOURCE web --no-deps")
        return None
    from reconciler.spec import models

    return models.Selection(services=tuple(dict.fromkeys(names)), deps=not getattr(args, "no_deps", False))


def add_compose_flags(parser: argparse.ArgumentParser) -> None:
    """-f FILE (repeatable), -p NAME, --project-directory DIR, --profile NAME (repeatable): a
    compose project read as `docker compose -f ... -p ... --profile ...` reads it (validate,
    diff, apply, convert)."""
    for flags, dest, keywords in COMPOSE:
        parser.add_argument(*flags, dest=dest, **keywords)


def compose_source(args: argparse.Namespace, dest: str = "source", what: str = "SOURCE") -> tuple[str, Any]:
    """What to load, and the compose options it is read with (None: the defaults), from the
    positional `dest` and the compose flags: with -f, the files (the positional left out, or,
    for a command that takes SERVICE names, the first of them: `selection`; the source is then
    the project directory, `composefiles.project_directory`, the one rule for it); else the
    positional. `--profile`s replace COMPOSE_PROFILES, as compose's do. TerminalError (exit 2)
    for a combination that says two things."""
    from reconciler.errors import TerminalError

    source = getattr(args, dest, None)
    files = list(getattr(args, "files", None) or ())
    name, directory = getattr(args, "project_name", None), getattr(args, "project_directory", None)
    profiles = tuple(getattr(args, "profiles", None) or ()) or None
    if not files:
        if directory is not None:
            raise TerminalError("--project-directory goes with -f (the project directory of the files named)",
                                hint=f"name the project directory as {what}, or the compose files with -f")
        if source is None:
            raise TerminalError(f"nothing to read: give {what} (a manifest file, a directory, or - for stdin), "
                                "or compose files with -f FILE")
        if name is None and profiles is None:
            return str(source), None
    elif source is not None and not hasattr(args, "services"):
        raise TerminalError(f"-f names the compose files, and {what} {source} names another place to read",
                            hint=f"leave {what} out (the project directory is the first file's), or use "
                            f"--project-directory {source}")
    from reconciler.spec import composefiles

    opts = composefiles.Options(files=tuple(files), project_name=name, project_directory=directory, profiles=profiles)
    return (composefiles.project_directory(opts, ".") if files else str(source)), opts


def add_policy_flag(parser: argparse.ArgumentParser) -> None:
    """--policy NAME|FILE for the commands that load manifests (apply, diff, validate)."""
    flags, dest, keywords = POLICY
    parser.add_argument(*flags, dest=dest, **keywords)


def add_target_flag(parser: argparse.ArgumentParser) -> None:
    """--runtime for the commands that load manifests without converging them (validate, convert)."""
    parser.add_argument("--runtime", default=os.environ.get("RECONCILER_RUNTIME") or None,
                        choices=("native", "docker", "swarm", "fake"),
                        help="the engine the manifests are for: what it cannot honour is an error too, as "
                        "apply and the agent report it (default: $RECONCILER_RUNTIME; unset: any engine)")


def check_target(desired: Any, runtime: str | None) -> None:
    """What the target runtime (--runtime) refuses of the containers loaded for it, as `apply`
    would find it (a SpecError), judged without an engine: the Swarm refusals that hold at every
    API version of a manager (validate, convert). The manifests are loaded for it already:
    `spec.load`'s (or `convert`'s) `cluster` and `engine`."""
    from reconciler.runtime import opening

    refusals = opening.offline_refusals(runtime or "")
    if refusals is not None and desired.containers:
        from reconciler.execution import passes

        passes.check_refusals(desired, refusals)


def add_decryption_flag(parser: argparse.ArgumentParser) -> None:
    """--sops-age-key-file FILE for the commands that load manifests (apply, diff, validate)."""
    flags, dest, keywords = DECRYPTION
    parser.add_argument(*flags, dest=dest, **keywords)


def decryption_keys(args: argparse.Namespace) -> Any:
    """The sops.Keys the flag and sops' environment variables name (KeyConfigError: exit 2),
    digesting decrypted values under the key of the command's state root, when it has one
    (`sopskeys.at_root`: apply, diff and rollback compare what the agent compares)."""
    import os

    from reconciler.spec import sopskeys

    key_file = getattr(args, "sops_age_key_file", None) or os.environ.get("SOPS_AGE_KEY_FILE") or None
    flag = "--sops-age-key-file" if getattr(args, "sops_age_key_file", None) else "SOPS_AGE_KEY_FILE"
    keys = sopskeys.load_keys(key_file, age_key=os.environ.get("SOPS_AGE_KEY"), gnupg_home=os.environ.get("GNUPGHOME"),
                              use_gpg=None,     # gpg's presence looked up when a PGP key is met
                              where=f"{flag} {key_file}" if key_file else "SOPS_AGE_KEY / gpg")
    root = getattr(args, "root", None)
    return sopskeys.at_root(keys, root) if root else keys
