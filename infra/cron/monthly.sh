#!/usr/bin/env bash
# Runs `make monthly` for the month just ended (or $1 as YYYY-MM) from the project checkout.
# Called by infra/cron/cardlake.cron and infra/systemd/cardlake-monthly.service; its exit code
# is make's, which is the pipeline's (0 done, 1 data failed a check, 2 usage, 3 environment,
# 4 crash, 5 another run holds the lake's lock).
set -euo pipefail
cd "$(dirname "$0")/../.."
month="${1:-$(date -u -d "$(date -u +%Y-%m-01) -1 month" +%Y-%m)}"
exec make monthly MONTH="$month" ENV="${CARDLAKE_ENV:-local}"
