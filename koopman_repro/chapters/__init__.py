"""One module per chapter of the book: its tables, verdicts and figures as tested functions.

A chapter module reads results (``koopman_repro.experiments.chapter_results``, the declared rows
of :mod:`koopman_repro.rows`) and returns rows, verdicts and matplotlib figures; the notebook
calls it in one line per table or figure and keeps only what teaches (the equations and short
cells that call the library). ``tests/chapters/test_<chapter>.py`` checks each function's values
on small results written by the tests (``tests/chapters/conftest.py``).
"""


def say(text: str) -> None:
    """Display a computed sentence as Markdown (in a notebook)."""
    from IPython.display import Markdown, display
    display(Markdown(text))


def config(res: dict) -> dict:
    """The configuration of the run ``res`` came from, as its provenance saved it (a plain dict)."""
    return res["provenance"]["config"]
