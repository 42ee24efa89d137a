"""What a byte-level scan of a lake sees, for the erasure tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def values_in_lake(root: Path) -> str:
    """Every value of every Parquet file (decompressed) and every other file's bytes, as text."""
    parts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            for column in pq.read_table(path).to_pydict().values():
                parts += [str(v) for v in column]
        else:
            parts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)
