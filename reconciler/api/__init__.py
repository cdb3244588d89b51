"""The agent's API: HTTP/1.1 + JSON on a Unix socket (Docker's client–server split).

- `server`: `ApiServer(view, socket_path)` serves the versioned paths below from a
  `server.AgentView` (the agent implements it); `/metrics` (Prometheus text) is served on the
  socket and, with `tcp=(host, port)`, on TCP too (metrics only there).
- `client`: `ApiClient(socket_path)` over stdlib `http.client` (the CLI's side).
- `thin`: one GET over the socket without `http.client` (which loads email and ssl), for the
  commands the agent answers (`reconcile ps`, `inspect`, `images`, `logs`, a re-pull).
- `events`: `EventBus`, the in-memory ring of events `/v1/events` streams as JSON lines.
- `errors`: `ApiError` and its HTTP status mapping; `AgentUnreachable` for the client.

    GET  /v1/status                   agent, sources, objects, supervision
    GET  /v1/sources/<name>           one source
    POST /v1/sources/<name>           {"suspend": true|false} (resume also unpins a rollback)
    GET  /v1/plan?source=<name>       what a pass would do now (changes nothing)
    POST /v1/reconcile                {"source": name?, "wait": bool}: reconcile now
    GET  /v1/events?since=N&follow=1  JSON lines, streamed while follow
    GET  /v1/history?source=&limit=   passes that changed something or failed
    GET  /v1/containers?labels=JSON   what `reconcile ps` shows of each container (native engine);
                                      size=1: with their sizes (`ps -s`), of the running ones, all=1 every one
    POST /v1/containers               {"config": CONFIG, "volatile": BOOL, "auto_remove": BOOL}: `reconcile
                                      create` (the image pulled if missing): {"id", "auto_remove"}
    GET  /v1/containers/<name>        what `reconcile inspect` shows of one
    GET  /v1/containers/<name>/logs?follow=&since=&tail=   its output, JSON lines (s, t, d)
    GET  /v1/images                   what `reconcile images` shows
    POST /v1/pull                     {"ref": IMAGE, "pull": "always"|"missing"}: `reconcile pull` of an
                                      image present (404: absent; "missing": no registry request)
    POST /v1/rollback                 {"source": name, "revision": id?}: pin an older revision
    GET  /metrics                     Prometheus text format
"""
