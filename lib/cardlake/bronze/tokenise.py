"""Card numbers never stored in clear: a keyed hash (HMAC-SHA256) token plus the last four.

The HMAC is built from Spark's own ``sha2`` so no Python worker is involved; the key stays on
the driver as two padded literals. The same key gives the same token, so tokens still join.
"""

from __future__ import annotations

import hashlib

from pyspark.sql import Column
from pyspark.sql import functions as F

TOKEN_PREFIX = "tok_"
_BLOCK = 64  # SHA-256 block size in bytes
CARD_NUMBER_PATTERN = r"CARD\d*(\d{4})"  # how a card number looks inside raw text
CARD_NUMBER_MASK = "CARD****$1"


def card_token(col: Column, key: bytes) -> Column:
    """``tok_`` + hex HMAC-SHA256(key, value); null stays null."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner_pad = bytes(b ^ 0x36 for b in key)
    outer_pad = bytes(b ^ 0x5C for b in key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), col.cast("binary")), 256))
    outer = F.sha2(F.concat(F.lit(outer_pad), inner), 256)
    return F.when(col.isNotNull(), F.concat(F.lit(TOKEN_PREFIX), outer))


def last_four(col: Column) -> Column:
    return F.nullif(F.regexp_extract(col, r"(\d{4})$", 1), F.lit(""))


def masked_card_numbers(col: Column) -> Column:
    """Raw text with every card number cut to its last four digits (for quarantine)."""
    return F.regexp_replace(col, CARD_NUMBER_PATTERN, CARD_NUMBER_MASK)
