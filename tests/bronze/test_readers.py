"""Each reader on tiny hand-written files with a bad line of each kind it can meet."""

from __future__ import annotations

from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cardlake.bronze import readers as R
from cardlake.bronze.checks import REASON_CODE, with_checks
from cardlake.bronze.contracts import CONTRACTS

OUT = ["_line", REASON_CODE]
KEY = b"k" * 32


def _phys(text: str) -> list[R.PhysicalLine]:
    return R.physical_lines(text.encode())[1]


def _checked(
    spark: SparkSession,
    source: str,
    text: str,
    tmp_path: Path,
    bronze_settings,
    name: str = "f.txt",
):
    path = tmp_path / source / "2024-01" / name
    path.parent.mkdir(parents=True)
    path.write_text(text)
    feed = (
        CONTRACTS[source].feeds[0] if not name.startswith("wallet") else CONTRACTS[source].feeds[1]
    )
    files = R.read_files(spark, [str(path)])
    names = [f.name for f in feed.fields]
    if feed.format == "csv":
        records = R.csv_records(files, key=KEY)
        header = tuple(records.filter(R.IS_HEADER).first()[R.FIELDS])
        parsed = R.parse_csv(records, headers={header: [f"{source}/2024-01/{name}"]}, columns=names)
    elif feed.format == "jsonl":
        cols = feed.json_schema.fieldNames() if feed.nested else names
        parsed = R.parse_json(
            R.lines(files, key=KEY), schema=feed.json_schema, paths=feed.paths, columns=cols
        )
    elif feed.format == "xml":
        parsed = R.parse_xml(
            R.lines(files, key=KEY, structural=R.xml_structure(feed)),
            feed=feed,
            row_tag="person",
            columns=names,
        )
    else:
        parsed = R.parse_log(R.lines(files, key=KEY), pattern=feed.pattern, columns=names)
    out = with_checks(parsed, fields=feed.fields, reference=bronze_settings.reference)
    return out.filter(F.coalesce(F.col(REASON_CODE) != R.STRUCTURAL, F.lit(True)))


def _expect(spark: SparkSession, rows: list[tuple[int, str | None]]):
    return spark.createDataFrame(rows, f"_line int, {REASON_CODE} string")


def test_split_csv_keeps_line_numbers_across_embedded_newlines() -> None:
    text = 'a,b\n1,"two\nlines"\n3,"x"\n\n4,"unclosed\n5,y\n'
    out = [(r[0], r[1], r[2], r[3], r[5]) for r in R.split_csv(_phys(text))]
    assert out == [
        (1, 1, "a,b", ["a", "b"], None),
        (2, 2, '1,"two\nlines"', ["1", "two\nlines"], None),
        (4, 1, '3,"x"', ["3", "x"], None),
        (6, 1, '4,"unclosed', None, "malformed_csv"),  # only the line that opened the quote
        (7, 1, "5,y", ["5", "y"], None),  # what it would have swallowed is kept
    ]


def test_split_csv_bad_quote_and_long_field_do_not_end_the_file() -> None:
    # The case: 6 lines became 3 records. Every line must come back.
    text = 'a,b\n1,2\n"x"y,3\n4,5\n' + "6," + "z" * 200_000 + "\n7,8\n"
    out = [(r[0], r[3] is None, r[5]) for r in R.split_csv(_phys(text))]
    assert out == [
        (1, False, None),
        (2, False, None),
        (3, True, "malformed_csv"),
        (4, False, None),
        (5, True, "malformed_csv"),
        (6, False, None),
    ]
    assert sum(r[1] for r in R.split_csv(_phys(text))) == R.count_nonblank_lines(text.encode())


def test_physical_lines_bom_cr_only_and_bad_utf8() -> None:
    assert R.physical_lines(b"\xef\xbb\xbfa,b\r\n1,2\r\n")[1] == [
        (1, "a,b", "a,b", None, {}),
        (2, "1,2", "1,2", None, {}),
    ]
    assert [x[1] for x in R.physical_lines(b"a,b\r1,2\r3,4")[1]] == ["a,b", "1,2", "3,4"]
    problem, got = R.physical_lines(b"a,b\ncaf\xe9,2\n")
    assert problem is None
    assert got[1] == (2, None, "caf\\xe9,2", "line 2: not valid UTF-8 (byte 4 of the line)", {})
    assert "gzip" in (R.physical_lines(b"\x1f\x8b\x08\x00rest")[0] or "")
    assert "NUL" in (R.physical_lines(b"a\x00b\n")[0] or "")
    assert R.physical_lines(b"") == (None, [])
    assert R.count_nonblank_lines(b"\xef\xbb\xbfa\n\n  \nb") == 2


