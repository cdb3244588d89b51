#!/usr/bin/env bash
# Creates .venv with reconciler installed (editable) and, with --dev, the test and lint tools.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# [fast]: python-isal for the pull's gzip inflate (optional: the engine falls back to zlib)
extra="[fast]"
[ "${1:-}" = "--dev" ] && extra="[dev,fast]"
# editable_mode=compat: a plain path .pth, as an installed package has. The default (a setuptools
# "editable finder" .pth) imports pathlib, importlib.util and urllib.parse at every interpreter
# start: ~16 ms on each `reconcile` command (#21; check with `.venv/bin/python -X importtime -c pass`)
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra}" --config-settings editable_mode=compat
