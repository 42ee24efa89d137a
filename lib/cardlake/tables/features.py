"""What the embedded engine may write, and the table's own rules it must enforce when it does.

delta-spark enforces a table's constraints and protocol itself. The delta-rs engine commits
Parquet files that Spark wrote, so it checks here what Delta writers must honour: the writer
features it knows how to keep (anything else is refused, naming the feature), ``appendOnly``,
change data feed and deletion vectors (honoured for appends only), and the constraints declared
by any writer: NOT NULL columns, legacy column invariants, CHECK constraints
(``delta.constraints.*``) and generated columns (``delta.generationExpression``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from cardlake.tables.base import ConstraintViolationError, UnsupportedTableFeatureError

# Writer features whose rules this module applies, or which need nothing from an add/remove commit.
WRITABLE_FEATURES = frozenset(
    {
        "appendOnly",
        "invariants",
        "checkConstraints",
        "generatedColumns",
        "changeDataFeed",
        "deletionVectors",
        "timestampNtz",
        "vacuumProtocolCheck",
    }
)
GENERATION_KEY = "delta.generationExpression"
INVARIANTS_KEY = "delta.invariants"
CONSTRAINT_PREFIX = "delta.constraints."


@dataclass(frozen=True)
class _Rule:
    name: str
    holds: Column  # true where a row keeps the rule; null or false breaks it


def refuse_unwritable(
    *,
    path: str,
    kind: str,
    writer_features: set[str],
    configuration: Mapping[str, str],
    schema: StructType,
    has_deletion_vectors: bool,
) -> None:
    """Raises :class:`UnsupportedTableFeatureError` where this write would break the table.

    Args:
        kind: ``append``, ``overwrite``, ``merge`` or ``delete``.
        writer_features: the protocol's writer features (empty for legacy protocols).
        has_deletion_vectors: whether any live file carries a deletion vector.
    """
    unknown = sorted(writer_features - WRITABLE_FEATURES)
    mapping = configuration.get("delta.columnMapping.mode") or "none"
    if mapping != "none":
        unknown = sorted({*unknown, "columnMapping"})
    if any(k.startswith("delta.identity.") for f in schema.fields for k in f.metadata):
        unknown = sorted({*unknown, "identityColumns"})
    if unknown:
        raise UnsupportedTableFeatureError(
            f"{path} needs Delta writer feature(s) {unknown}, which the delta-rs engine cannot "
            f"honour; this {kind} was refused. Write it with the delta-spark engine"
        )
    if kind == "append":
        return
    if str(configuration.get("delta.appendOnly", "false")).lower() == "true":
        raise UnsupportedTableFeatureError(
            f"{path} is append-only (delta.appendOnly=true); a {kind} would remove rows"
        )
    if str(configuration.get("delta.enableChangeDataFeed", "false")).lower() == "true":
        raise UnsupportedTableFeatureError(
            f"{path} records its change data feed; the delta-rs engine does not write change "
            f"data files, so this {kind} was refused. Write it with the delta-spark engine"
        )
    if has_deletion_vectors:
        raise UnsupportedTableFeatureError(
            f"{path} has files with deletion vectors; the delta-rs engine does not rewrite them, "
            f"so this {kind} was refused. Write it with the delta-spark engine, or purge them "
            "(REORG TABLE ... APPLY (PURGE))"
        )


def with_generated_columns(df: DataFrame, schema: StructType) -> DataFrame:
    """Computes generated columns the data lacks, as Delta writers do."""
    for field in schema.fields:
        expression = field.metadata.get(GENERATION_KEY)
        if expression and field.name not in df.columns:
            df = df.withColumn(field.name, F.expr(expression).cast(field.dataType))
    return df


def _rules(schema: StructType, configuration: Mapping[str, str]) -> list[_Rule]:
    rules = []
    for field in schema.fields:
        if not field.nullable:
            rules.append(_Rule(f"NOT NULL {field.name}", F.col(f"`{field.name}`").isNotNull()))
        expression = field.metadata.get(GENERATION_KEY)
        if expression:
            rules.append(
                _Rule(
                    f"generated column {field.name} = {expression}",
                    F.col(f"`{field.name}`").eqNullSafe(F.expr(expression).cast(field.dataType)),
                )
            )
        invariant = field.metadata.get(INVARIANTS_KEY)
        if invariant:
            text = json.loads(invariant)["expression"]["expression"]
            rules.append(_Rule(f"invariant {text}", F.expr(text)))
    for key, expression in sorted(configuration.items()):
        if key.startswith(CONSTRAINT_PREFIX):
            name = key[len(CONSTRAINT_PREFIX) :]
            rules.append(_Rule(f"CHECK {name} ({expression})", F.expr(expression)))
    return rules


def enforce_constraints(
    df: DataFrame, *, schema: StructType, configuration: Mapping[str, str], path: str
) -> None:
    """Refuses data breaking a NOT NULL, invariant, CHECK or generated-column rule of the table.

    The message names the rules and how many rows break each; it never shows a row's values.

    Raises:
        ConstraintViolationError: at least one row breaks a rule; nothing was written.
    """
    rules = _rules(schema, configuration)
    if not rules:
        return
    counts: Any = df.select(
        *[
            F.sum(F.when(F.coalesce(rule.holds, F.lit(False)), 0).otherwise(1)).alias(f"r{i}")
            for i, rule in enumerate(rules)
        ]
    ).first()
    broken = [
        f"{rule.name}: {counts[f'r{i}']} row(s)"
        for i, rule in enumerate(rules)
        if counts is not None and (counts[f"r{i}"] or 0) > 0
    ]
    if broken:
        raise ConstraintViolationError(
            f"write to {path} breaks the table's constraints ({'; '.join(broken)}); "
            "nothing was written"
        )
