"""The holder's national id in core-banking documents: read with the explicit schema, as written.

A document from before the generator issued national ids has none: it is read all the same,
the id null. (Checked once through ``run_bronze`` too: such a file ingests, nothing
quarantined; not kept as a test, a whole ingest costs ~40 s of CI for what this parse shows.)
Bronze keeps whatever text arrived (silver checks the format); a value of another JSON type
arrives as its JSON text rather than failing the whole KYC record.
"""

from __future__ import annotations

from chispa import assert_df_equality

from cardlake.bronze.checks import REASON_CODE
from tests.bronze.test_readers import _checked

DOC = (
    '{"fin_id":"FIN1","crm_ref":null,"holder":{"name":"A B","date_of_birth":"1990-01-01",'
    '"email":null,"phone":null%s},"address":{"street":"s","city":"c","postcode":null,'
    '"country":"GB"},"plan_type":"standard","accounts":[],"cards":[],'
    '"payment_methods":[],"credit_score":{"score":700,"bureau":"x","as_of":"2024-01-01"},'
    '"debts":[],"updated_at":"2024-01-05T00:00:00"}'
)


def test_national_id_present_absent_and_malformed(spark, tmp_path, bronze_settings) -> None:
    text = (
        "\n".join(
            [
                DOC % ',"national_id":"SYN-GB-482193750-Y"',
                DOC % ',"national_id":"syn gb 482193750 y"',  # written another way: kept as written
                DOC % "",  # a document from before national ids
                DOC % ',"national_id":null',
                DOC % ',"national_id":"n/a"',  # not the format: kept, silver gives null
                DOC % ',"national_id":482193750',  # a number: its JSON text
            ]
        )
        + "\n"
    )
    out = _checked(spark, "financial_records", text, tmp_path, bronze_settings, "fin.jsonl")
    expected = spark.createDataFrame(
        [
            (1, None, "SYN-GB-482193750-Y"),
            (2, None, "syn gb 482193750 y"),
            (3, None, None),
            (4, None, None),
            (5, None, "n/a"),
            (6, None, "482193750"),
        ],
        f"_line int, {REASON_CODE} string, national_id string",
    )
    assert_df_equality(
        out.select("_line", REASON_CODE, "holder.national_id"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )
