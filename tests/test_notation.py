"""One notation, and links back to the theory (issue 27).

**The notation page lists every symbol the chapters define in display math.** A chapter defines
its symbols in its displayed equations (``$$ ... $$`` blocks and ``{math}`` directives), so the
check reads those, in every ``notebooks/*.md``, and tokenises them simply:

- ``\\text{...}``, ``\\operatorname{...}``, ``\\mathrm{...}`` and environment names are words,
  not symbols, and are dropped; so are multi-letter sub/superscripts such as ``T_{eq}`` or
  ``\\ell^{KO}`` (labels: the symbol is the ``T``, the ``\\ell``);
- a Greek letter (``\\lambda``, ``\\Sigma``, ``\\varepsilon``, ``\\ell``, ...) is a symbol, and so is
  a calligraphic letter (``\\mathcal U``); every other command (``\\frac``, ``\\sum``, ``\\hat``,
  ``\\max``, ...) is notation, not a symbol;
- every remaining Latin letter is a symbol of its own (``F'`` is ``F``; ``x_t`` is ``x`` and
  ``t``): the book writes products with spaces or operators, so two adjacent letters are two
  symbols.

The notation page (``book/notation.md``) lists a symbol in the first cell of a table row; the
same tokeniser reads those cells. The test fails when a chapter introduces a symbol in display
math that the page does not list (a planted ``$$\\zeta = Y$$`` in a copy of the notebooks is
caught, :func:`test_a_planted_symbol_is_caught`), and when a row of the page has no link to
where the symbol is introduced.

**Links back.** Every experiment chapter cites at least one labelled section of a theory chapter
with ``{ref}``, and every ``{ref}`` target in the notebooks and static pages is a label defined
somewhere (``(name)=`` in ``notebooks/`` or ``book/``), so that the link cannot dangle even
before Sphinx's -W build sees it.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from koopman_repro.paths import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
BOOK = REPO_ROOT / "book"
NOTATION = BOOK / "notation.md"
THEORY = ("dynamics", "koopman_operators", "quickstart")
EXPERIMENTS = ("perceptron", "de_solver", "mnist", "divergence", "cost", "beyond")

GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
         "iota", "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "varrho", "sigma", "tau", "upsilon",
         "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma",
         "Upsilon", "Phi", "Psi", "Omega", "ell"}
CODE_CELL = re.compile(r"^```\{code-cell\}.*?^```", re.S | re.M)
DISPLAY = re.compile(r"\$\$(.+?)\$\$|^```\{math\}\n(.*?)^```", re.S | re.M)
WORDS = re.compile(r"\\(?:text|operatorname|mathrm|begin|end)\s*\{[^{}]*\}")
LABELS = re.compile(r"[_^]\{[A-Za-z]{2,}\}")
TOKEN = re.compile(r"\\mathcal\s*\{?\s*([A-Za-z])\}?|\\([A-Za-z]+)|([A-Za-z])")
REF = re.compile(r"\{ref\}`(?:[^`<]*<)?([^`>]+)>?`")
LABEL = re.compile(r"^\(([A-Za-z0-9_-]+)\)=\s*$", re.M)


def symbols(latex: str) -> set[str]:
    """The symbols of a piece of LaTeX, by the rules of the module docstring."""
    latex = LABELS.sub("", WORDS.sub(" ", latex))
    out = set()
    for calligraphic, command, letter in TOKEN.findall(latex):
        if calligraphic:
            out.add(rf"\mathcal {calligraphic}")
        elif command in GREEK:
            out.add("\\" + command)
        elif letter:
            out.add(letter)
    return out


def display_math(markdown: str) -> list[str]:
    """The displayed equations of a MyST notebook's markdown (code cells left out)."""
    return [a or b for a, b in DISPLAY.findall(CODE_CELL.sub("", markdown))]


def chapter_symbols(notebooks: Path) -> dict[str, set[str]]:
    """Symbol -> the chapters whose display math uses it."""
    out: dict[str, set[str]] = {}
    for path in sorted(notebooks.glob("*.md")):
        for block in display_math(path.read_text()):
            for s in symbols(block):
                out.setdefault(s, set()).add(path.stem)
    return out


