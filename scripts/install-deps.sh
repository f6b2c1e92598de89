#!/usr/bin/env bash
# Installs the Debian 12 packages the build, tests and demo need (docs/architecture.md#stack).
# Skips what is already installed; needs root (or sudo) only when something is missing.
# Used by `make deps`, by .ci/run through `make test`, and by deploy/docker/*.Dockerfile.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-system1.81-dev libboost-url1.81-dev libboost-program-options1.81-dev
  nlohmann-json3-dev
  libsoci-dev libsqlite3-dev libpq-dev
  libjwt-dev libsodium-dev libssl-dev ca-certificates
  libspdlog-dev libfmt-dev libcli11-dev
  libnats-dev libjemalloc-dev
  libyaml-cpp-dev libvalijson-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  sqlite3 curl openssl
)
# Only for tests and the demo (not for a runtime image).
if [[ "${DEPS_PROFILE:-full}" == "full" ]]; then
  PACKAGES+=(postgresql nats-server python3 python3-websockets yamllint procps)
  # The relay anchor of bench/refinement_load (make bench).
  PACKAGES+=(nginx)
  # The libFuzzer harnesses (fuzz/): Debian's clang with its libFuzzer/sanitizer runtimes.
  PACKAGES+=(clang-14 libclang-rt-14-dev)
  # The web console: built with node + npm (web/package-lock.json), tested in headless Chromium.
  PACKAGES+=(chromium fonts-dejavu-core)
  # Debian's nodejs + npm, unless a Node.js that bundles npm (e.g. NodeSource's) is installed.
  if ! command -v npm >/dev/null 2>&1; then PACKAGES+=(nodejs npm); fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
