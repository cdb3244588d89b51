#!/usr/bin/env bash
# Starts the servers the tests use and that a fresh machine does not run: dockerd.
# (Registries are started per test session by the fixtures, on 127.0.0.1 and a free port.)
set -euo pipefail
if command -v dockerd >/dev/null && ! docker version >/dev/null 2>&1; then
  echo "starting dockerd" >&2
  mkdir -p /var/log
  nohup dockerd --host unix:///var/run/docker.sock >/var/log/reconciler-ci-dockerd.log 2>&1 &
  for _ in $(seq 60); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
  docker version >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/reconciler-ci-dockerd.log" >&2; tail -20 /var/log/reconciler-ci-dockerd.log >&2; exit 1; }
fi
