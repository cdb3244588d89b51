"""Write-back: commit the image tags an update policy chose into a git source, and push.

Only lines that carry a marker naming their container are edited, as Flux's image automation
marks them (`# {"$imagepolicy": "NS:NAME"}`, with the optional field suffixes of Flux v2):

    image:
      track: registry.local:5000/shop/web:1.4.1 # {"$imagepolicy": "web"}
    env:
      WEB_VERSION: "1.4.1"                      # {"$imagepolicy": "shop:web:tag"}
      WEB_REPOSITORY: registry.local:5000/shop/web  # {"$imagepolicy": "shop:web:name"}
      WEB_DIGEST: sha256:0123...                # {"$imagepolicy": "shop:web:digest"}

- `NAME` or `NS:NAME`: the full reference. The tracked repository's `repository:tag` on the line
  gets the new tag (and, where it is pinned `repository:tag@sha256:...`, the new digest; without
  a known digest the pin is dropped). `NAME` is the container's name; `NS`, Flux's namespace of
  the policy, is accepted so Flux's markers keep their form, and not compared (a container's
  name is unique on a host, and only the source's own files are edited).
- `NS:NAME:tag`, `NS:NAME:name`, `NS:NAME:digest`: the line's value (the scalar before the
  comment, quoted or not) becomes the tag, the repository, or the digest (`sha256:...`) of the
  image the container runs. A `:digest` line is left as it is when that digest is not known.

On such a line only that value changes, and nothing else in the file does: not the quoting, the
indentation, the other comments, the key order or the line endings. A YAML
round trip (even ruamel.yaml's, which keeps comments) re-emits the whole file and may re-indent
sequences, re-wrap long strings or re-quote scalars; an edit at the marked position cannot.
The marker also finds the line again in a newer commit where lines have moved, so a retry
after a push conflict edits the new head, not the old line number.

`write_back()` works in the source's own bare repository (`GitSource.repo`, with its
credentials): fetch the branch's head, check it out in a temporary worktree, edit, commit, push
`HEAD:refs/heads/<branch>`. A push that loses a race (someone pushed meanwhile: rejected as
non-fast-forward, or the ref moved under the server's lock) starts again from the new head, up
to `attempts` times. Nothing to change (the branch says so already) pushes nothing.
"""

from __future__ import annotations

import re
import shutil
import string
import uuid
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from reconciler import logs
from reconciler._dataclass import dataclass
from reconciler.sources import errors
from reconciler.sources.git import GitSource, redact_url

__all__ = ["DEFAULT_MESSAGE", "MESSAGE_FIELDS", "Edit", "Settings", "edit_text", "marker", "message", "write_back"]

DEFAULT_MESSAGE = "Update images of $source\n\n$updates\n"
MESSAGE_FIELDS = ("source", "updates", "containers")
_REF = "refs/reconciler/write-back"
_LOST_RACE = ("non-fast-forward", "fetch first", "failed to update ref", "cannot lock ref", "stale info")

log = logs.get_logger("reconciler.sources.writeback")


@dataclass(frozen=True)
class Edit:
    """Set the tag of `repository` on the line of `file` marked for `container`."""

    file: str                       # relative to the source's path (its manifests' directory)
    container: str
    repository: str                 # as written in `track`, without the tag
    tag: str                        # the new tag
    old: str = ""                   # the tag it replaces (for the message)
    digest: str = ""                # the new tag's image digest ("sha256:..."), when known


@dataclass(frozen=True)
class Settings:
    """A git source's `write_back:` (agent config)."""

    branch: str                     # pushed to
    message: str = DEFAULT_MESSAGE  # string.Template: $source, $updates, $containers
    author_name: str = "reconciler"
    author_email: str = "reconciler@localhost"
    attempts: int = 5               # push conflicts retried on the new head


def marker(container: str) -> re.Pattern[str]:
    """The comment that marks a line of `container`: `# {"$imagepolicy": "[NS:]NAME[:FIELD]"}`,
    FIELD (group `field`) one of tag, name, digest."""
    return re.compile(r'#\s*\{\s*"\$imagepolicy"\s*:\s*"(?:[^":]+:)?' + re.escape(container)
                      + r'(?::(?P<field>tag|name|digest))?"\s*\}')


_DIGEST = r"@sha256:[0-9a-f]{64}"
# a line's value before its comment: `key: value`, `- value`, quoted or not, and what follows it
_VALUE = re.compile(r"""(?P<pre>(?:^|\s)(?:-|[^\s#]*:)\s+)(?P<q>["']?)(?P<value>[^\s"'#]+)(?P=q)(?P<post>\s*)$""")


def _full_ref(head: str, e: Edit) -> str:
    """`head` with the tracked repository's `:tag` (and `@digest` pin) set to the edit's."""
    ref = re.compile(re.escape(e.repository) + r":[\w][\w.-]{0,127}(?P<pin>" + _DIGEST + r")?(?=[\s\"'#,}\]]|$)")
    return ref.sub(lambda m: f"{e.repository}:{e.tag}" + (f"@{e.digest}" if m.group("pin") and e.digest else ""),
                   head, count=1)


def _field(head: str, field: str, e: Edit) -> str:
    """`head` with its value set to the edit's tag, repository or digest (`field`)."""
    value = {"tag": e.tag, "name": e.repository, "digest": e.digest}[field]
    found = _VALUE.search(head)
    if found is None or not value:
        return head
    return head[: found.start("value")] + value + head[found.end("value"):]


