"""Checks on the results files after the book build (``pytest -m book``, run by scripts/test.sh).

Every results JSON (this build's ``_build/results/ci`` and the saved full-scale runs in
``results/paper`` and ``results/full``) carries complete provenance, and the scorecard has a measured value for
every claim at profile ci. A claim that does not reproduce never fails these tests; a claim
that nobody measured does.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from koopman_repro import scorecard
from koopman_repro.experiments import EXPERIMENTS, available
from koopman_repro.results import REPO_ROOT

pytestmark = pytest.mark.book

CI_DIR = REPO_ROOT / "_build" / "results" / "ci"
PAPER_DIR = REPO_ROOT / "results" / "paper"
FULL_DIR = REPO_ROOT / "results" / "full"
#: JSON files in the results folders that are not experiment results (no provenance)
#: records of the build and of the test session, not experiment results
NOT_RESULTS = {"notebook-timings.json", "binder-session.json", "regeneration.json"}
PROVENANCE_KEYS = ("git_sha", "versions", "seed", "profile", "config", "utc_time", "hardware")


def results_files():
    files = []
    for folder, profile in ((CI_DIR, "ci"), (PAPER_DIR, "paper"), (FULL_DIR, "full")):
        if folder.is_dir():
            files += [pytest.param(p, profile, id=f"{profile}/{p.name}")
                      for p in sorted(folder.glob("*.json")) if p.name not in NOT_RESULTS]
    return files


def _strict_json(path: Path) -> dict:
    def no_constant(name):
        raise ValueError(f"{path} holds {name}: results must be strict JSON (NaN/inf are written as null)")
    with open(path) as f:
        return json.load(f, parse_constant=no_constant)


def test_build_wrote_results_folder():
    assert CI_DIR.is_dir(), f"{CI_DIR} does not exist: run `koopman book --profile ci` before `pytest -m book`"


@pytest.mark.parametrize("path,profile", results_files())
def test_provenance_is_complete(path: Path, profile: str):
    res = _strict_json(path)
    prov = res.get("provenance")
    assert isinstance(prov, dict), f"{path} has no provenance"
    missing = [k for k in PROVENANCE_KEYS if k not in prov]
    assert not missing, f"{path}: provenance lacks {missing}"
    assert isinstance(prov["git_sha"], str) and re.fullmatch(r"[0-9a-f]{40}", prov["git_sha"]), \
        f"{path}: git_sha {prov['git_sha']!r} is not a commit"
    assert prov["profile"] == profile, f"{path} is in the {profile} folder but was made at profile {prov['profile']!r}"
    assert isinstance(prov["seed"], int) and not isinstance(prov["seed"], bool), f"{path}: seed {prov['seed']!r}"
    assert isinstance(prov["config"], dict) and prov["config"], f"{path}: empty config"
    if "seed" in prov["config"]:
        assert prov["config"]["seed"] == prov["seed"], f"{path}: provenance seed differs from the config's"
    for pkg in ("python", "torch", "numpy"):
        assert prov["versions"].get(pkg), f"{path}: versions lack {pkg}"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", str(prov["utc_time"])), f"{path}: utc_time {prov['utc_time']!r}"
    assert prov["hardware"].get("cpu") and prov["hardware"].get("cpu_count"), f"{path}: hardware incomplete"
    name = path.stem
    if name in EXPERIMENTS:
        assert isinstance(res.get("wall_seconds"), (int, float)), f"{path}: no wall_seconds"


def _claim_params():
    return [pytest.param(c, id=c.key) for c in scorecard.CLAIMS]


@pytest.mark.parametrize("claim", _claim_params())
def test_scorecard_claim_is_measured_at_ci(claim):
    not_implemented = [n for n in claim.needs if n not in available()]
    if not_implemented:
        pytest.skip(f"experiment(s) {not_implemented} not implemented yet: claim {claim.key} cannot be measured")
    ours = scorecard.load_results(CI_DIR, "ci")
    measured, why = scorecard.measure(claim, ours)
    assert measured is not None, (
        f"the scorecard has no ci value for {claim.key} ({claim.where}): {why}. The chapter that runs "
        f"{claim.needs} must be in book/_toc.yml and write the fields the scorecard reads "
        "(koopman_repro/scorecard/measure_*.py)")
    row = scorecard.evaluate(ours, {}, (claim,))[0]
    assert row["ours_verdict"] in scorecard.VERDICTS and row["ours_verdict"] != scorecard.NOT_MEASURED
