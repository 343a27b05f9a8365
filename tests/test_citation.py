"""LICENSE and CITATION.cff: the package is citable and its license is the one pyproject.toml
declares. CITATION.cff is validated against the Citation File Format 1.2.0 JSON schema, the copy
vendored by check-jsonschema (pinned in the test extras, already used by tests/test_workflows.py;
cffconvert, which vendors the same schema, pins jsonschema<4 and cannot be installed beside it)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CFF = ROOT / "CITATION.cff"


def validate(path: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "check-jsonschema"
    exe = str(exe) if exe.is_file() else shutil.which("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed: it is in the test extras (pip install -e '.[test]'; "
                    "./scripts/setup_env.sh does this)")
    return subprocess.run([exe, "--builtin-schema", "vendor.citation-file-format", "--default-filetype", "yaml",
                           str(path)], capture_output=True, text=True, timeout=120)


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_schema_is_cff_1_2_0():
    import importlib.resources
    import json
    schema = json.loads(importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
                        .joinpath("citation-file-format.json").read_text())
    assert schema["$id"] == "https://citation-file-format.github.io/1.2.0/schema.json"


def test_citation_cff_matches_the_cff_1_2_0_schema():
    proc = validate(CFF)
    assert proc.returncode == 0, f"check-jsonschema:\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("breakage, field", [
    (lambda d: d.pop("authors"), "authors"),                                  # required
    (lambda d: d.update({"cff-version": 1.2}), "cff-version"),                # must be a string
    (lambda d: d.update({"license": "MIT License"}), "license"),              # not an SPDX id
    (lambda d: d["preferred-citation"].update({"type": "paper"}), "type"),    # not a CFF type
])
def test_a_broken_citation_cff_fails_the_schema(tmp_path, breakage, field):
    data = yaml.safe_load(CFF.read_text())
    breakage(data)
    bad = tmp_path / "CITATION.cff"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = validate(bad)
    assert proc.returncode == 1 and field in proc.stdout, proc.stdout


def test_citation_cff_agrees_with_pyproject_and_the_book():
    cff = yaml.safe_load(CFF.read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert str(cff["version"]) == project()["version"]
    assert cff["license"] == project()["license"] == "MIT"
    assert cff["authors"] == [{"name": "The koopman_lib authors"}]
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cff["repository-code"] == config["repository"]["url"]
    paper = cff["preferred-citation"]
    assert paper["title"] == "Optimizing Neural Networks via Koopman Operator Theory"
    assert [a["family-names"] for a in paper["authors"]] == ["Dogra", "Redman"]
    assert paper["year"] == 2020 and "NeurIPS 2020" in paper["conference"]["name"]
    assert "2006.02361" in paper["url"]


def test_license_is_the_mit_license_pyproject_declares():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 The koopman_lib authors" in text
    assert "Permission is hereby granted, free of charge" in text and 'THE SOFTWARE IS PROVIDED "AS IS"' in text