def test_csv_reader_quarantines_each_bad_kind(spark, tmp_path, bronze_settings) -> None:
    header = (
        "transaction_id,card_id,timestamp,amount,currency,merchant_id,mcc,"
        "merchant_country,channel,direction,state,device_id,ip_country"
    )
    good = "TX1,CARD40000001,2024-01-02T10:00:00,12.50,GBP,M1,5411,GB,POS,debit,completed,,"
    text = (
        "\n".join(
            [
                header,
                good,
                '"TX2",CARD40000002,2024-01-02T10:00:00,"1.50",GBP,M1,5411,GB,"POS\nline",debit,x,,',
                "TX3,CARD40000003,2024-01-02",  # too few columns
                "TX4,CARD40000004,2024-02-30T10:00:00,1.00,GBP,M1,5411,GB,POS,debit,completed,,",
                "TX5,CARD40000005,2024-01-02T10:00:00,-3.00,GBP,M1,5411,GB,POS,debit,completed,,",
                "TX6,CARD40000006,2024-01-02T10:00:00,5e7,GBP,M1,5411,GB,POS,debit,completed,,",
                "TX7,CARD40000007,2024-01-02T10:00:00,1.00,XXX,M1,5411,GB,POS,debit,completed,,",
                "TX8,CARD40000008,2024-01-02T10:00:00,1.00,GBP,M1,5411,ZZ,POS,debit,completed,,",
                "TX9,CARD40000009,2024-01-02T10:00:00,abc,GBP,M1,5411,GB,POS,debit,completed,,",
                ",CARD40000010,2024-01-02T10:00:00,1.00,GBP,M1,5411,GB,POS,debit,completed,,",
            ]
        )
        + "\n"
    )
    out = _checked(spark, "card_transactions", text, tmp_path, bronze_settings, "card_tx_1.csv")
    expected = _expect(
        spark,
        [
            (2, None),
            (3, None),
            (5, "malformed_csv"),
            (6, "unparseable_date"),
            (7, "negative_amount"),
            (8, "absurd_amount"),
            (9, "unknown_currency"),
            (10, "unknown_country"),
            (11, "bad_number"),
            (12, "missing_required"),
        ],
    )
    assert_df_equality(out.select(*OUT), expected, ignore_row_order=True, ignore_nullable=True)
    embedded = out.filter("_line = 3").select("amount", "channel").first()
    assert (str(embedded["amount"]), embedded["channel"]) == ("1.50", "POS\nline")
    assert out.filter("_line = 2").select(F.col("amount").cast("string")).first()[0] == "12.50"


def test_json_reader_invalid_and_mistyped_documents(spark, tmp_path, bronze_settings) -> None:
    good = (
        '{"transaction_id":"TX1","wallet_id":"W500000001","timestamp":"2024-01-02T10:00:00",'
        '"amount":10.5,"currency":"EUR","channel":"P2P","direction":"debit",'
        '"state":"completed","counterparty_wallet":null,'
        '"device":{"id":"dev-1","ip_country":"ES"}}'
    )
    text = (
        "\n".join(
            [
                good,
                good[:60],  # truncated
                good.replace('"amount":10.5', '"amount":-1'),
                good.replace('"timestamp":"2024-01-02T10:00:00"', '"timestamp":"N/A"'),
                good.replace('"wallet_id":"W500000001"', '"wallet_id":null'),
            ]
        )
        + "\n"
    )
    out = _checked(spark, "card_transactions", text, tmp_path, bronze_settings, "wallet_tx_1.jsonl")
    expected = _expect(
        spark,
        [
            (1, None),
            (2, "invalid_json"),
            (3, "negative_amount"),
            (4, "unparseable_date"),
            (5, "missing_required"),
        ],
    )
    assert_df_equality(out.select(*OUT), expected, ignore_row_order=True, ignore_nullable=True)
    assert out.filter("_line = 1").select("device_id").first()[0] == "dev-1"


def test_nested_json_type_mismatch(spark, tmp_path, bronze_settings) -> None:
    doc = (
        '{"fin_id":"FIN1","crm_ref":null,"holder":{"name":"A B","date_of_birth":"1990-01-01",'
        '"email":null,"phone":null},"address":{"street":"s","city":"c","postcode":null,'
        '"country":"GB"},"plan_type":"standard","accounts":[],"cards":[],'
        '"payment_methods":[],"credit_score":{"score":700,"bureau":"x","as_of":"2024-01-01"},'
        '"debts":[],"updated_at":"2024-01-05T00:00:00"}'
    )
    text = "\n".join([doc, doc.replace('"score":700', '"score":"high"')]) + "\n"
    out = _checked(spark, "financial_records", text, tmp_path, bronze_settings, "fin.jsonl")
    expected = _expect(spark, [(1, None), (2, "type_mismatch")])
    assert_df_equality(out.select(*OUT), expected, ignore_row_order=True, ignore_nullable=True)


