"""The dictionary's Markdown block and its settings' refusals (no Spark needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardlake.config import ConfigError
from cardlake.governance.dictionary import (
    BEGIN_MARK,
    END_MARK,
    Entry,
    render_markdown,
    undescribed,
    update_markdown,
)
from cardlake.governance.settings import _rule

ENTRIES = [
    Entry("gold.t", "email", "string", "personal", "email", "E-mail | lower-cased", None),
    Entry("gold.t", "n", "bigint", "none", "keep", "Count", "count(*)"),
    Entry("gold.u", "mystery", "string", None, None, None, None),
]


def test_markdown_has_one_row_per_column_and_marks_the_undescribed():
    text = render_markdown(ENTRIES)
    assert "| email | string | personal | email | E-mail \\| lower-cased |  |" in text
    assert "| n | bigint | none | keep | Count | count(*) |" in text
    assert "| mystery | string | **?** |  |  |  |" in text
    assert text.count("## gold.") == 2
    assert undescribed(ENTRIES) == ["gold.u.mystery"]


def test_the_generated_block_is_replaced_and_the_rest_kept(tmp_path: Path):
    doc = tmp_path / "d.md"
    doc.write_text("# Landing\n\nhand-written\n")
    update_markdown(doc, "first\n")
    update_markdown(doc, "second\n")
    assert doc.read_text() == f"# Landing\n\nhand-written\n\n{BEGIN_MARK}\nsecond\n{END_MARK}\n"


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"class": "personal", "description": "x"}, "needs a mask other than keep"),
        ({"class": "secret", "description": "x"}, "class 'secret'"),
        ({"class": "none"}, "missing key 'description'"),
        ({"class": "none", "description": "x", "colour": "red"}, "unknown key 'colour'"),
        ({"class": "card", "mask": "blur", "description": "x"}, "mask 'blur'"),
    ],
)
def test_bad_column_rules_are_refused_naming_the_column(raw: dict[str, str], message: str):
    with pytest.raises(ConfigError, match=message) as caught:
        _rule(raw, "columns.some_column")
    assert "columns.some_column" in str(caught.value)
