from __future__ import annotations

import hashlib
import hmac

from pyspark.sql import functions as F

from cardlake.bronze.tokenise import card_token, last_four, masked_card_numbers


def test_card_token_is_hmac_sha256_and_null_safe(spark) -> None:
    key = b"k" * 70  # longer than a block: hashed first, as HMAC says
    df = spark.createDataFrame([("CARD40001234",), (None,)], "c string")
    rows = df.select(card_token(F.col("c"), key).alias("t"), last_four(F.col("c")).alias("l"),
                     masked_card_numbers(F.lit('{"card_id":"CARD40001234"}')).alias("m")
                     ).collect()
    expected = "tok_" + hmac.new(key, b"CARD40001234", hashlib.sha256).hexdigest()
    assert [(r["t"], r["l"]) for r in rows] == [(expected, "1234"), (None, None)]
    assert rows[0]["m"] == '{"card_id":"CARD****1234"}'
