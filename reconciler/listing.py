"""What `reconcile ps` and `reconcile images` print, made from their rows: one home for the CLI
when it reads a state root itself and for the agent when it answers a thin client (#21).

    ps_text(summaries, options)      `ps`: the table, JSON/YAML, or ids (-q), as printed
    ps_measured(options)             which rows `ps -s` measures: those it prints (or none)
    ps_uses_size(fmt)                whether a `ps --format` shows .Size (then it measures, as docker's)
    images_text(images, options)     `images`: the same for image summaries
    image_summary(info)              what `images` needs of an ImageInfo (the agent serves this)
    options_of(flags, values)        a command's print options, checked (ValueError if not valid)
    ps_formatted(summaries, options, fmt)     `ps --format FMT`: docker's fields of each row
    images_formatted(images, options, fmt)    `images --format FMT`, likewise
    history_text(steps, options)     `image history`: an image's steps (ImageStore.history), as printed
    history_formatted(steps, options, fmt)    `image history --format FMT`

`--format` is docker's Go template (gotemplate.py runs it) over the fields docker's formatter
gives each row (.ID, .Names, .Status, ... with docker's string forms), made of the same rows; the
CLI renders it itself (the agent serves the rows as JSON: it renders no template).

Sizes (`ps -s`, a template with .Size) are measured by whoever makes the rows (the agent, or the
CLI reading the root: runtime/native/containers/sizes.py), for the rows printed alone
(`ps_measured`): a row then has `size_rw` and `size_root_fs`, Docker's SizeRw and SizeRootFs.

While an agent holds the root, the CLI asks it for the printed text (GET /v1/containers or
/v1/images with `print=FORMAT` and the flags of PS_FLAGS / IMAGES_FLAGS set to 1): the client
then loads no json, re or datetime, and the text is this module's either way, so it is the same
with and without an agent (tests/agent/test_thin_cli.py compares them).

Stdlib only, nothing imported at load (datetime's C type and json when rendering).
"""

from __future__ import annotations

from reconciler import imagenames  # imports nothing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import datetime
    from typing import Any

__all__ = ["FORMATS", "HISTORY_FLAGS", "IMAGES_FLAGS", "PS_FLAGS", "ago", "history_formatted", "history_text",
           "image_summary", "images_formatted", "images_text", "options_of", "ps_formatted", "ps_measured", "ps_text",
           "ps_uses_size", "status_text", "utcnow"]

FORMATS = ("table", "json", "yaml")
PS_FLAGS = ("all", "quiet", "no_trunc", "size")     # `ps`'s flags that change what is printed
IMAGES_FLAGS = ("quiet", "digests", "no_trunc")     # `images`' flags
HISTORY_FLAGS = ("human", "no_trunc", "quiet")      # `image history`'s

PS_COLUMNS = (("CONTAINER ID", "id12"), ("IMAGE", "image"), ("COMMAND", "command"), ("CREATED", "created_ago"),
              ("STATUS", "status_text"), ("PORTS", "ports"), ("NAMES", "name"))
IMAGES_COLUMNS = (("REPOSITORY", "repository"), ("TAG", "tag"), ("IMAGE ID", "short_id"),
                  ("CREATED", "created_ago"), ("SIZE", "size_text"))


def options_of(flags: tuple[str, ...], output: str, values: Mapping[str, object]) -> dict[str, Any]:
    """The print options of a command whose flags are `flags`: `output` (a FORMAT) and each flag
    as a bool from `values` (argparse's namespace as a dict, or an API query where "1" is set)."""
    if output not in FORMATS:
        raise ValueError(f"print must be one of {', '.join(FORMATS)}, not {output!r}")
    return {"output": output, **{f: values.get(f) in (True, "1") for f in flags}}


# -- ps -------------------------------------------------------------------------------------------


def ps_text(summaries: Iterable[Mapping[str, Any]], options: Mapping[str, Any], now: datetime | None = None) -> str:
    """What `reconcile ps` prints of these containers (records.summary rows, newest first); with
    `size` (`ps -s`) the table's last column is docker's SIZE, and the JSON/YAML rows have
    `size_rw` and `size_root_fs` (the rows as measured: `ps_measured`)."""
    rows = [r for r in summaries if _shown(r, options)]
    if options["quiet"]:
        return "".join(f"{r['id'] if options['no_trunc'] else r['id'][:12]}\n" for r in rows)
    now = now or utcnow()
    data = options["output"] != "table"
    shown = [_ps_row(r, now, no_trunc=options["no_trunc"], json=data) for r in rows]
    columns = PS_COLUMNS + ((("SIZE", "size_text"),) if options.get("size") else ())
    return _printed(shown, options["output"], columns)


def _shown(summary: Mapping[str, Any], options: Mapping[str, Any]) -> bool:
    """Whether `ps` prints this row: a running (or paused) container, or any with -a."""
    return bool(options["all"]) or summary["status"] in ("running", "paused")


def ps_measured(options: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool] | None:
    """Which rows `ps` with these options has measured (`size`: -s, or a --format showing .Size):
    those it prints; None when it prints no size (without `size`, or ids alone with -q), and then
    nothing is measured: a tree walk per container, which docker's daemon makes only when asked."""
    if not options.get("size") or options.get("quiet"):
        return None
    return lambda summary: _shown(summary, options)


def _ps_row(summary: Mapping[str, Any], now: datetime, *, no_trunc: bool, json: bool) -> dict[str, Any]:
    """One container's line: the table's columns, or the JSON document's fields."""
    row = {**summary, "status_text": status_text(summary, now)}
    if not json:
        cmd = row["command"]
        if not no_trunc and len(cmd) > 20:
            cmd = cmd[:19] + "…"
        row.update(id12=row["id"] if no_trunc else row["id"][:12], command=f'"{cmd}"',
                   created_ago=ago(row["created"], now), size_text=size_text(summary))
    return row


def size_text(summary: Mapping[str, Any]) -> str:
    """docker's SIZE (ps -s) and .Size of a row: its writable layer's size, and `(virtual ...)`
    that with its image's when that is more than 0, in go-units' HumanSize (`_size`): "100kB
    (virtual 2.08MB)"; "0B" for a row not measured, as docker's .Size without sizes."""
    rw, root_fs = int(summary.get("size_rw") or 0), int(summary.get("size_root_fs") or 0)
    return f"{_size(rw)} (virtual {_size(root_fs)})" if root_fs > 0 else _size(rw)


def _datetime() -> tuple[type[datetime], Any]:
    """datetime's type and UTC, from datetime's C core: the `datetime` module defines its whole
    pure-Python version before replacing it with these (~6 M instructions, a tenth of `ps`
    without an agent, #21); the same type, `datetime.datetime is _datetime.datetime`."""
    try:
        import _datetime as core  # type: ignore[import-not-found]  # no stub: datetime's own
    except ImportError:                         # an interpreter without the C core
        import datetime as core
    return core.datetime, core.UTC


