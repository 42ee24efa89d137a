"""Time to resolve N person records: Cardlake's matcher against a plain Splink Spark pipeline.

    python bench/bench_er.py --records 100000

A generator world is sized so its person-bearing sources (CRM, core banking, demographics)
hold about N records; the evaluation adapter turns them into one Parquet. Both pipelines then
run on the same session and the same records, and are scored against the generator's truth:

- cardlake: ``to_person_records`` (standardisation) + ``resolve_entities`` (deterministic
  pass, Splink model with data-chosen threshold, connected components), once per scoring
  backend in ``--scoring`` (DuckDB in the driver, the one-machine default, and Spark, the
  cluster's);
- peer: the Splink tutorial pipeline with default settings on the raw columns
  (lowercased): name, date-of-birth, e-mail and city comparisons, prior from deterministic
  rules, u by random sampling, EM on two blocking rules, predict, cluster at 0.95; on Splink's
  Spark backend (``--peer spark``, the default) or its DuckDB backend (``--peer duckdb``).

Printed: seconds for each, the ratio (cardlake / peer) and pairwise precision, recall, F1. A
peer still running after ``--peer-timeout`` seconds is cancelled and the ratio printed as a
bound.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from cardlake.config import load_config
from cardlake.er import (
    ModelSettings,
    ResolverSettings,
    evaluate_clusters,
    resolve_entities,
    splink_spark_conf,
    to_person_records,
)
from cardlake.spark import build_logged_session
from cardlake.synth import SynthParams, generate
from synth_adapter import SYNTH_MAPPING, write_synth_person_records  # bench/, beside this file

RECORDS_PER_CUSTOMER = 3.9  # measured on the default world: 7,815 person records, 2,000 people
PEER_THRESHOLD = 0.95  # the Splink tutorials' clustering threshold


def _peer(spark, raw_df, backend: str):  # type: ignore[no-untyped-def]
    import splink.comparison_library as cl
    from pyspark.sql import functions as F
    from splink import DuckDBAPI, Linker, SettingsCreator, SparkAPI, block_on

    def low(name: str) -> F.Column:
        return F.lower(F.trim(F.col(name)))

    full = F.split(F.trim(F.col("full_name")), r"\s+")
    df = raw_df.select(
        F.col("record_id").alias("unique_id"),
        F.coalesce(low("given_name"), F.lower(full.getItem(0))).alias("first_name"),
        F.coalesce(low("surname"), F.lower(F.element_at(full, -1))).alias("surname"),
        F.col("date_of_birth").alias("dob"),
        low("email").alias("email"),
        low("city").alias("city"),
        low("postcode").alias("postcode"),
    )
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("first_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison("dob", input_is_string=True),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            cl.EmailComparison("email"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("first_name", "surname"),
            block_on("dob"),
            block_on("email"),
        ],
    )
    if backend == "spark":
        db_api = SparkAPI(spark_session=spark, break_lineage_method="persist")
        data = df
    else:
        db_api, data = DuckDBAPI(), df.toPandas()
    linker = Linker(db_api.register(data), settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "surname", "dob"), block_on("email")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("first_name", "surname")
    )
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    pred = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, threshold_match_probability=PEER_THRESHOLD
    )
    if backend == "spark":
        out = clusters.as_spark_dataframe()
    else:
        out = spark.createDataFrame(
            clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]].astype(str)
        )
    return out.select(F.col("unique_id").alias("record_id"), F.col("cluster_id").alias("entity_id"))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=SynthParams().seed)
    parser.add_argument("--skip-peer", action="store_true", help="time Cardlake only")
    parser.add_argument(
        "--scoring",
        nargs="+",
        choices=("duckdb", "spark"),
        default=["duckdb", "spark"],
        help="Cardlake's scoring backends to time",
    )
    parser.add_argument(
        "--peer",
        choices=("spark", "duckdb"),
        default="spark",
        help="the plain Splink pipeline's backend",
    )
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=1800.0,
        help="seconds before the peer is cancelled and a bound printed",
    )
    parser.add_argument("--out", type=Path, help="keep the data here (default: temp, removed)")
    args = parser.parse_args(argv)

    n_customers = max(10, math.ceil(args.records / RECORDS_PER_CUSTOMER))
    # Transactions do not feed the matcher; few of them keep generation quick.
    params = replace(
        SynthParams(seed=args.seed), n_customers=n_customers, tx_per_customer_month=0.2
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="cardlake-bench-er-"))
    cfg = load_config(
        "local", overrides={"spark.conf": splink_spark_conf(), "spark.profile": "large"}
    )
    spark = build_logged_session(cfg, command="bench-er", console_level=logging.INFO)
    try:
        t0 = time.perf_counter()
        generate(landing_root=out / "landing", truth_root=out / "truth", params=params)
        records_path, truth_path = write_synth_person_records(
            out / "landing", out / "truth", out / "er"
        )
        print(f"data: {time.perf_counter() - t0:.1f}s for {n_customers} customers")
        raw_df = spark.read.parquet(str(records_path)).cache()
        truth_df = spark.read.parquet(str(truth_path)).cache()
        n = raw_df.count()
        truth_df.count()

        ours_times: dict[str, float] = {}
        for backend in args.scoring:
            t0 = time.perf_counter()
            records_df = to_person_records(raw_df, mapping=SYNTH_MAPPING, dataset="synth")
            model = ModelSettings(seed=args.seed, scoring_backend=backend)
            resolution = resolve_entities(
                spark, [records_df], settings=ResolverSettings(model=model)
            )
            ours = resolution.entities_df.select("record_id", "entity_id").localCheckpoint(True)
            ours_s = ours_times[backend] = time.perf_counter() - t0
            m = evaluate_clusters(ours, truth_df)
            print(
                f"cardlake (scoring in {backend}): {n} records in {ours_s:.1f}s  precision "
                f"{m.pairwise_precision:.4f} recall {m.pairwise_recall:.4f} "
                f"F1 {m.pairwise_f1:.4f} (B-cubed F1 {m.bcubed_f1:.4f}; threshold "
                f"{resolution.threshold_match_probability:.10f})",
                flush=True,
            )
        if args.skip_peer:
            return 0
        done: dict[str, object] = {}

        def peer() -> None:
            try:
                done["df"] = _peer(spark, raw_df, args.peer).localCheckpoint(True)
            except Exception as exc:  # reported below; the thread must not die silently
                done["error"] = exc

        t0 = time.perf_counter()
        worker = threading.Thread(target=peer, daemon=True)
        worker.start()
        worker.join(args.peer_timeout)
        peer_s = time.perf_counter() - t0
        label = f"splink default ({args.peer})"
        if worker.is_alive():
            spark.sparkContext.cancelAllJobs()
            print(f"{label}: {n} records, not finished after {peer_s:.0f}s (cancelled)")
            for backend, ours_s in ours_times.items():
                print(f"ratio cardlake ({backend})/{label} time: < {ours_s / peer_s:.2f}")
            return 0
        if "error" in done:
            raise RuntimeError(f"{label} failed") from done["error"]  # type: ignore[arg-type]
        p = evaluate_clusters(done["df"], truth_df)  # type: ignore[arg-type]
        print(
            f"{label}: {n} records in {peer_s:.1f}s  precision "
            f"{p.pairwise_precision:.4f} recall {p.pairwise_recall:.4f} "
            f"F1 {p.pairwise_f1:.4f} (B-cubed F1 {p.bcubed_f1:.4f})"
        )
        for backend, ours_s in ours_times.items():
            print(f"ratio cardlake ({backend})/{label} time: {ours_s / peer_s:.2f}")
    finally:
        spark.stop()
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
