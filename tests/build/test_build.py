"""Builds on the native engine: every instruction, multi-stage, cache, context safety, failures."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import errors as rterrors
from reconciler.runtime.native import procs
from reconciler.runtime.native.build import builder, dockerfile
from tests.build.conftest import Engine
from tests.helpers import hostile

pytestmark = [pytest.mark.root, pytest.mark.registry]

Ctx = Callable[..., Path]


def layer_names(engine: Engine, image: str, index: int = -1) -> list[str]:
    """Entry names of one layer blob of a stored image (read back from the content store)."""
    rec = engine.store.layer_records(engine.store.get(image).id)[index]
    with engine.store.content.open(rec.digest) as f, tarfile.open(fileobj=io.BytesIO(gzip.decompress(f.read()))) as t:
        return t.getnames()


def test_every_metadata_instruction_lands_in_the_config(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"""# syntax=docker/dockerfile:1
# escape=\\
ARG BASE={busybox_image}
FROM $BASE
ARG VERSION=1.0
ENV APP_HOME=/srv/app \\
    MODE="two words"
ENV LEGACY legacy value
LABEL org.example.version=$VERSION "quoted key"="v w"
# a comment between instructions
EXPOSE 80 53/udp 8000-8001
WORKDIR $APP_HOME
WORKDIR sub
USER 1000:1000
VOLUME ["/data", "/cache"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD ["true"]
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/bin/echo"]
CMD hello ${{MODE:-x}} ${{UNSET:-dflt}} ${{MODE:+alt}}
MAINTAINER someone
"""})
    engine.build(ctx, tags=("localhost/meta:1",), build_args={"VERSION": "2.5"})
    cfg = engine.config_of("localhost/meta:1")
    c = cfg["config"]
    assert "APP_HOME=/srv/app" in c["Env"]
    assert "MODE=two words" in c["Env"]
    assert "LEGACY=legacy value" in c["Env"]
    assert any(e.startswith("PATH=") for e in c["Env"])
    assert c["Labels"] == {"org.example.version": "2.5", "quoted key": "v w"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert c["WorkingDir"] == "/srv/app/sub"
    assert c["User"] == "1000:1000"
    assert c["Volumes"] == {"/data": {}, "/cache": {}}
    assert c["StopSignal"] == "SIGTERM"
    assert c["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5 * 10**9, "Timeout": 2 * 10**9, "Retries": 4}
    assert c["Shell"] == ["/bin/sh", "-ec"]
    assert c["Entrypoint"] == ["/bin/echo"]
    # shell form with the SHELL in force; CMD is not substituted by the builder (the shell does)
    assert c["Cmd"] == ["/bin/sh", "-ec", "hello ${MODE:-x} ${UNSET:-dflt} ${MODE:+alt}"]
    assert cfg["author"] == "someone"
    assert not any(e.startswith("VERSION=") for e in c["Env"])     # ARGs stay out of the image
    assert len(cfg["rootfs"]["diff_ids"]) == 3                     # metadata makes no layers; each
    #                                                                WORKDIR made its missing directory
    assert engine.lines[0].startswith("Step 1/17 : ARG BASE=")


def test_run_copy_add_and_the_result_runs(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({
        "Dockerfile": f"""FROM {busybox_image}
ARG WHO=world
ENV GREETING=hello
RUN echo "$GREETING $WHO" > /greeting && id -u > /uid
COPY a.txt dir/ /app/
COPY --chown=123:456 --chmod=640 a.txt /owned
ADD b.txt /added/
WORKDIR /app
RUN ["/bin/sh", "-c", "pwd > /pwd; ls /app > /listing"]
CMD ["sh", "-c", "cat /greeting /pwd /listing /added/b.txt; stat -c '%u:%g %a' /owned"]
""",
        "a.txt": "file a\n", "b.txt": "file b\n", "dir/nested/c.txt": "file c\n",
    })
    r = engine.build(ctx, tags=("localhost/app:1",), build_args={"WHO": "builder"})
    code, out = engine.run("localhost/app:1")
    assert code == 0, out
    assert out.splitlines() == ["hello builder", "/app", "a.txt", "nested", "file b", "123:456 640"]
    info = engine.store.get("localhost/app:1")
    assert info.id == r.image_id
    assert info.digest == r.digest
    assert "Step 4/10 : RUN echo \"$GREETING $WHO\" > /greeting && id -u > /uid" in engine.lines


def test_deletions_become_whiteouts(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image}
RUN mkdir -p /d/keep /e && echo 1 > /d/gone && echo 2 > /d/keep/x && echo 3 > /e/old
RUN rm /d/gone && rm -r /e && mkdir /e && echo 4 > /e/new
"""})
    engine.build(ctx, tags=("localhost/wh:1",))
    names = layer_names(engine, "localhost/wh:1")
    assert "d/.wh.gone" in names
    assert "e/.wh..wh..opq" in names or "e/.wh.old" in names
    code, out = engine.run("localhost/wh:1", "sh", "-c", "ls /d; ls /e")
    assert (code, out.split()) == (0, ["keep", "new"])
    # mount points the runtime made are not content
    assert not any(n in ("proc", "sys", "dev", "etc/hosts", "etc/resolv.conf") for n in names)


