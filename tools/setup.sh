#!/bin/sh
# Install whatever libshmq's build, tests and benchmarks need that this
# Debian machine lacks.  Run as root (or with sudo available).  Idempotent:
# installs nothing, and touches no package list, when everything is present.
set -eu

pkgs="build-essential autoconf automake libtool pkg-config liburing-dev libcmocka-dev
libjemalloc-dev libck-dev clang libclang-rt-14-dev python3 groff-base chromium
nats-server libnats-dev"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
