"""Bronze ingest time per format against a plain Spark read of the same files, and where it goes.

    .venv/bin/python bench/bench_bronze.py                 # the landing zone as it is (~1 min)
    .venv/bin/python bench/bench_bronze.py --size-gb 1 --profile large   # ~1 GB (issue 18)

For each format one source (csv product_usage, jsonl financial_records, xml demographics, txt
service_interactions) is ingested into a fresh lake with the full bronze path (parse, line
accounting, checks, dedupe, Great Expectations, suppression filters, Delta writes; the ``_ops``
rows are written too), and the same files are read by plain Spark with the contract's schema
where the reader takes one (CSV as text columns with the header, JSON and XML with the
contract's schema, logs as text) and every column materialised (a ``noop`` write: a ``count()``
lets a reader skip the parsing). Prints, per format, bronze seconds, plain seconds and their
ratio (issue 18's goal: within 2x at 1 GB), then bronze's seconds per step (see
``SourceReport.seconds``).

``--size-gb N`` builds about N GB of landing data in ``--work`` (kept, and reused by the next
run of the same size): each landing file of the four sources grows to k copies of its records,
the same 18 monthly files as a world with k times the customers, with the framing (CSV header,
XML declaration, root and footer) once. Copy i > 0 gets fresh record ids (a three-digit copy
number after the id's prefix: ``US2024010000001`` becomes ``US0012024010000001``), so
bronze's dedupe keeps every copy and writes all of it; lines whose id the pattern misses (a few
of the generator's defects) repeat and go the way of any repeated line. Card numbers repeat as
a customer's cards do. The N GB are split evenly over the four formats.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import DataFrameReader
from pyspark.sql.types import StructType

from cardlake.bronze import CONTRACTS, discover, ingest_source, load_bronze_config
from cardlake.config import load_config
from cardlake.quality import Validator
from cardlake.spark import build_logged_session
from cardlake.tables import Tables
from cardlake.tables.delta_rs import DeltaRsEngine

Reader = Callable[[DataFrameReader, list[str]], object]


def _schema(source: str) -> StructType:
    feed = CONTRACTS[source].feeds[0]
    schema = feed.json_schema or feed.xml_schema
    assert schema is not None
    return schema


# format -> (source, plain Spark reader, the record id to make fresh: (prefix)(digits))
CASES: dict[str, tuple[str, Reader, bytes]] = {
    "csv": (
        "product_usage",
        lambda r, p: r.option("header", True).csv(p),
        rb"^(US)(\d+)(?=,)",
    ),
    "jsonl": (
        "financial_records",
        lambda r, p: r.schema(_schema("financial_records")).json(p),
        rb'("fin_id":"FIN)(\d+)',
    ),
    "xml": (
        "demographics",
        lambda r, p: (
            r.format("xml").option("rowTag", "person").schema(_schema("demographics")).load(p)
        ),
        rb'(<person id="D)(\d+)',
    ),
    "txt": ("service_interactions", lambda r, p: r.text(p), rb"(\| INT-)(\d+)"),
}
FRAMING = {"csv": (1, 0), "xml": (2, 1), "jsonl": (0, 0), "txt": (0, 0)}  # (head, tail) lines


def grown(data: bytes, *, fmt: str, copies: int, fresh_id: bytes) -> bytes:
    """``data``'s records ``copies`` times, framing once, copy i > 0 with fresh record ids."""
    lines = data.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
    head_n, tail_n = FRAMING[fmt]
    head, body = lines[:head_n], lines[head_n : len(lines) - tail_n]
    tail = lines[len(lines) - tail_n :] if tail_n else []
    text = b"".join(body)
    pattern = re.compile(fresh_id, re.MULTILINE)
    parts = [*head, text]
    for i in range(1, copies):
        parts.append(pattern.sub(rb"\g<1>%03d\g<2>" % i, text))
    return b"".join([*parts, *tail])


