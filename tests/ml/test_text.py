"""Service-note text analytics: topics learnt from noisy agent categories, VADER sentiment with
domain overrides, and the scores, on tiny hand-made notes."""

from __future__ import annotations

import pandas as pd
import pytest
from pyspark.sql import functions as F

from cardlake.ml.settings import TextSettings
from cardlake.ml.text import scores, sentiment_label, sentiment_udf, topic_pipeline, with_topic


def test_accuracy_and_macro_f1_by_hand():
    truth = pd.Series(["a", "a", "b", "b"])
    predicted = pd.Series(["a", "b", "b", "b"])
    # a: precision 1, recall 1/2, F1 2/3; b: precision 2/3, recall 1, F1 4/5
    assert scores(truth, predicted) == pytest.approx(
        {"accuracy": 0.75, "macro_f1": (2 / 3 + 4 / 5) / 2}
    )


WORDS = {
    "card_blocked": [
        "card blocked at the shop",
        "blocked card after pin attempts",
        "card blocked again by security",
    ],
    "fees_complaint": ["monthly fees too high", "fees on fx purchase", "breakdown of plan fees"],
    "address_change": [
        "address updated in profile",
        "moved house new address",
        "address change requested",
    ],
}


def test_topics_learnt_from_noisy_agent_categories(spark):
    rows = []
    topics = sorted(WORDS)
    for t, topic in enumerate(topics):
        for i in range(12):
            # every fourth note of a topic carries another topic's category (a wrong pick)
            agent = topics[(t + 1) % 3] if i % 4 == 3 else topic
            rows.append((f"n{t}{i:02d}", WORDS[topic][i % 3] + f" ref {i}", agent, topic))
    notes = spark.createDataFrame(
        rows, "interaction_id string, note string, agent_topic string, true_topic string"
    )
    settings = TextSettings(min_doc_freq=1, hash_features=256, reg_param=0.01, max_iter=50)
    model = topic_pipeline(settings, seed=1).fit(notes)
    got = (
        with_topic(model, notes)
        .select("true_topic", "agent_topic", "topic", "topic_probability")
        .toPandas()
    )
    assert (got["agent_topic"] == got["true_topic"]).mean() == pytest.approx(0.75)
    assert (got["topic"] == got["true_topic"]).mean() == 1.0  # the text outvotes the noise
    assert got["topic_probability"].between(1 / 3, 1.0).all()


def test_sentiment_with_domain_overrides(spark):
    notes = spark.createDataFrame(
        [
            ("Customer furious and angry.",),
            ("Customer happy, thanked the agent.",),
            ("Card blocked after PIN attempts.",),
            (None,),
        ],
        "note string",
    )

    def labels(overrides):
        score = sentiment_udf(overrides)(F.col("note"))
        return [
            r[0]
            for r in notes.select(
                sentiment_label(score, positive_at=0.05, negative_at=-0.05)
            ).collect()
        ]

    assert labels({}) == ["negative", "positive", "negative", "neutral"]
    # "blocked" only names the matter in a bank's notes
    assert labels({"blocked": 0.0}) == ["negative", "positive", "neutral", "neutral"]
