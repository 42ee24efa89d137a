#!/usr/bin/env bash
# spark-submit a Cardlake job to a standalone cluster: a shell entry to submit.py, which builds
# the wheel and takes the Delta connector's coordinates from cardlake.spark.delta_coordinates()
# (one place for the version, not repeated here).
#   infra/standalone/submit.sh jobs/run_pipeline.py --month 2025-06
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
job="$1"; shift
python="${PYTHON:-$root/.venv/bin/python}"
exec "$python" "$root/infra/standalone/submit.py" \
  --master "${SPARK_MASTER:-spark://127.0.0.1:7077}" "$job" --env cluster "$@"