def edit_text(text: str, edits: Sequence[Edit]) -> tuple[str, list[Edit]]:
    """`text` with each edit made on its marked lines, and the edits that changed something."""
    lines = text.splitlines(keepends=True)
    done: list[Edit] = []
    for e in edits:
        mark = marker(e.container)
        changed = False
        for i, line in enumerate(lines):
            found = mark.search(line)
            if found is None:
                continue
            head, tail = line[: found.start()], line[found.start():]
            field = found.group("field")
            new_head = _field(head, field, e) if field else _full_ref(head, e)
            if new_head != head:
                lines[i] = new_head + tail
                changed = True
        if changed:
            done.append(e)
    return "".join(lines), done


def message(template: str, source: str, edits: Sequence[Edit]) -> str:
    updates = "\n".join(f"- {e.container}: {e.repository}:{e.old or '?'} -> {e.tag}" for e in edits)
    containers = ", ".join(sorted({e.container for e in edits}))
    return string.Template(template).safe_substitute(source=source, updates=updates, containers=containers)


def write_back(source: GitSource, name: str, edits: Sequence[Edit], settings: Settings) -> str | None:
    """Commit `edits` on `settings.branch` and push; the commit pushed, or None when the branch
    needed no change. Raises SourceUnavailable when every attempt lost its race or git failed,
    SourceInvalid when a file is missing or outside the repository."""
    last = ""
    for attempt in range(1, settings.attempts + 1):
        pushed, detail = _attempt(source, name, edits, settings)
        if detail is None:
            return pushed
        last = detail
        log.info("write_back_conflict", source=name, branch=settings.branch, attempt=attempt, detail=detail[-200:])
    raise errors.SourceUnavailable(
        f"write-back to {redact_url(source.url)} {settings.branch}: every one of {settings.attempts} pushes lost "
        f"a race with another push ({last[-300:]})",
        hint="the next pass tries again; if a branch protection refuses the agent's pushes, allow it or "
             "point write_back.branch at a branch it may push to")


def _attempt(source: GitSource, name: str, edits: Sequence[Edit], settings: Settings) -> tuple[str | None, str | None]:
    """One fetch, edit, commit, push: (commit or None, None), or (None, why the push lost)."""
    source.run_git(["fetch", "--quiet", "--no-tags", "--force", "--", source.url,
                    f"+refs/heads/{settings.branch}:{_REF}"], network=True)
    head = source.run_git(["rev-parse", "--verify", f"{_REF}^{{commit}}"]).strip()
    tree = source.cache_dir / f"write-back-{uuid.uuid4().hex[:12]}"
    source.run_git(["worktree", "add", "--quiet", "--detach", "--force", str(tree), head])
    try:
        made = _edit_files(tree, source.subpath, edits)
        if not made:
            return None, None
        text = message(settings.message, name, made)
        ident = ["-c", f"user.name={settings.author_name}", "-c", f"user.email={settings.author_email}"]
        files = sorted({_repo_path(source.subpath, e.file) for e in made})
        source.run_git(["-C", str(tree), "add", "--", *files], git_dir=False)
        source.run_git(["-C", str(tree), *ident, "commit", "--quiet", "--no-verify", "-m", text], git_dir=False)
        commit = source.run_git(["-C", str(tree), "rev-parse", "HEAD"], git_dir=False).strip()
        try:
            source.run_git(["-C", str(tree), "push", "--quiet", "--", source.url,
                            f"HEAD:refs/heads/{settings.branch}"], git_dir=False, network=True)
        except errors.SourceError as e:
            if any(s in str(e).lower() for s in _LOST_RACE):
                return None, str(e)
            raise
        log.info("write_back_pushed", source=name, branch=settings.branch, commit=commit,
                 containers=[e.container for e in made])
        return commit, None
    finally:
        source.run_git(["worktree", "remove", "--force", "--force", str(tree)], check=False)
        shutil.rmtree(tree, ignore_errors=True)


def _repo_path(subpath: str, file: str) -> str:
    path = PurePosixPath(subpath) / file if subpath else PurePosixPath(file)
    if path.is_absolute() or ".." in path.parts:
        raise errors.SourceInvalid(f"write-back: {file!r} is outside the repository")
    return str(path)


def _edit_files(tree: Path, subpath: str, edits: Sequence[Edit]) -> list[Edit]:
    by_file: dict[str, list[Edit]] = {}
    for e in edits:
        by_file.setdefault(_repo_path(subpath, e.file), []).append(e)
    made: list[Edit] = []
    for rel, file_edits in sorted(by_file.items()):
        path = tree / rel
        try:
            raw = path.read_bytes()
        except OSError as exc:
            log.warning("write_back_file_missing", file=rel, error=exc.strerror)
            continue
        text = raw.decode("utf-8")
        new, done = edit_text(text, file_edits)
        if done:
            path.write_bytes(new.encode("utf-8"))
            made += done
        for unmarked in file_edits:
            if unmarked not in done and marker(unmarked.container).search(text) is None:
                log.warning("write_back_no_marker", file=rel, container=unmarked.container,
                            hint=f'add  # {{"$imagepolicy": "{unmarked.container}"}}  after the track: value '
                                 "(docs/image-updates.md: the :tag, :name and :digest forms)")
    return made