def utcnow() -> datetime:
    """The time now, in UTC: what the ages of a listing are counted to."""
    datetime, utc = _datetime()
    return datetime.now(utc)


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return _datetime()[0].fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """go-units' HumanDuration, which docker says for every age (ps CREATED and STATUS,
    images CREATED, RunningFor, CreatedSince; one home):
    "Less than a second", "5 seconds", "About a minute", "3 hours", "2 days", "3 weeks", ..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)       # math.Round: halves away from zero
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(ts: str | None, now: datetime | None = None) -> str:
    """"2 minutes ago" for an RFC 3339 time, as docker says it ("" for none)."""
    t = _parse(ts)
    if t is None:
        return ""
    return human_duration(((now or utcnow()) - t).total_seconds()) + " ago"


def status_text(st: Mapping[str, Any], now: datetime | None = None) -> str:
    """Docker's STATUS column of a summary: Created, Up 3 minutes (healthy), Up 5 seconds (Paused),
    Exited (3) 2 seconds ago, Restarting (1) ...; a health status no probe observed lately
    (`health_stale`) says when it was seen: Up 2 hours (healthy, last probed 2 hours ago)."""
    now = now or utcnow()
    status = str(st["status"])
    if status in ("running", "paused"):
        started = _parse(st.get("started_at"))
        text = "Up " + (human_duration((now - started).total_seconds()) if started else "")
        if status == "paused":                  # before health, as Docker says it
            text += " (Paused)"
        elif st.get("health"):
            health = "health: starting" if st["health"] == "starting" else str(st["health"])
            if st.get("health_stale"):
                probed = st.get("health_probed_at")
                health += f", last probed {ago(probed, now)}" if probed else ", never probed"
            text += f" ({health})"
        return text
    exit_code = st.get("exit_code")
    if status == "restarting":
        return f"Restarting ({exit_code or 0}) {ago(st.get('finished_at'), now)}"
    if status == "exited":
        return f"Exited ({exit_code if exit_code is not None else 0}) {ago(st.get('finished_at'), now)}"
    if status == "created":
        return "Created"
    return status.capitalize()


# -- --format: docker's fields -------------------------------------------------------------------

# each field's column name in a `table` format, as docker's formatter names them (in docker's order)
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
              "Networks": "NETWORKS", "Platform": "PLATFORM"}
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                   "Size": "SIZE", "Comment": "COMMENT"}
IMAGES_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
                  "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}


def header(kind: str, headers: Mapping[str, str], *, labels: bool = True) -> Any:
    """The value a `table` format's header is rendered from: each field's column name, and
    `.Label "k"` the label's name (docker's SubHeaderContext.Label: the part after the last
    dot, - and _ as spaces)."""
    from reconciler import gotemplate

    methods = {"Label": lambda name: str(name).split(".")[-1].replace("-", " ").replace("_", " ")} if labels else {}
    return gotemplate.Struct(kind, headers, methods)


def labels_text(labels: Mapping[str, str]) -> str:
    """docker's .Labels of a row: k=v, sorted, comma-separated."""
    return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))


