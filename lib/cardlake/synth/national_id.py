"""National identification numbers of a synthetic format no country issues.

``SYN-GB-482193750-K``: the marker ``SYN``, the person's home country (ISO 3166-1 alpha-2),
nine digits unique to the person, and a check letter. No national scheme starts with ``SYN``,
so a value can never be mistaken for (or collide with) a real number, and nine digits are too
few to look like a card number (13 to 19) to the card-number masks.

The check letter is ``CHECK_LETTERS[sum(i * value(c_i)) mod 23]`` over the eleven characters of
country and digits (``i`` from 1; a digit is its value, a letter ``A``=10 .. ``Z``=35): a
weighted sum modulo a prime above every weight catches any one mistyped digit and any two
adjacent digits swapped. Silver checks it with the same rule in Spark SQL
(:func:`cardlake.silver.customers.normalised_national_id`).

Everything here is drawn from streams of its own (``np_rng(seed, "national_id")`` for the
numbers, ``py_rng(seed, "national_id_written", month)`` for how a delivery writes them), so
the rest of the generated data is byte-identical to what it was before national ids existed.
"""

from __future__ import annotations

import random

from cardlake.synth.rng import np_rng

PREFIX = "SYN"
DIGITS = 9
CHECK_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXY"  # 23 letters: no I, O (read as 1, 0) or Z
# How often a delivery writes a national id other than in its canonical form.
FORMAT_VARIATION_RATE = 0.2
WRITTEN_STYLES = 3  # compact, spaced, lower-case (see written_national_id)


def _char_value(ch: str) -> int:
    return int(ch) if ch.isdigit() else ord(ch) - ord("A") + 10


def check_letter(country: str, digits: str) -> str:
    """The check letter of a country code and its digits."""
    total = sum(i * _char_value(ch) for i, ch in enumerate(country + digits, start=1))
    return CHECK_LETTERS[total % len(CHECK_LETTERS)]


def national_id(country: str, number: int) -> str:
    """The canonical national id of ``number`` (< 10**9) issued in ``country``."""
    digits = f"{number:0{DIGITS}d}"
    return f"{PREFIX}-{country}-{digits}-{check_letter(country, digits)}"


def national_ids(seed: int, countries: list[str]) -> list[str]:
    """One distinct national id per person, in person order, from the stream of its own."""
    rng = np_rng(seed, "national_id")
    numbers = rng.choice(10**DIGITS, size=len(countries), replace=False)
    return [national_id(c, int(x)) for c, x in zip(countries, numbers.tolist(), strict=True)]


def written_national_id(value: str, style: int) -> str:
    """A national id as a clerk types it: 0 canonical, 1 compact (``SYNGB482193750K``),
    2 spaced (``SYN GB 482193750 K``), 3 lower-case."""
    if style == 1:
        return value.replace("-", "")
    if style == 2:
        return value.replace("-", " ")
    if style == 3:
        return value.lower()
    return value


def delivered_national_id(value: str, *, missing_rate: float, rnd: random.Random) -> str | None:
    """The national id one delivery carries: missing at ``missing_rate`` (None), otherwise
    written canonically or, at :data:`FORMAT_VARIATION_RATE`, in another style."""
    if rnd.random() < missing_rate:
        return None
    style = 1 + rnd.randrange(WRITTEN_STYLES) if rnd.random() < FORMAT_VARIATION_RATE else 0
    return written_national_id(value, style)
