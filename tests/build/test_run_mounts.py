"""RUN --mount (#20 item 5) on the native engine: cache mounts that persist across builds under
the state root, tmpfs, binds from the context and from a stage (read-only unless rw), and
secrets from `reconcile build --secret` that no layer, history, cache key or file of the
state root ever holds."""

from __future__ import annotations

import gzip
import io
import os
import secrets
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.build import builder, dockerfile, runmounts
from tests.build.conftest import Engine

pytestmark = [pytest.mark.root, pytest.mark.registry]

Ctx = Callable[..., Path]


def layer_names(engine: Engine, image: str) -> list[str]:
    names: list[str] = []
    for rec in engine.store.layer_records(engine.store.get(image).id)[1:]:       # above busybox
        with engine.store.content.open(rec.digest) as f, tarfile.open(fileobj=io.BytesIO(gzip.decompress(f.read()))) as t:
            names += t.getnames()
    return names


def test_cache_mounts_persist_across_builds(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image}
RUN --mount=type=cache,target=/root/.cache/pkg echo run >> /root/.cache/pkg/log && wc -l < /root/.cache/pkg/log > /count
RUN --mount=type=cache,id=shared,target=/a,mode=0750,uid=1000,gid=65534 \\
    --mount=type=cache,id=shared,target=b,sharing=locked \\
    echo via-a > /a/f && cat /b/f > /through-b && stat -c '%a %u:%g' /a > /perm
"""})
    engine.build(ctx, tags=("localhost/cache-mount:1",))
    engine.build(ctx, tags=("localhost/cache-mount:1",), no_cache=True)    # the steps run again
    code, out = engine.run("localhost/cache-mount:1", "cat", "/count", "/through-b", "/perm")
    assert (code, out.split()) == (0, ["2", "via-a", "750", "1000:65534"])
    # the cache is the state root's, not the image's: no mount target and no stub parent in a layer
    assert sorted(layer_names(engine, "localhost/cache-mount:1")) == ["count", "perm", "through-b"]
    caches = sorted((engine.builder.work / "cache-mounts").glob("*/id"))
    assert sorted(p.read_text() for p in caches) == ["/root/.cache/pkg\n", "shared\n"]


def test_tmpfs_and_bind_mounts(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({
        "Dockerfile": f"""FROM {busybox_image} AS tools
RUN mkdir -p /opt/tool && echo tool > /opt/tool/bin
FROM {busybox_image}
WORKDIR /work
RUN --mount=type=tmpfs,target=/scratch,size=1m grep ' /scratch ' /proc/mounts > /tmpfs && echo x > /scratch/f
RUN --mount=target=src cat src/a.txt > /copied && ls -a src > /listing && (touch src/new 2>/dev/null || echo ro > /ro)
RUN --mount=type=bind,source=sub,target=/s,rw touch /s/made && ls /s > /rw
RUN --mount=from=tools,source=/opt/tool,target=/t cat /t/bin > /from-stage
""",
        "a.txt": "from the context\n", "sub/x": "x", "ignored.txt": "secret", ".dockerignore": "ignored.txt\n",
    })
    first = engine.build(ctx, tags=("localhost/mounts:1",))
    code, out = engine.run("localhost/mounts:1", "sh", "-c", "cat /tmpfs /copied /listing /ro /rw /from-stage")
    assert code == 0, out
    tmpfs, *rest = out.splitlines()
    assert tmpfs.split()[:3] == ["tmpfs", "/scratch", "tmpfs"]
    assert "size=1024k" in tmpfs
    assert rest == ["from the context", ".", "..", ".dockerignore", "Dockerfile", "a.txt", "sub",   # not ignored.txt
                    "ro", "made", "x", "tool"]
    assert not (ctx / "sub" / "made").exists()                  # a rw bind's writes are dropped
    assert sorted(layer_names(engine, "localhost/mounts:1")) == [
        "copied", "from-stage", "listing", "ro", "rw", "tmpfs", "work"]
    assert engine.build(ctx).cached == 6                        # tools' RUN, WORKDIR and the 4 RUNs
    (ctx / "a.txt").write_text("changed\n")                     # what a bind shows is part of the key
    again = engine.build(ctx)
    assert again.cached == 3                                    # tools, WORKDIR, tmpfs; the bind RUN on rebuild
    assert again.image_id != first.image_id


def test_secrets_never_reach_the_image_the_cache_or_the_root(engine: Engine, context_dir: Ctx,
                                                              busybox_image: str) -> None:
    value = "s3cr3t-" + secrets.token_hex(16)
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image}
RUN --mount=type=secret,id=tok sha256sum < /run/secrets/tok > /hash && stat -c '%a %u:%g' /run/secrets/tok > /perm
RUN --mount=type=secret,id=tok,target=/etc/app/token,mode=0440,uid=1000 \\
    stat -c '%a %u:%g' /etc/app/token >> /perm && cat /etc/app/token | wc -c > /size
RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo optional > /absent
"""})
    engine.build(ctx, tags=("localhost/secret:1",), secrets={"tok": value.encode()})
    code, out = engine.run("localhost/secret:1", "cat", "/perm", "/size", "/absent")
    assert (code, out.split()) == (0, ["400", "0:0", "440", "1000:0", str(len(value)), "optional"])
    _code, digest = engine.run("localhost/secret:1", "cat", "/hash")
    assert digest.split()[0] == __import__("hashlib").sha256(value.encode()).hexdigest()
    assert sorted(layer_names(engine, "localhost/secret:1")) == ["absent", "hash", "perm", "perm", "size"]
    # another value is not another key: BuildKit's rule too, the secret is no input of the step
    assert engine.build(ctx, secrets={"tok": b"other"}).cached == 3
    # nowhere in the state root or the run dir, compressed or not
    needle = value.encode()
    for top in (engine.config.root, engine.config.run_dir):
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                path = Path(dirpath, name)
                if path.is_symlink() or not path.is_file():
                    continue
                data = path.read_bytes()
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                assert needle not in data, path
    required = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN --mount=type=secret,id=key,required true\n"})
    with pytest.raises(builder.BuildError, match=r"the secret 'key' is required but was not given"):
        engine.build(required)


