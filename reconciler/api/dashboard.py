"""The read-only dashboard: what the host runs, what the last passes did, why a source fails.

Server-rendered HTML (no build step, no CDN: the page, its style and its few lines of script
are in this module), usable on a phone. Served by the agent's API on its socket at `/`, and on
TCP when the agent config says `dashboard: {listen: 127.0.0.1:PORT, token_file: PATH}`; on TCP
every request needs the token (`Authorization: Bearer TOKEN`, or the cookie that
`/?token=TOKEN` sets once).

    /                      sources (revision, last pass, result, error with file:line),
                           containers (state, health, image digest, restarts, ports, logs tail;
                           the sources' and, marked "not managed by a source", the engine's
                           others, as `ps` lists them),
                           image update policies (policy, mode, running and newest allowed
                           tag, last check, error), the last passes with each action and its
                           cause, live events
    /ui/logs/NAME          the last lines of a container's logs
    /ui/events             server-sent events: the agent's events (`message`), and the page's
                           sections re-rendered whenever they change (`sections`), which the
                           page swaps in: a container that stops shows as stopped without a reload

The sections are rendered from the same documents as `/v1/status` and `/v1/history`, and
times go out as absolute `<time data-ts>` (the script words them "5s ago"), so a section's
HTML changes only when what it shows does. Nothing secret is shown: those documents carry
names, revisions, results and causes (env values masked in history, tokens never held).
"""

from __future__ import annotations

import hmac
import html
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["COOKIE", "SECTIONS", "UNMANAGED", "authorized", "render_index", "render_logs", "sections", "sse_lines",
           "sse_sections"]

