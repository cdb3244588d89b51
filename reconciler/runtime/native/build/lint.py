"""`reconcile build --check`: a Dockerfile parsed and linted, nothing built.

`check(text)` parses the Dockerfile as a build would (the same parser and the same structural
checks: a FROM first, known instructions, valid ONBUILD triggers) and returns the findings of
BuildKit's lint rules, named and worded as BuildKit's `docker build --check` names them, each
at the line of its instruction:

StageNameCasing, FromAsCasing, DuplicateStageName, ReservedStageName, NoEmptyContinuation,
ConsistentInstructionCasing, JSONArgsRecommended, MaintainerDeprecated, UndefinedArgInFrom,
WorkdirRelativePath, MultipleInstructionsDisallowed, LegacyKeyValueFormat,
RedundantTargetPlatform, SecretsUsedInArgOrEnv, FromPlatformFlagConstDisallowed,
ExposeProtoCasing.

The `# check=skip=RULE,RULE;error=true` parser directive is honoured: skipped rules (or
`skip=all`) are not reported, and `error=true` asks the caller to fail on findings.
A Dockerfile that cannot be parsed raises `dockerfile.DockerfileError`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator

from reconciler._dataclass import dataclass
from reconciler.runtime.native.build import builder, dockerfile

__all__ = ["Finding", "Result", "check"]

_SECRET = re.compile(r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)")
_NOT_SECRET = re.compile(r"(?i)(?:_|^)(?:public|file|version)(?:_|$)")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$")
_RESERVED = ("context", "scratch")
_ONCE = ("CMD", "ENTRYPOINT", "HEALTHCHECK")


@dataclass(frozen=True)
class Finding:
    """One build check's finding: the Dockerfile line, the rule and what to do."""

    line: int
    rule: str
    message: str


@dataclass(frozen=True)
class Result:
    """A Dockerfile's findings, and whether they fail the build."""

    findings: tuple[Finding, ...]
    error: bool                     # the Dockerfile's `# check=error=true`: findings fail the check


def check(text: str) -> Result:
    """Parse and lint a Dockerfile; DockerfileError when it cannot be parsed."""
    df = dockerfile.parse(text)
    builder.validate(df)
    skip, error = _directive(df.directives.get("check", ""))
    found = [f for f in sorted(_findings(df), key=lambda f: f.line) if "all" not in skip and f.rule.lower() not in skip]
    return Result(tuple(found), error)


def _directive(value: str) -> tuple[set[str], bool]:
    skip: set[str] = set()
    error = False
    for part in value.split(";"):
        key, _, val = part.strip().partition("=")
        if key.strip() == "skip":
            skip |= {x.strip().lower() for x in val.split(",") if x.strip()}
        elif key.strip() == "error":
            error = val.strip().lower() == "true"
    return skip, error


def _findings(df: dockerfile.Dockerfile) -> Iterator[Finding]:
    yield from (Finding(line, "NoEmptyContinuation", "Empty continuation line") for line in df.empty_continuations)
    yield from _casing(df.instructions)
    global_args: set[str] = set()
    stage_names: set[str] = set()
    in_stage = False
    seen: dict[str, dockerfile.Instruction] = {}
    workdir_set = shell_set = False
    for ins in df.instructions:
        if ins.cmd == "FROM":
            in_stage, seen, workdir_set, shell_set = True, {}, False, False
            yield from _from(ins, global_args, stage_names)
            continue
        if ins.cmd == "ARG":
            names = [w.partition("=")[0] for w in dockerfile.split_words(ins.args, None, escape=df.escape)]
            if not in_stage:
                global_args |= set(names)
            yield from (_secret(ins, "ARG", n) for n in names if _is_secret(n))
        elif ins.cmd in ("ENV", "LABEL"):
            yield from _key_values(ins, df.escape)
        elif ins.cmd in _ONCE:
            if ins.cmd in seen:
                yield Finding(seen[ins.cmd].line, "MultipleInstructionsDisallowed",
                              f"Multiple {ins.cmd} instructions should not be used in the same stage because "
                              "only the last one will be used")
            seen[ins.cmd] = ins
            if ins.cmd != "HEALTHCHECK" and ins.json_args is None and not shell_set:
                yield Finding(ins.line, "JSONArgsRecommended",
                              f"JSON arguments recommended for {ins.cmd} to prevent unintended behavior related "
                              "to OS signals")
        elif ins.cmd == "SHELL":
            shell_set = True
        elif ins.cmd == "MAINTAINER":
            yield Finding(ins.line, "MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label")
        elif ins.cmd == "WORKDIR":
            if not workdir_set and not ins.args.strip().startswith(("/", "$")):
                yield Finding(ins.line, "WorkdirRelativePath",
                              f'Relative workdir "{ins.args.strip()}" can have unexpected results if the base image '
                              "changes")
            workdir_set = True
        elif ins.cmd == "EXPOSE":
            for port in ins.args.split():
                if "/" in port and port.partition("/")[2] != port.partition("/")[2].lower():
                    yield Finding(ins.line, "ExposeProtoCasing",
                                  f"Defined protocol '{port}' in EXPOSE instruction should be lowercase")


