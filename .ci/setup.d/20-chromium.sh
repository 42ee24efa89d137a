#!/usr/bin/env bash
# The dashboard's browser tests and the PDF report drive Debian's Chromium through Playwright
# (no browser download: `playwright install` is never run), and the report test turns the PDF
# into PNG pages with pdftoppm (poppler-utils). Fonts so pages and PDFs render text.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core fontconfig)
if [ ${#need[@]} -eq 0 ]; then
    echo "20-chromium: chromium, pdftoppm and fonts already installed"
    exit 0
fi
bash "$(dirname "$0")/../apt-install.sh" "${need[@]}"