def test_xml_reader_broken_elements(spark, tmp_path, bronze_settings) -> None:
    person = (
        '<person id="D1"><name><given>Ann</given><family>Lee</family></name>'
        "<birth_date>24/02/1987</birth_date><gender>F</gender><marital_status/>"
        "<education/><occupation/><income_bracket>&gt;120k</income_bracket><address>"
        "<street>1 Rd</street><city>Cork</city><postcode/><country>IE</country>"
        "</address><phone>1</phone><crm_ref/></person>"
    )
    text = (
        "\n".join(
            [
                '<?xml version="1.0" encoding="UTF-8"?>',
                '<demographics month="2024-01">',
                person,
                person[: person.rfind("</person>")],  # not closed
                person.replace("</person>", "</persn>"),
                person.replace("24/02/1987", "1987-02-24"),
                person.replace("<country>IE</country>", "<country>XX</country>"),
                "</demographics>",
            ]
        )
        + "\n"
    )
    out = _checked(spark, "demographics", text, tmp_path, bronze_settings, "d.xml")
    expected = _expect(
        spark,
        [
            (3, None),
            (4, "broken_xml"),
            (5, "broken_xml"),
            (6, "unparseable_date"),
            (7, "unknown_country"),
        ],
    )
    assert_df_equality(out.select(*OUT), expected, ignore_row_order=True, ignore_nullable=True)
    row = out.filter("_line = 3").first()
    assert (row["demo_id"], row["given_name"], row["income_bracket"]) == ("D1", "Ann", ">120k")


def test_log_reader_pattern_and_dates(spark, tmp_path, bronze_settings) -> None:
    good = (
        "2024-01-01T06:44:58 | INT-202401000000 | ref=CRM-1 | channel=phone | "
        'type=app_login | opened=2024-01-01T06:44:56 | resolved= | note="Cannot log in."'
    )
    text = (
        "\n".join(
            [
                good,
                good[:40],
                good.replace("opened=2024-01-01T06:44:56", "opened=32/01/2024 10:00"),
            ]
        )
        + "\n"
    )
    out = _checked(spark, "service_interactions", text, tmp_path, bronze_settings, "s.log")
    expected = _expect(spark, [(1, None), (2, "malformed_line"), (3, "unparseable_date")])
    assert_df_equality(out.select(*OUT), expected, ignore_row_order=True, ignore_nullable=True)
    row = out.filter("_line = 1").first()
    assert (row["resolved_at"], row["note"]) == (None, "Cannot log in.")


def test_log_reader_groups_are_what_regexp_extract_gives(spark) -> None:
    # parse_log takes every group from one match: the values must be those of one
    # regexp_extract per group, on lines with a '|' in the note, empty groups and line ends
    # that the pattern's '$' matches before (they stay out of the last column).
    feed = CONTRACTS["service_interactions"].feeds[0]
    names = [f.name for f in feed.fields]
    base = "2024-01-01T06:44:58 | INT-1 | ref=CRM-1 | channel=phone | type=x | opened=a | "
    raws = [
        base + 'resolved= | note="a | b"',
        base + 'resolved=b | note=""',
        base + 'resolved=b | note="n"\r',
        base + 'resolved=b | note="n"\u2028',
        base + 'resolved=b | note="n"\r\n',
        base + 'resolved=b | note="n" trailing',
    ]
    lines_df = spark.createDataFrame(
        [(f"s/2024-01/f{i}", i + 1, 1, raw, {}, "h", None, None) for i, raw in enumerate(raws)],
        f"{R.FILE} string, {R.LINE} int, {R.SPAN} int, {R.RAW} string, "
        f"{R.PANS} map<string,string>, {R.HASH} string, {R.ERROR_CODE} string, {R.ERROR} string",
    )
    got = R.parse_log(lines_df, pattern=feed.pattern, columns=names).select(
        R.LINE, R.ERROR_CODE, *names
    )
    matches = F.col(R.RAW).rlike(feed.pattern)
    expected = lines_df.select(
        R.LINE,
        F.when(~matches, F.lit("malformed_line")).alias(R.ERROR_CODE),
        *[
            F.when(matches, F.regexp_extract(R.RAW, feed.pattern, i + 1)).alias(c)
            for i, c in enumerate(names)
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert got.filter(F.col(R.ERROR_CODE).isNull()).count() == 5
