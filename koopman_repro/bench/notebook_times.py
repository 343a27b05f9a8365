"""The book's notebook execution times, as ``koopman book`` records them in
``_build/results/<profile>/notebook-timings.json``, and the book's time at profile ci."""
from __future__ import annotations

from pathlib import Path

from ..paths import BOOK, BUILD, NOTEBOOKS
from ..results import read_json
from .profiles import PROFILES


def notebook_seconds(build_dir: Path | None = None) -> dict:
    """``{profile: {notebook: seconds} or None}`` from ``_build/results/<profile>/notebook-timings.json``."""
    build_dir = build_dir or BUILD / "results"
    out = {}
    for profile in PROFILES:
        path = Path(build_dir) / profile / "notebook-timings.json"
        try:
            out[profile] = read_json(path).get("notebook_seconds") if path.is_file() else None
        except (OSError, ValueError):
            out[profile] = None
    return out


def book_notebooks() -> list[str]:
    """The chapters of ``book/_toc.yml`` that are notebooks (``notebooks/NAME.md``)."""
    from ..book import toc_chapters
    toc = BOOK / "_toc.yml"
    if not toc.is_file():
        return []
    return [n for n in toc_chapters(toc) if (NOTEBOOKS / f"{n}.md").is_file()]


def book_minutes(timings: dict | None) -> tuple[float | None, int, int]:
    """``(minutes, notebooks timed, notebooks in the book)``: the sum of the notebook times of
    one profile, ``None`` unless every notebook chapter of the book has a time (a build of a
    few chapters with ``--only`` records only those)."""
    names = book_notebooks()
    timed = [n for n in names if timings and n in timings]
    if not names or len(timed) < len(names):
        return None, len(timed), len(names)
    return sum(timings[n] for n in names) / 60, len(timed), len(names)