def test_multi_stage_copy_from_and_target(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image} AS build
RUN mkdir /out && echo built > /out/artifact && chown 7:8 /out/artifact
FROM {busybox_image} AS unused
RUN exit 3
FROM scratch AS final
COPY --from=build /out/artifact /artifact
COPY --from=0 /bin/busybox /bin/busybox
COPY --from={busybox_image} /bin/busybox /bin/sh
CMD ["/bin/busybox", "stat", "-c", "%u:%g", "/artifact"]
FROM final AS debug
LABEL debug=yes
"""})
    engine.build(ctx, tags=("localhost/ms:final",), target="final")
    code, out = engine.run("localhost/ms:final")
    assert (code, out.strip()) == (0, "7:8")        # ownership kept from the stage
    assert "debug" not in (engine.config_of("localhost/ms:final")["config"].get("Labels") or {})
    assert not any("exit 3" in line for line in engine.lines)   # the unused stage is skipped
    engine.build(ctx, tags=("localhost/ms:debug",))
    assert engine.config_of("localhost/ms:debug")["config"]["Labels"] == {"debug": "yes"}
    with pytest.raises(builder.BuildError, match="target stage 'nope'"):
        engine.build(ctx, target="nope")


def test_a_stage_built_from_a_stage_inherits_its_args(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """BuildKit: "An ARG variable declared within a build stage is automatically inherited by
    other stages based on that stage" (its value, a --build-arg's too; `ARG NAME` alone keeps
    it); never by a stage that only copies from it. The values are in RUN's cache key."""
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image} AS base
ARG VERSION=1.2.3
ARG OTHER=o
FROM base AS child
RUN echo "[$VERSION] [$OTHER]" > /v
ARG OTHER
RUN echo "[$OTHER]" > /o
FROM {busybox_image} AS copier
COPY --from=child /v /v
RUN echo "[$VERSION]" > /c
"""})
    engine.build(ctx, tags=("localhost/args:child",), target="child")
    code, out = engine.run("localhost/args:child", "cat", "/v", "/o")
    assert (code, out.split()) == (0, ["[1.2.3]", "[o]", "[o]"])
    engine.build(ctx, tags=("localhost/args:copier",))
    assert engine.run("localhost/args:copier", "cat", "/v", "/c")[1].split() == ["[1.2.3]", "[o]", "[]"]
    again = engine.build(ctx, tags=("localhost/args:child",), target="child", build_args={"VERSION": "9"})
    assert again.cached == 0                        # the ARGs' RUN: VERSION changed its key
    assert engine.run("localhost/args:child", "cat", "/v")[1].split() == ["[9]", "[o]"]
    assert not any("not consumed" in line for line in engine.lines)


def test_proxy_build_args_reach_run_and_nothing_else(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """BuildKit's predefined proxy args: given with --build-arg and never declared, every RUN
    gets them (upper and lower case, over an ENV of the name); they are not unconsumed build
    args, nor in the image config, its history or a step's cache key."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nENV NO_PROXY=from-env\n"
                                     "RUN env | grep -i _proxy= | sort > /proxies\n"})
    proxies = {"HTTP_PROXY": "http://proxy.example:3128", "no_proxy": "localhost,.internal", "ftp_proxy": ""}
    first = engine.build(ctx, tags=("localhost/proxy:1",), build_args=proxies)
    assert not any("not consumed" in line for line in engine.lines)
    code, out = engine.run("localhost/proxy:1", "cat", "/proxies")
    assert (code, out.split()) == (0, ["HTTP_PROXY=http://proxy.example:3128", "NO_PROXY=localhost,.internal",
                                       "http_proxy=http://proxy.example:3128", "no_proxy=localhost,.internal"])
    cfg = engine.config_of("localhost/proxy:1")
    assert [x for x in cfg["config"]["Env"] if "proxy" in x.lower()] == ["NO_PROXY=from-env"]
    assert "proxy.example" not in json.dumps(cfg)
    other = engine.build(ctx, tags=("localhost/proxy:2",), build_args={"HTTP_PROXY": "http://elsewhere:8080"})
    assert (other.cached, other.image_id) == (1, first.image_id)
    engine.build(ctx, tags=("localhost/proxy:3",), build_args={**proxies, "UNUSED": "1"})
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in engine.lines


