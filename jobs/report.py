"""Write the monthly executive report as HTML and PDF under reports/ (read-only on the lake).

python jobs/report.py --month 2025-06 [--env local] [--lake-root lake] [--out reports]
"""

from __future__ import annotations

import sys

from cardlake.serve.cli import report_main

if __name__ == "__main__":
    sys.exit(report_main())
