#!/usr/bin/env bash
# Installs Debian packages named as arguments (none: nothing to do). Shared by .ci/setup.d/.
set -euo pipefail
[ $# -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "$@"
