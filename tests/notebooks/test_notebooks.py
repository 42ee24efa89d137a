"""Every notebook runs top to bottom on a lake the pipeline built, in a real IPython kernel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from cardlake.config import PROJECT_ROOT
from tests.lake_fixture import BuiltLake

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 600


def test_the_five_notebooks_are_there() -> None:
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    dirty = [c.id for c in code if c.outputs or c.execution_count is not None]
    assert dirty == [], f"{path.name}: strip outputs of cells {dirty}"


@pytest.fixture(scope="module")
def kernel(
    built_lake: BuiltLake, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One IPython kernel for the five notebooks: it starts Spark once, not five times.

    The kernel inherits this environment: the test settings, pointed at the built lake. Each
    notebook starts with an empty namespace (``%reset``), so none leans on another's variables.
    """
    env = {
        "CARDLAKE_ENV": "test",
        "CARDLAKE_LAKE_ROOT": str(built_lake.lake_root),
        "CARDLAKE_LANDING_ROOT": str(built_lake.root / "landing"),
        "CARDLAKE_TRUTH_ROOT": str(built_lake.truth_root),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    shared: dict[str, Any] = {"km": None, "cwd": tmp_path_factory.mktemp("notebooks")}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield shared
        if shared["km"] is not None:
            run_sync(shared["km"].shutdown_kernel)(now=True)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path: Path, kernel: dict[str, Any], tmp_path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    book.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
    client = NotebookClient(
        book,
        km=kernel["km"],
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(kernel["cwd"])}},
    )
    try:
        client.execute(cleanup_kc=False)
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}")
    finally:
        kernel["km"] = client.km  # the first notebook started it; the others reuse it
        nbformat.write(book, tmp_path / path.name)  # the executed copy, kept with the test's files
    images = [
        o
        for c in book.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert images, f"{path.name} rendered no inline plot"
