"""Resuming an interrupted "Beyond the paper" run: each study (item 7: each of its networks) is a
stage kept in ``OUT/.partial/beyond/`` (:mod:`koopman_repro.partial`); a rerun with the same config
reads the finished stages instead of recomputing them, and gives the results of an uninterrupted run."""
import json

import pytest

from koopman_repro.experiments import beyond as bd
from koopman_repro.experiments import config_for
from koopman_repro.experiments.beyond import networks as bd_networks
from koopman_repro.partial import Partial
from koopman_repro.results import to_jsonable

from test_beyond import TINY

def _untimed(obj):
    """``obj`` without its timings (every key naming seconds: they differ from run to run)."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if "seconds" not in str(k)}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def _cfg(**over):
    return config_for("beyond", "ci", **{**TINY, "items": ("stabilisation", "networks"), "cnn_inits": 0,
                                        "fashion_inits": 0, **over})


def _values(out: dict) -> str:
    """The results without timings, as they are saved (JSON, sorted keys)."""
    return json.dumps(_untimed(to_jsonable(out)), sort_keys=True)


def test_resume_reads_finished_stages(tmp_path, monkeypatch):
    cfg = _cfg()
    clear = Partial.clear
    monkeypatch.setattr(Partial, "clear", lambda self: None)      # as if interrupted after the last stage
    first = bd.run(cfg, results_dir=tmp_path)
    kept = sorted(p.stem for p in (tmp_path / ".partial" / "beyond").glob("*.json"))
    assert kept == ["networks", "networks-wide", "stabilisation"]

    def boom(*a, **k):
        raise AssertionError("a finished stage was recomputed")
    monkeypatch.setattr(bd_networks, "study_network", boom)
    monkeypatch.setattr("koopman_repro.experiments.beyond.run_stabilisation", boom)
    monkeypatch.setattr(Partial, "clear", clear)
    again = bd.run(cfg, results_dir=tmp_path)
    assert _values(again) == _values(first)
    assert again["item_seconds"] == first["item_seconds"]         # the stage's own timings, read back
    assert not (tmp_path / ".partial").exists()                   # cleared once the run completed


def test_resume_ignores_another_config(tmp_path, monkeypatch):
    monkeypatch.setattr(Partial, "clear", lambda self: None)
    bd.run(_cfg(items=("networks",)), results_dir=tmp_path)
    calls = []
    study = bd_networks.study_network
    monkeypatch.setattr(bd_networks, "study_network", lambda *a, **k: calls.append(1) or study(*a, **k))
    out = bd.run(_cfg(items=("networks",), seed=1), results_dir=tmp_path)
    assert calls == [1] and out["networks"]                       # recomputed: the kept stage had seed 0


def test_stages_do_not_change_values(tmp_path):
    """The values of a run kept in stages are those of a run without ``results_dir``."""
    cfg = _cfg(items=("networks",))
    assert _values(bd.run(cfg, results_dir=tmp_path)) == _values(bd.run(cfg))
