"""`reconcile build --check` (#20 item 6) as CI runs it: parse and lint, build nothing;
`FILE:LINE: RULE: MESSAGE` per finding with BuildKit's rule names and wording; exit 0, 1 with
--check-error (or `# check=error=true`), 2 when the Dockerfile cannot be parsed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LINTED = """ARG BASE=busybox
FROM $BSE AS Builder
ENV DB_PASSWORD=x PUBLIC_KEY_FILE=/k VERSION=1
ARG API_TOKEN
CMD echo hi
from busybox as final
MAINTAINER me
RUN echo a \\

  b
WORKDIR rel
CMD ["a"]
CMD ["b"]
ENV OLD value
EXPOSE 80/TCP 53/udp
FROM --platform=linux/arm64 busybox
FROM --platform=$TARGETPLATFORM busybox AS scratch
FROM busybox as final
"""

EXPECTED = """\
{f}:2: StageNameCasing: Stage name 'Builder' should be lowercase
{f}:2: UndefinedArgInFrom: FROM argument 'BSE' is not declared (did you mean BASE?)
{f}:3: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV "DB_PASSWORD")
{f}:4: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG "API_TOKEN")
{f}:5: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals
{f}:6: ConsistentInstructionCasing: Command 'from' should match the case of the command majority (uppercase)
{f}:7: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label
{f}:8: NoEmptyContinuation: Empty continuation line
{f}:11: WorkdirRelativePath: Relative workdir "rel" can have unexpected results if the base image changes
{f}:12: MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because \
only the last one will be used
{f}:14: LegacyKeyValueFormat: "ENV key=value" should be used instead of legacy "ENV key value" format
{f}:15: ExposeProtoCasing: Defined protocol '80/TCP' in EXPOSE instruction should be lowercase
{f}:16: FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value "linux/arm64"
{f}:17: ReservedStageName: Stage name should not use the same name as reserved stage "scratch"
{f}:17: RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is \
the default behavior
{f}:18: FromAsCasing: 'as' and 'FROM' keywords' casing do not match
{f}:18: DuplicateStageName: Duplicate stage name "final", stage names should be unique
"""


def check(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "build", "--root", str(tmp_path / "root"), "--run-dir",
         str(tmp_path / "run"), "--check", *args], capture_output=True, text=True, timeout=60, check=False)


def context(tmp_path: Path, text: str, name: str = "Dockerfile") -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / name).write_text(text)
    return ctx


def test_findings_are_buildkits_rules_at_their_lines(tmp_path: Path) -> None:
    ctx = context(tmp_path, LINTED)
    res = check(tmp_path, str(ctx))
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == EXPECTED.format(f=ctx / "Dockerfile")
    assert check(tmp_path, "--check-error", str(ctx)).returncode == 1
    assert not (tmp_path / "root" / "build").exists()          # nothing was built, nothing pulled


def test_the_check_directive(tmp_path: Path) -> None:
    ctx = context(tmp_path, "# check=skip=JSONArgsRecommended,stagenamecasing\nFROM busybox AS Bad\nCMD echo\n"
                            "ENV A b\n")
    res = check(tmp_path, str(ctx))
    assert res.stdout.splitlines() == [
        f'{ctx / "Dockerfile"}:4: LegacyKeyValueFormat: "ENV key=value" should be used instead of legacy '
        '"ENV key value" format']
    (ctx / "Dockerfile").write_text("# check=error=true\nFROM busybox\nCMD echo\n")
    assert check(tmp_path, str(ctx)).returncode == 1
    (ctx / "Dockerfile").write_text("# check=skip=all;error=true\nFROM busybox\nCMD echo\n")
    assert (check(tmp_path, str(ctx)).returncode, check(tmp_path, str(ctx)).stdout) == (0, "")


def test_a_clean_dockerfile_passes(tmp_path: Path) -> None:
    clean = ("# syntax=docker/dockerfile:1\nARG VERSION=1\nFROM busybox:${VERSION} AS build\nWORKDIR /src\n"
             "RUN <<EOF\necho hi\nEOF\nFROM --platform=$BUILDPLATFORM busybox\nONBUILD RUN true\n"
             "COPY --from=build /src /app\nENTRYPOINT [\"/app/run\"]\nCMD [\"--help\"]\n")
    ctx = context(tmp_path, clean, "build.Dockerfile")
    res = check(tmp_path, "-f", str(ctx / "build.Dockerfile"), str(ctx))
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


@pytest.mark.parametrize(("text", "error"), [
    ("FROM busybox\nFROBNICATE x\n", ":2: unknown instruction: FROBNICATE"),
    ("FROM busybox\nRUN <<EOF\necho\n", ":2: unterminated heredoc <<EOF"),
    ("RUN true\n", ":1: no build stage in current context: RUN comes before the first FROM"),
    ("# just a comment\n", ": file with no instructions"),
    ("FROM busybox\nONBUILD FROM x\n", ":2: FROM isn't allowed as an ONBUILD trigger"),
])
def test_parse_errors_exit_2(tmp_path: Path, text: str, error: str) -> None:
    ctx = context(tmp_path, text)
    res = check(tmp_path, "--check-error", str(ctx))
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.splitlines()[0] == f"{ctx / 'Dockerfile'}{error}"
    missing = check(tmp_path, "-f", str(tmp_path / "nope"), str(ctx))
    assert missing.returncode == 2
    assert "cannot read the Dockerfile" in missing.stderr
