#!/usr/bin/env bash
# The test command (README, and .ci/run): on a fresh Debian 12 machine as root it installs the
# system packages and the Python environment, starts the servers the tests need (dockerd;
# registries are started by the test fixtures), then runs lint, types, layer contracts and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh --test
bash scripts/bootstrap-venv.sh --dev
bash scripts/start-services.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff";         ruff check reconciler tests bench
echo "== mypy";         mypy
echo "== import-linter"; lint-imports
echo "== pytest"
set +e
# tests wait on processes, mounts and servers more than on the CPU: 4 workers on 2 cores
pytest -n "${PYTEST_WORKERS:-4}" --dist loadgroup "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
