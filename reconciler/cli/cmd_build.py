"""`reconcile build -t NAME[:TAG] [-f FILE|-] [--build-arg K=V] [--secret ...] [--target T]
[--rm[=false]] [--force-rm] CONTEXT|-`,
`reconcile build --check [--check-error] [-f FILE] CONTEXT`.

Builds a Dockerfile on the native engine into its image store, printing Docker-style step
progress ("Step 2/6 : RUN ...", " ---> Using cache", the RUN output, the id of the image each
step left). Exit code 1 when a step fails; the error names the step and shows a failing RUN's
last output lines. A step's container is removed as `docker build`'s (--rm, --force-rm:
builder.BuildOptions): a failed RUN's stays, in `reconcile ps -a`, unless --force-rm.
`--check` only parses and lints (build/lint.py), for CI.
"""

from __future__ import annotations

import os
import re
import stat
import sys

from reconciler.cli import _agentapi, fastpath

# annotations only: a build the agent answers loads no more than the parser (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator
    from typing import Any

__all__ = ["register", "run"]


# what it takes, for its parser and the fast path alike (cli/fastpath.py): an unchanged rebuild
# loads no parser
SPEC = fastpath.Spec((
    (("--no-cache",), "no_cache", "do not use the build cache"),
    (("--pull",), "pull", "pull FROM images even when present"),
    (("-q", "--quiet"), "quiet", "print only the image id"),
    (("--check",), "check", "parse and lint the Dockerfile, build nothing: prints FILE:LINE: RULE: MESSAGE per "
     "finding (BuildKit's rule names); exit 0, or 2 when it cannot be parsed"),
    (("--check-error",), "check_error", "with --check: exit 1 when there are findings (as `# check=error=true` does)"),
), output=None, runtime=False, positional=("context", "1", "CONTEXT",
                                           "the build context directory; - reads standard input: a tar archive "
                                           "(plain or compressed) is the context, anything else is the Dockerfile, "
                                           "with an empty context"), valued=(
    (("-t", "--tag"), "tag", {"action": "append", "default": [], "metavar": "NAME[:TAG]",
                              "help": "name the image (repeatable); default tag latest"}),
    (("-f", "--file"), "file", {"default": None, "metavar": "FILE",
                                "help": "the Dockerfile, from the current directory (default: CONTEXT/Dockerfile; "
                                        "with a tar on standard input, its path in the tar); - reads it from "
                                        "standard input"}),
    (("--build-arg",), "build_arg", {
        "action": "append", "default": [], "metavar": "KEY[=VALUE]",
        "help": "set a build-time variable (KEY alone takes it from the environment); SOURCE_DATE_EPOCH=SECONDS "
                "(also taken from the environment) makes the build reproducible: image and history times are it, "
                "no file in a new layer is newer; HTTP_PROXY, HTTPS_PROXY, FTP_PROXY, NO_PROXY and ALL_PROXY (any "
                "case) reach every RUN step without an ARG, in both cases, and stay out of the image, its history "
                "and the cache"}),
), defaults={"target": None, "network": "none", "secret": [], "ssh": [], "allow": [],
              "rm": True, "force_rm": False})       # builder.BuildOptions' (dockerd's): a test holds them equal


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "build", help="build an image from a Dockerfile",
        description="Build an image from a Dockerfile and a context directory on the native engine.")
    SPEC.add_to(parser, "build")
    parser.add_argument("--target", default=SPEC.defaults["target"], metavar="STAGE",
                        help="build this stage of a multi-stage file")
    parser.add_argument("--network", default=SPEC.defaults["network"], choices=("none", "host"),
                        help="network of RUN steps (default: none)")
    parser.add_argument("--secret", action="append", default=[], metavar="id=ID,src=FILE|env=VAR",
                        help="a secret for RUN --mount=type=secret,id=ID, from a file or an environment "
                             "variable (repeatable); never stored in the image, its history or the cache")
    parser.add_argument("--ssh", action="append", default=[], metavar="ID[=SOCKET]",
                        help="an SSH agent for RUN --mount=type=ssh[,id=ID] (repeatable; ID default: "
                             "default; SOCKET default: $SSH_AUTH_SOCK); the step reaches it through a "
                             "socket of its own, never the agent's path")
    parser.add_argument("--allow", action="append", default=[], choices=("security.insecure",),
                        help="security.insecure: let RUN --security=insecure run its step with every "
                             "capability (refused without it)")
    from reconciler.cli import parsing

    parsing.add_go_bool_flag(parser, "--rm", default=bool(SPEC.defaults["rm"]),
                             help="remove each step's container once its step succeeded (a failed RUN's stays, "
                                  "for `reconcile logs`, `commit` or `rm`)")
    parsing.add_go_bool_flag(parser, "--force-rm", default=bool(SPEC.defaults["force_rm"]),
                             help="remove each step's container, a failed RUN's too")
    parser.set_defaults(run=run, no_logging=True)   # progress is printed; structlog not needed