COOKIE = "reconciler_dashboard"
SECTIONS = ("sources", "containers", "images", "passes")
TAIL_LINES = 3                      # lines of each container's logs on the page itself

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:12px;color:#1b1f24;background:#f6f8fa}
h1{font-size:18px;margin:0 0 8px;overflow-wrap:anywhere}h2{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:8px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#eaeef2;font-weight:600}
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}.muted{color:#57606a}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;font:12px/1.35 ui-monospace,monospace}
.scroll{overflow-x:auto;max-width:100%}a{color:#0969da}code{overflow-wrap:anywhere}
details summary{cursor:pointer}ul{padding-left:18px;margin:4px 0}
#live{float:right;font-size:12px}
@media (max-width:600px){body{padding:6px}table,tbody,tr,td{display:block}tr.head{display:none}
tr{border-bottom:2px solid #d0d7de}td{border:0;padding:2px 6px}
td[data-label]:not(:empty)::before{content:attr(data-label) ": ";color:#57606a}}
"""

_SCRIPT = """
const ago=t=>{const s=Math.max(0,Date.now()/1000-t);
return s<120?Math.round(s)+'s ago':s<7200?Math.round(s/60)+'m ago':Math.round(s/3600)+'h ago';};
const tick=()=>document.querySelectorAll('time[data-ts]').forEach(e=>{e.textContent=ago(+e.dataset.ts);});
tick();setInterval(tick,5000);
const list=document.getElementById('events'),live=document.getElementById('live');
if(window.EventSource&&list){const es=new EventSource('ui/events');
es.onopen=()=>{live.textContent='live';live.className='ok';};
es.onerror=()=>{live.textContent='reconnecting';live.className='warn';};
es.addEventListener('sections',m=>{const s=JSON.parse(m.data);
for(const id in s){const el=document.getElementById(id);if(el)el.innerHTML=s[id];}tick();});
es.onmessage=m=>{const e=JSON.parse(m.data);const li=document.createElement('li');
li.textContent=new Date(e.time*1000).toLocaleTimeString()+' '+e.type+' '+(e.source||e.container||'')+
(e.result?' '+e.result:'');list.prepend(li);while(list.children.length>50)list.lastChild.remove();};}
"""

_GOOD = {"converged", "in-sync", "running", "healthy", "succeeded", "done"}
_BAD = {"failed", "degraded", "exited", "dead", "unhealthy", "interrupted", "rolled-back", "rolled_back"}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _cls(value: Any) -> str:
    v = str(value)
    return "ok" if v in _GOOD else "bad" if v in _BAD else "warn" if v in ("restarting", "starting", "paused") else "muted"


def _span(value: Any) -> str:
    return f'<span class="{_cls(value)}">{_e(value)}</span>'


def _when(ts: float | None) -> str:
    """A moment as `<time>`: UTC text for a page without script, "5s ago" once the script runs."""
    if not ts:
        return "-"
    text = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(float(ts)))
    return f'<time data-ts="{float(ts):.3f}">{text}</time>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    """A table; on a phone's width each row is a card of "column: value" lines."""
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td data-label="{_e(h)}">{cell}</td>' for h, cell in zip(head, row, strict=True))
                   + "</tr>" for row in rows)
    return f'<div class="scroll"><table><tr class="head">{th}</tr>{body}</table></div>'


def _source_rows(sources: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for s in sources:
        result = s.get("last_result") or "-"
        problems = s.get("error") or "\n".join([*(s.get("failures") or ()), *(
            f"down now: container {n}: {why}" for n, why in sorted((s.get("down") or {}).items()))])
        rows.append([
            f"<b>{_e(s.get('name'))}</b><br><span class=\"muted\">{_e(s.get('origin'))}</span>",
            f"<code>{_e((s.get('revision') or '-')[:12])}</code>" + (" (pinned)" if s.get("pinned") else ""),
            _span(result) + (" · suspended" if s.get("suspended") else ""),
            _when(s.get("last_pass_at")),
            f'<pre class="bad">{_e(problems)}</pre>' if problems else "",
        ])
    return rows


UNMANAGED = "not managed by a source"


def _unmanaged_source(o: Mapping[str, Any]) -> str:
    """The source cell of a container no source of the agent owns: said so, with the owner
    label it has (an `apply` of another owner), if any."""
    owner = f" (owner {_e(o['owner'])})" if o.get("owner") else ""
    return f'<span class="muted">{UNMANAGED}{owner}</span>'


def _container_row(o: Mapping[str, Any], source: str, tails: Mapping[str, Sequence[str]]) -> list[str]:
    if "error" in o:
        return [source, _span("failed"), "", "", "", "", "", f'<pre class="bad">{_e(o["error"])}</pre>']
    name, state = o.get("name"), str(o.get("status", ""))
    exit_code = o.get("exit_code")
    digest = str(o.get("digest") or "")
    return [
        f'<a href="ui/logs/{_e(name)}">{_e(name)}</a>',
        _span(state) + (f" ({_e(exit_code)})" if state == "exited" and exit_code is not None else "")
        + (" · flapping" if o.get("flapping") else ""),
        _span(o.get("health") or ""),
        f"{_e(o.get('image'))}<br><code title=\"{_e(digest)}\">{_e(digest[:19])}</code>",
        _e(o.get("restart_count", 0)),
        "<br>".join(_e(p) for p in o.get("ports") or ()),
        source,
        f"<pre>{_e(chr(10).join(tails.get(str(name), ())))}</pre>",
    ]


def _container_rows(sources: Sequence[Mapping[str, Any]], unmanaged: Sequence[Mapping[str, Any]],
                    tails: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each source's containers, then those of none (`unmanaged`: `reconcile run`'s, ...)."""
    rows = [_container_row(o, _e(s.get("name")), tails) for s in sources for o in s.get("objects") or ()]
    rows += [_container_row(o, _unmanaged_source(o), tails) for o in unmanaged]
    return rows


def _running_tag(source: Mapping[str, Any], container: str, repository: str, manifest_tag: str) -> str:
    """The tag the container runs (its image's, when it is of `repository`), else the manifest's."""
    for o in source.get("objects") or ():
        if o.get("name") == container and str(o.get("image", "")).startswith(repository + ":"):
            return str(o["image"])[len(repository) + 1:]
    return manifest_tag


def _image_rows(sources: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """One row per container with an update policy (`images` of each source's status)."""
    rows = []
    for s in sources:
        for p in s.get("images") or ():
            running = _running_tag(s, str(p.get("container")), str(p.get("repository")), str(p.get("manifest_tag")))
            newest = p.get("policy_tag")
            note = " · refused (its update failed)" if p.get("refused") else \
                " · newer" if newest is not None and newest != running else ""
            rows.append([
                f"<b>{_e(p.get('container'))}</b><br><span class=\"muted\">{_e(p.get('repository'))}</span>",
                f"<code>{_e(p.get('policy'))}</code>",
                _e(p.get("mode")),
                f"<code>{_e(running)}</code>",
                (f"<code>{_e(newest)}</code>" if newest is not None else "-")
                + (f'<span class="warn">{_e(note)}</span>' if note else ""),
                _when(p.get("checked_at")),
                f'<pre class="bad">{_e(p.get("error"))}</pre>' if p.get("error") else "",
            ])
    return rows


def _plan(changes: Sequence[Mapping[str, Any]]) -> str:
    """A pass's changes: each resource's outcome, then each action with its cause."""
    if not changes:
        return ""
    items = []
    for c in changes:
        causes = list(c.get("causes") or ())
        acts = [f"<li>{_e(a)}" + (f' <span class="muted">— {_e(causes[i])}</span>' if i < len(causes) else "")
                + "</li>" for i, a in enumerate(c.get("actions") or ())]
        detail = f': <span class="bad">{_e(c.get("detail"))}</span>' if c.get("detail") else ""
        items.append(f"<li><b>{_e(c.get('resource'))}</b> {_span(c.get('outcome'))}{detail}<ul>{''.join(acts)}</ul></li>")
    return f"<details><summary>plan</summary><ul>{''.join(items)}</ul></details>"


def _pass_rows(history: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [[
        _when(p.get("started_at")),
        _e(p.get("source") or p.get("owner")),
        f"<code>{_e(str(p.get('revision', ''))[:12])}</code>",
        _span(p.get("result")) + (f" ×{_e(p.get('repeats'))}" if int(p.get("repeats") or 1) > 1 else ""),
        _e(", ".join(f"{v} {k}" for k, v in sorted((p.get("counts") or {}).items()))) + _plan(p.get("changes") or ()),
        _e(p.get("cause") or ""),
    ] for p in history]


def sections(status: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
             tails: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The page's live parts (id -> inner HTML) from `/v1/status`, `/v1/history` and each
    container's last log lines."""
    sources = list(status.get("sources") or ())
    return {
        "sources": _table(["source", "revision", "result", "last pass", "problems"], _source_rows(sources),
                          "no sources"),
        "containers": _table(["name", "state", "health", "image", "restarts", "ports", "source", "logs"],
                             _container_rows(sources, list(status.get("unmanaged") or ()), tails),
                             "no containers"),
        "images": _table(["container", "policy", "mode", "running", "newest allowed", "last check", "error"],
                         _image_rows(sources), "no image update policies"),
        "passes": _table(["started", "source", "revision", "result", "changes", "cause"], _pass_rows(history),
                         "no passes yet"),
    }


def _page(title: str, body: str, *, script: bool = False) -> bytes:
    js = f"<script>{_SCRIPT}</script>" if script else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<link rel="icon" href="data:,">'          # no favicon request (a 404 in the console)
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{body}{js}</body></html>").encode()


def render_index(status: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                 tails: Mapping[str, Sequence[str]] | None = None) -> bytes:
    """The whole page: a header, the sections, the live event list."""
    agent = status.get("agent") or {}
    parts = sections(status, history, tails or {})
    titles = {"sources": "Sources", "containers": "Containers", "images": "Image policies",
              "passes": "Last passes"}
    body = (
        f'<span id="live" class="muted">static</span><h1>reconciler on {_e(agent.get("root", ""))}</h1>'
        f'<p class="muted">agent {_e(agent.get("version"))}, pid {_e(agent.get("pid"))}, '
        f"runtime {_e(agent.get('runtime'))}, started {_when(agent.get('started_at'))}</p>"
        + "".join(f'<h2>{titles[k]}</h2><div id="{k}">{parts[k]}</div>' for k in SECTIONS)
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


def sse_sections(parts: Mapping[str, str]) -> bytes:
    """The re-rendered sections as one `sections` event (the page swaps each in by id)."""
    return f"event: sections\ndata: {json.dumps(parts, sort_keys=True)}\n\n".encode()


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
