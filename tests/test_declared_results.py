"""Declared results: every committed results file, upgraded on load, matches the JSON Schema
generated from the declared row types; the schema and the loader reject what they should."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from koopman_repro import migrations, rows
from koopman_repro.results import load_results, read_json

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted(p for p in (ROOT / "results").glob("*/*.json") if p.stem in migrations.SCHEMA_VERSION)


def test_every_experiment_declares_its_tables():
    for name in migrations.SCHEMA_VERSION:
        assert rows.tables(name), name


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_file_validates_after_upgrade(path):
    results = load_results(path)
    assert results["schema_version"] == migrations.SCHEMA_VERSION[path.stem]
    assert rows.validate(results, path.stem) == []
    for table in rows.tables(path.stem):   # and every row builds as its declared type
        assert len(rows.table(results, table)) == len(results.get(table) or [])


def test_the_upgrade_copies_and_leaves_the_file_alone():
    path = ROOT / "results" / "paper" / "perceptron.json"
    raw = read_json(path)
    raw.pop("schema_version", None)          # as a file written before schema versions
    before = copy.deepcopy(raw)
    up = migrations.upgrade(raw, "perceptron")
    assert raw == before and up is not raw
    assert migrations.upgrade(up, "perceptron") is up   # current files pass through


def test_a_newer_file_than_the_code_is_refused():
    with pytest.raises(ValueError, match="newer than this code"):
        migrations.upgrade({"schema_version": 99}, "perceptron")


def _small(name):
    return load_results(ROOT / "results" / "paper" / f"{name}.json")


def test_the_schema_rejects_an_undeclared_field_a_missing_field_and_a_wrong_type():
    res = _small("perceptron")
    table = next(iter(rows.tables("perceptron")))
    cls = rows.row_type("perceptron", table)
    required = rows.row_schema(cls)["required"][0]
    for breakage in ("extra", "missing", "type"):
        bad = copy.deepcopy(res)
        row = bad[table][0]
        if breakage == "extra":
            row["not_a_declared_field"] = 1
        elif breakage == "missing":
            del row[required]
        else:
            row[required] = {"a": "dict"} if not isinstance(row[required], dict) else 1.5
        errors = rows.validate(bad, "perceptron")
        assert errors and errors[0].startswith(f"{table}/0"), (breakage, errors)


def test_rows_are_read_as_attributes_and_an_undeclared_field_names_its_fix():
    res = _small("mnist")
    first = rows.table(res, "table")[0]
    assert first.fit == res["table"][0]["fit"]
    bad = copy.deepcopy(res)
    bad["table"][0]["new_metric"] = 1.0
    with pytest.raises(ValueError, match=r"new_metric.*declare them in koopman_repro\.rows\.mnist"):
        rows.table(bad, "table")


def test_the_generated_schema_is_json_and_names_every_table():
    for name in migrations.SCHEMA_VERSION:
        schema = json.loads(json.dumps(rows.results_schema(name)))
        assert set(rows.tables(name)) <= set(schema["properties"])
