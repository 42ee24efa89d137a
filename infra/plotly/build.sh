#!/usr/bin/env bash
# Builds the dashboard's Plotly.js (index.js: only the trace types its pages draw) with the
# pinned plotly.js and esbuild of package-lock.json, into the cache folder given as $1 (default
# ~/.cache/cardlake/plotly, or CARDLAKE_PLOTLY_CACHE as the dashboard reads it). Does nothing
# when the bundle there was built from these very files. npm runs no install scripts.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${1:-${CARDLAKE_PLOTLY_CACHE:-$HOME/.cache/cardlake/plotly}}"
bundle="$cache/plotly-cardlake.min.js"
key="$(cd "$here" && cat package.json package-lock.json index.js build.sh | sha256sum | cut -c1-16)"
if [ -f "$bundle" ] && [ "$(cat "$cache/.built-from" 2>/dev/null)" = "$key" ]; then
    echo "dashboard-assets: $bundle is up to date"
    exit 0
fi
command -v npm >/dev/null || { echo "dashboard-assets: npm not found (Node.js 18+ builds the bundle)" >&2; exit 3; }
src="$cache/src"
mkdir -p "$src"
cp "$here/package.json" "$here/package-lock.json" "$here/index.js" "$src/"
(cd "$src" && npm ci --prefer-offline --fetch-retries=1 --no-audit --no-fund --ignore-scripts --loglevel=error)
# the options of plotly.js's own esbuild-config.js; the only CSS (MapLibre's) serves map traces
"$src/node_modules/.bin/esbuild" "$src/index.js" --bundle --minify --format=iife \
    --platform=browser --target=es2016 --define:global=window --define:define.amd=false \
    --loader:.css=empty --legal-comments=none --log-level=warning --outfile="$bundle.tmp"
mv "$bundle.tmp" "$bundle"
echo "$key" > "$cache/.built-from"
echo "dashboard-assets: built $bundle ($(du -k "$bundle" | cut -f1) kB)"
