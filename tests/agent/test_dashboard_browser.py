"""The dashboard in a real headless browser (Debian's chromium over the DevTools protocol), on
a phone's viewport, served by a real agent on the native engine: it loads without console
errors, lists the containers with digest and logs tail, shows the image update policy (policy,
mode, running and newest allowed tag, last check), shows a broken manifest's file:line,
and follows the host live (no reload) when a container stops. No secret reaches the page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.conftest import AgentProc, free_port, wait_for
from tests.agent.test_native import doc
from tests.helpers.cdp import Browser

TOKEN = "browser-dash-token"
SECRET = "s3cret-env-value-not-for-pages"


def text(section: str) -> str:
    return f"document.getElementById({section!r}).innerText"


@pytest.mark.root
@pytest.mark.registry
@pytest.mark.slow
def test_the_dashboard_in_a_browser_lists_shows_errors_and_follows_a_container_stopping(
        tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    a = native_agent
    port = free_port()
    (tmp_path / "dash.token").write_text(TOKEN)
    a.config["dashboard"] = {"listen": f"127.0.0.1:{port}", "token_file": str(tmp_path / "dash.token")}
    policy = f"{{track: '{busybox_image}', policy: {{pattern: '^latest$'}}, mode: apply}}"    # an update policy
    (tmp_path / "m" / "web.yaml").write_text(doc("web", policy, "echo hello-from-web; sleep 3600",
                                                 restart="\"no\"", extra=f"env: {{API_TOKEN: {SECRET}}}\n"))
    a.start()
    wait_for("web running", lambda: any(o.get("status") == "running" for o in a.source("host")["objects"]))

    with Browser(tmp_path) as browser:
        page = browser.new_page(width=390, height=844, mobile=True)
        page.goto(f"http://127.0.0.1:{port}/?token={TOKEN}")       # sets the cookie, then /
        assert page.eval("location.pathname + location.search") == "/"   # the token left the address bar
        page.wait_for("the event stream", "document.getElementById('live').textContent === 'live'")
        page.eval("window.loadedOnce = true")                        # gone if the page reloads

        containers = page.wait_for("web with its logs tail",
                                   f"{text('containers')}.includes('hello-from-web') && {text('containers')}")
        assert "web" in containers
        assert "running" in containers
        assert "sha256:" in containers                               # the image digest
        assert page.eval("document.querySelector('#containers a').getAttribute('href')") == "ui/logs/web"
        assert "converged" in page.eval(text("sources"))
        assert "create" in page.eval("document.getElementById('passes').textContent")   # the plan...
        assert "not found" in page.eval("document.getElementById('passes').textContent")  # ...with causes
        # the image policy: what it tracks, its mode, the tag that runs, the newest allowed, when checked
        images = page.wait_for("web's image policy", f"{text('images')}.includes('ago') && {text('images')}")
        assert "web" in images
        assert busybox_image.rsplit(":", 1)[0] in images
        assert "pattern '^latest$' (alphabetical)" in images
        assert "apply" in images
        assert page.eval("[...document.querySelectorAll('#images code')].map(e => e.textContent)") == [
            "pattern '^latest$' (alphabetical)", "latest", "latest"]           # policy, running, newest
        assert page.eval("document.querySelector('#images pre')") is None     # no listing error
        assert page.eval("document.documentElement.scrollWidth <= window.innerWidth"), "wider than a phone"
        assert SECRET not in page.eval("document.documentElement.outerHTML")

        (tmp_path / "m" / "bad.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: bad}\nspec: {image: x, comand: [sh]}\n")
        page.wait_for("the broken manifest's file:line, live", f"{text('sources')}.includes('bad.yaml:4')")

        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        subprocess.run([sys.executable, "-m", "reconciler", "stop", "web", "--root", str(a.root),
                        "--run-dir", str(a.run_dir), "--name-prefix", a.prefix, "--time", "1"],
                       check=True, capture_output=True, timeout=120, env=env)
        page.wait_for("web shown stopped without a reload",
                      f"{text('containers')}.includes('exited') && !{text('containers')}.includes('running')")
        assert page.eval("window.loadedOnce") is True
        page.screenshot(tmp_path / "dashboard.png")
        assert page.console_errors == []
        assert SECRET not in page.eval("document.documentElement.outerHTML")
