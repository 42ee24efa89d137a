"""Many people sharing a name must not teach the model that a name makes a person (issue 18).

In a large file one name is borne by many people, and e-mail user names are built from names,
so namesakes also have similar mailboxes (never one mailbox: a provider gives an address
once); some systems also clamp birth dates to one default. Estimated on pairs that share a
name, the model learned "same name family" as a match and linked namesakes (100,814 generator
records: pairwise precision 0.73). Here 400 people bear 8 names, a tenth of them the same
birth date. Estimated on shared birth dates and mailboxes, with term frequencies of birth
dates, the matcher scored pairwise precision 0.946 while the maker still gave several
namesakes one mailbox (an address two strangers cannot both hold, which the deterministic
pass rightly takes as proof); with a mailbox per person, 1.0 (recall 1.0).
"""

from __future__ import annotations

import logging

import pytest
from pyspark.sql import SparkSession

from tests.er.people_maker import PROFILES, make_dedupe_file, make_link_pair, resolve_frames


@pytest.mark.slow
def test_namesakes_are_not_merged(spark: SparkSession) -> None:
    frame = make_dedupe_file(400, profile=PROFILES["namesakes"], seed=5)
    assert frame.groupby(["first", "last"]).person.nunique().max() > 20  # namesakes indeed
    metrics, _ = resolve_frames(spark, [frame])
    assert metrics.pairwise_precision >= 0.99, metrics
    assert metrics.pairwise_recall >= 0.99, metrics


NAMESAKE_LINK_PEOPLE = 150


@pytest.mark.slow
def test_namesake_files_link_though_em_drives_a_level_to_zero(
    spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 17: linking two namesake files crashed in Splink's expectation maximisation. In
    # the pairs blocked on birth date (a tenth of the people share the default one) no pair
    # whose mailboxes differ, or whose given names do, looks like a match, so EM multiplied
    # those levels' m by a tiny factor every iteration until it was 0 (or subnormal) and
    # Splink refused it ("m_probability value 0.0 is below the minimum allowed value"). The
    # smallest pair of files found that crashed: 150 people, seed 7 (200 at seeds 3 and 5
    # did not; 300 at seed 7, 400 at 11, 500 at 3 and the bench's 2,000 at 11 did).
    a, b = make_link_pair(NAMESAKE_LINK_PEOPLE, profile=PROFILES["namesakes"], seed=7)
    people_per_name = a.groupby(["first", "last"]).person.nunique()
    assert people_per_name.max() >= 20  # 8 names over 150 people: namesakes indeed
    with caplog.at_level(logging.INFO, logger="cardlake.er.probabilistic"):
        metrics, _ = resolve_frames(spark, [a, b])
    floored = [r.getMessage() for r in caplog.records if "m_probability" in r.getMessage()]
    assert any("raised to" in message for message in floored), floored  # the zero is reached
    # Every person is once in each file: 150 true pairs, and 2,148 cross-file pairs of two
    # namesakes (8 names, up to 25 people each) that agree on the name comparison's top level.
    # Recall 0.98 leaves 3 true pairs apart (a typo touches a name in a tenth of the second
    # file's records, a field is missing in one in twenty, so nearly every pair keeps a birth
    # date, mailbox or phone exact); precision 0.99 allows one false pair among the namesake
    # pairs. Measured: P 1.0, R 0.993 (with several namesakes per mailbox, before the maker
    # gave each person their own: P 0.937).
    assert metrics.true_pairs == NAMESAKE_LINK_PEOPLE
    assert metrics.pairwise_recall >= 0.98, metrics
    assert metrics.pairwise_precision >= 0.99, metrics