def notation_rows(page: Path) -> list[list[str]]:
    """The cells of the notation page's table rows (header and separator left out)."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in page.read_text().splitlines() if line.startswith("|")]
    return [r for r in rows if not set("".join(r)) <= set("-: ") and r[0].lower() != "symbol"]


def listed(page: Path) -> set[str]:
    return {s for row in notation_rows(page) for m in re.findall(r"\$([^$]+)\$", row[0]) for s in symbols(m)}


def missing(notebooks: Path, page: Path) -> dict[str, set[str]]:
    have = listed(page)
    return {s: where for s, where in chapter_symbols(notebooks).items() if s not in have}


# -- the tokeniser itself --------------------------------------------------------------------------
def test_symbols_follow_the_documented_rules():
    assert symbols(r"U^T w = \sum_j b_j\, \lambda_j^T \phi_j") == {"U", "T", "w", "j", "b", r"\lambda", r"\phi"}
    assert symbols(r"(\mathcal U g)(w) = g(\mathcal T(w))") == {r"\mathcal U", r"\mathcal T", "g", "w"}
    assert symbols(r"T^{eq} = Q + R, \quad \ell^{KO}, \quad \text{rtol} \cdot s_{\max}") == {"T", "Q", "R", r"\ell", "s"}
    assert symbols(r"\operatorname{diag}(\lambda) \frac{1}{2} \hat v \begin{cases} 1 \end{cases}") == {r"\lambda", "v"}
    assert display_math("a $x$ b\n$$\nF' = U F\n$$\n```{code-cell} ipython3\ns = '$$Z$$'\n```\n") == ["\nF' = U F\n"]


# -- the notation page -----------------------------------------------------------------------------
def test_the_notation_page_lists_every_symbol_of_the_chapters_display_math():
    gaps = missing(NOTEBOOKS, NOTATION)
    assert not gaps, "symbols in display math missing from book/notation.md: " + \
        "; ".join(f"{s} ({', '.join(sorted(w))})" for s, w in sorted(gaps.items()))
    assert len(chapter_symbols(NOTEBOOKS)) > 30          # the extraction finds the book's symbols at all


def test_a_planted_symbol_is_caught(tmp_path):
    notebooks = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, notebooks)
    with (notebooks / "mnist.md").open("a") as f:
        f.write("\n$$\n\\zeta = Y \\, w\n$$\n")
    assert missing(notebooks, NOTATION) == {r"\zeta": {"mnist"}, "Y": {"mnist"}}


def test_every_notation_row_says_where_the_symbol_is_introduced():
    rows = notation_rows(NOTATION)
    assert len(rows) > 30
    for row in rows:
        assert len(row) >= 3 and re.search(r"\$[^$]+\$", row[0]), row
        assert re.search(r"\{(ref|doc)\}`[^`]+`", row[2]), f"no link in the 'introduced' column: {row}"


# -- links back to the theory ----------------------------------------------------------------------
def labels() -> dict[str, Path]:
    return {name: path for path in [*NOTEBOOKS.glob("*.md"), *BOOK.glob("*.md")]
            for name in LABEL.findall(path.read_text())}


def test_every_experiment_chapter_links_to_a_labelled_theory_section():
    theory = {name for name, path in labels().items() if path.parent == NOTEBOOKS and path.stem in THEORY}
    assert {"operators-modes", "dynamics-schedules"} <= theory
    for chapter in EXPERIMENTS:
        refs = set(REF.findall((NOTEBOOKS / f"{chapter}.md").read_text()))
        assert refs & theory, f"{chapter}.md has no {{ref}} to a labelled section of {', '.join(THEORY)}"


def test_every_ref_target_is_a_defined_label():
    known = labels()
    for path in [*NOTEBOOKS.glob("*.md"), *BOOK.glob("*.md")]:
        dangling = set(REF.findall(path.read_text())) - set(known)
        assert not dangling, f"{path.name}: {{ref}} to undefined label(s) {sorted(dangling)}"


@pytest.mark.parametrize("text, targets", [("see {ref}`operators-modes`", ["operators-modes"]),
                                           ("{ref}`the modes <operators-modes>`", ["operators-modes"])])
def test_ref_targets_are_read_with_and_without_a_title(text, targets):
    assert REF.findall(text) == targets
