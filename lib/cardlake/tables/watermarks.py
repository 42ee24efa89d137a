"""What a stage must recompute, read from the commit log: nothing, some months, or everything.

A stage that derives tables from other tables (gold from silver, silver from bronze) keeps in
``_ops.watermarks`` what it last built from: each input's Delta version and, for the inputs it
compares by content, a digest of each month (or of the whole table). On its next run over the
whole history, :func:`plan` reads only the commits written after those versions
(:meth:`Tables.changes_since`, the commit log on both engines): an input nobody wrote since is
not read at all. The partitions those commits touched are digested again and compared with what
was recorded, so a rewrite with the same rows (silver rewrites its tables on each of its runs)
is no change. The months whose inputs changed, spread by each input's reach (a month of
transactions feeds the rolling features of the months after it), are what the stage recomputes.
A change it cannot place in months (a reference table's content, a month that disappeared, a
new recipe) means everything, and so does the first run.

The recipe is a digest of the stage's code and settings: a new version of either rebuilds
everything, so skipping never leaves tables of an older recipe beside newer ones.

Why not Delta's change data feed: it needs ``delta.enableChangeDataFeed`` on every input and
a CDF reader on both engines, and it would give rows where the stages need months. The commit
log names the partitions each commit touched on either engine, and a month's digest tells a
real change from a rewrite.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.resources
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from pathlib import Path
from types import ModuleType
from typing import Literal

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cardlake.months import shift
from cardlake.tables.layer import Tables
from cardlake.threads import in_parallel

log = logging.getLogger("cardlake.tables.watermarks")

TABLE = "_ops.watermarks"
SCHEMA = (
    "consumer string, source string, month string, version long, digest string, "
    "recipe string, recorded_at timestamp"
)
PARTITION = "month"

Reach = Literal["same", "following", "onwards", "whole"]


@dataclass(frozen=True)
class Input:
    """A table a stage reads, and which of the stage's months a change to it reaches.

    Attributes:
        name: ``layer.table``.
        reach: for a table partitioned by ``month``: ``same`` (a change to month M reaches M),
            ``following`` (M and the ``months - 1`` after it, as a rolling window does),
            ``onwards`` (M and every month after it, as type-2 history does); ``whole``: any
            change reaches everything (a reference table, or an input the stage always reads
            whole).
        months: the window of ``following``.
        by_content: compare digests of what changed, so a rewrite of the same rows is no
            change; without it any commit with data is a change (for append-only inputs, where
            digesting would cost a read and find nothing).
    """

    name: str
    reach: Reach = "same"
    months: int = 1
    by_content: bool = True


@dataclass(frozen=True)
class Mark:
    """One recorded fact: ``source`` (one ``month`` of it, or all of it) at ``version``."""

    source: str
    month: str | None
    version: int
    digest: str | None


@dataclass(frozen=True)
class Plan:
    """What a stage recomputes: ``full``, only ``months``, or nothing (``skip``).

    ``marks`` are recorded by :func:`record` once the stage has succeeded, never before, so a
    stage that fails is planned again from the same watermarks.
    """

    consumer: str
    mode: Literal["full", "months", "skip"]
    months: tuple[str, ...]
    reason: str
    recipe: str
    marks: tuple[Mark, ...] = field(default=(), repr=False)


def recipe_digest(modules: Iterable[ModuleType], settings: Iterable[object] = ()) -> str:
    """A digest of the code of ``modules`` (a package: every ``.py`` in it) and the ``repr``
    of ``settings`` (frozen dataclasses), to tell one recipe from another.

    The code is digested as its syntax tree, so comments and layout (a formatter's run) are not
    a new recipe and rebuild nothing. A module's files are read once per process, so the digest
    is of the code this process loaded even if the files change while it runs.
    """
    digest = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        digest.update(_code_digest(module.__name__, module.__file__ or "").encode())
    for value in settings:
        digest.update(repr(value).encode())
    return digest.hexdigest()[:32]


@functools.cache
def _code_digest(name: str, file: str) -> str:
    # Through the import system's resources, not the file system: spark-submit ships the
    # project as a wheel (--py-files) and the driver imports it from that zip, where a
    # module's __file__ is a path inside the archive that no open() can read.
    origin = Path(file)
    package = name if origin.name == "__init__.py" else name.rpartition(".")[0]
    folder: Traversable = importlib.resources.files(package) if package else origin.parent
    if origin.name == "__init__.py":
        files = sorted(
            (f for f in folder.iterdir() if f.name.endswith(".py") and f.is_file()),
            key=lambda f: f.name,
        )
    else:
        files = [folder.joinpath(origin.name)]
    digest = hashlib.sha256(name.encode())
    for source in files:
        digest.update(source.name.encode())
        digest.update(ast.dump(ast.parse(source.read_bytes())).encode())
    return digest.hexdigest()


def digests(df: DataFrame, *, by_month: bool) -> dict[str | None, str]:
    """Order-free digests of ``df``'s rows: one per month, or one (key None) for all of them.

    Each row is hashed from its JSON (column names included, so a null in one column is not
    the same row as a null in another), the hashes summed exactly and the count and the
    schema kept beside them: equal digests mean equal rows but for a 64-bit collision.
    """
    columns = sorted(c for c in df.columns if c != PARTITION)
    schema = hashlib.sha256(df.select(*columns).schema.simpleString().encode()).hexdigest()[:12]
    row_hash = F.xxhash64(F.to_json(F.struct(*[F.col(c) for c in columns])))
    figures = [F.count(F.lit(1)).alias("n"), F.sum(row_hash.cast("decimal(38,0)")).alias("s")]
    if by_month:
        rows = df.groupBy(PARTITION).agg(*figures).collect()
        return {r[PARTITION]: f"{r['n']}:{r['s']}:{schema}" for r in rows}
    row = df.agg(*figures).collect()[0]
    return {None: f"{row['n']}:{row['s'] or 0}:{schema}"} if row["n"] else {}


def previous_marks(tables: Tables, consumer: str) -> tuple[str | None, list[Mark]]:
    """The recipe and marks ``consumer`` recorded last (None and [] before its first record)."""
    if not tables.exists(TABLE):
        return None, []
    rows = tables.read(TABLE, partitions={"consumer": [consumer]}).collect()
    if not rows:
        return None, []
    marks = [Mark(r["source"], r["month"], r["version"], r["digest"]) for r in rows]
    return rows[0]["recipe"], sorted(marks, key=repr)


def plan(
    tables: Tables,
    consumer: str,
    inputs: Sequence[Input],
    *,
    recipe: str,
    months: Sequence[str],
    force: bool = False,
) -> Plan:
    """What ``consumer`` must recompute over ``months`` (its whole history) since its last
    :func:`record`.

    Args:
        tables: the lake.
        consumer: the stage, e.g. ``gold``.
        inputs: the tables it reads, with their reach.
        recipe: :func:`recipe_digest` of its code and settings.
        months: every month the stage builds now; a change reaches only these.
        force: plan a full rebuild whatever the log says.
    """
    versions = {i.name: tables.version(i.name) for i in inputs if tables.exists(i.name)}
    before_recipe, before = previous_marks(tables, consumer)
    if force or before_recipe != recipe:
        why = (
            "a full rebuild was asked for"
            if force
            else "first build"
            if before_recipe is None
            else "its code or settings changed"
        )
        return Plan(
            consumer,
            "full",
            tuple(months),
            why,
            recipe,
            tuple(_all_marks(tables, inputs, versions)),
        )

    by_source: dict[str, list[Mark]] = {}
    for mark in before:
        by_source.setdefault(mark.source, []).append(mark)
    marks: list[Mark] = []
    changed: dict[str, set[str]] = {}
    whole: str | None = None  # the first change that reaches everything
    for spec in inputs:  # every input compared once; a full plan records these marks as well
        new, outcome = _compare(tables, spec, by_source.get(spec.name, []), versions.get(spec.name))
        marks.extend(new)
        if outcome is None:
            continue
        if spec.reach == "whole" and not isinstance(outcome, str):
            outcome = f"changed in {', '.join(sorted(outcome))}"
        if isinstance(outcome, str):
            whole = whole or f"{spec.name}: {outcome}"
        else:
            changed[spec.name] = outcome
    if whole is not None:
        return Plan(consumer, "full", tuple(months), whole, recipe, tuple(marks))
    reached = set()
    for spec in inputs:
        for month in changed.get(spec.name, ()):
            reached.update(_reach(spec, month, months))
    affected = tuple(m for m in sorted(months) if m in reached)
    if not affected:
        why = (
            "no input changed since the last build"
            if not changed
            else "its inputs changed only in months it does not build"
        )
        return Plan(consumer, "skip", (), why, recipe, tuple(marks))
    detail = "; ".join(f"{name} {', '.join(sorted(ms))}" for name, ms in sorted(changed.items()))
    return Plan(consumer, "months", affected, f"changed: {detail}", recipe, tuple(marks))


def record(tables: Tables, plan: Plan) -> None:
    """Records ``plan``'s marks as what ``plan.consumer`` has now built from (no commit when
    they are what is recorded already, as after a run that skipped on unchanged inputs)."""
    if previous_marks(tables, plan.consumer) == (plan.recipe, sorted(plan.marks, key=repr)):
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (plan.consumer, m.source, m.month, m.version, m.digest, plan.recipe, now)
        for m in plan.marks
    ]
    df = tables.spark.createDataFrame(rows, SCHEMA)
    tables.replace_partitions(
        TABLE, df, partitions={"consumer": plan.consumer}, partition_by=["consumer"]
    )


# -- internals --------------------------------------------------------------------------------


def _partitioned(tables: Tables, name: str) -> bool:
    return PARTITION in tables.engine.partition_columns(tables.path(name))


def _marks_of(
    tables: Tables, spec: Input, version: int, months: Sequence[str] | None = None
) -> list[Mark]:
    if not spec.by_content:
        return [Mark(spec.name, None, version, None)]
    by_month = _partitioned(tables, spec.name)
    df = tables.read(
        spec.name,
        version=version,
        partitions={PARTITION: list(months)} if months is not None else None,
    )
    return [Mark(spec.name, m, version, d) for m, d in digests(df, by_month=by_month).items()]


def _all_marks(tables: Tables, inputs: Sequence[Input], versions: Mapping[str, int]) -> list[Mark]:
    present = [spec for spec in inputs if spec.name in versions]
    # A digest per input is a Spark job over the whole table: two at a time fill both cores.
    per_input = in_parallel(lambda spec: _marks_of(tables, spec, versions[spec.name]), present)
    return [mark for marks in per_input for mark in marks]


def _compare(
    tables: Tables, spec: Input, old: list[Mark], version: int | None
) -> tuple[list[Mark], set[str] | str | None]:
    """The input's new marks, and what changed: None, a set of months, or why it is whole."""
    if version is None:
        return [], ("gone since the last build" if old else None)
    if not old:
        return _marks_of(tables, spec, version), "new since the last build"
    since = old[0].version
    if version == since:
        return old, None
    changes = tables.changes_since(spec.name, since)
    if not spec.by_content:
        if changes.whole_table or changes.partitions:
            return [Mark(spec.name, None, version, None)], "written since the last build"
        return [Mark(spec.name, None, version, None)], None
    if not _partitioned(tables, spec.name):
        new = _marks_of(tables, spec, version)
        same = {m.digest for m in new} == {m.digest for m in old}
        return new, (None if same else "its rows changed")
    recorded = {m.month: m for m in old if m.month is not None}
    candidates: list[str] | None = None  # every month, after a schema change
    if not changes.whole_table:
        candidates = sorted(
            {month for p in changes.partitions if (month := p.get(PARTITION)) is not None}
        )
        if not candidates:
            return [Mark(m.source, m.month, version, m.digest) for m in old], None
    fresh = {
        m.month: m for m in _marks_of(tables, spec, version, candidates) if m.month is not None
    }
    looked_at = set(recorded) if candidates is None else set(candidates)
    gone = sorted(m for m in looked_at & set(recorded) if m not in fresh)
    kept = [
        Mark(m.source, m.month, version, m.digest)
        for m in old
        if m.month not in fresh and m.month not in gone
    ]
    if gone:
        return kept + list(fresh.values()), f"month {', '.join(gone)} gone since the last build"
    months_changed = {
        m for m, mark in fresh.items() if m not in recorded or recorded[m].digest != mark.digest
    }
    return kept + list(fresh.values()), (months_changed or None)


def _reach(spec: Input, month: str, months: Sequence[str]) -> list[str]:
    if spec.reach == "same":
        return [month]
    if spec.reach == "following":
        return [shift(month, k) for k in range(spec.months)]
    return [m for m in months if m >= month]  # onwards ("whole" never gets here)
