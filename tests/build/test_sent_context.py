"""A build context as `--runtime docker` sends it to the engine (runtime/buildinputs.py
`SentContext`): what the ignore rules keep, the Dockerfile always, no symlink followed, and an
input digest that moves with what the build takes and with nothing else."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from reconciler.runtime import buildinputs


def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "src" / "deep").mkdir(parents=True)
    (ctx / "cache" / "keep").mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (ctx / ".dockerignore").write_text("# comment\ncache\n!cache/keep/kept.txt\n**/*.log\nDockerfile\n")
    (ctx / "src" / "app.py").write_text("print(1)\n")
    (ctx / "src" / "deep" / "x.log").write_text("noise\n")
    (ctx / "cache" / "big.bin").write_bytes(b"\0" * 100)
    (ctx / "cache" / "keep" / "kept.txt").write_text("kept\n")
    (tmp_path / "outside.txt").write_text("not in the context\n")
    os.symlink("../outside.txt", ctx / "src" / "link")
    return ctx


def test_what_is_sent_is_what_the_ignore_rules_keep_and_the_dockerfile(tmp_path: Path) -> None:
    sent = buildinputs.SentContext(str(context(tmp_path)), "Dockerfile")
    assert [rel for rel, _ in sent.entries] == [
        ".dockerignore", "Dockerfile", "cache", "cache/keep", "cache/keep/kept.txt", "src", "src/app.py",
        "src/deep", "src/link"]
    buf = io.BytesIO()
    sent.write_tar(buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["src/link"].issym()
        assert members["src/link"].linkname == "../outside.txt"        # sent as a link, never read through
        assert tar.extractfile("src/app.py").read() == b"print(1)\n"   # type: ignore[union-attr]
        assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
    assert "outside" not in buf.getvalue().decode("latin-1").replace("../outside.txt", "")


def test_the_input_digest_moves_with_what_the_build_takes_only(tmp_path: Path) -> None:
    ctx = context(tmp_path)

    def digest(args: dict[str, str] | None = None, target: str | None = None) -> str:
        return buildinputs.SentContext(str(ctx), "Dockerfile").input_digest(args or {}, target)

    first = digest()
    assert digest() == first
    (ctx / "cache" / "big.bin").write_bytes(b"\1" * 100)               # left out
    (ctx / "src" / "deep" / "more.log").write_text("more noise\n")
    assert digest() == first
    assert digest({"A": "b"}) != first
    assert digest(target="stage") != first
    (ctx / "src" / "app.py").write_text("print(2)\n")                   # taken
    second = digest()
    assert second != first
    (ctx / "src" / "app.py").chmod(0o755)                                # its mode too
    assert digest() != second


def test_a_dockerfiles_own_ignore_file_and_a_missing_dockerfile(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    (ctx / "build").mkdir()
    (ctx / "build" / "app.Dockerfile").write_text("FROM scratch\n")
    (ctx / "build" / "app.Dockerfile.dockerignore").write_text("src\n")
    sent = buildinputs.SentContext(str(ctx), "build/app.Dockerfile")
    assert [rel for rel, _ in sent.entries] == [
        ".dockerignore", "Dockerfile", "build", "build/app.Dockerfile", "build/app.Dockerfile.dockerignore",
        "cache", "cache/big.bin", "cache/keep", "cache/keep/kept.txt"]
    with pytest.raises(buildinputs.ContextError, match="no Dockerfile 'Nope'"):
        buildinputs.SentContext(str(ctx), "Nope")
    with pytest.raises(buildinputs.ContextError, match="not in the build context"):
        buildinputs.SentContext(str(ctx), "../Dockerfile")
