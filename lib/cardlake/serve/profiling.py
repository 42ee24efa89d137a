"""A data profiling report per source (bronze table): completeness, distinct counts,
distributions and outliers per column, as static HTML linked from the data quality page.

DuckDB's ``SUMMARIZE`` computes the per-column profile (type, distinct estimate, null share,
min/max, mean, standard deviation, quartiles) in one scan of the snapshot; outliers are the
values outside 1.5 IQR of the quartiles. One more scan gives every categorical column's most
frequent values with their counts (DuckDB's ``UNPIVOT`` and one ``GROUP BY``), and one more
every numeric column's histogram (``histogram`` over ``equi_width_bins`` of its range), drawn
as a small inline SVG. ydata-profiling was the other candidate: its current release pins
pandas < 3, numpy and matplotlib below the versions this project uses. Minimum and maximum are
shown for numbers and dates only: a string column's extremes are real values (names, emails),
which a profile must not copy. For the same reason top values are those of categorical columns
only (a few distinct values), each shared by several rows, and neither top values nor
histograms are shown for personal fields.
"""

from __future__ import annotations

import html
import math
import os
from typing import Any

import pandas as pd

from cardlake.serve.lake import Lake
from cardlake.serve.masking import is_personal

_NUMERIC = ("INT", "BIGINT", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "DECIMAL", "HUGEINT", "REAL")
_ORDERED = (*_NUMERIC, "DATE", "TIMESTAMP")
_NESTED = ("STRUCT", "MAP")  # and any LIST type (``...[]``): its text would copy nested fields
TOP_VALUES = 5  # the most frequent values shown per column
TOP_MAX_DISTINCT = 50  # categorical: at most this many distinct values (SUMMARIZE's estimate)
MIN_SHARED = 5  # a top value is shared by at least this many rows: never one record's value
HISTOGRAM_BINS = 10  # equal-width bins over the column's range, rounded to nice bounds
SPARK_W, SPARK_H = 120, 28  # pixels of a histogram's inline SVG


def _is(kind: str, prefixes: tuple[str, ...]) -> bool:
    return kind.upper().startswith(prefixes)


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def top_values(lake: Lake, name: str, columns: list[str]) -> dict[str, list[tuple[str, int]]]:
    """Per column, its ``TOP_VALUES`` most frequent non-null values (as text) with their row
    counts, most frequent first, leaving out values fewer than ``MIN_SHARED`` rows share."""
    if not columns:
        return {}
    casts = ", ".join(f"cast({_quoted(c)} as varchar) as {_quoted(c)}" for c in columns)
    df = lake.query(
        f"""
        select col, val, n from (
            select col, val, count(*) as n,
                   row_number() over (partition by col order by count(*) desc, val) as rank
            from (unpivot (select {casts} from t) on columns(*) into name col value val)
            group by col, val)
        where rank <= ? and n >= ? order by col, rank
        """,
        [TOP_VALUES, MIN_SHARED],
        t=name,
    )
    return {
        str(col): [(str(v), int(n)) for v, n in zip(g["val"], g["n"], strict=True)]
        for col, g in df.groupby("col", sort=False)
    }


def histograms(
    lake: Lake, name: str, ranges: dict[str, tuple[float, float]]
) -> dict[str, list[tuple[float, int]]]:
    """Per numeric column, rows per bin over its ``(low, high)`` range in one scan: pairs of
    (upper bound, count), a bin holding the values above the previous bound up to its own."""
    if not ranges:
        return {}
    aggregates = ", ".join(
        f"histogram({_quoted(c)}::double, equi_width_bins({low!r}::double, {high!r}::double, "
        f"{HISTOGRAM_BINS}, true)) as {_quoted(c)}"
        for c, (low, high) in ranges.items()
    )
    row = lake.query(f"select {aggregates} from t", t=name).iloc[0]
    return {c: sorted((float(k), int(v)) for k, v in (row[c] or {}).items()) for c in ranges}


