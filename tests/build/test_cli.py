"""`reconcile build / tag / push` as a user runs them; a pushed image pulls and runs elsewhere."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import secrets
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import cgroups, containers
from reconciler.runtime.native.images import images
from tests.build.conftest import Engine
from tests.helpers import hostile
from tests.helpers.measure import run_measured
from tests.helpers.registry import RegistryServer
from tests.runtime.conftest import leftovers, new_prefix

pytestmark = [pytest.mark.root, pytest.mark.registry]


def cli(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    """`reconcile ARGS` on the engine's root (`image SUBCOMMAND`'s options after its subcommand)."""
    cut = 2 if args[0] == "image" else 1
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args[:cut], "--root", str(engine.config.root),
         "--run-dir", str(engine.config.run_dir), "--name-prefix", engine.config.name_prefix, *args[cut:]],
        capture_output=True, text=True, check=False, timeout=300)


def test_build_tag_push_and_run_the_pushed_image_elsewhere(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str, registry: RegistryServer, tmp_path: Path,
) -> None:
    ctx = context_dir({
        "Dockerfile": f"FROM {busybox_image}\nARG MSG\nRUN echo \"$MSG\" > /msg\nCOPY f /f\nCMD cat /msg /f\n",
        "f": "from the context\n",
    })
    built = cli(engine, "build", "-t", "localhost/cli:1", "--build-arg", "MSG=hi there", str(ctx))
    assert built.returncode == 0, built.stderr
    lines = built.stdout.splitlines()
    assert lines[0] == f"Step 1/5 : FROM {busybox_image}"
    assert "Step 3/5 : RUN echo \"$MSG\" > /msg" in lines
    assert lines[-2].startswith("Successfully built ")
    assert lines[-1] == "Successfully tagged localhost/cli:1"
    again = cli(engine, "build", "-t", "localhost/cli:1", "--build-arg", "MSG=hi there", str(ctx))
    assert again.stdout.count(" ---> Using cache") == 4     # ARG, RUN, COPY and CMD: every step but the FROM

    remote = f"{registry.host}/b{secrets.token_hex(3)}/cli:v1"
    tagged = cli(engine, "tag", "localhost/cli:1", remote)
    assert tagged.returncode == 0, tagged.stderr
    pushed = cli(engine, "push", remote)
    assert pushed.returncode == 0, pushed.stderr
    digest = engine.store.get("localhost/cli:1").digest
    assert f"v1: digest: {digest}" in pushed.stdout

    # a fresh engine (a state root and name prefix of its own: a prefix belongs to one root on
    # the host) pulls it by that digest and runs it
    other = NativeConfig(root=tmp_path / "other", run_dir=tmp_path / "other-run",
                         name_prefix=new_prefix())
    store = images.ImageStore(other)
    info = store.pull(remote)
    assert info.digest == digest
    fresh = Engine(other, store, containers.ContainerManager(other), engine.builder)
    try:
        code, out = fresh.run(remote)
    finally:
        for rec in fresh.manager.records():
            fresh.manager.remove(rec.id, force=True)
        cgroups.remove(other.name_prefix, None, other.locks_dir)
    assert (code, out.splitlines()) == (0, ["hi there", "from the context"])
    assert leftovers(other) == []


def test_build_failure_exit_code_and_message(engine: Engine, context_dir: Callable[..., Path],
                                             busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN echo boom; false\n"})
    res = cli(engine, "build", "-t", "localhost/bad:1", str(ctx))
    assert res.returncode == 1
    assert "Step 2/2 : RUN echo boom; false" in res.stderr
    assert "non-zero code: 1" in res.stderr
    assert "boom" in res.stderr
    missing = cli(engine, "build", "-f", "Nope", str(ctx))
    assert missing.returncode != 0
    assert "cannot read the Dockerfile" in missing.stderr
    assert cli(engine, "push", "localhost/never-built:1").returncode != 0


def test_names_that_are_no_utf8_are_built_and_copied_byte_exact(engine: Engine, context_dir: Callable[..., Path],
                                                                  busybox_image: str) -> None:
    """A context file whose name is not UTF-8 (a Latin-1 `café.txt`) crashed `reconcile build`
    with a UnicodeEncodeError (the rebuild index's key, the steps' input digests), even ignored;
    docker builds it and copies such names as they are."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY . /x/\nRUN ls /x > /listing\n",
                       ".dockerignore": "ign*\n"})
    names = [b"caf\xe9.txt", b"d\xff/f\xfe", b"ign\xe9"]
    for name in names:
        os.makedirs(os.path.join(os.fsencode(ctx), os.path.dirname(name)), exist_ok=True)
        with open(os.path.join(os.fsencode(ctx), name), "wb") as f:
            f.write(name + b"\n")
    os.symlink(b"caf\xe9.txt", os.path.join(os.fsencode(ctx), b"l\xe9"))
    for extra in ((), ("--no-cache",), ()):             # the last from the rebuild index
        res = cli(engine, "build", *extra, "-t", "localhost/latin1:1", str(ctx))
        assert res.returncode == 0, res.stderr[-2000:]
    image = engine.store.get("localhost/latin1:1").id
    copied = engine.store.layer_records(image)[-2]
    with engine.store.content.open(copied.digest) as f, \
            tarfile.open(fileobj=io.BytesIO(gzip.decompress(f.read()))) as t:
        members = {os.fsencode(m.name): m for m in t.getmembers()}
    assert {b"x/caf\xe9.txt", b"x/d\xff/f\xfe", b"x/l\xe9"} <= set(members)
    assert not [n for n in members if n.startswith(b"x/ign")]
    assert os.fsencode(members[b"x/l\xe9"].linkname) == b"caf\xe9.txt"
    # the image's files, as a container sees them (the snapshot the extractor wrote)
    listing = engine.store.layer_dirs(image)
    found = {os.path.relpath(os.path.join(d, n), os.fsencode(top)) for top in listing
             for d, _dirs, files in os.walk(os.path.join(os.fsencode(top), b"x")) for n in files}
    assert {b"x/caf\xe9.txt", b"x/d\xff/f\xfe"} <= found
    # a manifest's Image with `build:` digests the same context (`reconcile apply`)
    from reconciler.runtime.native.build import manifests

    assert manifests.input_digest(str(ctx), "Dockerfile", {}, None).startswith("sha256:")


