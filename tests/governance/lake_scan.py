"""What a byte-level scan of a lake sees, for the erasure and card-number tests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# A digit run that may hold a card number: 13 to 19 digits, single spaces or dashes between them.
DIGIT_RUN = re.compile(r"\d(?:[ -]?\d)+")
# Hex digests of the usual unkeyed functions (MD5, SHA-1, SHA-256), as text anywhere in a value.
HEX_DIGEST = re.compile(
    r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{40}|[0-9a-fA-F]{32})"
    r"(?![0-9a-fA-F])"
)
DIGESTS = (hashlib.md5, hashlib.sha1, hashlib.sha256)


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


def records_in_lake(root: Path, needles: Iterable[str] = ()) -> Iterator[str]:
    """Each record of the lake as one line of text: a Parquet row's values (decompressed, nested
    ones as Python writes them) joined by " | ", or a line of any other file (JSON logs, Delta
    logs, MLflow artefacts, Data Docs).

    With ``needles``, only the records holding one of them (case-insensitive) are yielded: Arrow
    filters the rows first, so the lake's millions of rows never all become Python strings.
    """
    wanted = [n.lower() for n in needles if n]
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            if wanted:
                table = table.filter(_rows_holding(table, wanted))
            for row in table.to_pylist():
                yield " | ".join(str(v) for v in row.values())
        else:
            text = path.read_bytes().decode("utf-8", errors="replace")
            for line in text.splitlines():
                if not wanted or any(n in line.lower() for n in wanted):
                    yield line


def _rows_holding(table: pa.Table, needles: list[str]) -> pa.Array:
    # True where any column, as text, holds a needle; nested columns go through Python.
    hit = pa.array([False] * table.num_rows, type=pa.bool_())
    for column in table.columns:
        try:
            text = pc.cast(column, pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            text = pa.chunked_array(
                [
                    pa.array(
                        [None if v is None else str(v) for v in column.to_pylist()],
                        type=pa.string(),
                    )
                ]
            )
        for needle in needles:
            found = pc.match_substring(text, needle, ignore_case=True)
            hit = pc.or_(hit, pc.fill_null(found, False))
    return hit


def card_numbers_in(text: str, pans: set[str]) -> set[str]:
    """The card numbers of ``pans`` written anywhere in ``text``: plain, grouped by spaces or
    dashes, or inside a longer digit run."""
    if not pans:
        return set()
    width = len(next(iter(pans)))
    found: set[str] = set()
    for run in DIGIT_RUN.findall(text):
        digits = run.replace(" ", "").replace("-", "")
        for start in range(len(digits) - width + 1):
            if digits[start : start + width] in pans:
                found.add(digits[start : start + width])
    return found


def digests_in(text: str) -> set[str]:
    """Every MD5, SHA-1 or SHA-256 shaped hex string in ``text``, lower-cased."""
    return {m.lower() for m in HEX_DIGEST.findall(text)}


def unkeyed_digests(secrets: Iterable[str]) -> dict[str, str]:
    """Hex MD5, SHA-1 and SHA-256 of each text (as given, and with a line ending), to the text."""
    out: dict[str, str] = {}
    for text in secrets:
        for variant in (text, text + "\n", text + "\r\n"):
            for fn in DIGESTS:
                out[fn(variant.encode()).hexdigest()] = text
    return out


def lines_holding(root: Path, pans: set[str]) -> list[str]:
    """Every line of every file under ``root`` that writes one of ``pans`` (in any grouping)."""
    held = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
            if card_numbers_in(line, pans):
                held.append(line)
    return held
