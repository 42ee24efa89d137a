"""One reader per landing format: files in, one row per record with its file, line and raw text.

Every reader is a DataFrame transform over the output of :func:`read_files` (one row per file,
the whole text), so many small files of a source are one Spark read, and returns::

    _source_file  the file relative to the landing root (<source>/<YYYY-MM>/<file>)
    _line         1-based physical line where the record starts
    _raw          the record's raw text
    _error_code   null, or why the record could not be parsed (malformed_csv, ...)
    _error        a human sentence naming the problem
    <field>...    the contract's fields as text (typed later by the checks)

Why whole-file text: Spark's line-based readers (text, CSV, JSON, XML with rowTag) split files
and do not expose line numbers, and the CSV/XML readers cannot say where a corrupt record was.
Reading each file whole and splitting it ourselves gives exact line numbers, keeps the raw text
of every record for quarantine, and (for CSV) lets a real CSV parser handle quoted fields with
embedded newlines while still knowing each record's first physical line. Landing files are small
(one day or month of one department), so a file per task is cheap.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping, Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from cardlake.bronze.contracts import Feed

FILE, LINE, RAW, ERROR_CODE, ERROR = "_source_file", "_line", "_raw", "_error_code", "_error"
FIELDS, IS_HEADER = "_fields", "_is_header"
_CORRUPT = "_corrupt_record"


def read_files(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """One row per file: ``_source_file`` (relative: <source>/<month>/<file>) and ``value``."""
    return spark.read.text(list(paths), wholetext=True).select(
        F.regexp_extract(F.col("_metadata.file_path"), r"([^/]+/[^/]+/[^/]+)$", 1).alias(FILE),
        F.col("value"),
    )


def lines(files_df: DataFrame, *, header_lines: int = 0, footer: str | None = None) -> DataFrame:
    """Physical lines with 1-based numbers; header lines, blank lines and the footer dropped."""
    exploded = files_df.select(FILE, F.posexplode(F.split("value", "\n")).alias("pos", "text"))
    out = exploded.select(
        FILE,
        (F.col("pos") + 1).cast("int").alias(LINE),
        F.regexp_replace("text", "\r$", "").alias(RAW),
    )
    keep = (F.col(LINE) > header_lines) & (F.col(RAW) != "")
    if footer is not None:
        keep = keep & (F.col(RAW) != footer)
    return out.filter(keep)


# ------------------------------------------------------------------------------------- CSV

_CSV_RECORD = StructType([
    StructField("line", IntegerType()),
    StructField("raw", StringType()),
    StructField("fields", ArrayType(StringType())),
    StructField("is_header", BooleanType()),
])


def split_csv(text: str | None) -> list[tuple[int, str, list[str] | None, bool]]:
    """CSV records of one file: (first line, raw text, fields or None if unparseable, header?).

    Python's csv module follows RFC 4180 (quotes, doubled quotes, newlines inside quotes); the
    lines it consumes for each record give the record's first line and its exact raw text.
    """
    if not text:
        return []
    physical = text.split("\n")
    if physical and physical[-1] == "":
        physical.pop()
    consumed: list[str] = []

    def feed() -> Iterable[str]:
        for line in physical:
            consumed.append(line)
            yield line + "\n"

    out: list[tuple[int, str, list[str] | None, bool]] = []
    reader = csv.reader(feed(), strict=True)
    start = 1
    while True:
        try:
            fields: list[str] | None = next(reader)
        except StopIteration:
            break
        except csv.Error:
            fields = None  # e.g. an unclosed quote: the rest of the file is this one record
        raw = "\n".join(x.rstrip("\r") for x in consumed)
        n = len(consumed)
        consumed.clear()
        if raw.strip():
            out.append((start, raw, fields, not out))
        start += n
        if fields is None:
            break
    return out


def csv_records(files_df: DataFrame) -> DataFrame:
    """Every CSV record of every file with its line and fields; the header flagged."""
    split = F.udf(split_csv, ArrayType(_CSV_RECORD), useArrow=True)
    records = files_df.select(FILE, F.explode(split("value")).alias("r"))
    return records.select(
        FILE,
        F.col("r.line").alias(LINE),
        F.col("r.raw").alias(RAW),
        F.col("r.fields").alias(FIELDS),
        F.col("r.is_header").alias(IS_HEADER),
    )


def _by_file(
    values: Mapping[tuple[str, ...], list[str]], pick: Callable[[tuple[str, ...]], Column]
) -> Column:
    # One expression per distinct header: files sharing a header share the column positions.
    expr: Column | None = None
    for header, files in values.items():
        value = pick(header)
        cond = F.col(FILE).isin(files)
        expr = F.when(cond, value) if expr is None else expr.when(cond, value)
    return expr if expr is not None else F.lit(None)


def parse_csv(
    records_df: DataFrame, *, headers: Mapping[tuple[str, ...], list[str]], columns: Sequence[str]
) -> DataFrame:
    """Maps CSV fields to ``columns`` by each file's header; a wrong field count is malformed.

    Args:
        records_df: :func:`csv_records` output.
        headers: header (column names) -> the files that carry it.
        columns: the names to output (contract fields, plus evolved new columns).
    """
    body = records_df.filter(~F.col(IS_HEADER))
    width = _by_file(headers, lambda h: F.lit(len(h)))
    n = F.size(FIELDS)
    error = F.when(F.col(FIELDS).isNull(), F.lit("unparseable CSV (unbalanced quotes)")).when(
        n != width, F.format_string("expected %d fields, got %d", width, n)
    )
    def field_of(column: str) -> Callable[[tuple[str, ...]], Column]:
        def pick(header: tuple[str, ...]) -> Column:
            if column in header:
                return F.get(F.col(FIELDS), header.index(column))
            return F.lit(None)

        return pick

    values = [_by_file(headers, field_of(c)).cast("string").alias(c) for c in columns]
    return body.select(
        FILE, LINE, RAW,
        F.when(error.isNotNull(), F.lit("malformed_csv")).alias(ERROR_CODE),
        error.alias(ERROR),
        *[F.when(error.isNull(), v).alias(c) for v, c in zip(values, columns, strict=True)],
    )


# ------------------------------------------------------------------------------------ JSON


def parse_json(
    lines_df: DataFrame, *, schema: StructType, paths: Mapping[str, str],
    columns: Sequence[str], extra: Sequence[str] = (),
) -> DataFrame:
    """JSON lines parsed with the explicit ``schema`` (no inference).

    A line that is not a JSON object is ``invalid_json``; a document whose value does not fit the
    schema's type (text where a number belongs) is ``type_mismatch``. ``columns`` are top-level
    fields or ``paths`` into the document; ``extra`` are new top-level keys kept as JSON text.
    """
    with_corrupt = StructType([*schema.fields, StructField(_CORRUPT, StringType())])
    doc = F.from_json(
        RAW, with_corrupt, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}
    )
    parsed = lines_df.select(FILE, LINE, RAW, doc.alias("doc"),
                             F.json_object_keys(RAW).alias("keys"))
    code = F.when(F.col("keys").isNull(), F.lit("invalid_json")).when(
        F.col(f"doc.{_CORRUPT}").isNotNull(), F.lit("type_mismatch")
    )
    message = F.when(F.col("keys").isNull(), F.lit("not a complete JSON object")).when(
        F.col(f"doc.{_CORRUPT}").isNotNull(),
        F.lit("a value does not have the type the contract gives its field"),
    )
    values = [F.col(f"doc.{paths.get(c, c)}").alias(c) for c in columns]
    extras = [F.get_json_object(RAW, f"$.{c}").alias(c) for c in extra]
    return parsed.select(FILE, LINE, RAW, code.alias(ERROR_CODE), message.alias(ERROR),
                         *values, *extras)


def json_keys_by_file(lines_df: DataFrame) -> dict[str, set[str]]:
    """Top-level keys seen per file (for schema-drift checks; one small aggregate)."""
    rows = (
        lines_df.select(FILE, F.explode(F.json_object_keys(RAW)).alias("key"))
        .groupBy(FILE).agg(F.collect_set("key").alias("keys")).collect()
    )
    return {r[FILE]: set(r["keys"]) for r in rows}


# ------------------------------------------------------------------------------------- XML


def parse_xml(
    lines_df: DataFrame, *, feed: Feed, row_tag: str, columns: Sequence[str]
) -> DataFrame:
    """One XML element per line, parsed with Spark's native ``from_xml`` and an explicit schema.

    Spark's XML file reader (``rowTag``) cannot report positions and a broken element can run
    into its neighbours, so each line is parsed alone; one that is not a well-formed ``row_tag``
    element is ``broken_xml`` and touches nothing else.
    """
    assert feed.xml_schema is not None
    with_corrupt = StructType([*feed.xml_schema.fields, StructField(_CORRUPT, StringType())])
    doc = F.from_xml(RAW, with_corrupt,
                     {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT})
    parsed = lines_df.select(FILE, LINE, RAW, doc.alias("doc"))
    closed = F.col(RAW).rlike(rf"^\s*<{row_tag}[\s>].*</{row_tag}>\s*$")
    bad = F.col(f"doc.{_CORRUPT}").isNotNull() | ~closed
    values = [F.col(f"doc.{feed.paths.get(c, c)}").cast("string").alias(c) for c in columns]
    return parsed.select(
        FILE, LINE, RAW,
        F.when(bad, F.lit("broken_xml")).alias(ERROR_CODE),
        F.when(bad, F.lit(f"not a well-formed <{row_tag}> element")).alias(ERROR),
        *[F.when(~bad, v).alias(c) for v, c in zip(values, columns, strict=True)],
    )


# ------------------------------------------------------------------------------------- TXT


def parse_log(lines_df: DataFrame, *, pattern: str, columns: Sequence[str]) -> DataFrame:
    """Log lines matched against ``pattern`` (one group per column, in order)."""
    matches = F.col(RAW).rlike(pattern)
    values = [
        F.when(matches, F.regexp_extract(RAW, pattern, i + 1)).alias(c)
        for i, c in enumerate(columns)
    ]
    return lines_df.select(
        FILE, LINE, RAW,
        F.when(~matches, F.lit("malformed_line")).alias(ERROR_CODE),
        F.when(~matches, F.lit("the line does not match the log pattern")).alias(ERROR),
        *values,
    )
