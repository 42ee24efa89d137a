"""Gold's monthly features on ``local[2]`` vs a two-worker standalone cluster, as a ratio.

    python bench/bench_cluster.py --transactions 10000000 [--workdir /tmp/bench-cluster]

Synthesises silver-shaped transactions and snapshots once (``bench_gold.synthesise``, seeded,
Parquet), then spark-submits the same script in ``--phase build`` twice: with ``--master
local[2]`` and with the master of a cluster of two one-core workers started here by
``infra/standalone/cluster.py`` (the same code as ``make cluster-up``). Each build computes
``customer_monthly_features`` for every month (the heaviest part of gold) and writes it as
Parquet; the wall time is measured around the submit (JVM start included, as a scheduler sees
it) and inside the job (the build alone). Both runs have two cores in all: on one machine the
cluster can only add overhead (RPC, serialisation between JVMs), and the ratio shows how much.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "bench"))

RESULT_PREFIX = "BENCH_RESULT "


def _infra(relative: str) -> ModuleType:
    path = ROOT / "infra" / relative
    spec = importlib.util.spec_from_file_location(f"cardlake_infra_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def build(data: Path, out: Path) -> None:
    """Inside spark-submit: every month's customer_monthly_features from the Parquet data."""
    from pyspark.sql import SparkSession

    from cardlake.gold.config import load_gold_config
    from cardlake.gold.features import customer_monthly_features
    from cardlake.silver.schemas import INTERACTIONS, MARKETING_MONTHLY

    spark = SparkSession.builder.appName("bench-cluster").getOrCreate()
    gcfg = load_gold_config("local")
    started = time.perf_counter()
    tx = spark.read.parquet(str(data / "transactions"))
    snaps = spark.read.parquet(str(data / "snapshots"))
    months = sorted(r["month"] for r in snaps.select("month").distinct().collect())
    features = customer_monthly_features(
        snaps,
        transactions_df=tx,
        interactions_df=spark.createDataFrame([], INTERACTIONS),
        marketing_df=spark.createDataFrame([], MARKETING_MONTHLY),
        months=months,
        discretionary_mccs=gcfg.discretionary_mccs,
        settings=gcfg.features,
    )
    features.write.mode("overwrite").parquet(str(out))
    rows = spark.read.parquet(str(out)).count()
    elapsed = time.perf_counter() - started
    print(
        RESULT_PREFIX
        + json.dumps({"rows": rows, "build_s": elapsed, "master": spark.sparkContext.master})
    )
    spark.stop()


def _submit(master: str, data: Path, out: Path, wheel: Path, *, memory: str) -> dict[str, float]:
    submit = _infra("standalone/submit.py")
    command = submit.submit_command(
        "bench/bench_cluster.py",
        ["--phase", "build", "--data", str(data), "--out", str(out)],
        master=master,
        wheel=wheel,
        executor_memory=memory,
        executor_cores=1,
        max_cores=2,
        driver_memory="3g" if master.startswith("local") else "1g",
        conf={"spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false"},
    )
    env = {**os.environ, "CARDLAKE_HOME": str(ROOT), "PYSPARK_PYTHON": sys.executable}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{master}: exit {done.returncode}\n{done.stderr[-3000:]}")
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_PREFIX))
    result = json.loads(line.removeprefix(RESULT_PREFIX))
    return {"wall_s": wall, "build_s": float(result["build_s"]), "rows": float(result["rows"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--workdir", help="keep data here (default: a temporary folder)")
    parser.add_argument("--worker-memory", default="3g")
    parser.add_argument("--phase", choices=["bench", "build"], default="bench")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.phase == "build":
        build(args.data, args.out)
        return 0

    from bench_gold import synthesise
    from cardlake.config import load_config
    from cardlake.spark import build_logged_session

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_cluster_"))
    data = work / "data"
    if not (data / "transactions").exists():
        spark = build_logged_session(
            load_config("local", overrides={"tables.engine": "delta-rs"}), command="bench-cluster"
        )
        started = time.perf_counter()
        synthesise(spark, args.transactions, data)
        spark.stop()
        print(
            f"synthesised {args.transactions:,} transactions in "
            f"{time.perf_counter() - started:.1f}s ({data})"
        )
    submit = _infra("standalone/submit.py")
    wheel = submit.build_wheel(work / "dist")
    local = _submit("local[2]", data, work / "out-local", wheel, memory="1g")
    print(
        f"local[2]:            {local['build_s']:7.1f}s build, {local['wall_s']:7.1f}s with "
        f"submit ({int(local['rows']):,} feature rows)"
    )
    cluster = _infra("standalone/cluster.py")
    state = work / "cluster"
    shutil.rmtree(state, ignore_errors=True)
    running = cluster.start(state, workers=2, worker_cores=1, worker_memory=args.worker_memory)
    try:
        memory = f"{max(1, int(args.worker_memory.rstrip('g')) - 1)}g"
        remote = _submit(running.master_url, data, work / "out-cluster", wheel, memory=memory)
    finally:
        cluster.stop(state)
    print(
        f"2-worker cluster:    {remote['build_s']:7.1f}s build, {remote['wall_s']:7.1f}s with "
        f"submit ({int(remote['rows']):,} feature rows)"
    )
    if remote["rows"] != local["rows"]:
        print("cardlake: the two runs disagree on the number of feature rows", file=sys.stderr)
        return 1
    print(
        f"ratio cluster / local[2]: {remote['build_s'] / local['build_s']:.2f}x build, "
        f"{remote['wall_s'] / local['wall_s']:.2f}x with submit"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
