"""mkdocs hooks for the docs site (mkdocs.yml): the repository's README is the guide.

The README is the getting-started path and the task-by-task guide, kept in one place; the site
shows it as `guide.md`, with its `docs/...` links made relative to the site, and the pages of
docs/ that link `../README.md` (as GitHub needs) are pointed at that page instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
_TO_README = re.compile(r"\]\(((?:\.\./)+)README\.md")


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    text = README.read_text(encoding="utf-8").replace("](docs/", "](")
    files.append(File.generated(config, "guide.md", content=text))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return _TO_README.sub(lambda m: "](" + "../" * (m.group(1).count("../") - 1) + "guide.md", markdown)
