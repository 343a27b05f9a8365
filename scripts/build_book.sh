#!/usr/bin/env bash
# Build the book: set up .venv, execute every chapter notebook at PROFILE (default ci),
# build the HTML with warnings as errors. Open _build/book/_build/html/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup_env.sh
export MPLBACKEND=agg
.venv/bin/koopman book --profile "${PROFILE:-ci}" "$@"
