#!/usr/bin/env bash
# The main job on the embedded default: installs what reconciler needs on a fresh Debian 12
# machine (as root), then converges the examples. Until the native engine runs containers,
# it validates them; later steps of the project make it run them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
bash scripts/bootstrap-venv.sh
export PATH="$PWD/.venv/bin:$PATH"
reconcile validate examples/manifests
