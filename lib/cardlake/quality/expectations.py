"""Run a small expectation suite on a Spark DataFrame with Great Expectations 1.x.

Callers describe checks as :class:`Check` values (no GE import needed), call :func:`validate`
and write the returned rows where they keep results (the caller owns the table). GE runs in an
ephemeral context: a frame of at most ``pandas_max_rows`` rows is collected through Arrow and
checked by GE's pandas engine on the driver, a larger one by its Spark engine over the
DataFrame itself. When ``data_docs_dir`` is given, the result is also rendered as Data Docs
(static HTML) into that folder.

A pipeline run opens :func:`one_context_per_run` around its stages: every :func:`validator`
inside it shares one GE context, and Data Docs are rendered once when the run ends rather than
by each stage and check family (six renders of about 4 s each in the test suite's pipeline run).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame

from cardlake.config import QualityConfig

log = logging.getLogger(__name__)
_INDEX = "cardlake_index"  # carried in each expectation's meta to map results back to checks
DEFAULT_PANDAS_MAX_ROWS = QualityConfig.pandas_max_rows  # larger frames stay on Spark


@dataclass(frozen=True)
class Check:
    """One expectation: the GE class name (``ExpectColumnValuesToNotBeNull``), its arguments.

    ``critical`` checks fail the calling job; the others are recorded as warnings.
    """

    expectation: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    critical: bool = True

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.kwargs.items()))
        return f"{self.expectation}({args})"


@dataclass(frozen=True)
class CheckResult:
    check: Check
    success: bool
    observed: str


@dataclass(frozen=True)
class ValidationOutcome:
    """What a suite run found. ``success`` ignores non-critical failures."""

    suite_name: str
    run_id: str
    run_at: datetime
    results: tuple[CheckResult, ...]

    @property
    def critical_failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.check.critical and not r.success]

    @property
    def success(self) -> bool:
        return not self.critical_failures

    def rows(self) -> list[dict[str, Any]]:
        """One row per expectation, the shape of ``_ops.dq_results``."""
        return [
            {
                "run_id": self.run_id,
                "run_at": self.run_at,
                "suite_name": self.suite_name,
                "expectation": r.check.expectation,
                "kwargs": json.dumps(dict(r.check.kwargs), sort_keys=True, default=str),
                "critical": r.check.critical,
                "success": r.success,
                "observed": r.observed,
            }
            for r in self.results
        ]

    def failure_message(self) -> str:
        parts = [f"{r.check.describe()} observed {r.observed}" for r in self.critical_failures]
        return f"suite {self.suite_name}: critical expectations failed: " + "; ".join(parts)


def _observed(result: Any) -> str:
    body = dict(result.result or {})
    if result.exception_info and result.exception_info.get("raised_exception"):
        return f"error: {result.exception_info.get('exception_message')}"
    keep = {
        k: body[k]
        for k in (
            "observed_value",
            "unexpected_count",
            "unexpected_percent",
            "partial_unexpected_list",
        )
        if k in body
    }
    return json.dumps(keep, default=str, sort_keys=True)


@dataclass(frozen=True)
class Collected:
    """A frame made ready for GE: pandas on the driver, or None for Spark (too many rows)."""

    frame: pd.DataFrame | None


class Validator:
    """One ephemeral GE context for a run: many suites, Data Docs built once at the end.

    Building a context and rendering docs cost seconds each, so a job validating several tables
    keeps one ``Validator`` and calls :meth:`build_docs` after the last suite.
    """

    def __init__(
        self,
        *,
        data_docs_dir: str | None = None,
        pandas_max_rows: int | None = DEFAULT_PANDAS_MAX_ROWS,
        defer_docs: bool = False,
    ) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.data_docs_dir = data_docs_dir
        self._pandas_max_rows = pandas_max_rows
        self._docs_deferred = defer_docs  # one_context_per_run's: docs when the run ends
        self._pandas_source: Any = None
        self._lock = threading.Lock()
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        if data_docs_dir:
            self.context.add_data_docs_site(
                site_name="cardlake",
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": data_docs_dir,
                    },
                    "site_index_builder": {
                        "class_name": "KeepingSiteIndexBuilder",
                        "module_name": "cardlake.quality.expectations",
                    },
                },
            )
        self._source = self.context.data_sources.add_spark(name="spark")

    def collect(self, df: DataFrame, *, rows: int | None = None) -> Collected:
        """What :meth:`validate` runs the suite on: ``df`` as pandas, or Spark when too big.

        ``rows``: the frame's row count where the caller knows it; above ``pandas_max_rows`` the
        suite goes to Spark without first collecting ``pandas_max_rows + 1`` rows to the driver
        (2M rows of a 1 GB source ran a 4 GB driver out of memory there). Separate from
        :meth:`validate` so that a caller can collect the next frame (a Spark job) while GE
        checks this one (Python on the driver); see :func:`cardlake.threads.prefetched`.
        """
        too_many = rows is not None and (
            self._pandas_max_rows is None or rows > self._pandas_max_rows
        )
        return Collected(None if too_many else self._on_driver(df))

    def validate(
        self,
        df: DataFrame,
        suite_name: str,
        expectations: Sequence[Check],
        *,
        rows: int | None = None,
        collected: Collected | None = None,
    ) -> ValidationOutcome:
        """Runs ``expectations`` on ``df`` as the suite ``suite_name`` (see :func:`validate`).

        ``collected``: :meth:`collect`'s answer for ``df`` when the caller already has it;
        otherwise it is computed here (``rows`` as in :meth:`collect`).
        """
        on_driver = (collected or self.collect(df, rows=rows)).frame
        # On Spark each expectation reads the frame: cached here unless the caller cached it.
        cache_here = on_driver is None and not df.is_cached
        data: DataFrame | pd.DataFrame = (
            on_driver if on_driver is not None else df.cache() if cache_here else df
        )
        try:
            with self._lock:  # one GE context: sources ingested two at a time share it
                return self._run(data, suite_name, expectations)
        finally:
            if cache_here:
                df.unpersist()

    def _run(
        self, data: DataFrame | pd.DataFrame, suite_name: str, expectations: Sequence[Check]
    ) -> ValidationOutcome:
        import great_expectations.expectations as gxe

        gx = self._gx
        token = uuid.uuid4().hex[:8]
        if isinstance(data, DataFrame):
            source = self._source
        else:
            if self._pandas_source is None:
                self._pandas_source = self.context.data_sources.add_pandas(name="pandas")
            source = self._pandas_source
        asset = source.add_dataframe_asset(name=f"{suite_name}_{token}")
        batch = asset.add_batch_definition_whole_dataframe(name=f"batch_{token}")
        gx_expectations = []
        for index, check in enumerate(expectations):
            cls = getattr(gxe, check.expectation, None)
            if cls is None:
                raise ValueError(f"unknown expectation {check.expectation!r} in suite {suite_name}")
            meta = {"critical": check.critical, _INDEX: index}
            gx_expectations.append(cls(**dict(check.kwargs), meta=meta))
        suite = self.context.suites.add_or_update(
            gx.ExpectationSuite(name=suite_name, expectations=gx_expectations)
        )
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(data=batch, suite=suite, name=f"{suite_name}_{token}")
        )
        run_at = datetime.now(UTC)
        result = definition.run(batch_parameters={"dataframe": data})
        by_index = {
            ((r.expectation_config.meta if r.expectation_config else None) or {}).get(_INDEX): r
            for r in result.results
        }
        outcomes = []
        for index, check in enumerate(expectations):
            match = by_index.get(index)
            if match is None:
                outcomes.append(CheckResult(check, False, "no result returned"))
            else:
                outcomes.append(CheckResult(check, bool(match.success), _observed(match)))
        return ValidationOutcome(
            suite_name=suite_name,
            run_id=f"{run_at:%Y%m%dT%H%M%S}-{token}",
            run_at=run_at,
            results=tuple(outcomes),
        )

    def _on_driver(self, df: DataFrame) -> pd.DataFrame | None:
        """``df`` as pandas for GE's pandas engine when it holds at most ``pandas_max_rows``.

        On Spark every expectation is a Spark job or two (0.6 s each here; a test world's
        47 layer suites took 264 s); on the driver the same suites took 46 s, 32 of them
        Spark computing the frames (``bench/bench_quality.py``). Spark's NaN, which it orders
        above every number, becomes +inf: pandas would read it as missing and let it through a
        range check that Spark fails.

        The frame is computed once: at most ``pandas_max_rows + 1`` rows come back through
        Arrow, and one row too many sends the suite to Spark (which caches the frame), rather
        than counting first and collecting after.
        """
        if self._pandas_max_rows is None:
            return None
        table = df.limit(self._pandas_max_rows + 1).toArrow()
        if table.num_rows > self._pandas_max_rows:
            return None
        return nan_as_greatest(table).to_pandas()

    def build_docs(self) -> None:
        """Renders every suite run so far into ``data_docs_dir`` (no-op without one).

        Inside :func:`one_context_per_run` this waits for the run's end, which renders once.
        """
        if not self._docs_deferred:
            self._render_docs()

    def _render_docs(self) -> None:
        if not self.data_docs_dir:
            return
        # Pages of earlier runs are kept (KeepingSiteIndexBuilder); GE warns once per page that
        # this context has no result for, which says nothing wrong.
        site_log = logging.getLogger("great_expectations.render.renderer.site_builder")
        level = site_log.level
        site_log.setLevel(logging.ERROR)
        try:
            self.context.build_data_docs()
        except Exception as exc:  # docs are a report; a rendering bug must not fail ingestion
            log.warning("Data Docs not built in %s: %s", self.data_docs_dir, exc)
        finally:
            site_log.setLevel(level)


# The run's validators while one_context_per_run is open, by (docs folder, pandas row limit).
_run_validators: dict[tuple[str | None, int | None], Validator] | None = None


def validator(
    *, data_docs_dir: str | None = None, pandas_max_rows: int | None = DEFAULT_PANDAS_MAX_ROWS
) -> Validator:
    """The run's validator for these settings inside :func:`one_context_per_run`, else a new one."""
    if _run_validators is None:
        return Validator(data_docs_dir=data_docs_dir, pandas_max_rows=pandas_max_rows)
    key = (data_docs_dir, pandas_max_rows)
    if key not in _run_validators:
        _run_validators[key] = Validator(
            data_docs_dir=data_docs_dir, pandas_max_rows=pandas_max_rows, defer_docs=True
        )
    return _run_validators[key]


