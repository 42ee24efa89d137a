"""Card numbers never stored in clear: found wherever they are, replaced by a keyed token.

A card number (PAN) is 13 to 19 digits, Luhn-valid, written plain or in groups split by spaces
or dashes, and not glued to letters or other digits (``TX20240100000012`` is an id, not a card).
Bronze replaces every PAN in every landing line by ``tok_`` + hex HMAC-SHA256(key, digits)
before the line is parsed, so no field, raw text, quarantine row or digest ever holds one; the
same card gives the same token however it was written, so tokens still join. Digests of raw
text are keyed too (:func:`record_hash`): a plain SHA-256 of a line with a masked card number
is reversed by trying the masked digits.

The key lives only in the closures of the Python functions Spark ships to its workers: it never
appears as a literal in a plan, the Spark UI, a log or an exception.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from cardlake.config import ConfigError

TOKEN_PREFIX = "tok_"
MIN_KEY_BYTES = 32
DEV_ENVS = ("local", "test")
# 13-19 digits, single spaces or dashes allowed between digits, not inside a longer word.
PAN_CANDIDATE = re.compile(r"(?<![0-9A-Za-z_])(?:\d[ -]?){12,18}\d(?![0-9A-Za-z_])")
LEGACY_CARD = re.compile(r"CARD\d*(\d{4})")  # the old synthetic ids, masked to their last four


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def pan_digits(text: str) -> str | None:
    """The digits of ``text`` when it is a card number as a whole, else None."""
    m = PAN_CANDIDATE.fullmatch(text.strip())
    if m is None:
        return None
    digits = re.sub(r"[ -]", "", m.group(0))
    return digits if 13 <= len(digits) <= 19 and luhn_valid(digits) else None


def token_of(digits: str, key: bytes) -> str:
    return TOKEN_PREFIX + hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()


def tokenise_text(text: str, key: bytes, seen: dict[str, str] | None = None) -> str:
    """``text`` with every card number replaced by its token; ``seen`` gets token -> last four."""

    def swap(m: re.Match[str]) -> str:
        out, found = _tokenised_run(m.group(0), key)
        if seen is not None:
            seen.update(found)
        return out

    if not any(ch.isdigit() for ch in text):
        return text
    return PAN_CANDIDATE.sub(swap, text)


@functools.lru_cache(maxsize=1 << 14)
def _tokenised_run(run: str, key: bytes) -> tuple[str, tuple[tuple[str, str], ...]]:
    # The same cards recur on every line of a transaction file: Luhn, HMAC and the search for
    # the card in a run once per run in a worker (bounded; held in its memory only).
    seen: dict[str, str] = {}
    return _tokenise_run(run, key, seen), tuple(seen.items())


def _tokenise_run(run: str, key: bytes, seen: dict[str, str] | None) -> str:
    """A run of digit groups: the card number in it (the longest whole groups) as a token.

    ``4539 5787 6362 1486 2`` holds a card number although the whole run is not one.
    """
    parts = re.split(r"[ -]", run)
    seps = re.findall(r"[ -]", run)
    best: tuple[int, int] | None = None
    for i in range(len(parts)):
        for j in range(len(parts), i, -1):
            digits = "".join(parts[i:j])
            if len(digits) < 13:
                break
            if (
                len(digits) <= 19
                and luhn_valid(digits)
                and (best is None or j - i > best[1] - best[0])
            ):
                best = (i, j)
    if best is None:
        return run
    i, j = best
    digits = "".join(parts[i:j])
    token = token_of(digits, key)
    if seen is not None:
        seen[token] = digits[-4:]

    def joined(lo: int, hi: int) -> str:
        return "".join(parts[k] + (seps[k] if k < hi - 1 else "") for k in range(lo, hi))

    left = joined(0, i) + seps[i - 1] if i > 0 else ""
    right = seps[j - 1] + joined(j, len(parts)) if j < len(parts) else ""
    return (
        (_tokenise_run(left[:-1], key, seen) + left[-1:] if left else "")
        + token
        + (right[:1] + _tokenise_run(right[1:], key, seen) if right else "")
    )


def check_token_key(key: bytes, *, env: str, dev_key: bytes | None = None) -> bytes:
    """Refuses a key too short to be secret, and the public development key outside dev envs.

    Raises:
        ConfigError: naming the rule broken, never the key.
    """
    if dev_key is not None and hmac.compare_digest(key, dev_key) and env not in DEV_ENVS:
        raise ConfigError(
            f"env {env!r}: the card-token key is the public development key; "
            "set a secret key (only local and test may use it)"
        )
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"env {env!r}: the card-token key is {len(key)} bytes; at least "
            f"{MIN_KEY_BYTES} are required"
        )
    return key


def _keyed(key: bytes, fn: Callable[[str], str | None], name: str) -> Column:
    def run(values: pd.Series) -> pd.Series:
        return values.map(lambda v: fn(v) if isinstance(v, str) else None)

    run.__name__ = name  # what the plan shows: the function's name, never the key
    return F.pandas_udf(run, StringType())  # type: ignore[call-overload]


def card_token(col: Column, key: bytes) -> Column:
    """``tok_`` + hex HMAC-SHA256(key, digits) of a card number; a token passes unchanged.

    A value that is not a card number (an old ``CARD...`` id, say) is tokenised as it stands.
    """

    def one(value: str) -> str:
        if value.startswith(TOKEN_PREFIX):
            return value
        digits = pan_digits(value)
        return token_of(digits if digits is not None else value, key)

    udf = _keyed(key, one, "card_token")
    return F.when(col.isNotNull(), udf(col))  # type: ignore[operator]


def record_hash(col: Column, key: bytes) -> Column:
    """Hex HMAC-SHA256(key, text): a digest of raw text nobody can brute-force without the key."""
    udf = _keyed(
        key, lambda v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest(), "record_hmac"
    )
    return udf(col)  # type: ignore[operator]


def is_card_number(col: Column) -> Column:
    """A value that is a card number, or already its token (for mixed card/wallet columns)."""
    return (
        col.startswith(TOKEN_PREFIX)
        | col.rlike(r"^CARD\d+$")
        | (
            col.rlike(r"^[0-9][0-9 -]{11,36}[0-9]$")
            & (F.length(F.regexp_replace(col, "[ -]", "")).between(13, 19))
        )
    )


def last_four(col: Column) -> Column:
    return F.nullif(F.regexp_extract(col, r"(\d{4})$", 1), F.lit(""))


def masked_card_numbers(col: Column) -> Column:
    """Raw text with old ``CARD...`` ids cut to their last four (real numbers are tokens)."""
    return F.regexp_replace(col, LEGACY_CARD.pattern, "CARD****$1")
