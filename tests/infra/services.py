"""The infra/ scripts as modules, and helpers the server tests share (ports, waiting, gold sums).

infra/ holds standalone scripts (what a platform team runs), not a package; the tests load
them from their files so what the tests start is what ``make cluster-up`` starts.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, FloatType

ROOT = Path(__file__).resolve().parents[2]
HEAVY_VAR = "CARDLAKE_HEAVY_INFRA_TESTS"
# Tests that start JVMs of their own for many minutes and have not yet been seen to pass in full
# on the shared development machine run only where HEAVY_VAR is set; a test leaves this gate (and
# joins `make test`) once it has been seen passing. The s3a:// contract has left it.
heavy = pytest.mark.skipif(
    not os.environ.get(HEAVY_VAR),
    reason=f"a separate Spark cluster or session for minutes; set {HEAVY_VAR}=1 to run it",
)
INFRA = ROOT / "infra"
# Floating sums can differ in the last bits between partitionings; compare at this precision.
FLOAT_DIGITS = 6


def load_script(path: Path) -> ModuleType:
    """Imports a script of the project (under ``infra/`` or ``jobs/``, not a package) as a
    module, once per test run."""
    relative = path.relative_to(ROOT)
    # By its path, not its stem: infra/mlflow/server.py and infra/s3/server.py are two modules.
    name = "cardlake_script_" + "_".join(relative.with_suffix("").parts)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_infra(relative: str) -> ModuleType:
    """Imports ``infra/<relative>`` (a script) as a module."""
    return load_script(INFRA / relative)


def load_job(name: str) -> ModuleType:
    """Imports ``jobs/<name>`` (a job's script) as a module."""
    return load_script(ROOT / "jobs" / name)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Polls ``ready`` until it holds; fails naming ``what`` on the deadline or a dead process."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError(f"{what}: the process exited before it was ready")
        if ready():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not ready within {timeout_s:.0f}s")


def table_fingerprint(df: DataFrame) -> tuple[int, int]:
    """(row count, order-independent checksum of every column) of a table.

    Columns are taken by sorted name, floats rounded to ``FLOAT_DIGITS``; each row hashes to a
    64-bit xxhash and the checksum is their sum as an exact decimal, so row order and
    partitioning do not matter but any changed, missing or duplicated value does.
    """
    cols = []
    for field in sorted(df.schema.fields, key=lambda f: f.name):
        col = F.col(f"`{field.name}`")
        if isinstance(field.dataType, DoubleType | FloatType):
            col = F.round(col, FLOAT_DIGITS)
        cols.append(col)
    row = (
        df.select(F.xxhash64(*cols).cast("decimal(38,0)").alias("h"))
        .agg(F.count(F.lit(1)).alias("n"), F.coalesce(F.sum("h"), F.lit(0)).alias("s"))
        .first()
    )
    assert row is not None
    return int(row["n"]), int(row["s"])
