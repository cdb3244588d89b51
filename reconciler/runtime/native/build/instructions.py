"""The per-instruction checks BuildKit's parser makes before a build starts.

`check(ins)` refuses what `docker build` refuses at parse time, worded as Docker words it
(`dockerfile parse error line N: ...`): unknown instructions and flags, a flag that needs a
value given without one, too few (or too many) arguments, `ENV`/`LABEL` words without a
value (words split before any expansion, as Docker's parser splits them), `COPY --from` with
anything to expand, `SHELL` not in JSON form, `HEALTHCHECK` types and option values. What only a build can
know (files, images, stages) is checked by the build.
"""

from __future__ import annotations

import re

from reconciler.runtime.native.build import dockerfile

__all__ = ["FLAGS", "INSTRUCTIONS", "check", "duration"]

INSTRUCTIONS = frozenset({
    "FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "EXPOSE", "LABEL", "CMD",
    "ENTRYPOINT", "VOLUME", "HEALTHCHECK", "STOPSIGNAL", "SHELL", "MAINTAINER", "ONBUILD",
})

# the flags each instruction takes (BuildKit's dockerfile frontend 1.x)
FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "RUN": frozenset({"mount", "network", "security"}),
    "COPY": frozenset({"from", "chown", "chmod", "link", "exclude", "parents"}),
    # (no ADD --from: Docker's ADD has none, so `Unknown flag: from` as Docker says it)
    "ADD": frozenset({"chown", "chmod", "link", "exclude", "keep-git-dir", "checksum"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval", "retries"}),
}
_BOOL_FLAGS = frozenset({"link", "keep-git-dir", "parents"})
_EXACTLY_ONE = ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER")
_AT_LEAST_ONE = ("ENV", "LABEL", "ARG", "EXPOSE", "VOLUME", "ONBUILD", "HEALTHCHECK")
_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def check(ins: dockerfile.Instruction, escape: str = "\\") -> None:
    """Refuse `ins` as Docker's parser does; DockerfileError names the line."""
    where = f"Dockerfile line {ins.line}: "
    if ins.cmd not in INSTRUCTIONS:
        raise dockerfile.DockerfileError(where + f"unknown instruction: {ins.original.split(None, 1)[0]}",
                                         hint="check its spelling; see `reconcile build --help` for what is supported")
    try:
        _flags(ins)
        _arguments(ins, escape)
    except dockerfile.DockerfileError as exc:
        raise dockerfile.DockerfileError(where + exc.message, hint=exc.hint) from None


def _flags(ins: dockerfile.Instruction) -> None:
    known = FLAGS.get(ins.cmd, frozenset())
    given = [*ins.flags, *ins.repeated]
    for name in given:
        if name not in known:
            raise dockerfile.DockerfileError(f"Unknown flag: {name}",
                                             hint=f"{ins.cmd} takes " + (", ".join(f"--{f}" for f in sorted(known)) or "no flags"))
    for name in ins.bare_flags:
        if name not in _BOOL_FLAGS:
            raise dockerfile.DockerfileError(f"Missing a value on flag: {name}", hint=f"write --{name}=VALUE")


def _arguments(ins: dockerfile.Instruction, escape: str) -> None:
    args = ins.args.strip()
    if ins.cmd in _EXACTLY_ONE and not args:        # (the whole rest of the line is the one argument)
        raise dockerfile.DockerfileError(f"{ins.cmd} requires exactly one argument")
    elif ins.cmd in _AT_LEAST_ONE and not args:
        raise dockerfile.DockerfileError(f"{ins.cmd} requires at least one argument")
    if ins.cmd in ("COPY", "ADD"):
        words = ins.json_args if ins.json_args is not None else dockerfile.raw_words(args, escape)
        if len(words) < 2:
            raise dockerfile.DockerfileError(f"{ins.cmd} requires at least two arguments, but only one was provided. "
                                             "Destination could not be determined")
        # BuildKit (toCommand): the stage or image is named as written; a word its shell lexer
        # changes (a variable, quotes, an escape) is refused before the build starts
        if "from" in ins.flags and dockerfile.substitute(ins.flags["from"], {}, escape=escape) != ins.flags["from"]:
            raise dockerfile.DockerfileError(
                "variable expansion is not supported for --from, define a new stage with FROM using ARG from "
                "global scope as a workaround", hint="ARG NAME=... before the first FROM; FROM ${NAME} AS src; "
                "COPY --from=src ...")
    elif ins.cmd in ("ENV", "LABEL"):
        words = dockerfile.raw_words(args, escape)
        if len(words) == 1 and "=" not in words[0]:
            raise dockerfile.DockerfileError(f"{ins.cmd} must have two arguments",
                                             hint=f"write {ins.cmd} {words[0]}=VALUE")
        if "=" in words[0]:         # the NAME=VALUE form: every word (split before expansion) is one
            for word in words:
                if "=" not in word:
                    raise dockerfile.DockerfileError(
                        f'Syntax error - can\'t find = in "{word}". Must be of the form: name=value',
                        hint="quote a value that has blanks in it, expansions' defaults too: NAME=\"${X:-a b}\"")
    elif ins.cmd == "SHELL" and ins.json_args is None:
        raise dockerfile.DockerfileError("SHELL requires the arguments to be in JSON form")
    elif ins.cmd == "HEALTHCHECK":
        _healthcheck(ins)


def _healthcheck(ins: dockerfile.Instruction) -> None:
    kind = ins.args.split(None, 1)[0].upper()
    if kind == "NONE":
        if ins.args.strip().upper() != "NONE" or ins.flags:
            raise dockerfile.DockerfileError("HEALTHCHECK NONE takes no arguments")
        return
    if kind != "CMD":
        raise dockerfile.DockerfileError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    for flag in ("interval", "timeout", "start-period", "start-interval"):
        if flag in ins.flags:
            duration(ins.flags[flag])
    if "retries" in ins.flags and not re.fullmatch(r"-?\d+", ins.flags["retries"]):
        raise dockerfile.DockerfileError(f'--retries: parsing "{ins.flags["retries"]}": invalid syntax',
                                         hint="give a whole number")


def duration(text: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds."""
    if re.fullmatch(r"\d+(?:\.\d+)?", text) and float(text) != 0:
        raise dockerfile.DockerfileError(f'time: missing unit in duration "{text}"', hint="write it like 30s or 1m30s")
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if text == "0":
        return 0
    if not parts or "".join(a + b for a, b in parts) != text:
        raise dockerfile.DockerfileError(f'time: invalid duration "{text}"', hint="write it like 30s or 1m30s")
    return int(sum(float(n) * _UNITS[u] for n, u in parts))
