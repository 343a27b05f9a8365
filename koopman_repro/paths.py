"""Where the reproduction layer finds the checkout's files: resolved here, and only here.

The reproduction layer reads and writes files of a checkout of the repository: ``notebooks/``
(the chapters), ``book/`` (static pages, table of contents), ``results/PROFILE/`` (the committed
full-scale runs) and ``_build/`` (executed notebooks, ci results, the HTML). The checkout is the
folder above this package, or the one named by the environment variable ``KOOPMAN_REPO`` (for
an installed wheel used against a checkout elsewhere). Every function that takes a results folder
also takes an explicit path.
"""
from __future__ import annotations

import os
from pathlib import Path

#: the checkout the reproduction layer works in
REPO_ROOT = Path(os.environ.get("KOOPMAN_REPO") or Path(__file__).resolve().parent.parent).resolve()
#: generated files (never committed): executed notebooks, ci results, the book's HTML
BUILD = REPO_ROOT / "_build"
NOTEBOOKS = REPO_ROOT / "notebooks"
BOOK = REPO_ROOT / "book"
#: committed full-scale runs: ``results/paper/NAME.json``, ``results/full/beyond.json``
SAVED_RESULTS = REPO_ROOT / "results"


def saved_results_dir(profile: str) -> Path:
    """The folder of the committed runs of ``profile`` (``results/paper``, ``results/full``)."""
    return SAVED_RESULTS / profile


def build_results_dir(profile: str) -> Path:
    """The folder the book build writes ``profile``'s results to (``_build/results/PROFILE``)."""
    return BUILD / "results" / profile


#: where tests/test_binder.py records the simulated reader's session (each notebook as a reader opens it)
BINDER_SESSION = build_results_dir("ci") / "binder-session.json"
#: the regeneration check of the committed full-scale files at this build (the test command writes
#: it, :func:`koopman_repro.regeneration.check_saved`; the front page's table of saved runs reads it)
REGENERATION = build_results_dir("ci") / "regeneration.json"


def resolve(path) -> Path:
    """``path`` as given if absolute, else relative to the checkout (not to the working directory,
    so a notebook executed anywhere finds the same files)."""
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def require_checkout() -> Path:
    """The checkout, or a clear error when the reproduction layer runs outside one."""
    if not (NOTEBOOKS.is_dir() and BOOK.is_dir()):
        raise FileNotFoundError(
            f"no checkout of the koopman repository at {REPO_ROOT} (no notebooks/ and book/ there): the "
            "reproduction layer (koopman reproduce/book/bench) needs one; set KOOPMAN_REPO to its folder")
    return REPO_ROOT
