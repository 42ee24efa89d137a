"""Seed derivation: every random stream is keyed by (seed, purpose, ...) so output is
independent of which months are generated and in which order."""

from __future__ import annotations

import hashlib
import random

import numpy as np


def _key_ints(seed: int, keys: tuple[object, ...]) -> list[int]:
    # Strings are hashed so keys like a source name or a month give a stable integer.
    out = [int(seed) & 0xFFFFFFFF]
    for k in keys:
        if isinstance(k, int):
            out.append(k & 0xFFFFFFFF)
        else:
            digest = hashlib.blake2b(str(k).encode(), digest_size=4).digest()
            out.append(int.from_bytes(digest, "little"))
    return out


def np_rng(seed: int, *keys: object) -> np.random.Generator:
    """A numpy Generator for one purpose, e.g. ``np_rng(seed, "tx", "2024-03")``."""
    return np.random.default_rng(np.random.SeedSequence(_key_ints(seed, keys)))


def py_rng(seed: int, *keys: object) -> random.Random:
    """A stdlib Random for cheap per-row choices (faster than numpy for scalars)."""
    ints = _key_ints(seed, keys)
    return random.Random(int.from_bytes(hashlib.blake2b(repr(ints).encode()).digest()[:8], "big"))
