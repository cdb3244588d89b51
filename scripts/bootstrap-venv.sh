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
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra}"
