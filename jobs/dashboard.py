"""Serve the dashboard on http://127.0.0.1:8050 over the lake's Delta tables (read-only).

python jobs/dashboard.py [--env local] [--lake-root lake] [--host 127.0.0.1] [--port 8050]
                         [--role analyst|privileged]
"""

from __future__ import annotations

import sys

from cardlake.serve.cli import dashboard_main

if __name__ == "__main__":
    sys.exit(dashboard_main())
