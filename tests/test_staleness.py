"""Staleness of saved results: the code hash covers exactly the code an experiment runs."""
from __future__ import annotations

import subprocess
from pathlib import Path

from koopman_repro import staleness
from koopman_repro.imports import closure, imports_of

ROOT = Path(__file__).resolve().parents[1]


def test_dependencies_are_the_experiments_own_code_and_the_core_it_imports():
    deps = set(staleness.dependencies("perceptron"))
    assert {"koopman_repro/experiments/perceptron.py", "koopman_lib/fit.py", "koopman_lib/estimator.py"} <= deps
    assert not any(d.startswith("koopman_repro/experiments/mnist") for d in deps)
    assert "koopman_repro/experiments/images.py" in staleness.dependencies("mnist")


def test_closure_follows_relative_imports_and_package_inits(tmp_path):
    for rel, text in {"koopman_lib/__init__.py": "", "koopman_lib/a.py": "from .b import x\n",
                      "koopman_lib/b.py": "x = 1\n", "koopman_lib/c.py": "import os\n",
                      "koopman_repro/__init__.py": ""}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert imports_of(tmp_path / "koopman_lib/a.py", "koopman_lib.a") == {"koopman_lib.b", "koopman_lib.b.x"}
    assert closure("koopman_lib.a", tmp_path) == {"koopman_lib", "koopman_lib.a", "koopman_lib.b"}


def test_status_by_hash_and_by_commit():
    now = staleness.code_hash("perceptron")
    assert staleness.status({"provenance": {"code_hash": now}}, "perceptron", now) == staleness.UNCHANGED
    assert staleness.status({"provenance": {"code_hash": "0" * 64}}, "perceptron", now) == staleness.CHANGED
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=ROOT, capture_output=True,
                           text=True).stdout.split()[0]
    assert staleness.status({"provenance": {"git_sha": head}}, "perceptron") == staleness.UNCHANGED
    assert staleness.status({"provenance": {"git_sha": first}}, "perceptron") == staleness.CHANGED
    assert staleness.status({"provenance": {"git_sha": "not-a-commit"}}, "perceptron") == staleness.UNKNOWN
    assert staleness.status({"provenance": {}}, "perceptron") == staleness.UNKNOWN


def test_every_committed_full_scale_file_is_listed():
    rows = staleness.saved_runs()
    files = {(p.parent.name, p.stem) for p in (ROOT / "results").glob("*/*.json")}
    assert {(r["profile"], r["experiment"]) for r in rows} == files
    assert all(r["code"] in (staleness.UNCHANGED, staleness.CHANGED, staleness.UNKNOWN, staleness.REGENERATES,
                             staleness.DIFFERS) for r in rows)


def test_a_regeneration_check_on_todays_code_refines_changed():
    now = staleness.code_hash("perceptron")
    old = {"provenance": {"code_hash": "0" * 64}}
    row = lambda outcome, h=now: {("perceptron", "paper"): {"outcome": outcome, "code_hash": h}}  # noqa: E731
    assert staleness.checked_status(old, "perceptron", "paper", row("regenerates")) == staleness.REGENERATES
    assert staleness.checked_status(old, "perceptron", "paper", row("differs")) == staleness.DIFFERS
    assert staleness.checked_status(old, "perceptron", "paper", row("no check values")) == staleness.CHANGED
    # a check of other code says nothing about today's
    assert staleness.checked_status(old, "perceptron", "paper", row("regenerates", "1" * 64)) == staleness.CHANGED
    assert staleness.checked_status(old, "perceptron", "full", row("regenerates")) == staleness.CHANGED
    same = {"provenance": {"code_hash": now}}
    assert staleness.checked_status(same, "perceptron", "paper", row("differs")) == staleness.UNCHANGED


def test_a_run_made_with_other_chunks_is_a_run_of_the_current_config():
    """``made_with_current_config`` compares every setting but the ones that only chunk the work
    (``CHUNKING``): a saved MNIST run from before ``replication_group_size`` existed, or with other
    group sizes, is current; one with another result-bearing setting, or without a config, is not."""
    import dataclasses

    from koopman_repro.experiments import config_for, made_with_current_config
    from koopman_repro.experiments.mnist import CHUNKING
    from koopman_repro.results import to_jsonable

    config = to_jsonable(dataclasses.asdict(config_for("mnist", "paper")))
    assert set(CHUNKING) <= set(config) and "n_inits" not in CHUNKING

    def saved(cfg):
        return {"provenance": {"profile": "paper", "config": cfg}}

    assert made_with_current_config("mnist", saved(config))
    older = {k: v for k, v in config.items() if k != "replication_group_size"}
    assert made_with_current_config("mnist", saved(dict(older, group_size=3, state_group_size=1)))
    assert not made_with_current_config("mnist", saved(dict(config, n_inits=24)))
    assert not made_with_current_config("mnist", saved(None))
    perceptron = to_jsonable(dataclasses.asdict(config_for("perceptron", "paper")))    # no CHUNKING there:
    assert not made_with_current_config("perceptron", saved(dict(perceptron, group_size=2)))  # a result setting
