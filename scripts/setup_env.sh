#!/usr/bin/env bash
# Create .venv (Python 3.11) with the pinned stack. torch goes in first so that the local CPU
# wheel (torch==2.13.0) satisfies the project's `torch>=2.3` and no CUDA build is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${KOOPMAN_VENV:-.venv}
stamp="$VENV/.koopman-stamp"
want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup] creating $VENV with the pinned stack (about 2 minutes)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -c requirements/constraints.txt -e ".[book,test]"
echo "$want" > "$stamp"
