"""A data profiling report per source (bronze table): completeness, distinct counts,
distributions and outliers per column, as static HTML linked from the data quality page.

DuckDB's ``SUMMARIZE`` computes the per-column profile (type, distinct estimate, null share,
min/max, mean, standard deviation, quartiles) in one scan of the snapshot; outliers are the
values outside 1.5 IQR of the quartiles. ydata-profiling was the other candidate: its current
release pins pandas < 3, numpy and matplotlib below the versions this project uses. Minimum and
maximum are shown for numbers and dates only: a string column's extremes are real values (names,
emails), which a profile must not copy.
"""

from __future__ import annotations

import html
import os

import pandas as pd

from cardlake.serve.lake import Lake
from cardlake.serve.masking import is_personal

_NUMERIC = ("INT", "BIGINT", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "DECIMAL", "HUGEINT",
            "REAL")
_ORDERED = (*_NUMERIC, "DATE", "TIMESTAMP")


def _is(kind: str, prefixes: tuple[str, ...]) -> bool:
    return kind.upper().startswith(prefixes)


def profile(lake: Lake, name: str) -> pd.DataFrame:
    """One row per column of ``name``: the profile and the count of IQR outliers."""
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
        n = lake.query(f'select count(*) as n from t where "{col}" < ? or "{col}" > ?',
                       [low, high], t=name)["n"].iloc[0]
        outliers.append(int(n))
    # extremes and quartiles only where they are not one person's value (a date of birth)
    ordered = [_is(str(k), _ORDERED) and not is_personal(str(c))
               for k, c in zip(summary["column_type"], summary["column_name"], strict=True)]
    shown = pd.Series(ordered)
    return pd.DataFrame({
        "column": summary["column_name"],
        "type": summary["column_type"],
        "rows": total,
        "complete_pct": (100 - pd.to_numeric(summary["null_percentage"])).round(2),
        "distinct_approx": summary["approx_unique"],
        "min": [m if ok else "" for m, ok in zip(summary["min"], ordered, strict=True)],
        "p25": summary["q25"].where(shown), "median": summary["q50"].where(shown),
        "p75": summary["q75"].where(shown),
        "max": [m if ok else "" for m, ok in zip(summary["max"], ordered, strict=True)],
        "mean": summary["avg"].where(shown), "std": summary["std"].where(shown),
        "iqr_outliers": outliers,
    })


def render(name: str, version_label: str, df: pd.DataFrame) -> str:
    table = df.to_html(index=False, border=0, na_rep="", classes="profile")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>Profile of {html.escape(name)}</title><style>
body {{ font-family: "DejaVu Sans", Arial, sans-serif; margin: 20px; color: #1d2733; }}
table.profile {{ border-collapse: collapse; font-size: 12px; }}
table.profile th, table.profile td {{ border-bottom: 1px solid #e5e9ef; padding: 3px 8px; }}
table.profile th {{ background: #f1f4f8; }}
</style></head><body><h1>Profile of {html.escape(name)}</h1>
<p>{html.escape(version_label)}. Completeness is the share of non-null values; distinct counts
are estimates; outliers are values outside 1.5 IQR of the quartiles. Minimum and maximum are
shown for numbers and dates only.</p>
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