def row(kind: str, fields: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> Any:
    """A row as its template sees it: docker's fields (a field it has not is an error), and
    `.Label "k"` when it has labels; its `json .` as docker's (keys sorted, <>& escaped)."""
    from reconciler import gotemplate

    methods = {"Label": lambda name: (labels or {}).get(name, "")} if labels is not None else {}
    return gotemplate.Struct(kind, fields, methods, html_json=True, sort_json=True)


def _ellipsis(text: str, width: int) -> str:
    """docker's Ellipsis: `text` cut to `width` columns, its last one `…`."""
    return text if len(text) <= width else text[:width - 1] + "…"


def _seconds(ts: str | None) -> int | None:
    """An RFC 3339 time as whole seconds since the epoch (the Engine API's `Created`)."""
    t = _parse(ts)
    return None if t is None else int(t.timestamp())


def go_time(seconds: int | None) -> str:
    """Go's time.Unix(s, 0).String(), docker's CreatedAt: `2026-12-07 18:15:10 +0000 UTC`, in
    the local zone; Go's zero time for none."""
    if seconds is None:
        return "0001-01-01 00:00:00 +0000 UTC"
    datetime, _ = _datetime()
    return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def go_timestamp(ts: str | None) -> str:
    """Go's Time.String() of an RFC 3339 time, its fraction of a second kept (docker's network
    CreatedAt: `2026-12-07 14:13:59.857105 +0000 UTC`), in the local zone."""
    t = _parse(ts)
    if t is None:
        return go_time(None)
    local = t.astimezone()
    fraction = f".{local.microsecond:06d}".rstrip("0") if local.microsecond else ""
    return local.strftime("%Y-%m-%d %H:%M:%S") + fraction + local.strftime(" %z %Z")


def _since(seconds: int | None, now: float) -> str:
    return "" if seconds is None else human_duration(now - seconds) + " ago"


def displayable_ports(text: str) -> str:
    """docker's .Ports (DisplayablePorts) of a row's PORTS text (`ip:host->port/proto, ...`):
    sorted by the container's port, a run of ports published on the same ones as a range
    (`0.0.0.0:80-81->80-81/tcp`), an IPv6 address in brackets."""
    ports = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        left, _, right = part.partition("->")
        address, _, published = left.rpartition(":")
        inside, _, protocol = right.partition("/")
        try:
            ports.append((int(inside), address.strip("[]"), int(published), protocol))
        except ValueError:
            return text                 # not this engine's form: as it is
    ports.sort()

    def host(ip: str, port: str) -> str:
        return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    mappings: list[str] = []

    def form(key: str, first: int, last: int) -> str:
        ip, _, proto = key.rpartition("/")
        span = str(first) if first == last else f"{first}-{last}"
        return f"{host(ip, span)}->{span}/{proto}" if ip else f"{span}/{proto}"

    for private, ip, public, proto in ports:
        if public != private:
            mappings.append(f"{host(ip, str(public))}->{private}/{proto}")
            continue
        key = f"{ip}/{proto}"
        run = groups.get(key)
        if run is None:
            groups[key] = [private, private]
            order.append(key)
        elif private == run[1] + 1:
            run[1] = private
        else:
            result.append(form(key, *run))
            groups[key] = [private, private]
    result += [form(key, *groups[key]) for key in order]
    return ", ".join(result + mappings)


def _ps_fields(r: Mapping[str, Any], now: datetime, *, trunc: bool) -> Any:
    image = str(r["image"])
    if trunc and image.startswith("sha256:"):
        image = image[7:19]
    elif trunc and "@" in image:                # the digest left out, the tag kept, as docker's
        image = imagenames.familiar(image.partition("@")[0])
    created = _seconds(r.get("created"))
    mounts = r.get("mounts") or []
    names = [str(m["source"]) for m in mounts]
    from reconciler import gotemplate

    return row("container", {
        "ID": r["id"][:12] if trunc else r["id"], "Image": image,
        "Command": gotemplate.go_quote(_ellipsis(r["command"], 20) if trunc else r["command"]),
        "CreatedAt": go_time(created), "RunningFor": _since(created, now.timestamp()) if created is not None else "",
        "Ports": displayable_ports(r.get("ports") or ""), "State": str(r["status"]), "Status": status_text(r, now),
        "Size": size_text(r),   # measured with -s, or for a template that shows it: ps_uses_size
        "Names": r["name"], "Labels": labels_text(r.get("labels") or {}),
        "Mounts": ",".join(_ellipsis(n, 15) if trunc else n for n in names),
        "LocalVolumes": str(sum(1 for m in mounts if m.get("type") == "volume")),
        "Networks": ",".join(r.get("networks") or ()), "Platform": None,
    }, r.get("labels") or {})


def ps_formatted(summaries: Iterable[Mapping[str, Any]], options: Mapping[str, Any], fmt: str,
                 now: datetime | None = None) -> str:
    """What `reconcile ps --format FMT` prints of these containers (records.summary rows)."""
    from reconciler import gotemplate

    now = now or utcnow()
    rows = [r for r in summaries if _shown(r, options)]
    try:
        return gotemplate.render_rows(fmt, [_ps_fields(r, now, trunc=not options["no_trunc"]) for r in rows],
                                      header("container", PS_HEADERS))
    except gotemplate.TemplateError as exc:     # docker ps's own words for it (the other lists': gotemplate's)
        raise exc.worded("failed to parse template" if exc.stage == "parse" else "failed to execute template") \
            from None


def ps_uses_size(fmt: str) -> bool:
    """Whether `ps --format FMT` shows .Size, so that ps measures sizes without -s, as docker's
    CLI decides it (#24696): the template as given (`json` is not `{{json .}}` there, so
    `--format json` measures nothing and says "0B"; `table {{.Size}}` does) run once over an
    empty row, and .Size read (by name, or by `{{json .}}`). A template that cannot run: False
    (its rendering says what is wrong)."""
    from reconciler import gotemplate

    probe = row("container", dict.fromkeys(PS_HEADERS, ""), {})
    used = _Reads(probe.fields)
    probe.fields = used
    try:
        gotemplate.parse(fmt).execute(probe)
    except gotemplate.TemplateError:
        return False
    return "Size" in used.read


class _Reads(dict):  # type: ignore[type-arg]  # a row's fields as the template sees them
    """A row's fields that remember which were read (docker's FieldsUsed)."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        super().__init__(fields)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def images_formatted(images: Iterable[Mapping[str, Any]], options: Mapping[str, Any], fmt: str) -> str:
    """What `reconcile images --format FMT` prints of these image summaries: docker's fields,
    its Digest `<none>` unless --digests or the format names {{.Digest}}, as docker's."""
    import time

    from reconciler import gotemplate

    now = time.time()
    digests = options["digests"] or "{{.Digest}}" in fmt
    rows = [row("image", {
        "Repository": r["repository"], "Tag": r["tag"], "Digest": r["digest"] if digests else "<none>",
        "ID": r["short_id"], "CreatedSince": _since(_seconds(r["created"]), now),
        "CreatedAt": go_time(_seconds(r["created"])), "Size": _size(r["size"]), "Containers": "N/A",
        "VirtualSize": _size(r["size"], 4), "SharedSize": "N/A", "UniqueSize": "N/A",
    }) for r in _image_rows(images, no_trunc=options["no_trunc"])]
    return gotemplate.render_rows(fmt, rows, header("image", IMAGES_HEADERS, labels=False))


# -- images ---------------------------------------------------------------------------------------


def image_summary(info: Any) -> dict[str, Any]:
    """What `images` shows of an image (an ImageInfo): the agent serves these (GET /v1/images)."""
    return {"id": info.id, "digest": info.digest, "repo_tags": list(info.repo_tags), "size": info.size,
            "created": info.created, "repo_digests": list(info.repo_digests)}


def images_text(images: Iterable[Mapping[str, Any]], options: Mapping[str, Any]) -> str:
    """What `reconcile images` prints of these image summaries (newest first)."""
    rows = _image_rows(images, no_trunc=options["no_trunc"])
    if options["quiet"]:
        # one line per image; none: nothing at all, as `docker images -q` (a blank line is an empty id to a script)
        return "".join(f"{i}\n" for i in dict.fromkeys(r["short_id"] for r in rows))
    if options["output"] != "table":
        return _printed([{k: r[k] for k in ("repository", "tag", "id", "digest", "created", "size")} for r in rows],
                        options["output"], ())
    columns = list(IMAGES_COLUMNS)
    if options["digests"]:
        columns.insert(2, ("DIGEST", "digest"))
    return _printed(rows, "table", columns)


def _image_rows(images: Iterable[Mapping[str, Any]], *, no_trunc: bool) -> list[dict[str, Any]]:
    """One row per tag (untagged images once, as <none>), newest first; a row's digest is its
    repository's (docker images --digests): of the image as pulled from or pushed to it, <none>
    for a tag made here."""
    import time

    now = time.time()
    rows = []
    for info in images:
        by_repo = dict(d.split("@", 1) for d in info.get("repo_digests") or ())
        tagged = {imagenames.key(t).rsplit(":", 1)[0] for t in info["repo_tags"]}
        # a repository named by a digest alone (pulled as repo@digest): REPOSITORY repo, TAG <none>, as docker
        untagged = [f"{r}:<none>" for r in by_repo if r not in tagged]
        for t in [*info["repo_tags"], *untagged] or ["<none>:<none>"]:
            repo, _, tag = t.rpartition(":")
            digest = None if repo == "<none>" else by_repo.get(repo if tag == "<none>" else imagenames.key(t).rsplit(":", 1)[0])
            if repo != "<none>":
                repo = imagenames.familiar(repo)        # as docker images shows it: app, not docker.io/library/app
            rows.append({
                "repository": repo, "tag": tag, "id": info["id"],
                "short_id": info["id"] if no_trunc else info["id"].split(":", 1)[1][:12],
                "digest": digest or "<none>", "created": info["created"],
                "created_ago": _image_ago(info["created"], now), "size": info["size"],
                "size_text": _size(info["size"]),
            })
    return rows


def _image_ago(created: str | None, now: float) -> str:
    """docker images' CREATED: "3 weeks ago", "N/A" when unknown."""
    t = _parse(created)
    if t is None:
        return "N/A"
    return human_duration(max(0.0, now - t.timestamp())) + " ago"


def _size(n: int, precision: int = 3) -> str:
    """go-units' HumanSizeWithPrecision: 1.98MB (decimal units)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.{precision}g}{unit}"
        value /= 1000
    return f"{value:.{precision}g}TB"


def _printed(rows: list[dict[str, Any]], output: str, columns: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    """`rows` as a table of `columns`, or as JSON/YAML: the text printed."""
    import io

    from reconciler import printing

    out = io.StringIO()
    if output == "table":
        printing.print_table(rows, columns, file=out)
    else:
        printing.print_data(rows, output, file=out)
    return out.getvalue()


# -- image history --------------------------------------------------------------------------------


def history_text(steps: Iterable[Mapping[str, Any]], options: Mapping[str, Any]) -> str:
    """What `reconcile image history` prints of an image's steps (ImageStore.history, newest
    first): docker history's table (IMAGE, CREATED, CREATED BY, SIZE, COMMENT; without `human`
    CREATED AT and bytes), its ids (-q), or the steps as JSON/YAML."""
    data = [dict(s) for s in steps]
    if options["output"] != "table":
        return _printed(data, options["output"], ())
    rows = _history_rows(data, options)
    if options["quiet"]:
        return "".join(f"{r['ID']}\n" for r in rows)
    created = "CreatedSince" if options["human"] else "CreatedAt"
    columns = [(HISTORY_HEADERS[k], k) for k in ("ID", created, "CreatedBy", "Size", "Comment")]
    return _printed(rows, "table", columns)


def history_formatted(steps: Iterable[Mapping[str, Any]], options: Mapping[str, Any], fmt: str) -> str:
    """What `reconcile image history --format FMT` prints: docker's fields of each step."""
    from reconciler import gotemplate

    return gotemplate.render_rows(fmt, [row("history", r) for r in _history_rows(steps, options)],
                                  header("history", HISTORY_HEADERS, labels=False))


