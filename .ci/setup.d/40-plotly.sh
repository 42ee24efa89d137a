#!/usr/bin/env bash
# The dashboard's Plotly.js bundle (infra/plotly: only the trace types its pages draw), built
# from the npm registry with the pinned versions of infra/plotly/package-lock.json into
# ~/.cache/cardlake/plotly, so the browser tests draw with what `make dashboard` serves.
# Installs Node.js and npm from Debian when missing; the build does nothing when up to date.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v npm >/dev/null 2>&1 || bash .ci/apt-install.sh nodejs npm
bash infra/plotly/build.sh