def test_cache_hits_and_misses(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({
        "Dockerfile": f"""FROM {busybox_image}
RUN echo one > /one
COPY a.txt /a.txt
RUN cat /a.txt > /copy
COPY b.txt /b.txt
""",
        "a.txt": "a1\n", "b.txt": "b1\n",
    })
    first = engine.build(ctx, tags=("localhost/cache:1",))
    assert first.cached == 0
    again = engine.build(ctx, tags=("localhost/cache:1",))
    assert again.cached == 4
    assert again.image_id == first.image_id
    assert again.digest == first.digest
    assert engine.lines.count(" ---> Using cache") == 4
    (ctx / "a.txt").write_text("a2\n")
    changed = engine.build(ctx, tags=("localhost/cache:1",))
    assert changed.cached == 1           # the first RUN; COPY a.txt and everything after rebuild
    _code, out = engine.run("localhost/cache:1", "cat", "/copy")
    assert out.strip() == "a2"
    os.chmod(ctx / "b.txt", 0o600)       # a mode change is a change too
    assert engine.build(ctx).cached == 3
    assert engine.build(ctx, build_args={}, no_cache=True).cached == 0


def test_build_arg_changes_miss_the_run_that_sees_them(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN echo x > /x\nARG V=1\nRUN echo $V > /v\n"})
    engine.build(ctx)
    assert engine.build(ctx, build_args={"V": "1"}).cached == 2
    assert engine.build(ctx, build_args={"V": "2"}).cached == 1


def test_dockerignore(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({
        "Dockerfile": f"FROM {busybox_image}\nCOPY . /ctx/\nCMD [\"busybox\", \"find\", \"/ctx\", \"-type\", \"f\"]\n",
        ".dockerignore": "# comment\n*.log\nsecret/\n**/tmp\n!keep.log\n",
        "a.txt": "a", "x.log": "x", "keep.log": "k", "secret/key": "k", "sub/tmp": "t", "sub/ok": "o",
    })
    engine.build(ctx, tags=("localhost/ign:1",))
    _code, out = engine.run("localhost/ign:1")
    assert sorted(out.split()) == ["/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/a.txt", "/ctx/keep.log", "/ctx/sub/ok"]
    before = engine.build(ctx).image_id
    (ctx / "x.log").write_text("changed")            # ignored files do not bust the cache
    assert engine.build(ctx).image_id == before
    bad = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY x.log /\n", ".dockerignore": "*.log\n", "x.log": ""})
    with pytest.raises(builder.BuildError, match=r"excluded by \.dockerignore"):
        engine.build(bad)


def test_symlinks_never_leave_the_context(engine: Engine, context_dir: Ctx, busybox_image: str,
                                          tmp_path: Path) -> None:
    outside = tmp_path / "outside-secret"
    outside.write_text("secret")
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY link /stolen\n"})
    os.symlink(outside, ctx / "link")
    with pytest.raises(builder.BuildError, match="symlink leads outside the build context") as exc:
        engine.build(ctx)
    assert "Step 2/2 : COPY link /stolen" in str(exc.value)
    rel = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY sub/up /x\n", "sub/f": ""})
    os.symlink("../../outside-secret", rel / "sub" / "up")
    with pytest.raises(builder.BuildError, match="outside the build context"):
        engine.build(rel)
    # a link inside a copied directory is copied as a link, not read through
    inner = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY d /d\n", "d/f": "f"})
    os.symlink(outside, inner / "d" / "l")
    engine.build(inner, tags=("localhost/links:1",))
    _code, out = engine.run("localhost/links:1", "busybox", "readlink", "/d/l")
    assert out.strip() == str(outside)
    _code, out = engine.run("localhost/links:1", "cat", "/d/l")
    assert "secret" not in out


def test_failing_run_names_the_step_and_shows_its_output(engine: Engine, context_dir: Ctx,
                                                        busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN echo before\nRUN echo to-stdout; echo to-stderr >&2; exit 7\n"})
    with pytest.raises(builder.BuildError) as exc:
        engine.build(ctx)
    msg = str(exc.value)
    assert "Step 3/3 : RUN echo to-stdout; echo to-stderr >&2; exit 7" in msg
    assert "Dockerfile line 3" in msg
    assert "non-zero code: 7" in msg
    assert "to-stdout" in msg
    assert "to-stderr" in msg
    # the step before was cached, nothing is left running: the failed step's container is kept
    # exited (dockerd's rm without forcerm), the others removed
    assert engine.build(context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN echo before\n"})).cached == 1
    assert [(r.status, r.exit_code) for r in engine.manager.records()] == [("exited", 7)]


def test_run_network_is_none_by_default(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN cat /proc/net/dev > /none\n"
                                     "RUN --network=host cat /proc/net/dev > /host\n"})
    engine.build(ctx, tags=("localhost/net:1",))
    _, none = engine.run("localhost/net:1", "cat", "/none")
    _, host = engine.run("localhost/net:1", "cat", "/host")
    ifaces = [line.split(":")[0].strip() for line in none.splitlines()[2:]]
    assert ifaces == ["lo"]
    assert len(host.splitlines()) > len(none.splitlines())


def test_copy_from_with_a_variable_is_refused_as_buildkit_refuses_it(
    engine: Engine, context_dir: Ctx, busybox_image: str,
) -> None:
    """BuildKit names --from's stage or image as written: anything its lexer would change (a
    variable, quotes) is refused before the build starts, with its words and workaround; the
    build used to say "stage 'builder' was not built"; an ONBUILD trigger is checked alike."""
    words = "variable expansion is not supported for --from, define a new stage with FROM using ARG"
    for frm in ("${VAR}", "$VAR", '"builder"'):
        ctx = context_dir({"Dockerfile": f"ARG VAR=builder\nFROM {busybox_image} AS builder\nFROM {busybox_image}\n"
                                         f"ARG VAR\nCOPY --from={frm} /etc/passwd /p\n"})
        with pytest.raises(rterrors.InvalidArgument, match=rf"^Dockerfile line 5: {words}"):
            engine.build(ctx)
        assert engine.lines == []                   # refused before any step
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nONBUILD COPY --from=$X /etc/passwd /p\n"})
    engine.build(ctx, tags=("localhost/trigger-from:1",))
    ctx = context_dir({"Dockerfile": "FROM localhost/trigger-from:1\n"})
    with pytest.raises(builder.BuildError, match=f"ONBUILD trigger .* {words}"):
        engine.build(ctx)


def test_volume_keeps_a_trailing_slash_and_label_words_split_before_expansion(
    engine: Engine, context_dir: Ctx, busybox_image: str,
) -> None:
    """VOLUME paths as written (BuildKit's dispatchVolume keeps `/v3/`); ENV and LABEL words
    split as Docker's parser splits them, before expansion: a default with a blank in it must
    be quoted (`x=${U:-a b}` is refused, with Docker's words), and each side is then expanded."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nVOLUME /v1 /v3/\nVOLUME [\"/v4//\"]\n"
                                     "ENV K=key V=\"two words\"\nLABEL $K=\"${U:-a b}\" plain=$V\n"})
    engine.build(ctx, tags=("localhost/vol-label:1",))
    cfg = engine.config_of("localhost/vol-label:1")["config"]
    assert cfg["Volumes"] == {"/v1": {}, "/v3/": {}, "/v4//": {}}
    assert cfg["Labels"] == {"key": "a b", "plain": "two words"}
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nLABEL x=${{U:-a b}}\n"})
    with pytest.raises(rterrors.InvalidArgument,
                       match=r"""line 2: Syntax error - can't find = in "b}"\. Must be of the form: name=value"""):
        engine.build(ctx)


def test_unsupported_instructions_are_errors_with_their_line(engine: Engine, context_dir: Ctx,
                                                             busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nFROBNICATE x\n"})
    with pytest.raises(rterrors.InvalidArgument, match="line 2: unknown instruction: FROBNICATE"):
        engine.build(ctx)
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nVOLUME /data/../../etc\n"})
    with pytest.raises(builder.BuildError, match="absolute path without"):
        engine.build(ctx)
    ctx = context_dir({"Dockerfile": f"FROM --platform=linux/s390x {busybox_image}\n"})
    with pytest.raises(rterrors.InvalidArgument, match="line 1: FROM --platform=linux/s390x"):
        engine.build(ctx)
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY https://example.invalid/x /x\n"})
    with pytest.raises(builder.BuildError, match=r"line 2.*source can't be a URL for COPY"):
        engine.build(ctx)
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN --mount=type=ssh,required=true true\n"})
    with pytest.raises(builder.BuildError, match=r"line 2.*no SSH agent was given"):
        engine.build(ctx)


def test_user_and_workdir_apply_to_run(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image}
WORKDIR /work
USER 4242
RUN id -u > /tmp/uid; pwd > /tmp/pwd
USER root
RUN cat /tmp/uid /tmp/pwd > /out && stat -c %u /tmp/uid >> /out
"""})
    engine.build(ctx, tags=("localhost/user:1",))
    _, out = engine.run("localhost/user:1", "cat", "/out")
    assert out.split() == ["4242", "/work", "4242"]


def test_image_config_json_is_stable(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN echo x > /x\n"})
    r = engine.build(ctx, tags=("localhost/stable:1",))
    raw = engine.store.content.read(r.image_id)
    cfg = json.loads(raw)
    assert cfg["rootfs"]["diff_ids"] == list(engine.store.get(r.image_id).layers)
    assert cfg["history"][-1]["created_by"] == "/bin/sh -c echo x > /x"


def _tar(entries: list[tuple[str, bytes, int, int]], *, mode: str = "w:gz", evil_link: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:  # type: ignore[call-overload]
        for name, data, uid, perm in entries:
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE if name.endswith("/") else tarfile.REGTYPE
            ti.size, ti.uid, ti.gid, ti.mode = len(data), uid, uid, perm
            t.addfile(ti, io.BytesIO(data))
        if evil_link:
            ti = tarfile.TarInfo("escape")
            ti.type, ti.linkname = tarfile.SYMTYPE, "/etc"
            t.addfile(ti)
            ti = tarfile.TarInfo("escape/pwned")
            t.addfile(ti, io.BytesIO(b""))
    return buf.getvalue()


def test_add_unpacks_local_archives_safely(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({
        "Dockerfile": f"FROM {busybox_image}\nADD app.tar.gz plain.tar /opt/\nADD note.txt /opt/note.txt\n"
                      "ADD more.tar.bz2 more.tar.xz /opt/\n"
                      "CMD [\"sh\", \"-c\", \"stat -c '%n %u %a' /opt /opt/app/bin /opt/other /opt/bz /opt/xz; "
                      "cat /opt/note.txt\"]\n",
        # the archive's root entry does not change the destination's own owner and mode (Docker)
        "app.tar.gz": _tar([("./", b"", 9, 0o700), ("app/bin", b"#!/bin/sh\n", 42, 0o755)]),
        "plain.tar": _tar([("other", b"x", 7, 0o640)], mode="w"),
        "note.txt": "not an archive\n",
        "more.tar.bz2": _tar([("bz", b"b", 0, 0o600)], mode="w:bz2"),
        "more.tar.xz": _tar([("xz", b"x", 0, 0o604)], mode="w:xz"),
    })
    engine.build(ctx, tags=("localhost/add:1",))
    code, out = engine.run("localhost/add:1")
    assert (code, out.splitlines()) == (0, ["/opt 0 755", "/opt/app/bin 42 755", "/opt/other 7 640", "/opt/bz 0 600",
                                            "/opt/xz 0 604", "not an archive"])
    # an absolute symlink in an archive resolves inside the destination, as if it were /
    evil = context_dir({"Dockerfile": f"FROM {busybox_image}\nADD evil.tar /x/\n",
                        "evil.tar": _tar([], evil_link=True)})
    engine.build(evil, tags=("localhost/add:2",))
    assert not os.path.exists("/etc/pwned")
    assert "x/etc/pwned" in layer_names(engine, "localhost/add:2")


def test_add_of_a_hostile_archive_writes_nothing_outside_the_step(
    engine: Engine, context_dir: Ctx, tmp_path: Path,
) -> None:
    """#14 item 1: a symlink to a host directory, a hardlink through it to a host file, then a
    file over the hardlink. Unpacked on host paths this rewrote the host file's inode."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.conf"
    victim.write_text("original\n")
    ctx = context_dir({"Dockerfile": "FROM scratch\nADD evil.tar /x/\n",
                       "evil.tar": hostile.escape_by_hardlink(outside, "victim.conf", b"pwned\n")})
    with pytest.raises(builder.BuildError, match=r"evil\.tar: cannot unpack the archive: hardlink 'h'.*does not exist"):
        engine.build(ctx)
    assert victim.read_text() == "original\n"
    assert os.stat(victim).st_nlink == 1
    assert os.listdir(outside) == ["victim.conf"]


def test_add_from_is_refused_as_docker_refuses_it(engine: Engine, context_dir: Ctx, tmp_path: Path) -> None:
    """#20 item 2: Docker's ADD has no --from. This builder unpacked an archive of an earlier
    stage with it (a hostile one made by a RUN there could reach the extractor): now the parse
    refuses it with Docker's words, before any stage runs."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.conf"
    victim.write_text("original\n")
    ctx = context_dir({
        "Dockerfile": "FROM scratch AS src\nCOPY evil.tar /evil.tar\nFROM scratch\nADD --from=src /evil.tar /x/\n",
        "evil.tar": hostile.escape_by_hardlink(outside, "victim.conf", b"pwned\n")})
    with pytest.raises(dockerfile.DockerfileError, match=r"Dockerfile line 4: Unknown flag: from"):
        engine.build(ctx)
    assert victim.read_text() == "original\n"
    assert os.listdir(outside) == ["victim.conf"]


def test_add_of_a_sparse_archive_is_refused(engine: Engine, context_dir: Ctx) -> None:
    """#14 item 4: a 73-byte archive whose one sparse member is 300 MiB of holes."""
    raw = gzip.compress(hostile.sparse_gnu("big", 300 << 20))
    assert len(raw) < 100
    ctx = context_dir({"Dockerfile": "FROM scratch\nADD sparse.tar.gz /x/\n", "sparse.tar.gz": raw})
    with pytest.raises(builder.BuildError, match=r"sparse\.tar\.gz: cannot unpack the archive: tar entry 'big' is a sparse"):
        engine.build(ctx)


def test_hardlinks_and_chown_by_name(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({
        "Dockerfile": f"FROM {busybox_image}\nRUN echo x > /a && ln /a /b\nCOPY --chown=app f /owned-by-name\n"
                      "COPY --chown=app:nogroup f /owned-by-both\n"
                      "CMD [\"sh\", \"-c\", \"stat -c '%i' /a /b; stat -c '%u:%g' /owned-by-name /owned-by-both\"]\n",
        "f": "f",
    })
    engine.build(ctx, tags=("localhost/links:2",))
    rec = engine.store.layer_records(engine.store.get("localhost/links:2").id)[1]
    with engine.store.content.open(rec.digest) as f, tarfile.open(fileobj=io.BytesIO(gzip.decompress(f.read()))) as t:
        kinds = {m.name: (m.type, m.linkname) for m in t.getmembers()}
    assert sorted(kinds.values()) == [(tarfile.REGTYPE, ""), (tarfile.LNKTYPE, "a")]
    _code, out = engine.run("localhost/links:2")
    a, b, by_name, by_both = out.split()
    assert a == b                        # one inode: the hard link survived the layer
    assert (by_name, by_both) == ("1000:1000", "1000:65534")


# a user whose primary group is not its uid, and a group of that gid (the busybox image has none)
ADD_BOB = ("RUN echo 'bob:x:1001:50:bob:/home/bob:/bin/sh' >> /etc/passwd && echo 'staff:x:50:' >> /etc/group "
           "&& echo 'wheel:x:10:bob' >> /etc/group\n")


def test_chown_by_name_alone_takes_the_primary_group_of_passwd(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """BuildKit's readUser: a name is its passwd uid and gid; a number (or root) alone is uid =
    gid; a group replaces the gid; the supplementary groups that list the user change nothing."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\n{ADD_BOB}"
                                     "COPY --chown=bob f /by-name\nCOPY --chown=1001 f /by-uid\n"
                                     "COPY --chown=root f /by-root\nCOPY --chown=bob:root f /name-root\n"
                                     "COPY --chown=1001:staff f /uid-group\n", "f": "f"})
    engine.build(ctx, tags=("localhost/chown-gid:1",))
    code, out = engine.run("localhost/chown-gid:1", "stat", "-c", "%n %u:%g", "/by-name", "/by-uid", "/by-root",
                           "/name-root", "/uid-group")
    assert (code, out.splitlines()) == (0, ["/by-name 1001:50", "/by-uid 1001:1001", "/by-root 0:0",
                                            "/name-root 1001:0", "/uid-group 1001:50"])
    unknown = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY --chown=nobody-here f /f\n", "f": "f"})
    with pytest.raises(builder.BuildError, match="unable to find user nobody-here"):
        engine.build(unknown)


def test_a_system_call_failing_in_a_step_is_a_build_error_naming_the_step(
    engine: Engine, context_dir: Ctx, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An OSError from a step (a copy into a path whose parent is a file, a file gone) is a
    BuildError naming the step, its line and the path, never a traceback; a full disk is left to
    the edges, which say how much room there is."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN touch /x\nCOPY f /x/y\n", "f": "f"})
    with pytest.raises(builder.BuildError, match=r"^Step 3/3 : COPY f /x/y \(Dockerfile line 3\): .*/?x"):
        engine.build(ctx)

    def gone(*_args: object, **_kw: object) -> None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "/ctx/vanished")

    monkeypatch.setattr(builder.context, "copy_sources", gone)
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY f /f\n", "f": "f"})
    with pytest.raises(builder.BuildError) as info:
        engine.build(ctx)
    assert info.value.message == ("Step 2/2 : COPY f /f (Dockerfile line 2): '/ctx/vanished': "
                                  "No such file or directory")
    monkeypatch.setattr(engine.store, "layer_records", lambda _image_id: gone())
    with pytest.raises(builder.BuildError, match=rf"^Step 1/2 : FROM {busybox_image} \(Dockerfile line 1\): "
                                                 "'/ctx/vanished': No such file or directory$"):
        engine.build(ctx)

    def full(*_args: object, **_kw: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/root/blobs")

    monkeypatch.undo()
    monkeypatch.setattr(builder.context, "copy_sources", full)
    with pytest.raises(OSError, match="No space left") as raw:
        engine.build(ctx)
    assert not isinstance(raw.value, builder.BuildError)


def test_debris_of_a_killed_build_is_removed(engine: Engine) -> None:
    import subprocess

    from reconciler.runtime.native.containers import mounts

    proc = subprocess.Popen(["true"])
    proc.wait()                          # a pid nobody has any more
    debris = engine.builder.work / f"step-{proc.pid}-dead"
    (debris / "merged").mkdir(parents=True)
    mounts.mount_tmpfs(debris / "merged")
    mine = engine.builder.work / f"step-{os.getpid()}-live"
    mine.mkdir()
    builder.Builder(engine.store, engine.manager)
    assert not debris.exists()
    assert mine.exists()                 # a build of a live process is left alone


def _build_in_its_run_step(engine: Engine, ctx: Path) -> tuple[subprocess.Popen[str], list[Any]]:
    """`reconcile build` of `ctx` (a RUN that prints `started`, then sleeps) as a user runs it,
    once that step runs: the process and the step's container records."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "build", "--root", str(engine.config.root), "--run-dir",
         str(engine.config.run_dir), "--name-prefix", engine.config.name_prefix, "--no-cache", str(ctx)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "started":
            break
    steps = [r for r in engine.manager.records() if r.name.startswith("build-")]
    assert [r.status for r in steps] == ["running"]
    return proc, steps


def _mounted_under(root: Path) -> list[str]:
    return [ln.split(" ")[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()
            if ln.split(" ")[4].startswith(str(root) + "/")]


def test_sigterm_during_a_run_step_removes_its_container(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """SIGTERM (CI's cancel, `timeout`, systemd) ended `reconcile build` with 143 but left the
    RUN's process running in its mounted rootfs (`reconcile ps -a`: build-...); it cleans up as
    Ctrl-C does now."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN echo started; exec sleep 600\n"})
    proc, [step] = _build_in_its_run_step(engine, ctx)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert (proc.returncode, err.strip().splitlines()[-1:]) == (143, ["terminated"]), err
    assert [r.name for r in engine.manager.records()] == []
    assert not procs.alive(step.pid, step.pid_start)
    assert _mounted_under(engine.config.root) == []


def test_the_step_container_of_a_killed_build_is_removed_by_the_next_build(
    engine: Engine, context_dir: Ctx, busybox_image: str,
) -> None:
    """kill -9 leaves a build no `finally`: its step runs on, until the next build on the root
    (its first RUN) removes the step containers whose build process is gone."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN echo started; exec sleep 600\n"})
    proc, [step] = _build_in_its_run_step(engine, ctx)
    proc.kill()
    proc.communicate(timeout=120)
    assert [r.name for r in engine.manager.records()] == [step.name]     # (what kill -9 leaves)
    other = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN echo again\n"})
    engine.build(other)
    assert [r.name for r in engine.manager.records()] == []
    assert not procs.alive(step.pid, step.pid_start)
    assert _mounted_under(engine.config.root / "containers") == []


def test_an_empty_entrypoint_is_null_and_an_empty_cmd_empty(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """dockerd 20.10 stores `ENTRYPOINT []` as null (the image's entrypoint cleared) and `CMD []`
    as []; the ENTRYPOINT was stored as []."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nENTRYPOINT [\"/bin/x\"]\nENTRYPOINT []\nCMD []\n"})
    engine.build(ctx, tags=("localhost/empty-ep:1",))
    config = engine.config_of("localhost/empty-ep:1")["config"]
    assert (config.get("Entrypoint"), config.get("Cmd")) == (None, [])


def test_automatic_platform_args(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM --platform=$BUILDPLATFORM {busybox_image}\nARG TARGETARCH\n"
                                     "ARG TARGETPLATFORM\nRUN echo \"$TARGETPLATFORM $TARGETARCH\" > /p\n"})
    engine.build(ctx, tags=("localhost/plat:1",))
    _code, out = engine.run("localhost/plat:1", "cat", "/p")
    arch = engine.config_of("localhost/plat:1")["architecture"]
    assert out.strip() == f"linux/{arch} {arch}"
