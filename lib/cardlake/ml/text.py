"""Text analytics of service notes: the topic and the sentiment of each note, from its text.

- Topic: a Spark MLlib pipeline (tokens, stop words removed, word pairs, TF-IDF, multinomial
  logistic regression) trained on the notes up to a cut-off month with the agent's category as
  the label. The agents' categories are noisy (a share of them is a wrong pick); the model
  learns what the text of each category says, so its topic of a note can be righter than the
  agent's. The cut-off leaves the latest ``test_months`` months for evaluation.
- Sentiment: VADER (``vaderSentiment``: a lexicon and rules that ship inside the package,
  nothing fetched at run time), with domain words that are neutral in a bank's notes
  (``blocked``, ``fraud``, ...) neutralised by ``text.lexicon_overrides`` in ``conf/ml.yaml``;
  positive at a compound score >= ``positive_at``, negative <= ``negative_at``.

Both are written per note to ``gold.service_note_topics``. Where the generator's truth is on
disk (``notes_truth``), accuracy and macro-F1 of the topic against it are reported for the test
months next to the agent's category's (the baseline), and those of the sentiment; all logged to
the MLflow experiment ``<prefix>-text`` with the confusion matrices as plots.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import (
    IDF,
    HashingTF,
    IndexToString,
    NGram,
    RegexTokenizer,
    SQLTransformer,
    StopWordsRemover,
    StringIndexer,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType

from cardlake.ml import plots, tracking
from cardlake.ml.common import index_of_month, month_of_index
from cardlake.ml.settings import MlSettings, TextSettings

if TYPE_CHECKING:
    from cardlake.config import Config
    from cardlake.tables import Tables

log = logging.getLogger("cardlake.ml")

NOTES_TABLE = "silver.interactions"
OUTPUT_TABLE = "gold.service_note_topics"
SENTIMENTS = ("negative", "neutral", "positive")


def topic_pipeline(s: TextSettings, *, seed: int) -> Pipeline:
    """Note text to a predicted topic (``topic``) and its probability vector."""
    del seed  # logistic regression is deterministic; kept for the uniform signature
    return Pipeline(
        stages=[
            # "keep": scoring a note whose category was never seen (or is missing) must not drop it
            StringIndexer(
                inputCol="agent_topic",
                outputCol="label",
                handleInvalid="keep",
                stringOrderType="alphabetAsc",
            ),
            RegexTokenizer(
                inputCol="note",
                outputCol="tokens",
                pattern=r"[^a-z]+",
                toLowercase=True,
                minTokenLength=2,
            ),
            StopWordsRemover(inputCol="tokens", outputCol="words"),
            NGram(n=2, inputCol="words", outputCol="pairs"),
            SQLTransformer(statement="SELECT *, concat(words, pairs) AS terms FROM __THIS__"),
            HashingTF(inputCol="terms", outputCol="tf", numFeatures=s.hash_features),
            IDF(inputCol="tf", outputCol="features", minDocFreq=s.min_doc_freq),
            LogisticRegression(
                featuresCol="features",
                labelCol="label",
                family="multinomial",
                regParam=s.reg_param,
                maxIter=s.max_iter,
            ),
        ]
    )


def with_topic(model: PipelineModel, df: DataFrame) -> DataFrame:
    """Adds ``topic`` (the predicted category) and ``topic_probability``."""
    labels = list(model.stages[0].labels)  # type: ignore[attr-defined]
    scored = model.transform(df)
    scored = IndexToString(inputCol="prediction", outputCol="topic", labels=labels).transform(
        scored
    )
    return scored.withColumn("topic_probability", F.array_max(_to_array("probability")))


def _to_array(col_name: str) -> Any:
    from pyspark.ml.functions import vector_to_array

    return vector_to_array(F.col(col_name))


def sentiment_udf(overrides: Mapping[str, float]) -> Any:
    """A pandas UDF: note text to VADER's compound score, with the lexicon overrides applied."""
    overrides = dict(overrides)

    @F.pandas_udf(DoubleType())  # type: ignore[call-overload]
    def compound(notes: pd.Series) -> pd.Series:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        analyser = SentimentIntensityAnalyzer()
        analyser.lexicon.update(overrides)
        return notes.fillna("").map(lambda t: float(analyser.polarity_scores(t)["compound"]))

    return compound


def sentiment_label(score: Any, *, positive_at: float, negative_at: float) -> Any:
    return (
        F.when(score >= positive_at, F.lit("positive"))
        .when(score <= negative_at, F.lit("negative"))
        .otherwise(F.lit("neutral"))
    )


def scores(truth: pd.Series, predicted: pd.Series) -> dict[str, float]:
    """Accuracy and macro-F1 (over the classes in the truth) of two label series."""
    right = truth == predicted
    f1s = []
    for label in sorted(set(truth)):
        tp = float(((predicted == label) & right).sum())
        precision = tp / max(1.0, float((predicted == label).sum()))
        recall = tp / max(1.0, float((truth == label).sum()))
        f1s.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    return {
        "accuracy": float(right.mean()) if len(truth) else float("nan"),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
    }


def confusion(truth: pd.Series, predicted: pd.Series) -> pd.DataFrame:
    """Row-normalised confusion matrix: true classes down, predicted across."""
    table = pd.crosstab(truth, predicted)
    return table.div(table.sum(axis=1), axis=0).fillna(0.0)