@contextlib.contextmanager
def one_context_per_run(
    around_docs: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> Iterator[None]:
    """Within: :func:`validator` shares one GE context; Data Docs render once, at the end.

    Args:
        around_docs: a context around the rendering (the harness sends library output to the
            run's log file there, as during its stages).

    The docs are rendered on the way out whatever happened, a failed stage included, as each
    stage did before. Nested use keeps the outer run's validators.
    """
    global _run_validators
    if _run_validators is not None:
        yield
        return
    _run_validators = {}
    try:
        yield
    finally:
        shared, _run_validators = list(_run_validators.values()), None
        started = time.perf_counter()
        with around_docs():
            for v in shared:
                v._render_docs()
        if any(v.data_docs_dir for v in shared):
            log.info("Data Docs rendered in %.1fs", time.perf_counter() - started)


def nan_as_greatest(table: pa.Table) -> pa.Table:
    """Floating columns' NaN as +inf (Spark orders NaN above every number); nulls stay null."""
    for i, column in enumerate(table.schema):
        if pa.types.is_floating(column.type):
            values = table.column(i)
            table = table.set_column(
                i, column, pc.if_else(pc.is_nan(values), pa.scalar(math.inf, column.type), values)
            )
    return table


@functools.cache
def _keeping_index_builder() -> type:
    from great_expectations.render.renderer.site_builder import DefaultSiteIndexBuilder

    class KeepingSiteIndexBuilder(DefaultSiteIndexBuilder):
        """GE's index builder, keeping pages this context did not render.

        Each job renders Data Docs from its own ephemeral context; GE's default removes every
        page whose suite that context does not know, so the silver stage would delete bronze's
        pages. Kept, the index lists every layer's suites.
        """

        def build(self, skip_and_clean_missing: bool = False, build_index: bool = True) -> Any:
            del skip_and_clean_missing
            return super().build(skip_and_clean_missing=False, build_index=build_index)

    return KeepingSiteIndexBuilder


def __getattr__(name: str) -> Any:
    # GE loads the index builder by module and class name; built on first use so importing
    # this module does not import GE.
    if name == "KeepingSiteIndexBuilder":
        return _keeping_index_builder()
    raise AttributeError(name)


def validate(
    df: DataFrame,
    suite_name: str,
    expectations: Sequence[Check],
    *,
    data_docs_dir: str | None = None,
) -> ValidationOutcome:
    """Runs ``expectations`` on ``df`` as the suite ``suite_name``.

    Args:
        df: the data to check (cache it first: each expectation is a Spark job).
        suite_name: the suite's name in results and Data Docs, e.g. ``bronze.crm_customers``.
        expectations: the checks.
        data_docs_dir: a local folder to render Data Docs into (None: no docs).

    Returns:
        The outcome; the caller stores :meth:`ValidationOutcome.rows` and decides what fails.
    """
    checker = validator(data_docs_dir=data_docs_dir)  # the run's, inside one_context_per_run
    outcome = checker.validate(df, suite_name, expectations)
    checker.build_docs()
    return outcome
