"""Property tests: arbitrary bytes through every reader; every non-blank line accounted for.

The pure framing functions get many examples (fast); each Spark reader gets a few batches of
files per run (one Spark job per batch), enough to meet bytes no hand-written case thought of.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.bronze import readers as R
from cardlake.bronze.checks import REASON_CODE, with_checks
from cardlake.bronze.contracts import CONTRACTS
from cardlake.bronze.tokenise import tokenise_text

KEY = b"property-test-key-of-32-bytes!!!"
PAN = "4539578763621486"
# Digits glued to more digits or letters are another number (an id), not this card.
STANDALONE_PAN = re.compile(rf"(?<![0-9A-Za-z_]){PAN}(?![0-9A-Za-z_])")
PIECES = [
    b"\n",
    b"\r\n",
    b"\r",
    b",",
    b'"',
    b'""',
    b" ",
    b"\t",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xe9",
    b"\xc3\xa9",
    b"{",
    b"}",
    b'{"a":1}',
    b"<person",
    b"</person>",
    b"<?xml version='1.0'?>",
    b"<demographics>",
    b"</demographics>",
    b"x" * 40,
    PAN.encode(),
    b"4539 5787 6362 1486",
    b"merchant_id,name,mcc,category,country,city,online,opened_on\n",
    b"M000001,Shop,5411,grocery,GB,Leeds,false,2024-01-20\n",
    b'"x"y,3\n',
    b'{"transaction_id":"TX1","wallet_id":"W5","timestamp":"2024-01-02T10:00:00","amount":1}\n',
    b'<person id="D1"><name><given>A</given></name></person>\n',
    b"2024-01-01T06:44:58 | INT-1 | ref=CRM-1 | channel=phone | type=x | opened=2024-01-01T06:"
    b'44:56 | resolved= | note="n"\n',
]


def _decodes(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


file_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(PIECES), max_size=16).map(b"".join),
)


@settings(max_examples=300, deadline=None)
@given(file_bytes)
def test_framing_accounts_for_every_nonblank_line(data: bytes) -> None:
    problem, physical = R.physical_lines(data, KEY)
    if problem is not None:  # refused as a whole, with a reason
        assert R.not_text(data) == problem
        return
    expected = R.count_nonblank_lines(data)
    nonblank = [p for p in physical if p[1] is None or not R.is_blank(p[1])]
    assert len(nonblank) == expected
    records = R.split_csv(physical)
    assert sum(r[1] for r in records) == expected
    for r in records:  # never a replacement character the bytes did not hold
        assert "\ufffd" not in r[2] or b"\xef\xbf\xbd" in data
        assert not STANDALONE_PAN.search(r[2])


# Files that are UTF-8 as a whole, the case the shortcuts take: pieces that decode.
text_bytes = st.lists(
    st.sampled_from([p for p in PIECES if _decodes(p)]) | st.text(max_size=20).map(str.encode),
    max_size=24,
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(text_bytes)
def test_the_shortcuts_frame_as_the_line_by_line_path(data: bytes) -> None:
    # The whole-file decode and the comma split are shortcuts for clean files: they must give
    # the lines and records that decoding each line alone and the CSV parser give.
    body = data.removeprefix(R.UTF8_BOM)
    crlf = b"\n" in body
    for key in (KEY, None):
        assert R.text_lines(body.decode(), crlf, key) == R.byte_lines(body, crlf, key)
    physical = R.byte_lines(body, crlf, KEY)
    assert R.split_csv(physical) == R.split_parsed_csv(physical)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_tokenising_text_leaves_no_card_number(text: str) -> None:
    out = tokenise_text(f"{text} {PAN},{text}", KEY)
    assert not STANDALONE_PAN.search(out)


def _files_df(spark: SparkSession, files: Sequence[bytes]) -> DataFrame:
    rows = [(f"src/2024-01/f{i}", bytearray(b)) for i, b in enumerate(files)]
    return spark.createDataFrame(rows, "_source_file string, content binary")


def _read(files_df: DataFrame, source: str, feed_index: int, reference) -> DataFrame:
    feed = CONTRACTS[source].feeds[feed_index]
    names = [f.name for f in feed.fields]
    if feed.format == "csv":
        files = [r[0] for r in files_df.select(R.FILE).collect()]
        parsed = R.parse_csv(
            R.csv_records(files_df, key=KEY), headers={tuple(names): files}, columns=names
        )
    elif feed.format == "jsonl":
        parsed = R.parse_json(
            R.lines(files_df, key=KEY), schema=feed.json_schema, paths=feed.paths, columns=names
        )
    elif feed.format == "xml":
        parsed = R.parse_xml(
            R.lines(files_df, key=KEY, structural=R.xml_structure(feed)),
            feed=feed,
            row_tag="person",
            columns=names,
        )
    else:
        parsed = R.parse_log(R.lines(files_df, key=KEY), pattern=feed.pattern, columns=names)
    return with_checks(parsed, fields=feed.fields, reference=reference)


def _check_reader(spark, files: list[bytes], source: str, feed_index: int, ref) -> None:
    out = _read(_files_df(spark, files), source, feed_index, ref)
    got = {
        r[0]: (r[1], r[2])
        for r in out.groupBy(R.FILE)
        .agg(F.sum(R.SPAN), F.count(F.when(F.col(REASON_CODE).isNull(), 1)))
        .collect()
    }
    for i, data in enumerate(files):
        covered, _ = got.get(f"src/2024-01/f{i}", (0, 0))
        if R.not_text(data) is None:
            assert covered == R.count_nonblank_lines(data), data
        else:
            assert covered == 0
    assert out.filter(F.col(R.RAW).rlike(STANDALONE_PAN.pattern)).count() == 0


READERS = [
    ("merchants", 0),
    ("card_transactions", 1),
    ("demographics", 0),
    ("service_interactions", 0),
]


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(file_bytes, min_size=1, max_size=12))
def test_every_spark_reader_accounts_for_arbitrary_bytes(
    spark, bronze_settings, files: list[bytes]
) -> None:
    for source, feed_index in READERS:
        _check_reader(spark, files, source, feed_index, bronze_settings.reference)
