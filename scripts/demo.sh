#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine as root, offline once the packages are there:
#   1. installs what reconciler needs (scripts/install-system-deps.sh, scripts/bootstrap-venv.sh)
#   2. starts a local registry (Debian's docker-registry) on 127.0.0.1:5000
#   3. makes a small web image from busybox-static and pushes it there with reconciler's own
#      registry client (scripts/demo/make_image.py)
#   4. runs `reconcile --once examples/manifests/hello` on the native engine and fetches the
#      page it serves on http://127.0.0.1:8080/
# Run it again: it reuses the registry, pushes the same bytes and has nothing to do.
#
#   bash scripts/demo.sh          set up and converge (idempotent)
#   bash scripts/demo.sh down     remove the demo's container and stop its registry
#
# Settings (environment): RECONCILER_ROOT (/var/lib/reconciler), RECONCILER_RUN_DIR
# (/run/reconciler), DEMO_REGISTRY_PORT (5000), DEMO_HOST_PORT (8080), DEMO_DIR (state of
# the demo registry; $RECONCILER_ROOT/demo), DEMO_SKIP_INSTALL=1 (use the packages and .venv
# as they are). With other ports than the example's, a copy of the example with those ports
# is applied (from $DEMO_DIR/manifests).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export RECONCILER_ROOT="${RECONCILER_ROOT:-/var/lib/reconciler}"
export RECONCILER_RUN_DIR="${RECONCILER_RUN_DIR:-/run/reconciler}"
REGISTRY_PORT="${DEMO_REGISTRY_PORT:-5000}"
HOST_PORT="${DEMO_HOST_PORT:-8080}"
DEMO_DIR="${DEMO_DIR:-$RECONCILER_ROOT/demo}"
REGISTRY="127.0.0.1:$REGISTRY_PORT"
IMAGE="$REGISTRY/demo/hello:1"
PIDFILE="$DEMO_DIR/registry.pid"

say() { printf '==> %s\n' "$*"; }

registry_pid() {     # the pid of the demo's registry if it runs, else nothing
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "docker-registry serve $DEMO_DIR/registry.yml"; then
    echo "$pid"
  fi
}

registry_answers() { curl -fsS -o /dev/null --max-time 2 "http://$REGISTRY/v2/" 2>/dev/null; }

if [ "${1:-}" = "down" ]; then
  export PATH="$REPO/.venv/bin:$PATH"
  empty="$DEMO_DIR/empty"
  mkdir -p "$empty"
  say "removing the demo's containers (an empty revision, --allow-empty prunes what the demo made)"
  reconcile --once "$empty" --allow-empty
  pid=$(registry_pid)
  if [ -n "$pid" ]; then
    say "stopping the demo registry (pid $pid)"
    kill "$pid"
    for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  say "done; images, volumes and state stay in $RECONCILER_ROOT (rm -rf it to forget them)"
  exit 0
fi

if [ -z "${DEMO_SKIP_INSTALL:-}" ]; then
  say "installing system packages and the Python environment"
  bash scripts/install-system-deps.sh
  bash scripts/bootstrap-venv.sh
fi
export PATH="$REPO/.venv/bin:$PATH"
reconcile validate examples/manifests

mkdir -p "$DEMO_DIR/registry/storage"
pid=$(registry_pid)
if [ -n "$pid" ]; then
  say "registry already running on $REGISTRY (pid $pid)"
elif registry_answers; then
  say "a registry answers on $REGISTRY already (not started by this script); using it"
else
  cat >"$DEMO_DIR/registry.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $DEMO_DIR/registry/storage}, delete: {enabled: true}}
http: {addr: "$REGISTRY", secret: demo-only}
EOF
  setsid docker-registry serve "$DEMO_DIR/registry.yml" >"$DEMO_DIR/registry.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  for _ in $(seq 100); do registry_answers && break; sleep 0.1; done
  registry_answers || { echo "the registry did not start; see $DEMO_DIR/registry.log" >&2; exit 1; }
  say "started docker-registry on $REGISTRY (pid $(cat "$PIDFILE"), storage $DEMO_DIR/registry, log $DEMO_DIR/registry.log)"
fi

say "making the demo image from busybox-static and pushing it as $IMAGE"
digest=$(python scripts/demo/make_image.py "$IMAGE")
say "pushed $IMAGE@$digest"

manifests=examples/manifests/hello
if [ "$REGISTRY_PORT" != 5000 ] || [ "$HOST_PORT" != 8080 ]; then
  manifests="$DEMO_DIR/manifests/hello"
  mkdir -p "$manifests"
  sed -e "s|127.0.0.1:5000/|$REGISTRY/|" -e "s|127.0.0.1:8080:|127.0.0.1:$HOST_PORT:|" \
    examples/manifests/hello/hello.yaml >"$manifests/hello.yaml"
fi

say "reconcile --once $manifests   (native engine, state in $RECONCILER_ROOT, run dir $RECONCILER_RUN_DIR)"
reconcile --once "$manifests"

say "GET http://127.0.0.1:$HOST_PORT/"
page=""
for _ in $(seq 50); do
  page=$(curl -fsS --max-time 2 "http://127.0.0.1:$HOST_PORT/" 2>/dev/null) && break
  sleep 0.2
done
[ -n "$page" ] || { echo "nothing answered on http://127.0.0.1:$HOST_PORT/" >&2; exit 1; }
printf '%s\n' "$page"

cat <<EOF

The demo runs:
  registry    docker-registry on $REGISTRY, pid $(registry_pid || true) (pid file $PIDFILE)
  container   hello, serving http://127.0.0.1:$HOST_PORT/ (state root $RECONCILER_ROOT)

Next (with PATH=$REPO/.venv/bin:\$PATH):
  reconcile ps                          containers of the native engine
  reconcile logs hello                  the web server's log
  reconcile diff $manifests     what would change (edit the manifest first)
  reconcile --once $manifests   converge again after an edit
  reconcile history                     the revisions applied
Tear down:
  bash scripts/demo.sh down             remove the container and stop the registry
EOF
