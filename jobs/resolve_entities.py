"""Resolve person records in any file: one input deduplicates, two inputs link.

    python jobs/resolve_entities.py --input people.csv --mapping mapping.yaml --output out.csv
    python jobs/resolve_entities.py --input a.parquet --input b.csv --mapping m.yaml \\
        --output links.parquet

Inputs are CSV (header row, every column a string) or Parquet, by extension; the mapping is a
flat YAML dictionary from role to column name (see ``cardlake.er.records.ROLES``). The output
(CSV or Parquet, by extension) has one row per input record: ``record_id``, ``entity_id``
(shared by records of one person) and ``match_probability`` of the record's best link (empty
when it has none). Exit codes as every job: 0 done, 1 failed on data, 2 bad arguments, 4 crash.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from cardlake.cli import run_job
from cardlake.config import Config

OUTPUT_COLUMNS = ("record_id", "entity_id", "match_probability")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="PATH",
        help="a .csv or .parquet file of person records; twice to link two",
    )
    parser.add_argument(
        "--mapping",
        required=True,
        metavar="MAPPING.yaml",
        help="role -> column name (record_id required)",
    )
    parser.add_argument(
        "--output", required=True, metavar="PATH", help="a .csv or .parquet file to write"
    )
    parser.add_argument("--seed", type=int, default=20240101, help="seed for u sampling")


def _write_single_file(df: Any, path: str) -> None:
    fmt = "csv" if path.lower().endswith(".csv") else "parquet"
    writer = df.coalesce(1).write.mode("overwrite")
    if "://" in path:  # a URI: a Spark output folder at that path
        (writer.option("header", True).csv(path) if fmt == "csv" else writer.parquet(path))
        return
    target = Path(path).resolve()
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}"
    try:
        (
            writer.option("header", True).csv(str(staging))
            if fmt == "csv"
            else writer.parquet(str(staging))
        )
        parts = sorted(staging.glob(f"part-*.{fmt}")) or sorted(staging.glob("part-*"))
        if len(parts) != 1:
            raise RuntimeError(f"expected one part file in {staging}, found {len(parts)}")
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(parts[0], target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run(spark: Any, cfg: Config, args: argparse.Namespace) -> None:
    """Reads the inputs, resolves them and writes one row per input record.

    Raises:
        ConfigError: the mapping or an input path is unusable (exit code 2).
    """
    from pyspark.sql import functions as F

    from cardlake.config import ConfigError
    from cardlake.er import (
        MappingError,
        ModelSettings,
        ResolverSettings,
        load_mapping,
        read_person_file,
        resolve_entities,
        to_person_records,
    )

    if len(args.input) > 2:
        raise ConfigError(f"--input: one file deduplicates, two link; got {len(args.input)}")
    for path in (*args.input, args.output):
        if not path.lower().endswith((".csv", ".parquet")):
            raise ConfigError(f"{path}: expected a .csv or .parquet path")
    try:
        mapping = load_mapping(args.mapping)
        records = [
            to_person_records(read_person_file(spark, path), mapping=mapping, dataset=f"in{i}")
            for i, path in enumerate(args.input)
        ]
    except MappingError as exc:
        raise ConfigError(str(exc)) from exc
    settings = ResolverSettings(model=ModelSettings(seed=args.seed))
    resolution = resolve_entities(spark, records, settings=settings)
    out = resolution.entities_df.select(
        "record_id", "entity_id", F.col("match_probability").cast("double")
    ).orderBy("record_id")
    _write_single_file(out, args.output)


def main(argv: list[str] | None = None) -> int:
    return run_job(run, description=__doc__.splitlines()[0], add_arguments=add_arguments, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
