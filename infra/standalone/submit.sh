#!/usr/bin/env bash
# spark-submit a Cardlake job to a standalone cluster with the Delta connector.
#   infra/standalone/submit.sh jobs/run_pipeline.py --month 2025-06
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
job="$1"; shift
: "${SPARK_MASTER:=spark://127.0.0.1:7077}"
: "${DELTA_PACKAGE:=io.delta:delta-spark_2.13:4.0.0}"
bundle="$(mktemp -d)/cardlake.zip"
(cd "$root/lib" && zip -qr "$bundle" cardlake)
exec spark-submit \
  --master "$SPARK_MASTER" \
  --packages "$DELTA_PACKAGE" \
  --py-files "$bundle" \
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
  "$root/$job" --env cluster "$@"
