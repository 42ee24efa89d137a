"""Every notebook runs top to bottom on a lake the pipeline built, in a real IPython kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
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


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path: Path, built_lake: BuiltLake, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits this environment: the test settings, pointed at the built lake.
    monkeypatch.setenv("CARDLAKE_ENV", "test")
    monkeypatch.setenv("CARDLAKE_LAKE_ROOT", str(built_lake.lake_root))
    monkeypatch.setenv("CARDLAKE_LANDING_ROOT", str(built_lake.root / "landing"))
    monkeypatch.setenv("CARDLAKE_TRUTH_ROOT", str(built_lake.truth_root))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(book, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}")
    finally:
        nbformat.write(book, tmp_path / path.name)  # the executed copy, kept with the test's files
    images = [o for c in book.cells if c.cell_type == "code" for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images, f"{path.name} rendered no inline plot"
