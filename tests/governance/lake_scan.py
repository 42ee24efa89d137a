"""What a byte-level scan of a lake sees, for the erasure and card-number tests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq

# A digit run that may hold a card number: 13 to 19 digits, single spaces or dashes between them.
DIGIT_RUN = re.compile(r"\d(?:[ -]?\d)+")
# Hex digests of the usual unkeyed functions (MD5, SHA-1, SHA-256), as text anywhere in a value.
HEX_DIGEST = re.compile(r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{40}|[0-9a-fA-F]{32})"
                        r"(?![0-9a-fA-F])")
DIGESTS = (hashlib.md5, hashlib.sha1, hashlib.sha256)


def values_in_lake(root: Path) -> str:
    """Every value of every Parquet file (decompressed) and every other file's bytes, as text."""
    parts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            for column in pq.read_table(path).to_pydict().values():
                parts += [str(v) for v in column]
        else:
            parts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


def card_numbers_in(text: str, pans: set[str]) -> set[str]:
    """The card numbers of ``pans`` written anywhere in ``text``: plain, grouped by spaces or
    dashes, or inside a longer digit run."""
    if not pans:
        return set()
    width = len(next(iter(pans)))
    found: set[str] = set()
    for run in DIGIT_RUN.findall(text):
        digits = run.replace(" ", "").replace("-", "")
        for start in range(len(digits) - width + 1):
            if digits[start:start + width] in pans:
                found.add(digits[start:start + width])
    return found


def digests_in(text: str) -> set[str]:
    """Every MD5, SHA-1 or SHA-256 shaped hex string in ``text``, lower-cased."""
    return {m.lower() for m in HEX_DIGEST.findall(text)}


def unkeyed_digests(secrets: Iterable[str]) -> dict[str, str]:
    """Hex MD5, SHA-1 and SHA-256 of each text (as given, and with a line ending), to the text."""
    out: dict[str, str] = {}
    for text in secrets:
        for variant in (text, text + "\n", text + "\r\n"):
            for fn in DIGESTS:
                out[fn(variant.encode()).hexdigest()] = text
    return out


def lines_holding(root: Path, pans: set[str]) -> list[str]:
    """Every line of every file under ``root`` that writes one of ``pans`` (in any grouping)."""
    held = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
            if card_numbers_in(line, pans):
                held.append(line)
    return held