def profile(lake: Lake, name: str) -> pd.DataFrame:
    """One row per column of ``name``: the profile, the count of IQR outliers, the top values of
    a categorical column and the histogram of a numeric one."""
    summary = lake.query("summarize select * from t", t=name)
    total = int(summary["count"].iloc[0]) if len(summary) else 0
    outliers: list[int | None] = []
    for _, row in summary.iterrows():
        if not _is(str(row["column_type"]), _NUMERIC) or pd.isna(row["q25"]):
            outliers.append(None)
            continue
        q1, q3 = float(row["q25"]), float(row["q75"])
        low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
        col = str(row["column_name"]).replace('"', '""')
        n = lake.query(
            f'select count(*) as n from t where "{col}" < ? or "{col}" > ?', [low, high], t=name
        )["n"].iloc[0]
        outliers.append(int(n))
    # extremes and quartiles only where they are not one person's value (a date of birth)
    ordered = [
        _is(str(k), _ORDERED) and not is_personal(str(c))
        for k, c in zip(summary["column_type"], summary["column_name"], strict=True)
    ]
    shown = pd.Series(ordered)
    categorical, ranges = [], {}
    for _, row in summary.iterrows():
        column, kind = str(row["column_name"]), str(row["column_type"])
        if is_personal(column) or _is(kind, _NESTED) or kind.endswith("]"):
            continue
        if pd.notna(row["approx_unique"]) and int(row["approx_unique"]) <= TOP_MAX_DISTINCT:
            categorical.append(column)
        if _is(kind, _NUMERIC) and pd.notna(row["min"]) and pd.notna(row["max"]):
            ranges[column] = (float(row["min"]), float(row["max"]))
    tops = top_values(lake, name, categorical)
    bins = histograms(lake, name, ranges)
    return pd.DataFrame(
        {
            "column": summary["column_name"],
            "type": summary["column_type"],
            "rows": total,
            "complete_pct": (100 - pd.to_numeric(summary["null_percentage"])).round(2),
            "distinct_approx": summary["approx_unique"],
            "min": [m if ok else "" for m, ok in zip(summary["min"], ordered, strict=True)],
            "p25": summary["q25"].where(shown),
            "median": summary["q50"].where(shown),
            "p75": summary["q75"].where(shown),
            "max": [m if ok else "" for m, ok in zip(summary["max"], ordered, strict=True)],
            "mean": summary["avg"].where(shown),
            "std": summary["std"].where(shown),
            "iqr_outliers": outliers,
            "top_values": [tops.get(str(c)) for c in summary["column_name"]],
            "histogram": [bins.get(str(c)) for c in summary["column_name"]],
        }
    )


def _cell(value: Any) -> str:
    """A profile cell as escaped HTML: empty for a missing value, six significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(f"{value:.6g}" if isinstance(value, float) else str(value))


def _top_cell(values: list[tuple[str, int]] | None) -> str:
    return "" if not values else html.escape(", ".join(f"{v} ({n:,})" for v, n in values))


def _histogram_svg(bins: list[tuple[float, int]] | None) -> str:
    """Bars of the bins' counts (a tooltip each), then the range they cover."""
    if not bins:
        return ""
    top, width = max(n for _, n in bins) or 1, SPARK_W / len(bins)
    heights = [max(SPARK_H * n / top, 1.0) if n else 0.0 for _, n in bins]  # a row shows
    bars = "".join(
        f'<rect x="{i * width:.1f}" y="{SPARK_H - h:.1f}" width="{max(width - 1, 1):.1f}" '
        f'height="{h:.1f}"><title>up to {bound:.6g}: {n:,}</title></rect>'
        for i, ((bound, n), h) in enumerate(zip(bins, heights, strict=True))
    )
    return (
        f'<svg class="histogram" width="{SPARK_W}" height="{SPARK_H}">{bars}</svg>'
        f'<div class="range">up to {bins[0][0]:.6g} … {bins[-1][0]:.6g}</div>'
    )


def render(name: str, version_label: str, df: pd.DataFrame) -> str:
    shown = df.drop(columns=["top_values", "histogram"]).map(_cell)
    shown["top_values"] = [_top_cell(v) for v in df["top_values"]]
    shown["histogram"] = [_histogram_svg(b) for b in df["histogram"]]
    table = shown.to_html(index=False, border=0, escape=False, classes="profile")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>Profile of {html.escape(name)}</title><style>
body {{ font-family: "DejaVu Sans", Arial, sans-serif; margin: 20px; color: #1d2733; }}
table.profile {{ border-collapse: collapse; font-size: 12px; }}
table.profile th, table.profile td {{ border-bottom: 1px solid #e5e9ef; padding: 3px 8px; }}
table.profile th {{ background: #f1f4f8; }}
svg.histogram rect {{ fill: #4c78a8; }}
div.range {{ color: #5b6776; font-size: 10px; }}
</style></head><body><h1>Profile of {html.escape(name)}</h1>
<p>{html.escape(version_label)}. Completeness is the share of non-null values; distinct counts
are estimates; outliers are values outside 1.5 IQR of the quartiles. Minimum and maximum are
shown for numbers and dates only. Top values (with their row counts) are shown for columns of at
most {TOP_MAX_DISTINCT} distinct values, each shared by at least {MIN_SHARED} rows; histograms
for numeric columns ({HISTOGRAM_BINS} bins, a tooltip per bar). Personal fields get neither.</p>
{table}</body></html>
"""


def write_profiles(lake: Lake, out_dir: str) -> list[str]:
    """``<out_dir>/<source>.html`` for every bronze table; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name in lake.tables("bronze"):
        path = os.path.join(out_dir, f"{name.split('.', 1)[1]}.html")
        with open(path, "w") as fh:
            fh.write(render(name, lake.version_label(name), profile(lake, name)))
        paths.append(path)
    return paths
