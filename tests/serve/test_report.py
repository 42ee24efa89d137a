"""`jobs/report.py` (what `make report` runs) on the tiny lake: the PDF renders to PNG pages
with pdftoppm, and its text carries the month's figures against the previous month and a year
ago, all of them known from the lake's hand-made KPIs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.conftest import ROOT

pytestmark = pytest.mark.integration

ARTEFACTS = ROOT / "reports" / "test-artefacts" / "report"


@pytest.fixture(scope="module")
def report(tiny_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (shutil.which("pdftoppm") and Path("/usr/bin/chromium").exists()):
        pytest.skip("needs Debian's chromium and poppler-utils: run .ci/setup.d/20-chromium.sh")
    out = tmp_path_factory.mktemp("reports")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "jobs" / "report.py"),
            "--env",
            "test",
            "--lake-root",
            str(tiny_lake),
            "--month",
            "2025-01",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [
        str(out / "cardlake-2025-01.html"),
        str(out / "cardlake-2025-01.pdf"),
        str(out / "profiling" / "crm_customers.html"),
    ]
    return out


def test_pdf_renders_to_pages_with_the_months_figures(report: Path) -> None:
    pdf = report / "cardlake-2025-01.pdf"
    subprocess.run(
        ["pdftoppm", "-r", "60", "-png", str(pdf), str(report / "page")], check=True, timeout=120
    )
    pages = sorted(report.glob("page-*.png"))
    assert len(pages) >= 2
    assert all(p.stat().st_size > 10_000 for p in pages)  # drawn pages, not blank ones
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for p in pages:
        shutil.copy(p, ARTEFACTS / p.name)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    # tx_count = 1000 + 10 i: 1,120 now, 1,110 the month before, 1,000 a year ago
    assert "In 2025-01 customers made 1,120 transactions worth $62,000.00, up 0.9% on the" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("Transactions "))
    assert row.split()[1:] == ["1,120", "1,110", "+0.9%", "1,000", "+12.0%"]
    revenue = next(line for line in text.splitlines() if line.strip().startswith("Revenue ("))
    assert revenue.split()[-5:] == ["$732.00", "$721.00", "+1.5%", "$600.00", "+22.0%"]
    assert "2 customers are in the High risk tier and 2 in Medium." in text
    # tables the tiny lake lacks are named, with the target that builds them
    assert "gold.customer_segments: not built yet" in text


def test_html_report_has_no_personal_data_and_names_versions(report: Path) -> None:
    html = (report / "cardlake-2025-01.html").read_text()
    assert "gold.kpi_monthly v0" in html
    for secret in ("Santos", "aoife", "+353"):
        assert secret not in html