def test_secret_from_the_command_line(engine: Engine, context_dir: Ctx, busybox_image: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("from-a-file")
    monkeypatch.setenv("BUILD_TOKEN", "from-the-env")
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN --mount=type=secret,id=f --mount=type=secret,id=e "
                                     "cat /run/secrets/f /run/secrets/e | wc -c > /n\n"})
    cfg = engine.config
    base = [sys.executable, "-m", "reconciler", "build", "--root", str(cfg.root), "--run-dir", str(cfg.run_dir),
            "--name-prefix", cfg.name_prefix, "-t", "localhost/cli-secret:1"]
    built = subprocess.run([*base, "--secret", f"id=f,src={tmp_path / 'token'}", "--secret", "id=e,env=BUILD_TOKEN",
                            str(ctx)], capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    assert engine.run("localhost/cli-secret:1", "cat", "/n") == (0, str(len("from-a-file" + "from-the-env")))
    bad = subprocess.run([*base, "--secret", "id=f", str(ctx)], capture_output=True, text=True, timeout=300,
                         check=False)
    assert bad.returncode != 0
    assert "give id=ID and one of src=FILE or env=VAR" in bad.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("target=/src", runmounts.RunMount("bind", "/src")),
    ("type=cache,target=.cache", runmounts.RunMount("cache", "/work/.cache", readonly=False, id="/work/.cache")),
    ("type=secret,id=npmrc", runmounts.RunMount("secret", "/run/secrets/npmrc", id="npmrc")),
    ("type=secret,target=/root/.npmrc,required", runmounts.RunMount("secret", "/root/.npmrc", id=".npmrc",
                                                                    required=True)),
    ("type=tmpfs,dst=/t,size=64m", runmounts.RunMount("tmpfs", "/t", readonly=False, size=64 << 20)),
    ("type=bind,src=$DIR,target=/x,rw=true,from=stage", runmounts.RunMount("bind", "/x", source="d", from_="stage",
                                                                          readonly=False)),
])
def test_mount_syntax(text: str, expected: runmounts.RunMount) -> None:
    assert runmounts.parse(text, expand=lambda v: v.replace("$DIR", "d"), workdir="/work") == expected


@pytest.mark.parametrize(("text", "message"), [
    ("type=nfs,target=/x", "unsupported mount type 'nfs'"),
    ("type=bind,target=/x,mode=0700", "mode, uid and gid are not allowed for bind mounts"),
    ("type=cache,target=/x,sharing=wild", "unsupported sharing value 'wild'"),
    ("type=cache", "a cache mount needs a target"),
    ("type=ssh,source=x", "an ssh mount has no from or source"),
    ("type=secret,id=a,env=A", "env=... is not supported by this builder"),
    ("target=/x,colour=blue", "unexpected key 'colour'"),
    ("type=secret", "a secret mount needs an id or a target"),
    ("type=tmpfs,target=/", "invalid mount target '/'"),
])
def test_mount_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(dockerfile.DockerfileError, match=message):
        runmounts.parse(text, expand=lambda v: v, workdir="/")