def parse_build_args(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            if key not in os.environ:
                continue        # Docker: a bare KEY not in the environment is left unset
            value = os.environ[key]
        out[key] = value
    return out


_SECRET_MAX = 1 << 20


def parse_secrets(items: list[str]) -> dict[str, bytes]:
    """`--secret id=ID,src=FILE` or `id=ID,env=VAR` (buildx's syntax; `source`, `type=file|env`
    accepted too): the secret values by id."""
    out: dict[str, bytes] = {}
    if not items:
        return out
    from reconciler.runtime import errors

    for item in items:
        fields = dict(part.partition("=")[::2] for part in item.split(","))
        ident = fields.pop("id", "")
        src = fields.pop("src", "") or fields.pop("source", "")
        env = fields.pop("env", "")
        kind = fields.pop("type", "env" if env else "file")
        wrong = (src if kind == "env" else env or not src) or kind not in ("file", "env")
        if not ident or fields or wrong:
            raise errors.InvalidArgument(f"--secret {item!r}: give id=ID and one of src=FILE or env=VAR")
        if kind == "env":
            var = env or ident
            if var not in os.environ:
                raise errors.InvalidArgument(f"--secret {item!r}: the environment variable {var} is not set")
            out[ident] = os.environ[var].encode()
            continue
        try:
            with open(src, "rb") as f:
                value = f.read(_SECRET_MAX + 1)
        except OSError as exc:
            raise errors.InvalidArgument(f"--secret {item!r}: cannot read {src}: {exc.strerror}") from None
        if len(value) > _SECRET_MAX:
            raise errors.InvalidArgument(f"--secret {item!r}: {src} is larger than 1 MiB")
        out[ident] = value
    return out


_AT_LINE = re.compile(r"^Dockerfile line (\d+): (.*)$", re.DOTALL)


def check(args: argparse.Namespace) -> int:
    """`--check`: findings on stdout (exit 0, or 1 with --check-error); a Dockerfile that cannot
    be parsed is FILE:LINE: MESSAGE on stderr and exit 2."""
    from reconciler.runtime import errors as rterrors
    from reconciler.runtime import parts

    shown = args.file or os.path.join(args.context, "Dockerfile")
    try:
        if "-" in (args.file, args.context):            # the Dockerfile on standard input
            shown = "-"
            text = sys.stdin.buffer.read().decode("utf-8", "replace")
        else:
            with open(shown, encoding="utf-8", errors="replace") as f:     # as the build reads it (builder.py)
                text = f.read()
    except OSError as exc:
        print(f"{shown}: cannot read the Dockerfile: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        result = parts.lint_dockerfile(text)
    except rterrors.InvalidArgument as exc:             # the Dockerfile cannot be parsed
        m = _AT_LINE.match(exc.message)
        print(f"{shown}:{m.group(1)}: {m.group(2)}" if m else f"{shown}: {exc.message}", file=sys.stderr)
        return 2
    for finding in result.findings:
        print(f"{shown}:{finding.line}: {finding.rule}: {finding.message}")
    return 1 if result.findings and (args.check_error or result.error) else 0


def parse_ssh(items: list[str]) -> dict[str, str]:
    """`--ssh ID[=SOCKET]` values: agent socket paths by id."""
    out: dict[str, str] = {}
    if not items:
        return out
    from reconciler.runtime import errors as rterrors

    for item in items:
        ident, eq, path = item.partition("=")
        if not eq:
            path = os.environ.get("SSH_AUTH_SOCK", "")
            if not path:
                raise rterrors.InvalidArgument(f"--ssh {item}: SSH_AUTH_SOCK is not set",
                                               hint=f"start an agent, or give its socket: --ssh {ident}=PATH")
        try:
            is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError as exc:
            raise rterrors.InvalidArgument(f"--ssh {item}: {path}: {exc.strerror}") from None
        if not is_socket:
            raise rterrors.InvalidArgument(f"--ssh {item}: {path} is not an SSH agent socket",
                                           hint="give the agent's socket ($SSH_AUTH_SOCK); key files are not taken")
        out[ident or "default"] = path
    return out


def run(args: argparse.Namespace) -> int:
    if args.check:
        return check(args)
    if "-" not in (args.file, args.context):
        return _build(args)
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix="reconcile-build-")
    try:
        _from_stdin(args, tmp)
        return _build(args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _from_stdin(args: argparse.Namespace, tmp: str) -> None:
    """`-f -` or a context `-` (docker's forms), made paths in the directory `tmp`: standard input
    as the Dockerfile, outside the context (so COPY never sees it), or as the context (a tar
    archive, unpacked; else the Dockerfile, alone in an empty context, as `docker build -` makes
    it)."""
    from reconciler.runtime import errors

    if args.file == "-" and args.context == "-":
        raise errors.InvalidArgument("can't use standard input for both the build context and the Dockerfile",
                                     hint="give the context's directory, or the Dockerfile's path with -f")
    spool = os.path.join(tmp, "stdin")
    with open(spool, "wb") as f:
        while chunk := sys.stdin.buffer.read(1 << 20):
            f.write(chunk)
    if args.file == "-":
        args.file = spool
        return
    from reconciler.runtime import parts

    context = os.path.join(tmp, "context")
    os.mkdir(context)
    if parts.unpack_context(spool, context):
        if args.file:                   # a path in the tar (docker's)
            args.file = os.path.join(context, args.file)
    else:
        os.replace(spool, os.path.join(context, "Dockerfile"))
        args.file = None
    args.context = context


def _build(args: argparse.Namespace) -> int:
    opts = _options(args)
    # through the agent that holds the root, if one runs (#21): its warm builder answers and
    # this process loads no engine code; a build with secrets or SSH agents runs here (they
    # stay in this process), as does every build when no agent answers
    sent = {k: v for k, v in opts.items() if k not in ("secrets", "ssh")}
    values = None if opts["secrets"] or opts["ssh"] else _agentapi.streamed(args, "/v1/build", body={"options": sent})
    if values is not None:
        return _served(args, values)
    from reconciler.cli import engines
    from reconciler.runtime import parts

    def say(line: str) -> None:
        print(line, flush=True)

    hit = parts.rebuilt(args.root, opts)        # an unchanged rebuild: no builder loaded (#21)
    if hit is not None:
        image_id = hit[0]
        for line in () if args.quiet else hit[1]:
            say(line)
    else:
        image_id = parts.build_image(engines.place(args), None if args.quiet else say, **opts)
    if args.quiet:
        sys.stdout.write(image_id + "\n")
    return 0


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """builder.BuildOptions' fields from the command line; the context and the Dockerfile as
    absolute paths (an agent builds in a working directory of its own)."""
    dockerfile = args.file or "Dockerfile"
    if args.file and not os.path.isabs(args.file):
        dockerfile = os.path.abspath(args.file)
    build_args = parse_build_args(args.build_arg)
    if os.environ.get("SOURCE_DATE_EPOCH") and "SOURCE_DATE_EPOCH" not in build_args:
        build_args["SOURCE_DATE_EPOCH"] = os.environ["SOURCE_DATE_EPOCH"]     # as buildx passes it
    return dict(
        context=os.path.abspath(args.context), dockerfile=dockerfile, build_args=build_args,
        target=args.target, tags=tuple(args.tag), network=args.network, no_cache=args.no_cache, pull=args.pull,
        secrets=parse_secrets(args.secret), ssh=parse_ssh(args.ssh),
        allow_insecure="security.insecure" in args.allow, rm=args.rm, force_rm=args.force_rm,
    )


def _served(args: argparse.Namespace, values: Iterator[Any]) -> int:
    """Print what the agent's build says, as a build here prints it; its error as this
    process would raise it (message, hint, notes, exit code)."""
    from reconciler.errors import ReconcilerError

    try:
        for value in values:
            if "line" in value:
                if not args.quiet:
                    print(value["line"], flush=True)
            elif "image_id" in value:
                if args.quiet:
                    sys.stdout.write(value["image_id"] + "\n")
                return 0
            else:
                err = ReconcilerError(str(value["error"]), hint=value.get("hint"))
                err.exit_code = int(value.get("exit_code", 1))
                for note in value.get("notes") or ():
                    err.add_note(str(note))
                raise err
    except (OSError, ValueError) as e:
        raise ReconcilerError(f"the agent stopped answering during the build: {e}",
                              hint="see the agent's log; `reconcile status` says whether it runs") from None
    raise ReconcilerError("the agent ended the build without its result",
                          hint="see the agent's log; `reconcile status` says whether it runs")