def test_the_dockerfile_or_the_context_from_standard_input(engine: Engine, context_dir: Callable[..., Path],
                                                          busybox_image: str, tmp_path: Path) -> None:
    """docker's forms: `-f -` (the Dockerfile on stdin, a directory the context), `-` (a
    Dockerfile alone in an empty context, or a tar that is the context, -f a path in it); they
    failed (`cannot read the Dockerfile /.../-`, `build context '/.../-' is not a directory`)."""
    spool = tmp_path / "tmp"            # where the build puts what it read: nothing left after it
    spool.mkdir()
    env = {**os.environ, "TMPDIR": str(spool)}
    df = f"FROM {busybox_image}\nCOPY . /x/\nRUN find /x | sort > /listing\n".encode()

    def build(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "build", "--root", str(engine.config.root), "--run-dir",
             str(engine.config.run_dir), "--name-prefix", engine.config.name_prefix, *args],
            input=stdin, capture_output=True, check=False, timeout=300, env=env)

    def listing(*args: str, stdin: bytes) -> list[str]:
        res = build("-t", "localhost/stdin:1", *args, stdin=stdin)
        assert res.returncode == 0, res.stderr.decode()[-2000:]
        code, out = engine.run("localhost/stdin:1", "cat", "/listing")
        assert code == 0, out
        return out.splitlines()

    ctx = context_dir({"Dockerfile": "FROM scratch\n", "a": "a\n"})     # not the Dockerfile built
    assert listing("-f", "-", str(ctx), stdin=df) == ["/x", "/x/Dockerfile", "/x/a"]
    assert listing("-", stdin=df) == ["/x", "/x/Dockerfile"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in (("a", b"a\n"), ("build/app.Dockerfile", df)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    assert listing("-f", "build/app.Dockerfile", "-", stdin=buf.getvalue()) == \
        ["/x", "/x/a", "/x/build", "/x/build/app.Dockerfile"]
    assert list(spool.iterdir()) == []
    both = build("-f", "-", "-", stdin=df)
    assert (both.returncode, b"can't use standard input for both" in both.stderr) == (2, True), both.stderr
    missing = build("-f", "nope", str(ctx), stdin=b"")
    assert b"give its path with -f (from the current directory" in missing.stderr, missing.stderr


def test_add_of_an_archive_with_a_huge_pax_header_stays_within_a_memory_bound(
    engine: Engine, context_dir: Callable[..., Path], tmp_path: Path,
) -> None:
    """#14 item 5: a 256 KiB archive whose PAX header declares 256 MiB; read in one piece it
    took the build to over 500 MiB."""
    ctx = context_dir({"Dockerfile": "FROM scratch\nADD bomb.tar.gz /x/\n",
                       "bomb.tar.gz": gzip.compress(hostile.pax_declaring(256 << 20), compresslevel=9)})
    cfg = engine.config
    built = run_measured([sys.executable, "-m", "reconciler", "build", "--root", str(cfg.root), "--run-dir",
                          str(cfg.run_dir), "--name-prefix", cfg.name_prefix, str(ctx)], tmp_path)
    assert built.peak_rss < 120 << 20, f"the build peaked at {built.peak_rss >> 20} MiB"
    assert built.returncode == 1
    assert "bomb.tar.gz: cannot unpack the archive: a tar header in the layer declares 268435456 bytes" in built.stderr



def test_unchanged_rebuild_resolves_its_cache_from_the_digest_index_and_an_edit_invalidates(
    engine: Engine, context_dir: Callable[..., Path],
) -> None:
    """A CLI build remembers its context files' digests in an index (by identity and times),
    so the next process hashes no unchanged file again; an edited file still misses."""
    ctx = context_dir({"Dockerfile": "FROM scratch\nCOPY . /ctx/\nCOPY app /again/\n",
                       "app/main.txt": "v1\n", "app/lib.txt": "lib\n"})
    first = cli(engine, "build", "-t", "localhost/idx:1", str(ctx))
    assert first.returncode == 0, first.stderr
    index = engine.config.root / "build" / "context-digests.json"
    rows = json.loads(index.read_text())
    main = os.stat(ctx / "app" / "main.txt")
    key = [main.st_dev, main.st_ino, main.st_size, main.st_mtime_ns, main.st_ctime_ns]
    assert [hashlib.sha256(b"v1\n").hexdigest()] == [d for k, d in rows if k == key]
    assert stat.S_IMODE(index.stat().st_mode) == 0o600

    again = cli(engine, "build", "-t", "localhost/idx:1", str(ctx))
    assert again.stdout.count(" ---> Using cache") == 2, again.stdout

    # The index is what the second process used: a (forged) entry for main.txt changes its key
    # (with the index of unchanged rebuilds gone: it would answer before any digest is read).
    index.write_text(json.dumps([[k, "0" * 64 if k == key else d] for k, d in rows]))
    (engine.config.root / "build" / "rebuilds.json").unlink()
    forged = cli(engine, "build", "-t", "localhost/idx:1", str(ctx))
    assert forged.stdout.count(" ---> Using cache") == 0, forged.stdout

    index.write_text(json.dumps(rows))
    (ctx / "app" / "main.txt").write_text("v2\n")           # same size: the times and the content tell
    edited = cli(engine, "build", "-t", "localhost/idx:1", str(ctx))
    assert edited.returncode == 0, edited.stderr
    assert edited.stdout.count(" ---> Using cache") == 0, edited.stdout


def test_an_unchanged_rebuild_loads_no_container_code_and_a_run_step_opens_it(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str,
) -> None:
    """The unchanged rebuild at the floor (#21): the CLI's builder opens the container manager
    when a RUN step runs (the first build runs one through it), so a rebuild that every step
    answers from the cache imports neither the container lifecycle, the OCI bundle, seccomp,
    nor runtime.base's dataclasses, and names the same image."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN echo ran > /ran\nCOPY f /f\nSTOPSIGNAL SIGTERM\n",
                       "f": "x\n"})
    first = cli(engine, "build", "-q", "-t", "localhost/lazy:1", str(ctx))
    assert first.returncode == 0, first.stderr
    assert engine.run("localhost/lazy:1", "cat", "/ran") == (0, "ran")
    argv = [sys.executable, "-X", "importtime", "-m", "reconciler", "build", "--root", str(engine.config.root),
            "--run-dir", str(engine.config.run_dir), "--name-prefix", engine.config.name_prefix,
            "-t", "localhost/lazy:1", str(ctx)]
    again = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count(" ---> Using cache") == 3, again.stdout     # STOPSIGNAL's too, as dockerd's
    assert again.stdout.splitlines()[-2] == f"Successfully built {first.stdout.strip()[7:19]}"
    modules = {line.rsplit("|", 1)[1].strip() for line in again.stderr.splitlines() if line.startswith("import time:")}
    assert "reconciler.runtime.native.build.builder" in modules           # the measurement saw the build
    lifecycle = {"reconciler.runtime.base", "reconciler.runtime.native.containers.containers",
                 "reconciler.runtime.native.containers.bundle", "reconciler.runtime.native.containers.seccomp",
                 "reconciler.runtime.native.containers.records", "reconciler.runtime.native.images.layers",
                 "reconciler.runtime.native.build.diff", "tarfile"}
    assert sorted(modules & lifecycle) == []


def test_an_image_without_a_time_is_shown_as_dockerd_shows_one(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str,
) -> None:
    """The test busybox has no `created`. A build of it with metadata steps only keeps 1970 in
    its config (the same image each time: as SOURCE_DATE_EPOCH=0 makes it) but has no time, as
    its base: `images` says N/A (not "56 years ago"; CreatedAt Go's zero time, not 1970's),
    `image history` N/A (its RFC 3339 time,
    -H=false, Go's zero time, as the base's step), `image inspect` Created Go's zero time, as
    dockerd shows such an image (`docker images`, `history`, `inspect` of the base)."""
    engine.store.pull(busybox_image)
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nLABEL x=y\n"})
    built = cli(engine, "build", "-q", "-t", "localhost/undated:1", str(ctx))
    assert built.returncode == 0, built.stderr
    image_id = built.stdout.strip()
    assert engine.store.image_config(image_id)["created"] == "1970-01-01T00:00:00Z"
    dated = engine.build(ctx, build_args={"SOURCE_DATE_EPOCH": "0"})
    assert dated.image_id == image_id                  # the id is what it was

    (row,) = [x for x in cli(engine, "images").stdout.splitlines() if x.startswith("localhost/undated ")]
    assert row.split()[3:5] == ["N/A", "1.98MB"], row
    listed = cli(engine, "images", "--format", "{{.Repository}}|{{.CreatedAt}}")
    assert sorted(listed.stdout.splitlines()) == [f"{busybox_image.rsplit(':', 1)[0]}|0001-01-01 00:00:00 +0000 UTC",
                                                  "localhost/undated|0001-01-01 00:00:00 +0000 UTC"]

    def image(*args: str) -> list[str]:            # `reconcile image SUBCOMMAND --root ... ARGS`
        done = cli(engine, "image", *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    history = image("history", "--format", "{{.CreatedSince}}|{{.CreatedBy}}", "localhost/undated:1")
    assert history == ["N/A|/bin/sh -c #(nop)  LABEL x=y", "N/A|tests"]
    assert image("history", "-H=false", "--format", "{{.CreatedAt}}", "localhost/undated:1") == \
        ["0001-01-01T00:00:00Z"] * 2
    for ref in ("localhost/undated:1", busybox_image):
        assert json.loads("\n".join(image("inspect", ref)))[0]["Created"] == "0001-01-01T00:00:00Z", ref


def test_a_failed_run_keeps_its_container_unless_force_rm(engine: Engine, context_dir: Callable[..., Path],
                                                          busybox_image: str) -> None:
    """`reconcile build` removes step containers as `docker build` does (--rm, default true;
    --force-rm, default false): a failed RUN's container stays, exited with the step's code, in
    `ps -a` as dockerd lists it (the image the step ran on, its command); --force-rm removes it,
    --rm=false keeps a step's that succeeded too."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nENV A=1\nRUN echo boom; exit 3\n"})
    res = cli(engine, "build", str(ctx))
    assert res.returncode == 1, res.stderr
    assert "non-zero code: 3" in res.stderr
    (line,) = [x for x in res.stdout.splitlines() if x.startswith(" ---> Running in ")][-1:]
    cid = line.removeprefix(" ---> Running in ")
    assert f"Removing intermediate container {cid}" not in res.stdout
    (rec,) = engine.manager.records()
    assert (rec.id[:12], rec.status, rec.exit_code) == (cid, "exited", 3)
    ps = cli(engine, "ps", "-a", "--format", "{{.ID}}|{{.Image}}|{{.Command}}|{{.Status}}")
    assert ps.returncode == 0, ps.stderr
    ran_on = res.stdout.splitlines()[res.stdout.splitlines().index(line) - 2].removeprefix(" ---> ")  # ENV's image
    (row,) = ps.stdout.splitlines()
    shown, image, command, status = row.split("|")
    assert (shown, image, command) == (cid, ran_on, "\"/bin/sh -c 'echo bo…\""), row     # dockerd's row
    assert status.startswith("Exited (3) "), row
    engine.manager.remove(rec.id, force=True)

    for flags in (("--force-rm",), ("--rm=false", "--force-rm=true")):
        forced = cli(engine, "build", *flags, str(ctx))
        assert forced.returncode == 1, forced.stderr
        assert "non-zero code: 3" in forced.stderr
        assert f"Removing intermediate container {forced.stdout.split()[-1]}" in forced.stdout
        assert engine.manager.records() == []

    ok = context_dir({"Dockerfile": f"FROM {busybox_image}\nENV B=1\nRUN true\n"})
    kept = cli(engine, "build", "--rm=false", str(ok))
    assert kept.returncode == 0, kept.stderr
    assert "Removing intermediate container" not in kept.stdout
    assert sorted(r.status for r in engine.manager.records()) == ["created", "exited"]


def test_the_rm_defaults_are_the_builders() -> None:
    """`reconcile build`'s --rm/--force-rm defaults (its fast path's too) are BuildOptions'
    (dockerd's), the one home the Engine API's POST /build reads too; `--rm .` takes no value."""
    from reconciler.cli import cmd_build, main
    from reconciler.runtime.native.build import builder

    assert (cmd_build.SPEC.defaults["rm"], cmd_build.SPEC.defaults["force_rm"]) == (
        builder.BuildOptions.rm, builder.BuildOptions.force_rm) == (True, False)
    parser = main.build_parser()
    for argv, want in ((["."], (True, False)), (["--rm", "."], (True, False)), (["--rm=false", "."], (False, False)),
                       (["--force-rm", "."], (True, True)), (["--force-rm=0", "--rm=False", "."], (False, False))):
        ns = parser.parse_args(["build", *argv])
        assert (ns.rm, ns.force_rm, ns.context) == (*want, "."), argv
