"""The revision hash names each file relative to the root as os.path.relpath does, though it
resolves each directory once (building._relpath, #21): the same answer for every pairing of
these paths and roots, with one cache shared by all files of a root as a load shares it."""

from __future__ import annotations

import itertools
import os

from reconciler.spec import building

PATHS = ["/a/b/c.yaml", "/a/c.yaml", "/x/c.yaml", "rel/c.yaml", "c.yaml", "/a/b/../c.yaml", "/a/./b/c.yaml",
         "a//b.yaml", "/a/b/c.yaml/", "/a/bc/d.yaml", "/", "/a"]
ROOTS = ["/a", "/a/b", "/a/b/c.yaml", "/a/b/c.yaml/x", "/", ".", "rel", "/x/y", "/a/bc", "/a/b/", "a", "/a/b/.."]


def test_relpath_with_a_cache_is_os_relpath() -> None:
    for root in ROOTS:
        dirs: dict[str, str] = {}
        for path in PATHS:
            assert building._relpath(path, root, dirs) == os.path.relpath(path, root), (path, root)
    for path, root in itertools.product(PATHS, ROOTS):
        assert building._relpath(path, root, {}) == os.path.relpath(path, root), (path, root)
