"""The end of a run, for people: tables with row counts, data and entity-resolution quality,
model metrics, and what to open next."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from cardlake.console import format_table, say
from cardlake.pipeline import Lake, StageOutcome
from cardlake.threads import in_parallel

log = logging.getLogger("cardlake.summary")

# The lake layers each stage writes (their tables are listed with row counts).
STAGE_LAYERS = {
    "bronze": "bronze",
    "silver": "silver",
    "gold": "gold",
    "ml": "gold",
    "analytics": "gold",
}
COLUMNS = 3
NEXT_STEPS = (
    ("make mlflow-ui", "compare the model runs and the registry (http://127.0.0.1:5000)"),
    ("make sql", "query bronze.*, silver.*, gold.* by name"),
    ("make dashboard", "the dashboard in a browser"),
)


def _metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def table_counts(lake: Lake, layers: Sequence[str]) -> dict[str, int]:
    """Rows per table of ``layers`` (every table registered for SQL)."""
    tables = lake.tables()
    names = [n for n in sorted(tables.register_sql()) if n.partition(".")[0] in layers]
    # Each count is a short Spark job with planning around it: two at a time fill both cores.
    return dict(zip(names, in_parallel(lambda n: tables.read(n).count(), names), strict=True))


def _tables_lines(counts: dict[str, int]) -> list[str]:
    cells = [(name, f"{rows:,}") for name, rows in counts.items()]
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(cells), COLUMNS):
        chunk = cells[i : i + COLUMNS]
        chunk += [("", "")] * (COLUMNS - len(chunk))
        rows.append(tuple(x for cell in chunk for x in cell))
    return format_table(rows, indent="    ")


def print_summary(lake: Lake, outcomes: Sequence[StageOutcome], *, seconds: float) -> None:
    """Prints the run's summary on stdout."""
    say()
    say(f"done in {seconds:.1f}s: " + ", ".join(f"{o.name} {o.seconds:.1f}s" for o in outcomes))
    by_name = {o.name: o.result for o in outcomes}
    layers = sorted({STAGE_LAYERS[n] for n in by_name if n in STAGE_LAYERS})
    if layers:
        counts = table_counts(lake, layers)
        say(f"\ntables ({len(counts)}, rows):")
        for line in _tables_lines(counts):
            say(line)
    reports = by_name.get("bronze") or []
    if reports:
        read = sum(r.rows_read for r in reports)
        quarantined = sum(r.rows_quarantined for r in reports)
        duplicate = sum(r.rows_duplicate for r in reports)
        failed_dq = [r.source for r in reports if not r.dq_success]
        say("\ndata quality (bronze):")
        say(
            f"    {sum(r.files_ingested for r in reports)} files new, "
            f"{sum(r.files_skipped for r in reports)} already ingested; rows read {read:,}, "
            f"accepted {sum(r.rows_accepted for r in reports):,}, quarantined {quarantined:,}, "
            f"duplicates {duplicate:,}"
        )
        say(
            "    expectations: "
            + (f"non-critical failures in {', '.join(failed_dq)}" if failed_dq else "all passed")
            + " (results in _ops.dq_results, Data Docs in _ops/data_docs)"
        )
    rebuilt = [(n, r) for n in ("silver", "gold") if isinstance(r := by_name.get(n), str)]
    if rebuilt:  # what the commit log let the stages skip (cardlake.tables.watermarks)
        say("\nrecomputed:")
        for line in format_table(rebuilt, indent="    "):
            say(line)
    er = by_name.get("silver")
    if isinstance(er, dict) and er:
        say("\nentity resolution (silver.er_metrics, vs the generator's truth):")
        say(
            "    "
            + ", ".join(
                f"{k.replace('_', ' ')} {_metric(er[k])}"
                for k in ("pairwise_precision", "pairwise_recall", "pairwise_f1", "bcubed_f1")
                if k in er
            )
        )
    models = by_name.get("ml") or {}
    if models:
        say("\nmodels (MLflow; champion aliases in the registry):")
        rows = []
        for model, metrics in models.items():
            shown = [(k, v) for k, v in sorted(metrics.items()) if k != "wall_seconds"][:5]
            rows.append((model, ", ".join(f"{k} {_metric(v)}" for k, v in shown)))
        for line in format_table(rows, indent="    "):
            say(line)
    if layers:
        say("\nnext:")
        for line in format_table(list(NEXT_STEPS), indent="    "):
            say(line)
