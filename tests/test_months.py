"""Month arithmetic on ``YYYY-MM`` strings (the report's previous month and year ago use it)."""

from __future__ import annotations

import pytest

from cardlake.months import shift


@pytest.mark.parametrize(
    ("month", "delta", "expected"),
    [
        ("2025-01", -1, "2024-12"),  # January minus one crosses the year
        ("2025-01", -12, "2024-01"),  # a year ago
        ("2024-12", 1, "2025-01"),
        ("2024-03", 0, "2024-03"),
        ("2024-03", -27, "2021-12"),
        ("2024-11", 14, "2026-01"),
    ],
)
def test_shift_crosses_year_boundaries(month: str, delta: int, expected: str) -> None:
    assert shift(month, delta) == expected