def _history_rows(steps: Iterable[Mapping[str, Any]], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """docker history's fields of each step (its historyContext): the id cut to 12 and the
    command to 45 columns unless `no_trunc`; with `human` the age and a size in kB/MB, else the
    RFC 3339 time and bytes (an unknown time is N/A, as a time at or before 1970)."""
    import time

    now = time.time()
    trunc, human = not options["no_trunc"], options["human"]
    rows = []
    for s in steps:
        seconds = _seconds(s.get("created"))
        at = _rfc3339(seconds)
        since = at if not human else ("N/A" if seconds is None or seconds <= 0 else _since(seconds, now))
        created_by = str(s.get("created_by") or "").replace("\t", " ")
        image_id = str(s["id"])
        rows.append({
            "ID": image_id.rpartition(":")[2][:12] if trunc else image_id, "CreatedSince": since, "CreatedAt": at,
            "CreatedBy": _ellipsis(created_by, 45) if trunc else created_by,
            "Size": _size(int(s.get("size") or 0)) if human else str(int(s.get("size") or 0)),
            "Comment": str(s.get("comment") or ""),
        })
    return rows


def _rfc3339(seconds: int | None) -> str:
    """Go's time.Unix(s, 0).Format(time.RFC3339), docker's CreatedAt of a step: in the local
    zone, `Z` for UTC; Go's zero time for none."""
    if seconds is None:
        return "0001-01-01T00:00:00Z"
    datetime, _ = _datetime()
    local = datetime.fromtimestamp(seconds).astimezone()
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}")
