"""The recipe digest reads a stage's code wherever it was imported from, a wheel included.

spark-submit ships the project as a wheel (``--py-files``) and the driver imports ``cardlake``
from that zip; the recipe digest once opened ``module.__file__`` as a file and every stage with
watermarks crashed there (``NotADirectoryError: .../cardlake-0.1.0-py3-none-any.whl/cardlake/
months.py``). No Spark here: a package of two modules, once in a folder and once in a zip.
"""

from __future__ import annotations

import importlib
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from cardlake.tables import watermarks

PACKAGE = "recipe_probe"
SOURCES = {
    "__init__.py": "VALUE = 1\n",
    "steps.py": "def step(x):\n    return x + 1\n",
    "notes.txt": "not code: not part of the recipe\n",
}


def _write_folder(root: Path, sources: dict[str, str]) -> Path:
    (root / PACKAGE).mkdir(parents=True)
    for name, text in sources.items():
        (root / PACKAGE / name).write_text(text)
    return root


def _write_wheel(path: Path, sources: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in sources.items():
            wheel.writestr(f"{PACKAGE}/{name}", text)
    return path


def _import_from(location: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    # One probe package in sys.modules at a time: the folder's and the wheel's share its name.
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(location))
    importlib.invalidate_caches()
    return importlib.import_module(PACKAGE), importlib.import_module(f"{PACKAGE}.steps")


def _recipes(package: ModuleType, module: ModuleType) -> tuple[str, str]:
    return watermarks.recipe_digest([package]), watermarks.recipe_digest([module])


def test_code_imported_from_a_wheel_has_the_recipe_of_the_same_code_in_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _recipes(*_import_from(_write_folder(tmp_path / "src", SOURCES), monkeypatch))
    wheel_path = _write_wheel(tmp_path / "probe-0.1-py3-none-any.whl", SOURCES)
    package, module = _import_from(wheel_path, monkeypatch)
    assert Path(package.__file__ or "").parent.parent == wheel_path  # really from the zip
    assert _recipes(package, module) == folder


def test_a_changed_module_in_the_wheel_changes_the_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _recipes(*_import_from(_write_folder(tmp_path / "src", SOURCES), monkeypatch))
    changed = {**SOURCES, "steps.py": "def step(x):\n    return x + 2\n"}
    package, module = _import_from(_write_wheel(tmp_path / "probe.whl", changed), monkeypatch)
    wheel = _recipes(package, module)
    assert wheel[0] != folder[0]  # the package's recipe covers every module in it
    assert wheel[1] != folder[1]


def test_files_that_are_not_python_are_not_part_of_the_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _recipes(*_import_from(_write_folder(tmp_path / "src", SOURCES), monkeypatch))
    other_notes = {**SOURCES, "notes.txt": "edited notes\n"}
    package, module = _import_from(_write_wheel(tmp_path / "probe.whl", other_notes), monkeypatch)
    assert _recipes(package, module) == folder


def test_comments_and_layout_are_not_a_new_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A formatter's run over the code must not make every lake rebuild its gold.
    folder = _recipes(*_import_from(_write_folder(tmp_path / "src", SOURCES), monkeypatch))
    reformatted = {
        **SOURCES,
        "__init__.py": "# the probe\nVALUE = (\n    1\n)\n",
        "steps.py": "def step(x):  # one more\n\n    return (x +\n            1)\n",
    }
    again = _recipes(*_import_from(_write_folder(tmp_path / "fmt", reformatted), monkeypatch))
    assert again == folder
