#!/usr/bin/env bash
# The test command: unit tests, then the book at profile ci (notebooks executed, HTML built
# with -W), then checks on the built book and the results files.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup_env.sh
.venv/bin/python -m pip install -q -r requirements/test-browser.txt  # selenium, for the browser checks
export MPLBACKEND=agg
echo "[test] unit and property tests"
.venv/bin/python -m pytest -q -p no:cacheprovider
echo "[test] building the book at profile ci"
.venv/bin/koopman book --profile ci
echo "[test] checks on the built book and the results files (headless Chromium: apt-get install chromium chromium-driver)"
.venv/bin/python -m pytest -q -p no:cacheprovider -m book
