from __future__ import annotations

import hashlib
import hmac

import pytest
from pyspark.sql import functions as F

from cardlake.bronze.contracts import DEV_TOKEN_KEY
from cardlake.bronze.tokenise import (
    card_token,
    check_token_key,
    luhn_valid,
    record_hash,
    tokenise_text,
)
from cardlake.config import ConfigError

KEY = b"k" * 70  # longer than a block: HMAC hashes it first
PAN = "4539578763621486"  # a Luhn-valid test number (Visa shape)


def _tok(digits: str) -> str:
    return "tok_" + hmac.new(KEY, digits.encode(), hashlib.sha256).hexdigest()


def test_luhn() -> None:
    assert luhn_valid(PAN) and luhn_valid("79927398713")
    assert not luhn_valid("4539578763621487")


def test_card_numbers_found_in_any_shape_and_only_real_ones() -> None:
    seen: dict[str, str] = {}
    text = (
        f"TX20240100000012,{PAN},x 4539 5787 6362 1486 and 4539-5787-6362-1486;"
        " not 4539578763621487 nor W500000001 nor CARD{PAN}"
    )
    out = tokenise_text(text, KEY, seen)
    assert out == (
        f"TX20240100000012,{_tok(PAN)},x {_tok(PAN)} and {_tok(PAN)};"
        " not 4539578763621487 nor W500000001 nor CARD{PAN}"
    )
    assert seen == {_tok(PAN): "1486"}
    assert PAN[-8:] not in out.replace("4539578763621487", "")


def test_card_token_and_record_hash_are_keyed(spark) -> None:
    df = spark.createDataFrame(
        [(PAN,), ("4539 5787 6362 1486",), (_tok(PAN),), (None,)], "c string"
    )
    got = [r[0] for r in df.select(card_token(F.col("c"), KEY)).collect()]
    assert got == [_tok(PAN), _tok(PAN), _tok(PAN), None]
    line = "a,b,c"
    (h,) = df.limit(1).select(record_hash(F.lit(line), KEY)).first()
    assert h == hmac.new(KEY, line.encode(), hashlib.sha256).hexdigest()
    assert h != hashlib.sha256(line.encode()).hexdigest()
    plan = (
        df.select(card_token(F.col("c"), KEY), record_hash(F.col("c"), KEY))
        ._jdf.queryExecution()
        .toString()
    )
    assert "kkkk" not in plan and KEY.hex() not in plan  # the key is in no plan


def test_token_key_rules() -> None:
    strong = b"s" * 32
    assert check_token_key(strong, env="cluster", dev_key=DEV_TOKEN_KEY.encode()) == strong
    with pytest.raises(ConfigError, match="at least 32") as short:
        check_token_key(b"s3cret", env="cluster")
    assert "s3cret" not in str(short.value)
    with pytest.raises(ConfigError, match="public development key"):
        check_token_key(DEV_TOKEN_KEY.encode(), env="cluster", dev_key=DEV_TOKEN_KEY.encode())
    assert check_token_key(DEV_TOKEN_KEY.encode(), env="test", dev_key=DEV_TOKEN_KEY.encode())


def test_the_configured_key_is_checked_where_jobs_read_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from cardlake.bronze.contracts import load_bronze_config

    settings = load_bronze_config("cluster")
    monkeypatch.setenv(settings.token_key_env, "too-short-a-secret")
    with pytest.raises(ConfigError, match="18 bytes; at least 32") as short:
        settings.token_key("cluster")
    assert "too-short-a-secret" not in str(short.value)
    monkeypatch.setenv(settings.token_key_env, DEV_TOKEN_KEY)
    with pytest.raises(ConfigError, match="public development key"):
        settings.token_key("cluster")
    monkeypatch.setenv(settings.token_key_env, "k" * 32)
    assert settings.token_key("cluster") == b"k" * 32


def test_the_card_column_becomes_token_and_last_four(spark) -> None:
    from cardlake.bronze.contracts import CONTRACTS
    from cardlake.bronze.ingest import _tokenised

    rows = [
        (_tok(PAN), {_tok(PAN): "1486"}),  # a card number the reader made a token
        ("CARD00012345", {}),  # an old synthetic id: tokenised as it stands, last four kept
        (None, {}),
    ]
    df = spark.createDataFrame(rows, "card_id string, _pans map<string,string>")
    got = _tokenised(df, CONTRACTS["card_transactions"], KEY).select("card_token", "card_last4")
    assert sorted(map(tuple, got.collect()), key=str) == sorted(
        [(_tok(PAN), "1486"), (_tok("CARD00012345"), "2345"), (None, None)], key=str
    )