def run_text(
    spark: SparkSession,
    cfg: Config,
    *,
    tables: Tables,
    settings: MlSettings,
    tracker: tracking.Tracker,
    month: str | None = None,
) -> dict[str, float]:
    """Trains the topic model up to the cut-off, scores every note (topic and sentiment),
    writes ``gold.service_note_topics`` and, where the truth is on disk, evaluates the test
    months against it.

    With ``month``, only that month's notes are scored and only its partition is replaced:
    the model is trained as a full run trains it (on the notes up to the cut-off of the whole
    history, seeded), so the month gets the rows a full run would write.

    Returns:
        Headline metrics: rows, and against the truth the topic's accuracy and macro-F1, the
        agent's category's (the baseline), and the sentiment's.
    """
    s = settings.text
    started = time.perf_counter()
    version = tables.version(NOTES_TABLE)
    notes = (
        tables.read(NOTES_TABLE, version=version)
        .where(F.col("note").isNotNull())
        .select(
            "interaction_id", "customer_key", "month", F.col("type").alias("agent_topic"), "note"
        )
    )
    months = sorted(r[0] for r in notes.select("month").distinct().collect())
    cutoff = month_of_index(index_of_month(months[-1]) - s.test_months)
    train = notes.where((F.col("month") <= cutoff) & F.col("agent_topic").isNotNull())
    out: dict[str, float] = {}
    with tracker.run("text", "tfidf-logreg-and-vader") as run:
        tracking.log_params(
            {
                "seed": settings.seed,
                "cutoff_month": cutoff,
                **{f"text.{k}": v for k, v in vars(s).items() if k != "lexicon_overrides"},
            }
        )
        tracking.log_data_versions({NOTES_TABLE: version})
        model = topic_pipeline(s, seed=settings.seed).fit(train)
        to_score = notes if month is None else notes.where(F.col("month") == month)
        result = with_note_scores(to_score, model, s, run_id=run.info.run_id)
        out["rows"] = write_notes(tables, result, month=month)
        evaluation = evaluate_against_truth(
            spark,
            cfg,
            tables=tables,
            notes_df=tables.read(OUTPUT_TABLE),
            test_from=month_of_index(index_of_month(cutoff) + 1),
        )
        if evaluation is not None:
            figures, matrices = evaluation
            out.update(figures)
            log_confusions(matrices)
        out["training_seconds"] = time.perf_counter() - started
        tracking.log_metrics(out)
        log.info("text run %s: %s", run.info.run_id, out)
    return out


def with_note_scores(
    notes_df: DataFrame, model: PipelineModel, s: TextSettings, *, run_id: str
) -> DataFrame:
    """The output rows: each note's topic (with its probability) and sentiment."""
    compound = sentiment_udf(s.lexicon_overrides)
    scored = with_topic(model, notes_df).withColumn("sentiment_score", compound(F.col("note")))
    return scored.select(
        "interaction_id",
        "customer_key",
        "month",
        "agent_topic",
        "topic",
        "topic_probability",
        sentiment_label(
            F.col("sentiment_score"), positive_at=s.positive_at, negative_at=s.negative_at
        ).alias("sentiment"),
        "sentiment_score",
        F.lit(run_id).alias("model_run_id"),
    )


def write_notes(tables: Tables, result_df: DataFrame, *, month: str | None) -> float:
    """Every month's notes, or only ``month``'s partition; returns the rows written."""
    if month is None:
        tables.overwrite(OUTPUT_TABLE, result_df, partition_by=["month"])
    else:
        tables.replace_partitions(
            OUTPUT_TABLE, result_df, partitions={"month": month}, partition_by=["month"]
        )
    written = tables.read(OUTPUT_TABLE)
    return float(
        written.count() if month is None else written.where(F.col("month") == month).count()
    )


def log_confusions(matrices: Mapping[str, pd.DataFrame]) -> None:
    for name, matrix in matrices.items():
        plots.log_png(
            plots.profile_figure(matrix, f"{name}: true (rows) vs predicted"),
            f"confusion_{name}.png",
        )
        tracking.log_frame(matrix.reset_index(), f"confusion_{name}.csv")


Evaluation = tuple[dict[str, float], dict[str, pd.DataFrame]]


def evaluate_against_truth(
    spark: SparkSession, cfg: Config, *, tables: Tables, notes_df: DataFrame, test_from: str
) -> Evaluation | None:
    """Topic and sentiment of the notes from ``test_from`` on against ``notes_truth``; the
    agent's category scored the same way as the baseline. Labels only (a few columns of the
    test months' notes) come to the driver."""
    from cardlake.ml.evaluate import _truth

    truth = _truth(spark, cfg, "notes_truth")
    if truth is None:
        return None
    test = (
        notes_df.where(F.col("month") >= test_from)
        .join(
            truth.select(
                "interaction_id",
                F.col("topic").alias("true_topic"),
                F.col("sentiment").alias("true_sentiment"),
            ),
            on="interaction_id",
            how="inner",
        )
        .select("topic", "agent_topic", "sentiment", "true_topic", "true_sentiment")
    )
    test = pd.DataFrame(test.toPandas())
    if test.empty:
        return None
    agent = test["agent_topic"].fillna("none")
    figures = {"truth_rows": float(len(test))}
    for prefix, truth_col, predicted in (
        ("topic", "true_topic", test["topic"]),
        ("agent_topic", "true_topic", agent),
        ("sentiment", "true_sentiment", test["sentiment"]),
    ):
        found = scores(test[truth_col], predicted)
        figures[f"{prefix}_accuracy"] = found["accuracy"]
        figures[f"{prefix}_macro_f1"] = found["macro_f1"]
    matrices = {
        "topic": confusion(test["true_topic"], test["topic"]),
        "agent_topic": confusion(test["true_topic"], agent),
        "sentiment": confusion(test["true_sentiment"], test["sentiment"]),
    }
    return figures, matrices
