"""runtime.base's value types that a run without networks or volumes needs not are built when
first named (runtime/basetypes.py, #21), and are the same classes under either name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import reconciler.runtime.base as base
print(sorted(n for n in base._LATER if n in vars(base)), "reconciler.runtime.basetypes" in sys.modules)
from reconciler.runtime.base import NetworkConfig
import reconciler.runtime.basetypes as types
print(NetworkConfig is types.NetworkConfig, base.ContainerState is types.ContainerState,
      sorted(set(base.__all__) - set(vars(base))))
try:
    base.NoSuchType
except AttributeError as exc:
    print(exc)
print(base.VolumeState(name="v", mountpoint="/m", labels={}, created="now"))
"""


def test_the_later_types_are_built_when_first_named_and_are_the_same_classes() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True,
                          timeout=60)
    assert proc.stdout.splitlines() == [
        "[] False",                                     # importing base built none of them
        "True True []",                                 # then every name of base.__all__ is there
        "module 'reconciler.runtime.base' has no attribute 'NoSuchType'",
        "VolumeState(name='v', mountpoint='/m', labels={}, created='now', problem=None, hint=None)",
    ]
