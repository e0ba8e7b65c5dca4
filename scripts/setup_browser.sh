#!/usr/bin/env bash
# Idempotent set-up for the browser test of the layout editor:
#   - Debian's chromium at /usr/bin/chromium (apt-get, only when missing; no browser download by npm)
#   - npm playwright-core in tests/browser/node_modules (from tests/browser/package.json)
# Exits 0 when both are ready. When chromium cannot be installed (no apt, no root) it prints why and exits 0,
# and the browser test then skips with that reason; any other failure exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
CHROMIUM=${INSTDIFF_CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$CHROMIUM" ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "setup_browser: installing Debian chromium with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || true
        apt-get install -y -qq --no-install-recommends chromium >/dev/null || echo "setup_browser: apt-get install chromium failed"
    else
        echo "setup_browser: $CHROMIUM missing and apt-get/root not available; the browser test will skip"
    fi
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "setup_browser: npm not found; the browser test will skip"
    exit 0
fi
if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
    echo "setup_browser: npm install playwright-core (tests/browser)"
    (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent)
fi
[ -x "$CHROMIUM" ] && echo "setup_browser: ready ($("$CHROMIUM" --version 2>/dev/null | head -1))" || true