def _casing(instructions: tuple[dockerfile.Instruction, ...]) -> Iterator[Finding]:
    """ConsistentInstructionCasing: each keyword upper or lower case, as most of them are."""
    words = [(ins, ins.original.split(None, 1)[0] if ins.original.strip() else ins.cmd) for ins in instructions]
    consistent = [w for _ins, w in words if w in (w.lower(), w.upper())]
    lower = sum(1 for w in consistent if w == w.lower()) > sum(1 for w in consistent if w == w.upper())
    for ins, word in words:
        want = word.lower() if lower else word.upper()
        if word != want:
            yield Finding(ins.line, "ConsistentInstructionCasing",
                          f"Command '{word}' should match the case of the command majority "
                          f"({'lowercase' if lower else 'uppercase'})")


def _from(ins: dockerfile.Instruction, global_args: set[str], stage_names: set[str]) -> Iterator[Finding]:
    words = ins.args.split()
    keyword = ins.original.split(None, 1)[0]
    if len(words) == 3:
        name, as_word = words[2], words[1]
        if name != name.lower():
            yield Finding(ins.line, "StageNameCasing", f"Stage name '{name}' should be lowercase")
        if as_word != (as_word.lower() if keyword == keyword.lower() else as_word.upper()):
            yield Finding(ins.line, "FromAsCasing", f"'{as_word}' and '{keyword}' keywords' casing do not match")
        if name.lower() in _RESERVED:
            yield Finding(ins.line, "ReservedStageName",
                          f'Stage name should not use the same name as reserved stage "{name.lower()}"')
        if name.lower() in stage_names:
            yield Finding(ins.line, "DuplicateStageName",
                          f'Duplicate stage name "{name.lower()}", stage names should be unique')
        stage_names.add(name.lower())
    known = global_args | set(builder.platform_args())
    platform = ins.flags.get("platform", "")
    for text in (words[0] if words else "", platform):
        for m in _VARIABLE.finditer(text):
            var = m.group(1) or m.group(2)
            if var not in known:
                close = difflib.get_close_matches(var, sorted(global_args), n=1)
                yield Finding(ins.line, "UndefinedArgInFrom", f"FROM argument '{var}' is not declared"
                              + (f" (did you mean {close[0]}?)" if close else ""))
    if platform in ("$TARGETPLATFORM", "${TARGETPLATFORM}"):
        yield Finding(ins.line, "RedundantTargetPlatform",
                      f"Setting platform to predefined {platform} in FROM is redundant as this is the default behavior")
    elif _PLATFORM.match(platform):
        os_name, arch = platform.split("/")[:2]
        name = words[2] if len(words) == 3 else ""
        if os_name not in name and arch not in name:
            yield Finding(ins.line, "FromPlatformFlagConstDisallowed",
                          f'FROM --platform flag should not use constant value "{platform}"')


def _key_values(ins: dockerfile.Instruction, escape: str) -> Iterator[Finding]:
    words = dockerfile.split_words(ins.args, None, escape=escape)
    if words and "=" not in words[0]:
        yield Finding(ins.line, "LegacyKeyValueFormat",
                      f'"{ins.cmd} key=value" should be used instead of legacy "{ins.cmd} key value" format')
        keys = [words[0]]
    else:
        keys = [w.partition("=")[0] for w in words]
    if ins.cmd == "ENV":
        yield from (_secret(ins, "ENV", k) for k in keys if _is_secret(k))


def _is_secret(name: str) -> bool:
    return bool(_SECRET.search(name)) and not _NOT_SECRET.search(name)


def _secret(ins: dockerfile.Instruction, kind: str, name: str) -> Finding:
    return Finding(ins.line, "SecretsUsedInArgOrEnv",
                   f'Do not use ARG or ENV instructions for sensitive data ({kind} "{name}")')
