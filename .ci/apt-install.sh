#!/usr/bin/env bash
# Installs Debian packages named as arguments (none: nothing to do). Shared by .ci/setup.d/.
# apt's own output goes to a log file; the console gets one line, or the log's end on failure.
set -euo pipefail
[ $# -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"  # never a password prompt: fail and say so
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp "${TMPDIR:-/tmp}/cardlake-apt-XXXXXX.log")
echo "apt: installing $* (log: $log)"
if ! { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends "$@"; } \
    >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "apt: installing $* failed (log: $log)" >&2
    exit 1
fi
