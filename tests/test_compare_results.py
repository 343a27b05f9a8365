"""``scripts/compare_results.py``, the tool that says whether a rerun kept a saved file's values:
a changed value is listed, timings and rows that follow from a measured time are not."""
import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location("compare_results", Path(__file__).parents[1] / "scripts" / "compare_results.py")
compare_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_results)


def _files(tmp_path, old, new):
    a, b = tmp_path / "old.json", tmp_path / "new.json"
    a.write_text(json.dumps(old))
    b.write_text(json.dumps(new))
    return a, b


def test_a_changed_value_is_listed_and_a_timing_is_not(tmp_path):
    old = {"rows": [{"fit": "paper", "success_rate": 0.84, "fit_seconds": 1.0}]}
    new = {"rows": [{"fit": "paper", "success_rate": 0.80, "fit_seconds": 2.0}]}
    diffs = compare_results.compare(*_files(tmp_path, old, new), rtol=1e-9)
    assert [(p, kind) for p, kind, *_ in diffs] == [("old.rows[0].success_rate", "value")]


def test_a_row_given_a_measured_time_is_skipped_and_other_rows_are_not(tmp_path):
    timed = {"method": "adadelta (continued)", "comparison": "equal wall-clock", "steps": 361}
    same_steps = {"method": "adadelta (continued)", "comparison": "same steps", "steps": 2500}
    old = {"baselines": [timed, same_steps]}
    new = {"baselines": [dict(timed, steps=1705), dict(same_steps, steps=2400)]}
    diffs = compare_results.compare(*_files(tmp_path, old, new), rtol=1e-9)
    assert [p for p, *_ in diffs] == ["old.baselines[1].steps"]
