"""The reference lists are the full ISO lists, not the generator's vocabulary."""

from __future__ import annotations

import pycountry

from cardlake.bronze import load_bronze_config
from cardlake.synth import vocab as V


def test_reference_lists_are_the_iso_lists() -> None:
    ref = load_bronze_config("test").reference
    assert set(ref.countries) == {c.alpha_2 for c in pycountry.countries}
    assert set(ref.currencies) == {c.alpha_3 for c in pycountry.currencies} - {"XTS", "XXX"}
    # Real codes the generator never uses are valid; its invented bad codes are not.
    assert {"NZ", "BR", "KE"} <= set(ref.countries) and {"NZD", "BRL", "KES"} <= set(ref.currencies)
    assert not set(V.UNKNOWN_COUNTRIES) & set(ref.countries)
    assert not set(V.UNKNOWN_CURRENCIES) & set(ref.currencies)
