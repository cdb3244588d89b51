#!/usr/bin/env bash
# Installs the Debian packages reconciler and its tests use. Idempotent and quiet: packages
# already present are not reinstalled, and apt's lists are refreshed only when needed.
set -euo pipefail
PKGS=(
  runc conmon crun            # OCI runtimes + monitor for the native engine
  nftables libnftables1 iptables iproute2  # native networking (our table, through libnftables; DOCKER-USER accepts)
  busybox-static              # tests and the demo build their images from it
  tini                        # `init: true` (Docker's --init): a static init as PID 1
  docker-registry             # a real registry on 127.0.0.1 for tests and the demo
  git sqlite3 curl ca-certificates
  openssh-client              # git sources with an SSH key (GIT_SSH_COMMAND runs ssh)
  python3 python3-venv python3-pip
)
if [ "${1:-}" = "--test" ]; then
  PKGS+=(
    skopeo umoci                # interoperability peers and the unpack oracle
    docker.io podman            # peers and the Docker backend's engine
    golang-github-containernetworking-plugin-dnsname  # podman's CNI networks resolve names (conformance)
    docker-compose              # compose peer for benchmarks
    zsh fish                    # the generated zsh and fish completion is parsed by the shell itself
    chromium                    # the dashboard's browser test (DevTools protocol over a pipe)
  )
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
