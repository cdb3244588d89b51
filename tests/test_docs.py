"""The reference pages under docs/reference are generated from the code and kept current."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_reference_pages_match_the_code() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "DOCKER_"))}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_docs.py"), "--check"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_schema_field_and_command_is_documented() -> None:
    from reconciler.cli.main import COMMANDS
    from reconciler.spec import schemas

    manifests = (REPO / "docs" / "reference" / "manifests.md").read_text()
    for kind in ("Container", "Image", "Network", "Volume"):
        spec = schemas.schema(kind)["properties"]["spec"]["properties"]
        for field in spec:
            assert f"`spec.{field}`" in manifests, (kind, field)
    cli = (REPO / "docs" / "reference" / "cli.md").read_text()
    for command in COMMANDS:
        assert f"## reconcile {command}\n" in cli, command
    from reconciler.cli import main as climain

    man = (REPO / "docs" / "man" / "reconcile.1").read_text()
    for parser in climain._subparsers(climain.build_parser()):       # and each subcommand's own
        for sub in climain._subparsers(parser):
            name = sub.prog.split(" ", 1)[1]                             # `network create`
            assert f"### reconcile {name}\n" in cli, name
            assert f".SS reconcile {name}".replace("-", "\\-") in man, name


def test_the_policy_section_names_every_setting_and_denies_no_field_the_schema_has() -> None:
    """docs/security.md, "Policy": every setting of a policy file is in the table of built-in
    profiles and in the example file, and no sentence says the manifest language lacks a field
    (`has no `privileged` ... field`) that the Container schema has."""
    import re

    from reconciler.spec import policy, schemas

    page = (REPO / "docs" / "security.md").read_text()
    section = page[page.index("\n## Policy\n"):]
    section = section[:section.index("\n## ", 1)]
    for setting in policy.SCHEMA["properties"]:
        if setting != "base":
            assert f"| `{setting}` |" in section, setting
            assert f"\n{setting}: " in section, setting
    fields = set(schemas.schema("Container")["properties"]["spec"]["properties"])
    for denial in re.findall(r"has no ([^.;]*?) field", " ".join(section.split())):
        named = set(re.findall(r"`([a-zA-Z]+)", denial))
        assert not named & fields, denial


def test_the_man_page_renders_without_warnings_and_names_every_command() -> None:
    import shutil

    import pytest

    from reconciler.cli.main import COMMANDS

    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    page = REPO / "docs" / "man" / "reconcile.1"
    proc = subprocess.run(["groff", "-man", "-ww", "-Tutf8", str(page)], capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stderr == ""
    text = proc.stdout.replace("\u2010", "-")
    for command in COMMANDS:
        assert f"reconcile {command}" in text, command


def test_the_docs_site_builds_strict_offline_with_its_pictures(tmp_path: Path) -> None:
    """mkdocs build --strict (a broken link or a missing page fails it) of docs/ and the README
    as its guide; every picture a page shows is in the site, and no page loads anything from
    another address (fonts, scripts, styles)."""
    import re

    nav = (REPO / "mkdocs.yml").read_text()
    for md in (REPO / "docs").rglob("*.md"):                           # no page left out of the menu
        assert f" {md.relative_to(REPO / 'docs').as_posix()}\n" in nav, f"{md} is not in mkdocs.yml's nav"
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                           "-d", str(site)], capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    pages = {p.relative_to(site).as_posix(): p.read_text() for p in site.rglob("*.html")}
    for page in ("index.html", "guide.html", "dashboard.html", "benchmarks.html", "reference/cli.html"):
        assert page in pages, sorted(pages)
    assert "reconcile completion bash" in pages["guide.html"]           # the README, as the guide
    shown = {m for html in pages.values() for m in re.findall(r'<img[^>]* src="([^"]+\.png)"', html)}
    for png in ("img/dashboard-phone.png", "img/bench-converge.png", "img/bench-pull.png", "img/bench-memory.png"):
        assert png in shown, (png, shown)
        assert (site / png).stat().st_size > 1000
    for name, html in pages.items():
        assert not re.findall(r'<(?:script|img)[^>]* src="https?://', html), name
        assert not re.findall(r'<link[^>]* rel="stylesheet"[^>]* href="https?://', html), name


def test_the_bench_plots_draw_pngs(tmp_path: Path) -> None:
    """What `bench/*.py --plot` calls: a line plot and a stacked bar plot, as PNG files."""
    from bench import plots

    line = plots.lines(tmp_path / "l.png", "t", "containers", "seconds", [5, 10],
                       {"reconcile --once": [1.0, 2.0], "docker-compose up -d, nothing to do": [3.0, 4.0]})
    bar = plots.bars(tmp_path / "b.png", "t", "MiB", {}, stacked={"reconcile agent": {"daemon": 40.0},
                                                                 "docker": {"daemon": 90.0, "shims": 200.0}})
    for png in (line, bar):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_all_redraws_kept_rows_the_last_measurement_of_each_winning(tmp_path: Path) -> None:
    """`bench_all.py --from-rows FILE`: the table and plot of rows an earlier run kept (`--rows`),
    running nothing; a row measured again (`--only NAME --rows FILE`) replaces its first."""
    import json

    rows = tmp_path / "rows.jsonl"
    first = {"what": "reconcile ps -a", "ours": 0.020, "unit": "s", "peer": "docker", "theirs": 0.010, "goal": 1.5}
    other = {"what": "cold pull", "ours": 1.0, "unit": "s", "peer": "docker", "theirs": 3.0, "goal": 0.5}
    again = {**first, "ours": 0.012}
    rows.write_text("".join(json.dumps(r) + "\n" for r in (first, other, again)))
    md = tmp_path / "table.md"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_all.py"),
                           "--from-rows", str(rows), "--markdown", str(md), "--plot", "--plot-dir", str(tmp_path)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in md.read_text().splitlines() if ln.startswith(("| reconcile ps -a", "| cold"))]
    assert lines == ["| reconcile ps -a | 12 ms | docker 10 ms | 1.20x | <= 1.5x | yes |",
                     "| cold pull | 1.00 s | docker 3.00 s | 0.33x | <= 0.5x | yes |"]
    assert (tmp_path / "bench-ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
