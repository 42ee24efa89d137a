"""One reader per landing format: files in, one row per record with its file, line and raw text.

Every reader is a DataFrame transform over the output of :func:`read_files` (one row per file,
its bytes), so many small files of a source are one Spark read, and returns::

    _source_file  the file relative to the landing root (<source>/<YYYY-MM>/<file>)
    _line         1-based physical line where the record starts
    _span         how many non-blank physical lines the record covers (for the line accounting)
    _raw          the record's raw text
    _error_code   null, or why the record could not be parsed (malformed_csv, ...); ``structural``
                  marks lines that are framing, not records (a CSV header, an XML root tag)
    _error        a human sentence naming the problem
    _record_hash  hex HMAC-SHA256(key, raw text), made in the pass that reads the bytes (a Python
                  pass of its own over every record's text cost as much as the parsing); null
                  when no key is given
    <field>...    the contract's fields as text (typed later by the checks)

Why whole-file bytes: Spark's line-based readers split files, do not expose line numbers, decode
bad UTF-8 into replacement characters without a word, and the CSV reader stops or swallows the
rest of a file at a broken quote. Reading each file's bytes and framing them here gives exact line
numbers, keeps the raw text of every record for quarantine, refuses undecodable lines by name,
and (for CSV) lets a real CSV parser handle quoted fields with embedded newlines while still
knowing each record's first physical line. Every non-blank physical line ends up in exactly one
output row, which bronze checks against a count of the file's lines made without the parser.
Landing files are small (one day or month of one department), so a file per task is cheap.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import reduce
from itertools import accumulate

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    IntegerType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from cardlake.bronze.contracts import Feed
from cardlake.bronze.tokenise import PAN_CANDIDATE, tokenise_text

FILE, LINE, RAW, ERROR_CODE, ERROR = "_source_file", "_line", "_raw", "_error_code", "_error"
FIELDS, IS_HEADER, SPAN, PANS = "_fields", "_is_header", "_span", "_pans"
HASH = "_record_hash"
# What every reader keeps of a record beside its values: where it came from, its text, the card
# numbers found in it and its keyed digest.
RECORD = (FILE, LINE, SPAN, RAW, PANS, HASH)
CONTENT = "content"
STRUCTURAL = "structural"  # the error code of framing lines (header, root tags): not records
BAD_ENCODING = "bad_encoding"
_CORRUPT = "_corrupt_record"
_BLANK = " \t\r\x0b\x0c"  # what a blank line may hold (ASCII only, as the byte counter)
_BLANK_RE = r" \t\r\x0b\x0c"
UTF8_BOM = b"\xef\xbb\xbf"
# Signatures of files that are not text at all, whatever their name says.
_BINARY_MAGIC = {
    b"\x1f\x8b": "gzip-compressed data",
    b"PK\x03\x04": "a ZIP archive",
    b"%PDF": "a PDF document",
    b"\xff\xfe": "UTF-16 text (little-endian BOM)",
    b"\xfe\xff": "UTF-16 text (big-endian BOM)",
    b"PAR1": "a Parquet file",
}

# line, text (None: undecodable), raw, why not text, card token -> last four digits
PhysicalLine = tuple[int, str | None, str, str | None, dict[str, str]]


def is_blank(text: str) -> bool:
    return not text.strip(_BLANK)


def count_nonblank_lines(data: bytes) -> int:
    """Non-blank physical lines of a file's bytes, counted without any parser.

    Lines end at LF (a CR before it belongs to the ending) or, in a file with no LF at all, at
    CR. A UTF-8 byte-order mark is not content. Bronze compares this count with the lines its
    readers account for, so a parser that silently stops early fails the file.
    """
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    sep = b"\n" if b"\n" in data else b"\r"
    return sum(1 for part in data.split(sep) if part.strip(_BLANK.encode()))


def not_text(data: bytes) -> str | None:
    """Why ``data`` cannot be a text landing file at all, or None."""
    for magic, what in _BINARY_MAGIC.items():
        if data.startswith(magic):
            return f"the file is {what}, not UTF-8 text"
    if b"\x00" in data:
        nul = data.index(b"\x00")
        line = data.count(b"\n", 0, nul) + 1
        return f"the file holds NUL bytes (first on line {line}): binary data, not UTF-8 text"
    return None


def physical_lines(
    data: bytes | None, key: bytes | None = None
) -> tuple[str | None, list[PhysicalLine]]:
    """A file's bytes as (file-level problem, physical lines).

    Each line is (1-based number, decoded text or None, raw text, why it is not text, the card
    tokens it holds with their last four digits). With ``key``, every card number in a line is
    replaced by its token (:mod:`cardlake.bronze.tokenise`) before anything reads it. A UTF-8
    byte-order mark is dropped; CRLF, LF and CR-only endings are all understood. A line that is
    not valid UTF-8 is returned with no text and its bytes escaped (``\\xe9``) for quarantine:
    nothing is ever decoded into replacement characters.
    """
    if not data:
        return None, []
    problem = not_text(data)
    if problem is not None:
        return problem, []
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    crlf = b"\n" in data
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, byte_lines(data, crlf, key)
    return None, text_lines(whole, crlf, key)


def byte_lines(data: bytes, crlf: bool, key: bytes | None) -> list[PhysicalLine]:
    # Line by line, for a file holding bytes that are not UTF-8: each line decoded alone.
    parts = data.split(b"\n" if crlf else b"\r")
    if parts and parts[-1] == b"":
        parts.pop()
    out: list[PhysicalLine] = []
    for number, part in enumerate(parts, start=1):
        if crlf and part.endswith(b"\r"):
            part = part[:-1]
        pans: dict[str, str] = {}
        try:
            text = part.decode("utf-8")
        except UnicodeDecodeError as exc:
            raw = part.decode("utf-8", "backslashreplace")
            if key is not None:
                raw = tokenise_text(raw, key, pans)
            out.append(
                (
                    number,
                    None,
                    raw,
                    f"line {number}: not valid UTF-8 (byte {exc.start + 1} of the line)",
                    pans,
                )
            )
            continue
        if key is not None:
            text = tokenise_text(text, key, pans)
        out.append((number, text, text, None, pans))
    return out


def text_lines(whole: str, crlf: bool, key: bytes | None) -> list[PhysicalLine]:
    """:func:`physical_lines` of a file that is valid UTF-8 as a whole (the common case).

    The same lines as decoding each line alone (a UTF-8 sequence never holds a newline byte),
    at C speed: one decode, one split, and one search for card numbers over the whole text,
    so only the lines holding a candidate go through :func:`tokenise_text` (a candidate never
    spans a line: its separators are spaces and dashes, and a newline bounds it as the start
    or end of a line does).
    """
    parts = whole.split("\n" if crlf else "\r")
    if parts and parts[-1] == "":
        parts.pop()
    if crlf and "\r" in whole:
        parts = [p[:-1] if p.endswith("\r") else p for p in parts]
    found: dict[int, tuple[str, dict[str, str]]] = {}
    if key is not None:
        joined = "\n".join(parts)
        starts = list(accumulate((len(p) + 1 for p in parts[:-1]), initial=0))
        for m in PAN_CANDIDATE.finditer(joined):
            i = bisect_right(starts, m.start()) - 1
            if i not in found:
                pans: dict[str, str] = {}
                found[i] = (tokenise_text(parts[i], key, pans), pans)
    out: list[PhysicalLine] = []
    for i, text in enumerate(parts):
        if i in found:
            text, pans = found[i]
            out.append((i + 1, text, text, None, pans))
        else:
            out.append((i + 1, text, text, None, {}))
    return out


# At most this many bytes of files per Spark read. A read packs a partition with files up to its
# bytes per core, and the readers' Python function gets a whole partition's files in one Arrow
# batch and returns all their records at once; reads of at most this size bound what one batch
# holds. (The out-of-memory at 1 GB that prompted it was the quality suite collecting 2M rows to
# the driver, fixed there; this bound stays as a limit on one batch, not as that fix.)
READ_GROUP_BYTES = 64 << 20


def read_files(
    spark: SparkSession,
    paths: Sequence[str],
    *,
    sizes: Sequence[int] | None = None,
    group_bytes: int = READ_GROUP_BYTES,
) -> DataFrame:
    """One row per file: ``_source_file`` (relative: <source>/<month>/<file>) and its bytes.

    Files are read together (one read for a source's daily files) up to ``group_bytes`` a read.
    ``sizes`` are the files' sizes as listed (a landing zone on an object store); without them
    the paths are local files.
    """
    if sizes is None:
        sizes = [os.path.getsize(p) if os.path.exists(p) else 0 for p in paths]
    groups: list[list[str]] = [[]]
    size = 0
    for path, n in zip(paths, sizes, strict=True):
        if groups[-1] and size + n > group_bytes:
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += n
    read = reduce(
        DataFrame.unionByName,
        [spark.read.format("binaryFile").load(g).select("path", CONTENT) for g in groups],
    )
    return read.select(
        F.regexp_extract(F.col("path"), r"([^/]+/[^/]+/[^/]+)$", 1).alias(FILE),
        F.col(CONTENT),
    )


_LINE = StructType(
    [
        StructField("line", IntegerType()),
        StructField("text", StringType()),
        StructField("raw", StringType()),
        StructField("error", StringType()),
        StructField("pans", MapType(StringType(), StringType())),
        StructField("hash", StringType()),
    ]
)


# Rows per Arrow batch the readers hand back to Spark (a file of bench_bronze's 1 GB landing
# holds ~115k records).
_BATCH_ROWS = 1 << 16


def _flat_records(
    files_df: DataFrame,
    schema: StructType,
    records: Callable[[bytes | None], Iterator[tuple[object, ...]]],
) -> DataFrame:
    """``records`` of every file as flat rows: ``_source_file`` then ``schema``'s columns.

    One Arrow pass (``mapInArrow``): the records go back to Spark as flat columns, not as one
    array of structs per file for Spark to explode (a row of a whole file's records, converted
    element by element on both sides of the Arrow stream).
    """
    out = StructType([StructField(FILE, StringType()), *schema.fields])
    arrow_schema = to_arrow_schema(out)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            names = batch.column(FILE).to_pylist()
            contents = batch.column(CONTENT)
            for i, name in enumerate(names):
                rows = [(name, *r) for r in records(contents[i].as_py())]
                for start in range(0, len(rows), _BATCH_ROWS):
                    columns = list(zip(*rows[start : start + _BATCH_ROWS], strict=True))
                    yield pa.RecordBatch.from_arrays(
                        [
                            pa.array(values, type=field.type)
                            for values, field in zip(columns, arrow_schema, strict=True)
                        ],
                        schema=arrow_schema,
                    )

    return files_df.select(FILE, CONTENT).mapInArrow(run, out)


def _decoded_lines(data: bytes | None, key: bytes | None = None) -> list[PhysicalLine]:
    problem, out = physical_lines(data, key)
    return [] if problem else out


def raw_hash(raw: str, key: bytes | None) -> str | None:
    """Hex HMAC-SHA256(key, raw text), as :func:`cardlake.bronze.tokenise.record_hash`."""
    return None if key is None else hmac.new(key, raw.encode(), hashlib.sha256).hexdigest()


def lines(
    files_df: DataFrame, *, key: bytes | None = None, structural: str | None = None
) -> DataFrame:
    """Physical lines with 1-based numbers and a span of 1; blank lines dropped.

    Args:
        files_df: :func:`read_files` output.
        key: the card-token key: card numbers become tokens before anything reads the line.
        structural: a pattern for lines that frame the records (an XML root tag): they are
            kept, with the error code ``structural``, so the line accounting sees them.
    """

    def decoded_lines(data: bytes | None) -> Iterator[tuple[object, ...]]:
        # The key rides in the closure, never in the plan.
        for line in _decoded_lines(data, key):
            yield (*line[:4], list(line[4].items()), raw_hash(line[2], key))

    exploded = _flat_records(files_df, _LINE, decoded_lines)
    undecodable = F.col("text").isNull()
    code = F.when(undecodable, F.lit(BAD_ENCODING))
    if structural is not None:
        code = code.when(F.col("text").rlike(structural), F.lit(STRUCTURAL))
    return exploded.filter(undecodable | F.col("text").rlike(f"[^{_BLANK_RE}]")).select(
        FILE,
        F.col("line").alias(LINE),
        F.lit(1).alias(SPAN),
        F.col("raw").alias(RAW),
        code.alias(ERROR_CODE),
        F.when(undecodable, F.col("error")).alias(ERROR),
        F.col("pans").alias(PANS),
        F.col("hash").alias(HASH),
    )


def _framed(code: Column, message: Column) -> tuple[Column, Column]:
    """A parser's code and message, after the framing's own (undecodable, structural)."""
    prior = F.col(ERROR_CODE)
    return (
        F.coalesce(prior, code),
        F.when(prior.isNotNull(), F.coalesce(F.col(ERROR), F.lit("framing line"))).otherwise(
            message
        ),
    )


# ------------------------------------------------------------------------------------- CSV

_CSV_RECORD = StructType(
    [
        StructField("line", IntegerType()),
        StructField("span", IntegerType()),
        StructField("raw", StringType()),
        StructField("fields", ArrayType(StringType())),
        StructField("is_header", BooleanType()),
        StructField("error_code", StringType()),
        StructField("error", StringType()),
        StructField("pans", MapType(StringType(), StringType())),
        StructField("hash", StringType()),
    ]
)
CsvRecord = tuple[int, int, str, list[str] | None, bool, str | None, str | None, dict[str, str]]


def split_csv(physical: Sequence[PhysicalLine]) -> list[CsvRecord]:
    """CSV records of one file: (first line, span, raw, fields, header?, error code, error,
    card tokens with their last four).

    Python's csv module follows RFC 4180 (quotes, doubled quotes, newlines inside quotes); the
    lines it consumes for each record give the record's first line and its exact raw text. A
    record it cannot parse (``"x"y``, a field over the parser's size limit) is quarantined and
    parsing resumes on the next line; a quote that never closes costs only its own first line,
    the lines it would have swallowed are parsed again as records. An undecodable line is a
    record of its own. The first record is the header.
    """
    if _is_plain_csv(physical):
        return _split_plain_csv(physical)
    return split_parsed_csv(physical)


def split_parsed_csv(physical: Sequence[PhysicalLine]) -> list[CsvRecord]:
    # Record by record through the CSV parser: quotes, carriage returns, undecodable lines.
    out: list[CsvRecord] = []
    i, n = 0, len(physical)
    while i < n:
        number, text, raw, why, pans = physical[i]
        if text is None:
            out.append((number, 1, raw, None, not out, BAD_ENCODING, why, pans))
            i += 1
            continue
        if is_blank(text):
            i += 1
            continue
        used = [0]

        def feed(start: int, used: list[int] = used) -> Iterator[str]:
            for j in range(start, n):
                t = physical[j][1]
                if t is None:  # an undecodable line ends any record running into it
                    return
                used[0] += 1
                yield t + "\n"

        fields: list[str] | None
        error: str | None = None
        try:
            fields = next(csv.reader(feed(i), strict=True))
        except csv.Error as exc:
            fields, error = None, f"line {number}: unparseable CSV ({exc})"
        except StopIteration:  # the quote ran into an undecodable line
            fields, error = None, f"line {number}: unparseable CSV (unexpected end of data)"
        if fields is None and used[0] != 1:
            used[0] = 1  # lose only the line that opened the quote; re-read what it swallowed
            error = f"line {number}: unparseable CSV (a quote that is never closed)"
        block = physical[i : i + used[0]]
        texts = [line[1] or "" for line in block]
        span = sum(1 for t in texts if not is_blank(t))
        found = {tok: last for line in block for tok, last in line[4].items()}
        out.append(
            (
                number,
                span,
                "\n".join(texts),
                fields,
                not out,
                None if fields is not None else "malformed_csv",
                error,
                found,
            )
        )
        i += used[0]
    return out


def _is_plain_csv(physical: Sequence[PhysicalLine]) -> bool:
    # Lines the CSV parser would split at every comma and nowhere else: all decoded, no quote,
    # no carriage return or NUL (the parser's own specials) and none as long as its field limit.
    texts = [line[1] for line in physical if line[1] is not None]
    if len(texts) != len(physical):
        return False
    joined = "\n".join(texts)
    return (
        '"' not in joined
        and "\r" not in joined
        and "\x00" not in joined
        and max(map(len, texts), default=0) < csv.field_size_limit()
    )


def _split_plain_csv(physical: Sequence[PhysicalLine]) -> list[CsvRecord]:
    """:func:`split_csv` of lines that :func:`_is_plain_csv` passed: each non-blank line is one
    record, its fields split at the commas (what the parser does, without a parser per line)."""
    out: list[CsvRecord] = []
    for number, text, _, _, pans in physical:
        assert text is not None
        if text.strip(_BLANK):
            out.append((number, 1, text, text.split(","), not out, None, None, pans))
    return out


def csv_records(files_df: DataFrame, *, key: bytes | None = None) -> DataFrame:
    """Every CSV record of every file with its line, span and fields; the header flagged.

    With ``key``, card numbers are tokens before the CSV parser sees the line (see :func:`lines`).
    """

    def split_file(data: bytes | None) -> Iterator[tuple[object, ...]]:
        # The key rides in the closure.
        for r in split_csv(_decoded_lines(data, key)):
            yield (*r[:7], list(r[7].items()), raw_hash(r[2], key))

    records = _flat_records(files_df, _CSV_RECORD, split_file)
    return records.select(
        FILE,
        F.col("line").alias(LINE),
        F.col("span").alias(SPAN),
        F.col("raw").alias(RAW),
        F.col("fields").alias(FIELDS),
        F.col("is_header").alias(IS_HEADER),
        F.col("error_code").alias(ERROR_CODE),
        F.col("error").alias(ERROR),
        F.col("pans").alias(PANS),
        F.col("hash").alias(HASH),
    )


def _by_file(
    values: Mapping[tuple[str, ...], list[str]], pick: Callable[[tuple[str, ...]], Column]
) -> Column:
    # One expression per distinct header: files sharing a header share the column positions.
    # The usual case, one header for every file, needs no test of the file: a list of a
    # thousand file names in each column's expression makes every plan slow to analyse.
    if len(values) == 1:
        return pick(next(iter(values)))
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

    The header row stays in the output as a ``structural`` row (the line accounting counts it).

    Args:
        records_df: :func:`csv_records` output.
        headers: header (column names) -> the files that carry it.
        columns: the names to output (contract fields, plus evolved new columns).
    """
    width = _by_file(headers, lambda h: F.lit(len(h)))
    n = F.size(FIELDS)
    header = F.col(IS_HEADER) & F.col(ERROR_CODE).isNull()
    code = (
        F.when(header, F.lit(STRUCTURAL))
        .when(F.col(ERROR_CODE).isNotNull(), F.col(ERROR_CODE))
        .when(n != width, F.lit("malformed_csv"))
    )
    error = (
        F.when(header, F.lit("the header"))
        .when(F.col(ERROR_CODE).isNotNull(), F.col(ERROR))
        .when(n != width, F.format_string("expected %d fields, got %d", width, n))
    )

    def field_of(column: str) -> Callable[[tuple[str, ...]], Column]:
        def pick(header: tuple[str, ...]) -> Column:
            if column in header:
                return F.get(F.col(FIELDS), header.index(column))
            return F.lit(None)

        return pick

    values = [_by_file(headers, field_of(c)).cast("string").alias(c) for c in columns]
    return records_df.select(
        *RECORD,
        code.alias(ERROR_CODE),
        error.alias(ERROR),
        *[F.when(code.isNull(), v).alias(c) for v, c in zip(values, columns, strict=True)],
    )


# ------------------------------------------------------------------------------------ JSON


def parse_json(
    lines_df: DataFrame,
    *,
    schema: StructType,
    paths: Mapping[str, str],
    columns: Sequence[str],
    extra: Sequence[str] = (),
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
    parsed = lines_df.select(
        *RECORD,
        ERROR_CODE,
        ERROR,
        doc.alias("doc"),
        F.json_object_keys(RAW).alias("keys"),
    )
    code, message = _framed(
        F.when(F.col("keys").isNull(), F.lit("invalid_json")).when(
            F.col(f"doc.{_CORRUPT}").isNotNull(), F.lit("type_mismatch")
        ),
        F.when(F.col("keys").isNull(), F.lit("not a complete JSON object")).when(
            F.col(f"doc.{_CORRUPT}").isNotNull(),
            F.lit("a value does not have the type the contract gives its field"),
        ),
    )
    values = [F.col(f"doc.{paths.get(c, c)}").alias(c) for c in columns]
    extras = [F.get_json_object(RAW, f"$.{c}").alias(c) for c in extra]
    return parsed.select(
        *RECORD,
        code.alias(ERROR_CODE),
        message.alias(ERROR),
        *values,
        *extras,
    )


def json_keys_by_file(lines_df: DataFrame) -> dict[str, set[str]]:
    """Top-level keys seen per file (for schema-drift checks; one small aggregate)."""
    rows = (
        lines_df.filter(F.col(ERROR_CODE).isNull())
        .select(FILE, F.explode(F.json_object_keys(RAW)).alias("key"))
        .groupBy(FILE)
        .agg(F.collect_set("key").alias("keys"))
        .collect()
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
    doc = F.from_xml(
        RAW, with_corrupt, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}
    )
    parsed = lines_df.select(FILE, LINE, SPAN, RAW, PANS, HASH, ERROR_CODE, ERROR, doc.alias("doc"))
    closed = F.col(RAW).rlike(rf"^\s*<{row_tag}[\s>].*</{row_tag}>\s*$")
    broken = F.col(f"doc.{_CORRUPT}").isNotNull() | ~closed
    code, message = _framed(
        F.when(broken, F.lit("broken_xml")),
        F.when(broken, F.lit(f"not a well-formed <{row_tag}> element")),
    )
    values = [F.col(f"doc.{feed.paths.get(c, c)}").cast("string").alias(c) for c in columns]
    return parsed.select(
        *RECORD,
        code.alias(ERROR_CODE),
        message.alias(ERROR),
        *[F.when(code.isNull(), v).alias(c) for v, c in zip(values, columns, strict=True)],
    )


def xml_structure(feed: Feed) -> str:
    """The pattern of an XML feed's framing lines: the declaration and its root's open/close."""
    assert feed.footer is not None and feed.footer.startswith("</")
    root = feed.footer[2:].rstrip(">")
    return rf"^\s*(<\?xml[^>]*\?>|<{root}(\s[^>]*)?>|</{root}>)\s*$"


# ------------------------------------------------------------------------------------- TXT


# Joins a log line's groups: no line holds a NUL (a file with one is refused as not text).
_GROUP_SEP = "\x00"


def parse_log(lines_df: DataFrame, *, pattern: str, columns: Sequence[str]) -> DataFrame:
    """Log lines matched against ``pattern`` (one group per column, in order).

    The groups come from one match a line (the match replaced by its groups, each followed by
    a NUL, then split there), not one ``regexp_extract`` a column: the same text, since every
    call matches the same pattern from the line's start. What follows the last NUL (a line end
    the pattern's ``$`` matched before) is not a column.
    """
    matches = F.col(RAW).rlike(pattern)
    code, message = _framed(
        F.when(~matches, F.lit("malformed_line")),
        F.when(~matches, F.lit("the line does not match the log pattern")),
    )
    groups = "".join(f"${i + 1}{_GROUP_SEP}" for i in range(len(columns)))
    split = lines_df.select(
        "*", F.split(F.regexp_replace(RAW, pattern, groups), _GROUP_SEP).alias("_groups")
    )
    values = [
        F.when(code.isNull(), F.get(F.col("_groups"), i)).alias(c) for i, c in enumerate(columns)
    ]
    return split.select(
        FILE, LINE, SPAN, RAW, PANS, HASH, code.alias(ERROR_CODE), message.alias(ERROR), *values
    )
