"""Landing files and truth tables: line bookkeeping, duplicates, re-deliveries, Parquet."""

from __future__ import annotations

import csv
import io
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cardlake.synth.defects import break_text
from cardlake.synth.sources import REDELIVERY_SUFFIX

Serializer = Callable[[dict[str, Any]], str]


_CSV_BUF = io.StringIO()
_CSV_WRITER = csv.writer(_CSV_BUF, lineterminator="")


def csv_line(values: Sequence[Any]) -> str:
    """One CSV line (minimal quoting, no newline)."""
    _CSV_BUF.seek(0)
    _CSV_BUF.truncate()
    _CSV_WRITER.writerow(values)
    return _CSV_BUF.getvalue()


class FileBuilder:
    """Collects the records of one landing file and where each one ends up.

    Lines are kept in order; ``finish`` inserts exact duplicate records at later positions,
    writes the file, optionally an exact re-delivered copy, and reports truth rows.
    """

    def __init__(
        self,
        *,
        source: str,
        rel_path: str,
        header: Sequence[str] = (),
        footer: Sequence[str] = (),
        columns: Sequence[str] | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        self.source = source
        self.rel_path = rel_path
        self.header = list(header)
        self.footer = list(footer)
        self.columns = list(columns) if columns is not None else None
        self.serializer = serializer
        self.lines: list[str] = []
        self.record_ids: list[str] = []
        self.persons: list[str] = []
        self.noise: list[str] = []
        self.bad: dict[int, str] = {}

    def add(
        self,
        record: dict[str, Any],
        *,
        record_id: str,
        person_id: str,
        noise: str = "",
        bad_kind: str | None = None,
        rnd: random.Random | None = None,
    ) -> None:
        """Serialise and append one record; ``bad_kind`` marks it for the manifest."""
        if self.columns is not None:
            values = [record[c] for c in self.columns]
            if bad_kind == "malformed_csv":
                values = values[: len(values) // 2]
            line = csv_line(values)
        else:
            assert self.serializer is not None
            line = self.serializer(record)
            if bad_kind in ("invalid_json", "broken_xml", "malformed_line"):
                assert rnd is not None
                line = break_text(line, bad_kind, rnd)
        self.add_line(
            line, record_id=record_id, person_id=person_id, noise=noise, bad_kind=bad_kind
        )

    def add_line(
        self,
        line: str,
        *,
        record_id: str,
        person_id: str,
        noise: str = "",
        bad_kind: str | None = None,
    ) -> None:
        """Append an already serialised record."""
        if bad_kind is not None:
            self.bad[len(self.lines)] = bad_kind
        self.lines.append(line)
        self.record_ids.append(record_id)
        self.persons.append(person_id)
        self.noise.append(noise)

    def extend_lines(self, lines: list[str], record_ids: list[str], persons: list[str]) -> None:
        """Append many clean records at once (fast path for transactions)."""
        self.lines.extend(lines)
        self.record_ids.extend(record_ids)
        self.persons.extend(persons)
        self.noise.extend([""] * len(lines))

    def finish(
        self,
        *,
        landing_root: Path,
        truth: TruthSink,
        rnd: random.Random,
        duplicate_rate: float,
        redelivery_rate: float,
    ) -> None:
        """Insert duplicates, write the file (and maybe a re-delivery), record the truth."""
        n = len(self.lines)
        order: list[tuple[float, int, int]] = [(float(i), 0, i) for i in range(n)]
        for i in range(n):
            if i not in self.bad and rnd.random() < duplicate_rate:
                order.append((rnd.uniform(i + 0.5, n), 1, i))
        order.sort()
        first_line = len(self.header) + 1
        path = landing_root / self.rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        body = [self.lines[i] for _, _, i in order]
        text = "\n".join([*self.header, *body, *self.footer]) + "\n"
        data = text.encode("utf-8")
        with open(path, "wb") as fh:
            fh.write(data)
        copies = [(self.rel_path, False)]
        if rnd.random() < redelivery_rate:
            stem, ext = os.path.splitext(self.rel_path)
            copy_rel = f"{stem}{REDELIVERY_SUFFIX}{ext}"
            with open(landing_root / copy_rel, "wb") as fh:
                fh.write(data)
            copies.append((copy_rel, True))
            truth.deliveries.append((self.source, copy_rel, "redelivery", self.rel_path))
        truth.deliveries.append((self.source, self.rel_path, "original", ""))
        idx = [i for _, _, i in order]
        rids = [self.record_ids[i] for i in idx]
        persons = [self.persons[i] for i in idx]
        noise = [self.noise[i] for i in idx]
        lines = range(first_line, first_line + len(idx))
        c = truth.sr_cols
        for rel, is_copy in copies:
            c["source"].extend([self.source] * len(idx))
            c["source_record_id"].extend(rids)
            c["person_id"].extend(persons)
            c["file"].extend([rel] * len(idx))
            c["line"].extend(lines)
            c["noise"].extend(noise)
            c["is_duplicate"].extend([is_copy or bool(dup) for _, dup, _ in order])
            for pos, i in enumerate(idx):
                kind = self.bad.get(i)
                if kind is not None:
                    truth.bad_records.append(
                        (self.source, rel, first_line + pos, kind, self.record_ids[i])
                    )


class TruthSink:
    """Truth rows for one delivery month, written as Parquet under ``truth_root``."""

    def __init__(self) -> None:
        self.sr_cols: dict[str, list[Any]] = {
            k: []
            for k in (
                "source",
                "source_record_id",
                "person_id",
                "file",
                "line",
                "noise",
                "is_duplicate",
            )
        }
        self.bad_records: list[tuple[str, str, int, str, str]] = []
        self.deliveries: list[tuple[str, str, str, str]] = []
        self.tables: dict[str, dict[str, list[Any]]] = {}

    def add_source_record(
        self, source: str, rid: str, person: str, file: str, line: int, noise: str, dup: bool
    ) -> None:
        """One landing record and the person behind it."""
        c = self.sr_cols
        c["source"].append(source)
        c["source_record_id"].append(rid)
        c["person_id"].append(person)
        c["file"].append(file)
        c["line"].append(line)
        c["noise"].append(noise)
        c["is_duplicate"].append(dup)

    def table(self, name: str, columns: Sequence[str]) -> dict[str, Any]:
        """Columns (lists or arrays) of a monthly truth table, created on first use."""
        if name not in self.tables:
            self.tables[name] = {c: [] for c in columns}
        return self.tables[name]

    def write(self, truth_root: Path, month: str) -> None:
        """Write every table as ``<truth_root>/<table>/month=<month>/part-0.parquet``."""
        tables = dict(self.tables)
        tables["source_records"] = self.sr_cols
        tables["bad_records"] = _cols(
            ("source", "file", "line", "kind", "record_key"), self.bad_records
        )
        tables["deliveries"] = _cols(("source", "file", "kind", "duplicate_of"), self.deliveries)
        for name, cols in tables.items():
            write_parquet(truth_root / name / f"month={month}" / "part-0.parquet", cols)


def _cols(names: Sequence[str], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


_TYPES = {
    "line": pa.int64(),
    "is_duplicate": pa.bool_(),
    "is_fraud": pa.bool_(),
    "fraud_probability": pa.float64(),
    "engagement": pa.float64(),
}


def write_parquet(path: Path, cols: dict[str, list[Any]]) -> None:
    """Deterministic Parquet write of column lists (empty columns typed as string)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, values in cols.items():
        typ = _TYPES.get(name)
        if typ is None and len(values) == 0:
            typ = pa.string()
        arrays[name] = pa.array(values, type=typ)
    pq.write_table(pa.table(arrays), path, compression="zstd")
