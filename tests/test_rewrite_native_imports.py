"""scripts/dev/rewrite-native-imports.py: old flat native imports become the subpackages' (#15),
and code already of the new layout is left as it is."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "dev" / "rewrite-native-imports.py"

OLD = '''from reconciler.runtime.native import backend, containers, images as native_images, netlink
from reconciler.runtime.native import (
    cgroups,
    config,  # stays
)
from reconciler.runtime.native.images import ImageStore
import reconciler.runtime.native.gc as gc

mod = importlib.import_module("reconciler.runtime.native.network")
log = structlog.get_logger("reconciler.runtime.native.restart")
# see runtime/native/records.py and native/seccomp_default.json
'''

NEW = '''from reconciler.runtime.native import backend
from reconciler.runtime.native.containers import containers
from reconciler.runtime.native.images import images as native_images
from reconciler.runtime.native.network import netlink
from reconciler.runtime.native import config
from reconciler.runtime.native.containers import cgroups
from reconciler.runtime.native.images.images import ImageStore
import reconciler.runtime.native.images.gc as gc

mod = importlib.import_module("reconciler.runtime.native.network.network")
log = structlog.get_logger("reconciler.runtime.native.containers.restart")
# see runtime/native/containers/records.py and native/containers/seccomp_default.json
'''


def _rewrite(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mod.py"
    path.write_text(text)
    subprocess.run([sys.executable, str(SCRIPT), str(path)], check=True, capture_output=True)
    return path.read_text()


def test_old_paths_are_rewritten(tmp_path: Path) -> None:
    assert _rewrite(tmp_path, OLD) == NEW


def test_new_paths_are_left_alone(tmp_path: Path) -> None:
    assert _rewrite(tmp_path, NEW) == NEW
    data = 'resources.files("reconciler.runtime.native.containers")\n'
    assert _rewrite(tmp_path, data) == data


def test_every_mapped_module_exists() -> None:
    spec = importlib.util.spec_from_file_location("rewrite_native_imports", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    native = REPO / "reconciler" / "runtime" / "native"
    missing = [f"{pkg}/{mod}.py" for mod, pkg in {**script.MOVED, **script.ADDED}.items()
               if not (native / pkg / f"{mod}.py").is_file()]
    assert missing == []
    assert not [mod for mod in script.MOVED if (native / f"{mod}.py").exists()]