def build_landing(landing: str, work: Path, size_gb: float, formats: list[str]) -> str:
    """About ``size_gb`` GB of the four sources' files under ``work`` (reused when built)."""
    marker = work / f".built-{size_gb:g}GB-{'-'.join(formats)}"
    if marker.exists():
        return str(work)
    shutil.rmtree(work, ignore_errors=True)
    share = size_gb * 1e9 / len(formats)
    for fmt in formats:
        source, _, fresh_id = CASES[fmt]
        files = sorted(p for p in (Path(landing) / source).glob("*/*") if p.is_file())
        copies = max(1, math.ceil(share / sum(p.stat().st_size for p in files)))
        for src in files:
            out = work / source / src.parent.name / src.name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(grown(src.read_bytes(), fmt=fmt, copies=copies, fresh_id=fresh_id))
        print(f"built {source}: {len(files)} files x {copies} copies", flush=True)
    marker.touch()
    return str(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", default=None, help="landing root (default: from conf)")
    parser.add_argument("--env", default="local")
    parser.add_argument("--profile", default=None, help="session profile (default: the env's)")
    parser.add_argument("--size-gb", type=float, default=0.0, help="grow the landing to this")
    parser.add_argument("--work", default=None, help="where the grown landing is built")
    parser.add_argument("--formats", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    cfg = load_config(args.env, overrides={"spark.profile": args.profile} if args.profile else None)
    landing = args.landing or cfg.paths.landing_root
    if args.size_gb > 0:
        work = Path(args.work or f"{tempfile.gettempdir()}/bench_bronze_{args.size_gb:g}gb")
        t0 = time.perf_counter()
        landing = build_landing(landing, work, args.size_gb, args.formats)
        print(f"landing {landing} ready in {time.perf_counter() - t0:.0f}s", flush=True)
    settings = load_bronze_config(args.env)
    spark = build_logged_session(cfg, command="bench-bronze")
    spark.range(1).write.format("noop").mode("overwrite").save()  # the first job's start-up
    checker = Validator()  # one per run, as the pipeline's; its start-up is not bronze's
    lines = []
    for fmt in args.formats:
        source, reader, _ = CASES[fmt]
        t0 = time.perf_counter()
        files = discover(landing, source, key=b"bench")
        listed = time.perf_counter() - t0
        paths = [f.abs_path for f in files]
        mb = sum(f.size for f in files) / 1e6
        t0 = time.perf_counter()
        reader(spark.read, paths).write.format("noop").mode("overwrite").save()  # type: ignore[attr-defined]
        plain = time.perf_counter() - t0
        root = tempfile.mkdtemp(prefix="bench_bronze_")
        try:
            tables = Tables(
                spark=spark, lake_root=root, engine=DeltaRsEngine(spark=spark), register_sql=False
            )
            t0 = time.perf_counter()
            report = ingest_source(
                spark,
                tables,
                CONTRACTS[source],
                settings,
                token_key=b"bench",
                files=files,
                validator=checker,
            )
            bronze = time.perf_counter() - t0 + listed
        finally:
            shutil.rmtree(root, ignore_errors=True)
        steps = {"list+digest+lines": listed, **report.seconds}
        steps["other (ops writes, ...)"] = bronze - sum(steps.values())
        lines.append(
            f"{fmt:5} {source:20} {len(files):5} {mb:8.1f} {report.rows_read:9d} "
            f"{report.rows_duplicate:6d} | "
            f"{bronze:8.1f} {plain:8.1f} {bronze / plain:6.2f}  "
            + ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
        )
        print(lines[-1], flush=True)
    print(
        f"\n{'fmt':5} {'source':20} {'files':>5} {'MB':>8} {'records':>9} {'dups':>6} | "
        f"{'bronze s':>8} {'plain s':>8} {'ratio':>6}  bronze's steps (s)"
    )
    print("\n".join(lines))
    spark.stop()


if __name__ == "__main__":
    main()
