"""`reconcile pull REF`: pull an image into the native engine, with docker-style progress.

On a terminal each layer gets a line that is redrawn in place (a progress bar while it
downloads); otherwise one plain line per state change, so logs stay readable.
"""

from __future__ import annotations

import _thread
import sys
import time

from reconciler.cli import fastpath

# annotations only: a re-pull takes the fast path (cli/fastpath.py) and loads no parser (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping
    from typing import Any, TextIO

__all__ = ["Progress", "open_store", "register", "run"]


# what it takes, for its parser and the fast path alike (cli/fastpath.py): a re-pull loads no parser
SPEC = fastpath.Spec((
    (("-q", "--quiet"), "quiet", "print only the image reference"),
), output=None, positional=("ref", "1", "REF", "image reference, e.g. registry:5000/app:1.2"), valued=(
    (("--pull",), "pull", {"choices": ("always", "missing"), "default": "always",
                           "help": "always (default): ask the registry what the tag names now (one HEAD when the "
                                   "image is present); missing: no request at all when the tag's image is present"}),
), defaults={"platform": None})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("pull", help="pull an image from a registry",
                                   description="Pull an image (tag or digest) into the native engine.")
    SPEC.add_to(parser, "pull")
    parser.add_argument("--platform", default=SPEC.defaults["platform"], metavar="OS/ARCH[/VARIANT]",
                        help="platform to pull from a multi-platform image (default: this host's)")
    # the image store and the registry client log nothing: a re-pull (one HEAD) would spend
    # more on setting up structlog than on the pull
    parser.set_defaults(run=run, no_logging=True)


def open_store(args: argparse.Namespace) -> Any:
    """The native image store of the engine the options name; rmi/prune see which images
    the engine's containers use."""
    from reconciler.cli import engines
    from reconciler.runtime import opening

    return opening.open_image_store(engines.place(args), platform=getattr(args, "platform", None))


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n:.3g}GB"


class Progress:
    """Renders pull events: redrawn per-layer lines on a TTY, plain lines otherwise."""

    def __init__(self, ref: str, out: TextIO, *, tty: bool, interval: float = 0.1) -> None:
        self.ref = ref
        self.interval = interval        # least seconds between two redraws for progress alone
        self.out = out
        self.tty = tty
        self.lock = _thread.allocate_lock()      # threading.Lock itself, without threading's import (#21)
        self.order: list[str] = []
        self.lines: dict[str, str] = {}
        self.drawn = 0
        self.last_draw = 0.0
        self.digest = ""
        self.status = ""

    def __call__(self, event: str, detail: Mapping[str, Any]) -> None:
        with self.lock:
            self._event(event, detail)

    def _set(self, digest: str, text: str, *, force: bool = True) -> None:
        key = _short(digest)
        if key not in self.lines:
            self.order.append(key)
        changed = self.lines.get(key) != text
        self.lines[key] = text
        if self.tty:
            now = time.monotonic()
            if force or now - self.last_draw >= self.interval:
                self._redraw()
                self.last_draw = now
        elif changed and force:
            self.out.write(f"{key}: {text}\n")
            self.out.flush()

    def _redraw(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}A")
        for key in self.order:
            self.out.write(f"\x1b[2K{key}: {self.lines[key]}\n")
        self.drawn = len(self.order)
        self.out.flush()

    def _event(self, event: str, d: Mapping[str, Any]) -> None:
        if event == "resolve":
            ref = str(d.get("ref", self.ref))
            name, _, tag = ref.rpartition(":")
            if "/" in tag or not name:
                name, tag = ref, "latest"
            self.out.write(f"{tag}: Pulling from {name.split('/', 1)[-1]}\n")
            self.out.flush()
        elif event == "layer-start":
            self._set(d["digest"], "Pulling fs layer")
        elif event == "layer-progress":
            done, total = int(d["done"]), int(d["total"]) or 1
            width = 50
            fill = min(width, done * width // total)
            bar = "=" * max(0, fill - 1) + (">" if fill < width else "=") + " " * (width - fill)
            self._set(d["digest"], f"Downloading [{bar}]  {_size(done)}/{_size(total)}", force=False)
        elif event == "layer-downloaded":
            self._set(d["digest"], "Download complete")
        elif event == "extract":
            self._set(d["digest"], "Extracting")
        elif event == "layer-done":
            self._set(d["digest"], "Already exists" if d.get("status") == "exists" else "Pull complete")
        elif event == "done":
            self.digest = str(d.get("digest", ""))
            self.status = str(d.get("status", ""))


def _present(args: argparse.Namespace) -> dict[str, Any] | None:
    """The answer for a tag whose image is here (#21): from the state DB and one plain HEAD
    (none with --pull=missing), without the image store or the registry client; None if the
    full pull must answer."""
    from reconciler.runtime import parts

    found = parts.image_present(args.root, args.ref, head=args.pull != "missing")
    if found is None:
        return None
    return {"digest": found.digest, "shown": found.shown,
            "events": [("resolve", {"ref": found.shown, "digest": found.digest}),
                       ("done", {"id": found.image_id, "digest": found.digest, "status": "up to date"})]}


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import _agentapi, engines

    out = sys.stdout
    progress = None if args.quiet else Progress(args.ref, out, tty=out.isatty())
    # an image present is answered by the agent that holds the root, if one runs (#21): this
    # process then loads no engine code at all; else from the state DB and one plain HEAD (none
    # with --pull=missing, which the agent honours too; one older than the field makes its HEAD,
    # and a tag it finds moved is then answered here from the state DB, as without an agent)
    native = engines.is_native(args)
    served = None if args.platform or not native else _agentapi.served(
        args, "/v1/pull", {"ref": args.ref, "pull": args.pull}, timeout=120.0)
    if served is None and native and not args.platform:
        served = _present(args)
    if served is not None:
        for event, detail in served["events"]:
            if progress is not None:
                progress(event, detail)
        digest, shown = served["digest"], served["shown"]
    elif engines.is_native(args):
        store = open_store(args)
        digest, shown = store.pull(args.ref, progress=progress).digest, store.shown(args.ref)
    else:
        digest, shown = _pull_on(args, progress)
    if progress is not None:
        out.write(f"Digest: {digest}\n")
        if progress.status == "up to date":
            out.write(f"Status: Image is up to date for {shown}\n")
        else:
            out.write(f"Status: Downloaded newer image for {shown}\n")
    out.write(f"{shown}\n")
    return 0


def _pull_on(args: argparse.Namespace, progress: Progress | None) -> tuple[str, str]:
    """Pull with the engine `--runtime` names (not the native one): its digest, and the name
    it is shown by (the reference as docker pull names it)."""
    from reconciler.cli import engines
    from reconciler.registry_client import references
    from reconciler.runtime import errors

    if args.platform:
        raise errors.InvalidArgument(f"reconcile pull --platform does not work with --runtime {args.runtime}",
                                     hint="pull with the engine's own client, e.g. docker pull --platform")
    rt = engines.open_runtime(args, "pull")
    try:
        digest = rt.pull_image(args.ref, progress=progress).digest
    finally:
        rt.close()
    r = references.parse(args.ref)
    return digest, str(r) if r.tag or not r.digest else f"{r.name}@{r.digest}"
