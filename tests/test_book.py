"""The book build hides both parameter cells (the notebook's defaults and papermill's injected
values) from the rendered page; the notebook it offers for download is the reader's (its own
defaults, no injected cell, the outputs kept); a chapter whose ci execution peaks above Binder's
memory fails the build."""
from __future__ import annotations

import nbformat
import pytest

from koopman_repro.book import (BINDER_MEMORY_MB, PARAMETER_TAGS, MemoryLimitError, check_memory, hide_parameter_cells,
                                 over_memory, readers_notebook, toc_chapters)
from koopman_repro.results import REPO_ROOT


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def synthetic_notebook(path):
    """A notebook as papermill leaves it: markdown, the parameters cell, the injected cell
    (made by papermill itself, so the tag is papermill's), a plain code cell."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"),
                nbformat.v4.new_code_cell('profile = "ci"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(profile)", metadata={"tags": ["hide-input"]})]
    nbformat.write(nb, path)
    nb = parameterize_notebook(load_notebook_node(str(path)), {"profile": "paper"}, report_mode=False)
    nbformat.write(nb, path)
    return path


def test_both_parameter_cells_are_removed_from_the_page_and_kept_in_the_notebook(tmp_path):
    path = synthetic_notebook(tmp_path / "chapter.ipynb")
    before = nbformat.read(path, as_version=4)
    assert [tags(c) for c in before.cells] == [[], ["parameters"], ["injected-parameters"], ["hide-input"]]
    hide_parameter_cells(path)
    after = nbformat.read(path, as_version=4)
    assert len(after.cells) == len(before.cells), "cells must stay in the executed notebook"
    assert [c.source for c in after.cells] == [c.source for c in before.cells]
    assert tags(after.cells[1]) == ["parameters", "remove-cell"]
    assert tags(after.cells[2]) == ["injected-parameters", "remove-cell"]
    assert 'profile = "paper"' in after.cells[2].source
    assert tags(after.cells[0]) == [] and tags(after.cells[3]) == ["hide-input"], "other cells are untouched"


def test_hiding_is_idempotent(tmp_path):
    path = synthetic_notebook(tmp_path / "chapter.ipynb")
    hide_parameter_cells(path)
    once = nbformat.read(path, as_version=4)
    hide_parameter_cells(path)
    twice = nbformat.read(path, as_version=4)
    assert [tags(c) for c in twice.cells] == [tags(c) for c in once.cells]
    assert sum(t == "remove-cell" for c in twice.cells for t in tags(c)) == len(PARAMETER_TAGS)


@pytest.mark.parametrize("name", [n for n in toc_chapters(REPO_ROOT / "book" / "_toc.yml")
                                  if (REPO_ROOT / "notebooks" / f"{n}.md").is_file()])
def test_every_chapter_notebook_has_a_parameters_cell(name):
    """papermill injects its cell after the ``parameters`` cell; without one it would inject
    at the top and the chapter's own defaults would be what the page runs with."""
    import jupytext
    nb = jupytext.read(REPO_ROOT / "notebooks" / f"{name}.md")
    assert any("parameters" in tags(c) for c in nb.cells if c.cell_type == "code"), \
        f"notebooks/{name}.md has no code cell tagged `parameters`"


def test_chapter_results_reads_the_saved_run_unless_asked_to_recompute(tmp_path, monkeypatch):
    from koopman_repro import experiments
    # nothing at this profile in tmp_path: the reader's path shows the committed full-scale run
    got = experiments.chapter_results("perceptron", "ci", tmp_path, recompute=False)
    assert got["provenance"]["profile"] in ("paper", "full")
    assert not (tmp_path / "perceptron.json").exists()                      # nothing was run
    # the book build's path runs (here: a stand-in for the experiment) and later readers reuse it
    calls = []
    monkeypatch.setattr(experiments, "load_or_run", lambda *a, **k: calls.append(a) or {"ran": True})
    assert experiments.chapter_results("perceptron", "ci", tmp_path, recompute=True) == {"ran": True}
    assert calls == [("perceptron", "ci", tmp_path)]


def test_peak_memory_sees_a_child_process():
    import subprocess
    import sys
    from koopman_repro.book import PeakMemory
    code = "import time; b = bytearray(200 * 2**20); time.sleep(1.0)"
    with PeakMemory(interval=0.05) as peak:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert peak.peak > 150 * 2**20


def test_the_downloadable_notebook_is_the_readers_version(tmp_path):
    """After execution the injected cell (``profile = "paper"`` here, ``recompute = True`` in the
    build) is gone: the notebook runs with its parameters cell's defaults; outputs are kept."""
    path = synthetic_notebook(tmp_path / "chapter.ipynb")
    nb = nbformat.read(path, as_version=4)
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", name="stdout", text="paper\n")]
    nb.cells[3].execution_count = 2
    assert nb.metadata["papermill"]["parameters"] == {"profile": "paper"}
    nbformat.write(nb, path)
    readers_notebook(path)
    hide_parameter_cells(path)
    after = nbformat.read(path, as_version=4)
    assert [tags(c) for c in after.cells] == [[], ["parameters", "remove-cell"], ["hide-input"]]
    assert not any("injected-parameters" in tags(c) for c in after.cells)
    assert after.cells[1].source == 'profile = "ci"', "the parameters cell keeps the notebook's defaults"
    assert "paper" not in "".join(c.source for c in after.cells if c.cell_type == "code")
    assert after.cells[2].outputs[0]["text"] == "paper\n", "the executed outputs are kept"
    assert after.cells[2].execution_count == 2
    assert not after.metadata["papermill"].get("parameters"), "no injected values in the metadata either"
    readers_notebook(path)                                           # idempotent
    assert [c.source for c in nbformat.read(path, as_version=4).cells] == [c.source for c in after.cells]


def test_the_memory_check_fails_a_ci_chapter_over_binders_limit():
    assert BINDER_MEMORY_MB == 2048
    timings = {"quickstart": 412.1, "mnist": 5800.4, "beyond": 2048.0, "cost": 3100.0}
    assert over_memory(timings, "ci") == {"mnist": 5800.4, "cost": 3100.0}     # at the limit is within it
    with pytest.raises(MemoryLimitError) as err:
        check_memory(timings, "ci")
    message = str(err.value)
    assert "notebook mnist: peak 5800 MB > limit 2048 MB" in message
    assert "notebook cost: peak 3100 MB > limit 2048 MB" in message
    assert "quickstart" not in message and "beyond" not in message


def test_the_memory_check_passes_chapters_within_the_limit_and_other_profiles():
    check_memory({"quickstart": 412.1, "mnist": 1999.0, "divergence": 685.5}, "ci")
    check_memory({}, "ci")
    check_memory({"mnist": 9000.0}, "paper")                         # full-scale runs are not for Binder
    assert over_memory({"mnist": 9000.0}, "paper") == {}
    with pytest.raises(MemoryLimitError, match="peak 1500 MB > limit 1024 MB"):
        check_memory({"mnist": 1500.0}, "ci", limit_mb=1024)
