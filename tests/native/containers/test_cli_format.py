"""`--format` and inspect's `-f`, as docker users type them, run as a user runs them: the CLI in a
process of its own on a native engine of the test's own (tests/helpers/host.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry]

REPO = Path(__file__).resolve().parents[3]
Reconcile = Callable[..., subprocess.CompletedProcess[str]]

# the fields `docker ps --format json` prints (docker 28), and `docker images --format json`
PS_FIELDS = {"Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names", "Networks",
             "Platform", "Ports", "RunningFor", "Size", "State", "Status"}
IMAGES_FIELDS = {"Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository", "SharedSize", "Size",
                 "Tag", "UniqueSize", "VirtualSize"}


@pytest.fixture
def reconcile(host: Host) -> Reconcile:
    """`reconcile ARGS` on the test's engine (the `host` fixture removes what it made)."""
    cfg = host.config
    env = {**os.environ, "RECONCILER_ROOT": str(cfg.root), "RECONCILER_RUN_DIR": str(cfg.run_dir),
           "RECONCILER_PREFIX": cfg.name_prefix, "RECONCILER_SUBNET_POOL": str(cfg.subnet_pool)}
    env.pop("RECONCILER_RUNTIME", None)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, check=False, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"reconcile {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    return run


def test_listings_and_inspect_print_by_docker_templates(reconcile: Reconcile, host: Host,
                                                        busybox_image: str) -> None:
    web = reconcile("run", "-d", "--name", "web", "--network", "none", "-l", "tier=front", "-l", "app=web",
                    "-v", "fmtvol:/data", busybox_image, "sleep", "1000").stdout.strip()
    done = reconcile("run", "-d", "--name", "done", "--network", "none", busybox_image,
                     "sh", "-c", "echo a command longer than twenty; exit 5").stdout.strip()
    reconcile("wait", "done", check=False)

    # docker ps --format '{{.Names}}\t{{.State}}\t{{.Label "tier"}}': the \t typed as two characters, newest first
    assert reconcile("ps", "-a", "--format", '{{.Names}}\\t{{.State}}\\t{{.Label "tier"}}').stdout == (
        "done\texited\t\nweb\trunning\tfront\n")
    assert reconcile("ps", "--format", "{{.Names}}").stdout == "web\n"        # running only, as ps
    # a table: the header from the fields' column names, aligned as docker's tabwriter aligns them
    table = reconcile("ps", "-a", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.Command}}\\t{{.Labels}}\\t"
                      "{{.Mounts}}\\t{{.LocalVolumes}}\\t{{.Networks}}").stdout
    assert table == (
        "CONTAINER ID   NAMES     COMMAND                  LABELS               MOUNTS    LOCAL VOLUMES   NETWORKS\n"
        f'{done[:12]}   done      "sh -c \'echo a comma…"                                  0               none\n'
        f'{web[:12]}   web       "sleep 1000"             app=web,tier=front   fmtvol    1               none\n')
    assert reconcile("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}").stdout.splitlines()[0] == (
        f"{done} \"sh -c 'echo a command longer than twenty; exit 5'\"")
    # the command's own table, its ages aside (they tick over between two calls, each on its own
    # second, and a column's width with them)
    def ageless(text: str) -> str:
        return re.sub(r" +", " ", re.sub(r"Less than a second|About a minute|\d+ (second|minute)s?", "T", text))

    assert ageless(reconcile("ps", "--format", "table").stdout) == ageless(reconcile("ps").stdout)

    lines = reconcile("ps", "-a", "--format", "json").stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [set(r) for r in rows] == [PS_FIELDS, PS_FIELDS]
    assert rows[1] | {"CreatedAt": "", "RunningFor": "", "Status": ""} == {
        "Command": '"sleep 1000"', "CreatedAt": "", "ID": web[:12], "Image": busybox_image, "Labels": "app=web,tier=front",
        "LocalVolumes": "1", "Mounts": "fmtvol", "Names": "web", "Networks": "none", "Platform": None, "Ports": "",
        "RunningFor": "", "Size": "0B", "State": "running", "Status": ""}     # (json: not measured, as docker's)
    assert rows[1]["Status"].startswith("Up ")
    assert rows[0]["Status"].startswith("Exited (5) ")
    assert rows[1]["RunningFor"].endswith(" ago")

    image_lines = reconcile("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert image_lines == busybox_image + "\n"
    image = json.loads(reconcile("images", "--format", "json").stdout)
    assert set(image) == IMAGES_FIELDS
    assert (image["Repository"] + ":" + image["Tag"], image["Digest"], image["Containers"]) == (
        busybox_image, "<none>", "N/A")                     # its digest only when asked for, as docker's
    assert reconcile("images", "--format", "{{.Digest}}").stdout.startswith("sha256:")

    # inspect -f over the document `inspect` prints: docker's shape for these keys
    assert reconcile("inspect", "-f", '{{.State.Status}} {{.Config.Image}} {{index .Config.Labels "tier"}} '
                     '{{.Config.Labels.nokey}} {{json .Config.Labels}} {{.Name}}', "web", "done").stdout == (
        f'running {busybox_image} front <no value> {{"app":"web","tier":"front"}} /web\n'
        f"exited {busybox_image}  <no value> {{}} /done\n")
    assert reconcile("inspect", "--format", "{{range .Mounts}}{{.Name}}:{{.Destination}}{{end}} {{.State.ExitCode}}",
                     "web", "done").stdout == "fmtvol:/data 0\n 5\n"
    assert json.loads(reconcile("inspect", "-f", "json", "web").stdout)[0]["Id"] == web

    assert reconcile("volume", "ls", "--format", "table {{.Name}}\\t{{.Driver}}\\t{{.Scope}}").stdout == (
        "VOLUME NAME   DRIVER    SCOPE\nfmtvol        local     local\n")
    assert reconcile("volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.UsedBy}}", "fmtvol").stdout == (
        "fmtvol local [web]\n")
    reconcile("network", "create", "--subnet", host.subnet, "--internal", "-l", "team=a", "fmtnet")
    assert reconcile("network", "ls", "--format", '{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} {{.IPv6}} '
                     '{{.Label "team"}} {{.Subnet}} {{.Containers}}').stdout == (
        f"fmtnet bridge local true false a {host.subnet} 0\n")
    reconcile("network", "rm", "fmtnet")


def test_template_errors_say_where_and_exit_as_dockers(reconcile: Reconcile, busybox_image: str) -> None:
    """Exit 1, as docker's CLI (28) exits for a template that does not parse or fails on a row, in
    its words (`ps`'s own); an inspect's that does not parse: 64 before any lookup, as docker
    inspect's."""
    reconcile("run", "-d", "--name", "web", "--network", "none", busybox_image, "sleep", "1000")
    unknown = reconcile("ps", "--format", "{{.Foo}}", check=False)
    assert unknown.returncode == 1
    assert unknown.stdout == ""
    assert ('error: failed to execute template: template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo '
            "in type container") in unknown.stderr
    assert "container has .ID, .Image, .Command" in unknown.stderr       # the hint: the fields there are
    unclosed = reconcile("ps", "--format", "{{.Names", check=False)
    assert (unclosed.returncode, unclosed.stdout) == (1, "")
    assert "error: failed to parse template: template: :1:0: unclosed action" in unclosed.stderr
    for args in (["images", "--format", "{{nofunc .ID}}"], ["images", "--format", "{{.Nope}}"],
                 ["inspect", "-f", "{{.State.Nope}}", "web"], ["volume", "ls", "--format", "{{if}}{{end}}"]):
        failed = reconcile(*args, check=False)
        assert (failed.returncode, failed.stdout) == (1, ""), args
        assert "error: template parsing error: template: :1:" in failed.stderr, args
    for args in (["inspect", "-f", "{{.Name", "web", "nosuch"], ["volume", "inspect", "-f", "{{end}}", "nosuch"]):
        failed = reconcile(*args, check=False)
        assert (failed.returncode, failed.stdout) == (64, ""), args
        assert "error: template parsing error: template: :1:0:" in failed.stderr, args
        assert "nosuch" not in failed.stderr.lower(), args              # refused before any lookup
    # a missing map key is Go's <no value>; --format with -o: refused, nothing printed
    assert reconcile("inspect", "-f", "{{.Config.Labels.none}}", "web").stdout == "<no value>\n"
    both = reconcile("ps", "--format", "{{.Names}}", "-o", "json", check=False)
    assert (both.returncode, both.stdout) == (2, "")
    assert "--format and -o/--output both say how to print" in both.stderr
    both = reconcile("inspect", "-f", "{{.Name}}", "-o", "yaml", "web", check=False)
    assert (both.returncode, both.stdout) == (2, "")
    quiet = reconcile("ps", "-q", "--format", "{{.Names}}")
    assert len(quiet.stdout.strip()) == 12
    assert "WARNING: Ignoring custom format, because both --format and --quiet are set." in quiet.stderr


def go_size(n: int) -> str:
    """go-units' HumanSizeWithPrecision(n, 3), written again here: the SIZE text docker prints."""
    value, units = float(n), ["B", "kB", "MB", "GB", "TB"]
    while value >= 1000 and len(units) > 1:
        value, units = value / 1000, units[1:]
    return f"{value:.3g}{units[0]}"


def test_ps_size_shows_each_container_s_writable_layer_and_that_with_its_image(reconcile: Reconcile,
                                                                                busybox_image: str) -> None:
    """`ps -s` was refused (no such flag) and a template's .Size was `N/A`: now docker's SIZE,
    `100kB (virtual 2.08MB)`, the bytes a container wrote and those with its image's, as
    dockerd counts them (st_size, not blocks); measured only when shown."""
    reconcile("run", "--name", "writer", "--network", "none", "-l", "kind=writer", busybox_image, "sh", "-c",
              "head -c 100000 /dev/zero > /blob")
    reconcile("run", "-d", "--name", "idle", "--network", "none", busybox_image, "sleep", "1000")
    image_size = json.loads(reconcile("images", "-o", "json").stdout)[0]["size"]

    rows = {r["name"]: r for r in json.loads(reconcile("ps", "-a", "-s", "-o", "json").stdout)}
    writer, idle = rows["writer"], rows["idle"]
    assert 100_000 <= writer["size_rw"] < 100_000 + 4096, writer       # the file, as written (not its blocks)
    assert writer["size_root_fs"] == writer["size_rw"] + image_size     # virtual: with its image's
    assert idle["size_root_fs"] == idle["size_rw"] + image_size
    text = {name: f"{go_size(r['size_rw'])} (virtual {go_size(r['size_root_fs'])})" for name, r in rows.items()}
    assert text["writer"].startswith("100kB (virtual ")

    # the table: SIZE last, as docker's; without -a the running one alone, measured
    table = reconcile("ps", "-a", "-s").stdout.splitlines()
    assert table[0].split()[-2:] == ["NAMES", "SIZE"]
    assert [re.split(r"\s{3,}", line)[-2:] for line in table[1:]] == [["idle", text["idle"]],
                                                                       ["writer", text["writer"]]]
    running = json.loads(reconcile("ps", "-s", "-o", "json").stdout)
    assert [(r["name"], r["size_rw"]) for r in running] == [("idle", idle["size_rw"])]
    # a label filter: the records read through the record store, measured the same
    filtered = json.loads(reconcile("ps", "-a", "-s", "-o", "json", "--filter", "label=kind=writer").stdout)
    assert [(r["size_rw"], r["size_root_fs"]) for r in filtered] == [(writer["size_rw"], writer["size_root_fs"])]
    # without -s: nothing measured, no SIZE
    assert "SIZE" not in reconcile("ps", "-a").stdout
    assert "size_rw" not in json.loads(reconcile("ps", "-a", "-o", "json").stdout)[0]

    # --format: .Size measures without -s, as docker's CLI asks the daemon when the template shows it
    assert reconcile("ps", "-a", "--format", "{{.Names}} {{.Size}}").stdout == (
        f"idle {text['idle']}\nwriter {text['writer']}\n")
    assert reconcile("ps", "-a", "--format", "table {{.Names}}\\t{{.Size}}").stdout.splitlines() == [
        "NAMES     SIZE", f"idle      {text['idle']}", f"writer    {text['writer']}"]
    assert json.loads(reconcile("ps", "--format", "{{json .}}").stdout)["Size"] == text["idle"]
    # `--format json` shows no .Size to docker's check: not measured, docker's "0B"
    assert [json.loads(line)["Size"] for line in reconcile("ps", "-a", "--format", "json").stdout.splitlines()] == [
        "0B", "0B"]


def test_ps_takes_docker_ps_filters_and_refuses_what_it_cannot_apply(reconcile: Reconcile,
                                                                     busybox_image: str) -> None:
    """`ps -f name=web` read `name` as a label key and printed nothing; docker's filters now
    select as the Engine API's do (api/dockerfilters.py): name and id as regular expressions,
    status (which lists stopped ones without -a), exited, label=KEY, volume, since/before; one
    the CLI cannot apply (ancestor) is refused, never read as a label."""
    web = reconcile("run", "-d", "--name", "web", "--network", "none", "-l", "tier=front", "-v", "psvol:/data",
                    busybox_image, "sleep", "1000").stdout.strip()
    reconcile("run", "-d", "--name", "webjob", "--network", "none", busybox_image, "sh", "-c", "exit 3")
    reconcile("wait", "webjob", check=False)
    reconcile("create", "--name", "idle", "--network", "none", busybox_image, "true")

    def names(*flags: str) -> list[str]:
        return reconcile("ps", *flags, "--format", "{{.Names}}").stdout.split()

    assert names("-a", "-f", "name=web") == ["webjob", "web"]             # a regular expression, found
    assert names("-a", "-f", "name=^/web$") == ["web"]                    # over dockerd's "/name"
    assert names("-f", "name=web") == ["web"]                             # running only without -a
    assert names("-f", "status=exited") == ["webjob"]                     # a status lists stopped ones
    assert names("-f", "status=created") == ["idle"]
    assert names("-a", "-f", "exited=3") == ["webjob"]
    assert names("-a", "-f", "exited=0") == []
    assert names("-a", "-f", "label=tier") == ["web"]                     # a label's presence
    assert names("-a", "-f", "label=tier=front", "-f", "name=w") == ["web"]
    assert names("-a", "-f", f"id={web[:8]}") == ["web"]
    assert names("-a", "-f", "volume=psvol") == ["web"]
    assert names("-a", "-f", "since=web") == ["idle", "webjob"]
    assert names("-a", "-f", "before=idle") == ["webjob", "web"]
    assert reconcile("ps", "-a", "-q", "-f", "status=running").stdout.split() == [web[:12]]
    refused = reconcile("ps", "-f", "ancestor=busybox", check=False)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert "ancestor" in refused.stderr
    assert "Engine API" in refused.stderr
    bad = reconcile("ps", "-f", "status=sleepy", check=False)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "Invalid filter 'status=sleepy'" in bad.stderr


def test_images_takes_docker_images_filters(reconcile: Reconcile, busybox_image: str) -> None:
    """`images -f` was refused (no such flag): docker images' filters now select as the Engine
    API's do (api/dockerfilters.py): dangling, reference patterns over the familiar names (each
    image with the tags that match), label, since; a filter docker has not is refused."""
    reconcile("run", "-d", "--name", "web", "--network", "none", busybox_image, "sleep", "1000")
    made = reconcile("commit", "-c", "LABEL kind=mine", "web").stdout.strip()          # untagged: dangling
    assert made.startswith("sha256:")

    def listed(*filters: str, fmt: str = "{{.ID}} {{.Repository}}:{{.Tag}}") -> list[str]:
        argv = [w for f in filters for w in ("-f", f)]
        return reconcile("images", *argv, "--format", fmt).stdout.splitlines()

    short = made.removeprefix("sha256:")[:12]
    assert listed("dangling=true") == [f"{short} <none>:<none>"]
    assert reconcile("images", "-q", "-f", "dangling=true").stdout == f"{short}\n"     # docker rmi $(...)
    assert all("<none>" not in line for line in listed("dangling=false"))
    assert listed("label=kind=mine") == [f"{short} <none>:<none>"]
    assert listed("label=kind") == [f"{short} <none>:<none>"]
    repo = busybox_image.rsplit(":", 1)[0]
    assert [line.split()[1] for line in listed(f"reference={repo}")] == [busybox_image]
    assert listed("reference=nothing/like/it") == []
    assert listed(f"since={busybox_image}", fmt="{{.ID}}") == [short]
    bad = reconcile("images", "-f", "bogus=1", check=False)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "Invalid filter 'bogus'" in bad.stderr


def test_volume_ls_takes_docker_volume_ls_filters(reconcile: Reconcile, busybox_image: str) -> None:
    """`volume ls -f` was refused (no such flag): docker volume ls's filters now select as the
    Engine API's do: dangling (no container mounts it, a stopped one's count), name, label."""
    reconcile("volume", "create", "--label", "tier=db", "spare")
    reconcile("run", "-d", "--name", "web", "--network", "none", "-v", "live:/data", busybox_image, "sleep", "1000")
    reconcile("run", "--name", "done", "--network", "none", "-v", "kept:/data", busybox_image, "true")

    def listed(*filters: str) -> list[str]:
        return reconcile("volume", "ls", "-q", *(w for f in filters for w in ("-f", f))).stdout.split()

    assert listed("dangling=true") == ["spare"]
    assert listed("dangling=false") == ["kept", "live"]                  # a stopped container's counts
    assert listed("name=li") == ["live"]
    assert listed("label=tier=db") == listed("label=tier") == ["spare"]
    assert listed("driver=local", "dangling=1") == ["spare"]
    bad = reconcile("volume", "ls", "-f", "bogus=1", check=False)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "Invalid filter 'bogus'" in bad.stderr
