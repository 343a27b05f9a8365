"""Figures shared by the book's pages.

:func:`scorecard_figure` draws the front page's answer at a glance: one row per claim of
:func:`koopman_repro.scorecard.evaluate`, grouped by experiment, a marker coloured by the
verdict, and our value against the paper's as a ratio on a log axis (1 = the paper's value).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from .scorecard import CLAIMS, DE_T, MNIST_T, S4_ORDER
from .report import INCONCLUSIVE, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED

#: verdict -> (colour, marker); Okabe-Ito colours, and a shape per verdict for readers who
#: cannot tell the colours apart
VERDICT_STYLE = {
    REPRODUCED: ("#009E73", "o"),
    INCONCLUSIVE: ("#E69F00", "D"),
    NOT_REPRODUCED: ("#D55E00", "X"),
    NOT_MEASURED: ("#8C8C8C", "s"),
}

#: experiment (a claim's ``chapter``) -> the group heading the figure prints above its claims
GROUPS = {
    "de_solver": "DE solver (Table 1, Sec. 4)",
    "mnist": "MNIST (Table 2, Sec. 5)",
    "perceptron": "Perceptron (Fig. S4)",
    "cost": "Speed (abstract)",
    "divergence": "Replication (Rao 2024)",
}

#: claim key -> the short name of its row (claims not listed use the start of their statement)
SHORT_NAMES = {
    "mnist-success": "success rate",
    "mnist-teq": "median T_eq/T",
    "mnist-speedup": "median speedup",
    "de-error-ratio": "error / weight change (lower is better)",
    "perceptron-s4": "Koopman variants before the rule",
    "abstract-10x": "> 10x faster (paper's timing)",
    "abstract-10x-fast-loop": "> 10x faster (fast optimizer loop)",
    "range-de": "accurate over T = 2500 steps",
    "range-mnist": "accurate over T = 2 epochs",
    "replication-divergence": "loss diverges, full-node operators",
    "replication-divergence-layer": "loss diverges, layer-wise operators",
}
_DE_PARTS = {"success": "success rate", "teq": "median T_eq/T", "speedup": "median speedup"}

#: the log axis never reaches further than this factor either side of the paper's value
RATIO_LIMIT = 1000.0


def _finite(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def short_name(row: Mapping) -> str:
    key = str(row.get("key", ""))
    if key in SHORT_NAMES:
        return SHORT_NAMES[key]
    parts = key.split("-")
    if len(parts) == 3 and parts[0] == "de" and parts[2] in _DE_PARTS:
        return f"{parts[1].capitalize()}: {_DE_PARTS[parts[2]]}"
    text = str(row.get("claim") or key or "claim")
    return text if len(text) <= 38 else text[:37].rstrip() + "…"


def group_name(row: Mapping) -> str:
    chapter = row.get("chapter")
    return GROUPS.get(chapter, str(chapter).replace("_", " ").capitalize() if chapter else "Other")


def paper_value(row: Mapping) -> float | None:
    """The paper's number for the row's claim (``row["paper_value"]`` if the row has it, else
    the registered claim's); ``None`` for claims that are not a single number."""
    if "paper_value" in row:
        return _finite(row["paper_value"])
    claim = next((c for c in CLAIMS if c.key == row.get("key")), None)
    return _finite(claim.paper_value) if claim else None


def measured(row: Mapping) -> tuple[float | None, str]:
    """The value the verdict was taken from, and where it comes from (``"paper profile"``
    or ``"this build"``): the saved full-scale run where it measured the claim, else this build."""
    v = _finite(row.get("paper_profile_value"))
    if v is not None:
        return v, "paper profile"
    return _finite(row.get("ours_value")), "this build"


def ratio(row: Mapping, value: float | None) -> float | None:
    """``value`` relative to the paper's claim (1 = as the paper says). For claims without a
    single paper number (an ordering, a range, a two-part rule) the measured value already is
    the share of the claim that holds, so it is returned as it is."""
    if value is None:
        return None
    p = paper_value(row)
    if p is None:
        return value
    return value / p if p else None


def _paper_text(row: Mapping, rule, p: float | None) -> str:
    if p is None:
        paper = str(row.get("paper") or "")
        return paper if len(paper) <= 16 else ""
    if rule == "success rate":
        return f"{p:.0f}%"
    if rule == "speedup":
        return f"{p:.3g}x"
    if rule == "10x":
        return f"> {p:.3g}x"
    if rule == "T_eq/T":
        return f"{p:.2f}"
    return f"{p:.2g}"


def value_text(row: Mapping, value: float | None) -> str:
    """``"ours vs paper"`` in the claim's own units (``"–"`` for a value nobody measured)."""
    rule, p, key = row.get("rule"), paper_value(row), str(row.get("key", ""))
    paper = _paper_text(row, rule, p)
    if value is None:
        ours = "–"
    elif rule == "success rate":
        ours = f"{value:.0f}%"
    elif rule in ("speedup", "10x"):
        ours = f"{value:.3g}x"
    elif rule == "T_eq/T":
        ours = f"{value:.2f}"
    elif rule == "error ratio":
        ours = f"{value:.2g}"
    elif rule == "ordering":
        n = len(S4_ORDER)
        return f"{round(value * n)} of {n} orderings hold"
    elif rule == "divergence":
        return f"{round(value * 2)} of 2 parts hold"
    elif rule == "range":
        T, unit = (MNIST_T, "epochs") if "mnist" in key else (DE_T, "steps")
        return f"T = {round(value * T, 2):g} of {T} {unit}"
    else:
        ours = f"{value:.3g}"
    return f"{ours} vs {paper}" if paper else ours


def grouped(rows: Sequence[Mapping]) -> list[tuple[str, list[Mapping]]]:
    """Rows grouped by experiment, groups in the order of their first claim."""
    groups: dict[str, list[Mapping]] = {}
    for r in rows:
        groups.setdefault(group_name(r), []).append(r)
    return list(groups.items())


def scorecard_figure(rows: Sequence[Mapping], build_label: str = "this build", width: float = 7.0):
    """One figure summarising every claim of the scorecard (``scorecard.evaluate`` rows).

    One row per claim, grouped by experiment (bold headings); the marker's colour and shape
    give the verdict; its position is the measured value the verdict was taken from divided by
    the paper's value, on a log axis with a line at 1 (claims that are not one number, such as
    an ordering, show the share of the claim that holds). A hollow circle shows this build's own
    value where the verdict came from the saved full-scale run; a small white diamond just below,
edged in its verdict's colour, is the same claim with the library's default fit. Values beyond the axis are drawn
    at its edge as triangles; the right-hand column gives every value in its own units. Claims
    nobody measured yet say so. ``width`` is in inches: 7 in is 700 px at the default 100 dpi, about
    the article column of the book at a 1280 px window (so the figure is shown at nearly its own
    size). Returns the matplotlib Figure (not shown).
    """
    import matplotlib.pyplot as plt

    heads, items, bottom = _layout(rows)
    best = [(yy, r, *measured(r)) for yy, r in items]
    this_build = [ratio(r, _finite(r.get("ours_value"))) for _, r in items]
    lo, hi = _ratio_limits(items, best, this_build)

    n_lines = len(items) + len(heads)
    fig, ax = plt.subplots(figsize=(width, 0.24 * n_lines + 1.6), layout="constrained")
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(bottom - 0.4, 0.6)
    ax.axvline(1.0, color="0.25", lw=1.0, zorder=1)
    for yy, _ in heads[1:]:
        ax.axhline(yy + 0.68, color="0.85", lw=0.8, zorder=0)
    ax.grid(axis="x", which="major", color="0.92", lw=0.8, zorder=0)
    ax.set_axisbelow(True)

    _draw_verdicts(ax, best, this_build, lo, hi)
    _draw_default_fit(ax, best, lo, hi)
    _label_axes(ax, heads, items, best, lo, hi)
    fig.legend(handles=_legend_handles(build_label), loc="outside lower center", ncols=3, fontsize=8.5,
               frameon=False)
    return fig


def _layout(rows: Sequence[Mapping]) -> tuple[list, list, float]:
    """y positions top to bottom: a heading line per group (``heads``: ``(y, name)``), then its
    claims (``items``: ``(y, row)``); and the lowest y used."""
    y, heads, items = 0.0, [], []
    for name, members in grouped(rows):
        heads.append((y, name))
        y -= 1
        for r in members:
            items.append((y, r))
            y -= 1
        y -= 0.35
    return heads, items, y + 0.35


def _ratio_limits(items, best, this_build) -> tuple[float, float]:
    """The log axis's limits: every ratio drawn with some room, never beyond :data:`RATIO_LIMIT`."""
    ratios = [q for yy, r, v, _ in best if (q := ratio(r, v)) is not None and q > 0]
    ratios += [q for _, r in items if (q := ratio(r, _finite(r.get("default_value")))) is not None and q > 0]
    ratios += [q for q in this_build if q is not None and q > 0]
    lo = max(min(ratios + [0.2]) / 1.8, 1 / RATIO_LIMIT)
    hi = min(max(ratios + [5.0]) * 1.8, RATIO_LIMIT)
    return lo, hi


def _place(q: float, lo: float, hi: float) -> tuple[float, str | None]:
    """x position and marker override for a ratio (edge triangles beyond the axis)."""
    if q <= lo:
        return lo * 1.12, "<"
    if q >= hi:
        return hi / 1.12, ">"
    return q, None


def _draw_verdicts(ax, best, this_build, lo: float, hi: float) -> None:
    """Each claim's verdict marker, this build's own value as a hollow circle where the verdict
    came from the full-scale run, and "not measured" where nobody measured it."""
    for (yy, r, v, basis), own in zip(best, this_build):
        verdict = r.get("verdict", NOT_MEASURED)
        colour, marker = VERDICT_STYLE.get(verdict, VERDICT_STYLE[NOT_MEASURED])
        q = ratio(r, v)
        if q is None:
            ax.text(math.sqrt(lo * hi), yy, "not measured", color=colour, style="italic", fontsize=8.5,
                    ha="center", va="center", zorder=3,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
            continue
        if basis == "paper profile" and own is not None and not math.isclose(own, q, rel_tol=1e-9):
            x_own, m_own = _place(own, lo, hi)
            ax.plot([x_own], [yy], marker=m_own or "o", ms=7, mfc="none", mec="0.35", mew=1.1, ls="none",
                    zorder=2)
        x, m = _place(q, lo, hi)
        ax.plot([x], [yy], marker=m or marker, ms=8 if m is None else 9, color=colour, mec="white", mew=0.6,
                ls="none", zorder=4, gid="verdict-marker")


def _draw_default_fit(ax, best, lo: float, hi: float) -> None:
    """The same claims with the library's default fit: small white diamonds just below, edged in
    their verdict's colour."""
    for (yy, r, _, _) in best:
        qd = ratio(r, _finite(r.get("default_value")))
        if qd is None:
            continue
        colour, _ = VERDICT_STYLE.get(r.get("default_verdict", NOT_MEASURED), VERDICT_STYLE[NOT_MEASURED])
        x, m = _place(qd, lo, hi)
        ax.plot([x], [yy - 0.3], marker=m or "D", ms=5.5, mfc="white", mec=colour, mew=1.6, ls="none", zorder=5,
                gid="default-fit-marker")


def _label_axes(ax, heads, items, best, lo: float, hi: float) -> None:
    """Claim names and group headings on the left, the log axis below, every value in its own
    units on the right."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yticks([yy for yy, _ in items], [short_name(r) for _, r in items], fontsize=9)
    ax.set_yticks([yy for yy, _ in heads], [name for _, name in heads], minor=True, fontsize=9.5,
                  fontweight="bold")
    ax.tick_params(axis="y", which="both", length=0)
    ax.tick_params(axis="x", labelsize=9)
    decades = math.log10(hi / lo)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2.6 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("measured / paper value (log scale, dimensionless; 1 = the paper's value)", fontsize=9.5)

    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks([yy for yy, _ in items], [value_text(r, v) for (yy, r, v, _) in best], fontsize=8.5)
    right.tick_params(axis="y", length=0)
    right.set_ylabel("measured vs paper, in the claim's units", fontsize=9.5, rotation=270, labelpad=12)
    for spine in ("top",):
        ax.spines[spine].set_visible(False)
        right.spines[spine].set_visible(False)


def _legend_handles(build_label: str) -> list:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="none", marker=m, color=c, ms=8, mec="white", label=v)
               for v, (c, m) in VERDICT_STYLE.items()]
    handles.append(Line2D([], [], ls="none", marker="o", ms=7, mfc="none", mec="0.35", mew=1.1,
                          label=f"{build_label} (verdict from the full-scale run)"))
    handles.append(Line2D([], [], ls="none", marker="D", ms=5.5, mfc="white", mec="0.35", mew=1.6,
                          label="library's default fit (edge colour = its verdict)"))
    handles.append(Line2D([], [], color="0.25", lw=1.0, label="paper's value"))
    handles.append(Line2D([], [], ls="none", marker="<", ms=8, color="0.45", label="off the axis (value on the right)"))
    return handles


# -- the stride sweeps (the DE solver's and MNIST's chapters) -------------------------------------------
def stride_axis(ax, strides: Sequence[int], rule: int) -> None:
    """The x axis of a stride sweep's panel: the strides ``s`` on a log2 axis, each ticked, and the
    rule's stride (``koopman_lib.stride.choose_stride``) as a labelled grey vertical line."""
    ax.axvline(rule, color="grey", ls=":", lw=1.2, label=f"the rule's stride s = {rule}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(strides), [str(x) for x in strides])
    ax.set_xlabel("stride s (optimizer steps between the snapshots fitted)")
