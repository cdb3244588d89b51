"""The spec package's one error type.

    TerminalError (reconciler.errors)
    └── SpecError           a revision is invalid; carries every Problem found, not only the first

Nothing in `reconciler.spec` raises anything else for bad input: YAML, schema, semantic and
file-system failures all become Problems.
"""

from __future__ import annotations

from reconciler import errors
from reconciler._dataclass import dataclass

__all__ = ["Problem", "SpecError"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a revision, located at a node of a manifest."""

    file: str
    line: int                       # 1-based; 0 when no position is known (e.g. a missing path)
    column: int                     # 1-based; 0 when unknown
    kind: str                       # "Container", ...; "" when the document has no usable kind
    name: str                       # metadata.name; "" when unknown
    field: str                      # dotted path in the document ("spec.ports[1]"); "" for the whole document
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        if not self.kind and not self.name:        # a file-level problem: no document to name
            return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        subject = f"{self.kind or '?'}/{self.name or '?'}"
        if self.field:
            return f"{where}: {subject}: {self.field}: {self.message}"
        return f"{where}: {subject}: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line, self.column, self.field, self.message)


class SpecError(errors.TerminalError):
    """The manifests of a revision are invalid; `problems` lists all of them, sorted by place."""

    exit_code = 2

    def __init__(self, problems: list[Problem], *, hint: str | None = None) -> None:
        self.problems = sorted(problems, key=Problem.sort_key)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the manifests"
        body = "\n".join(str(p) for p in self.problems)
        super().__init__(
            f"{head}:\n{body}" if body else head,
            hint=hint or "fix the manifests at the places listed, then run `reconcile validate PATH`",
        )
