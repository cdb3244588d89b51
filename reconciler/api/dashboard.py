"""The read-only dashboard: what the host runs, what the last passes did, why a source fails.

Server-rendered HTML (no build step, no CDN: the page, its style and its few lines of script
are in this module), usable on a phone. Served by the agent's API on its socket at `/`, and on
TCP when the agent config says `dashboard: {listen: 127.0.0.1:PORT, token_file: PATH}`; on TCP
every request needs the token (`Authorization: Bearer TOKEN`, or the cookie that
`/?token=TOKEN` sets once).

    /                      sources (revision, last result, error with file:line), containers
                           (state, health, restarts, revision), the last passes and live events
    /ui/logs/NAME          the last lines of a container's logs
    /ui/events             the agent's events as server-sent events (the page follows them)

Nothing secret is shown: the views carry what `reconcile status` and `history` show (names,
revisions, results, causes; env values masked, tokens never held).
"""

from __future__ import annotations

import hmac
import html
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["COOKIE", "authorized", "render_index", "render_logs", "sse_lines"]

COOKIE = "reconciler_dashboard"

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:12px;color:#1b1f24;background:#f6f8fa}
h1{font-size:18px;margin:0 0 8px}h2{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:8px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#eaeef2;font-weight:600}
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}.muted{color:#57606a}
pre{white-space:pre-wrap;margin:0;font:12px/1.35 ui-monospace,monospace}
.scroll{overflow-x:auto}a{color:#0969da}
"""

_SCRIPT = """
const list=document.getElementById('events');
if(window.EventSource&&list){const es=new EventSource('ui/events');
es.onmessage=m=>{const e=JSON.parse(m.data);const li=document.createElement('li');
li.textContent=new Date(e.time*1000).toLocaleTimeString()+' '+e.type+' '+(e.source||e.container||'')+
(e.result?' '+e.result:'');list.prepend(li);while(list.children.length>50)list.lastChild.remove();};}
"""

_GOOD = {"converged", "in-sync", "running", "healthy"}
_BAD = {"failed", "degraded", "exited", "dead", "unhealthy", "interrupted"}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _cls(value: Any) -> str:
    v = str(value)
    return "ok" if v in _GOOD else "bad" if v in _BAD else "warn" if v in ("restarting", "starting") else "muted"


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    ago = max(0.0, time.time() - float(ts))
    text = f"{ago:.0f}s" if ago < 120 else f"{ago / 60:.0f}m" if ago < 7200 else f"{ago / 3600:.0f}h"
    return f"{text} ago"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><tr>{th}</tr>{body}</table></div>'


def _page(title: str, body: str, *, script: bool = False) -> bytes:
    js = f"<script>{_SCRIPT}</script>" if script else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{body}{js}</body></html>").encode()


def render_index(status: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> bytes:
    """The whole page from `/v1/status` and `/v1/history` documents."""
    agent = status.get("agent") or {}
    sources = list(status.get("sources") or ())
    src_rows, ctr_rows = [], []
    for s in sources:
        result = s.get("last_result") or "-"
        error = s.get("error") or ""
        failures = "\n".join(s.get("failures") or ())
        detail = f"<pre class=\"bad\">{_e(error or failures)}</pre>" if (error or failures) else ""
        src_rows.append([
            f"<b>{_e(s.get('name'))}</b><br><span class=\"muted\">{_e(s.get('origin'))}</span>",
            f"<code>{_e((s.get('revision') or '-')[:12])}</code>" + (" (pinned)" if s.get("pinned") else ""),
            f'<span class="{_cls(result)}">{_e(result)}</span>' + (" · suspended" if s.get("suspended") else ""),
            _e(_when(s.get("last_pass_at"))), detail,
        ])
        for o in s.get("objects") or ():
            if "error" in o:
                ctr_rows.append([_e(s.get("name")), f'<span class="bad">{_e(o["error"])}</span>', "", "", "", ""])
                continue
            state = str(o.get("status", ""))
            health = o.get("health") or ""
            ctr_rows.append([
                f'<a href="ui/logs/{_e(o.get("name"))}">{_e(o.get("name"))}</a>',
                f'<span class="{_cls(state)}">{_e(state)}</span>' + (" · flapping" if o.get("flapping") else ""),
                f'<span class="{_cls(health)}">{_e(health)}</span>',
                _e(o.get("restart_count", 0)), f"<code>{_e(str(o.get('revision', ''))[:12])}</code>",
                _e(s.get("name")),
            ])
    pass_rows = [[
        _e(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(p.get("started_at") or 0)))),
        _e(p.get("source") or p.get("owner")), f"<code>{_e(str(p.get('revision', ''))[:12])}</code>",
        f'<span class="{_cls(p.get("result"))}">{_e(p.get("result"))}</span>'
        + (f" ×{_e(p.get('repeats'))}" if int(p.get("repeats") or 1) > 1 else ""),
        _e(", ".join(f"{v} {k}" for k, v in sorted((p.get("counts") or {}).items()))),
        _e(p.get("cause") or ""),
    ] for p in history]
    body = (
        f"<h1>reconciler on {_e(agent.get('root', ''))}</h1>"
        f'<p class="muted">agent {_e(agent.get("version"))}, pid {_e(agent.get("pid"))}, '
        f"runtime {_e(agent.get('runtime'))}, up {_e(_when(agent.get('started_at')).removesuffix(' ago'))}</p>"
        "<h2>Sources</h2>" + _table(["source", "revision", "result", "last pass", "problems"], src_rows, "no sources")
        + "<h2>Containers</h2>" + _table(["name", "state", "health", "restarts", "revision", "source"], ctr_rows,
                                         "no containers")
        + "<h2>Last passes</h2>" + _table(["started", "source", "revision", "result", "changes", "cause"],
                                          pass_rows, "no passes yet")
        + '<h2>Events</h2><ul id="events" class="muted"></ul>'
    )
    return _page("reconciler", body, script=True)


def render_logs(name: str, lines: Sequence[str]) -> bytes:
    text = "\n".join(lines) or "(no output yet)"
    return _page(f"{name} logs", f'<p><a href="../..">← back</a></p><h1>{_e(name)}</h1><pre>{_e(text)}</pre>')


def sse_lines(events: Sequence[Mapping[str, Any]]) -> Iterator[bytes]:
    """Events in the server-sent events format (one `data:` line each, `id:` their sequence)."""
    for e in events:
        yield f"id: {e['seq']}\ndata: {json.dumps(e, sort_keys=True, default=str)}\n\n".encode()


def authorized(token: bytes | None, auth: str, cookies: str) -> bool:
    """No token (the socket): yes. Else the bearer header `auth` or the dashboard's cookie must match."""
    if token is None:
        return True
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    if not given:
        for part in cookies.split(";"):
            key, _, value = part.strip().partition("=")
            if key == COOKIE:
                given = value
    return bool(given) and hmac.compare_digest(given.encode(), token)
