"""Tables for readers (koopman_repro.report): headers in words, at most MAX_ROWS rows shown with the
rest collapsed, tables wider than the text column split into tables that fit."""
from __future__ import annotations

import importlib
import pkgutil

import pytest

from koopman_repro import chapters
from koopman_repro import report as rp


def tables_in(md: str) -> list[list[str]]:
    """The pipe tables of a markdown string, each as its lines (header, rule, rows)."""
    out, cur = [], []
    for line in md.split("\n") + [""]:
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            out.append(cur)
            cur = []
    return out


def heads(table: list[str]) -> list[str]:
    return [c.strip() for c in table[0].strip("|").split(" | ")]


# -- the code-name rule --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["teq_over_t_median", "cond_F_median", "speedup_fast_loop_median_all", "loss_t2",
                                  "n_params", "memory_MB", "T_epochs", "median loss_t2 (s)", "naturalWidth",
                                  "s7_construction"])
def test_code_names_are_recognised(name):
    assert rp.is_code_name(name)


@pytest.mark.parametrize("name", ["median T_eq / T", "success rate", "fit time (s)", "T_eq (epochs)", "loss at t_2",
                                  "cond(F)", "|λ_j|^T, T = 100", "default-stabilised: T_eq/T", "paper / prior work",
                                  "memory (MB)", "$\\rho(U)^T$"])
def test_reader_headers_are_not_code_names(name):
    assert not rp.is_code_name(name)


def test_every_mapped_header_reads_as_words():
    bad = {c: h for c, h in rp.HEADERS.items() if rp.is_code_name(h)}
    assert not bad, f"HEADERS maps to code names: {bad}"


def declared_columns():
    """Every column list a chapter module declares (``*_COLUMNS``)."""
    for info in pkgutil.iter_modules(chapters.__path__):
        mod = importlib.import_module(f"koopman_repro.chapters.{info.name}")
        for name, value in vars(mod).items():
            if name.endswith("_COLUMNS") and isinstance(value, (list, tuple)):
                for column in value:
                    yield f"{info.name}.{name}", column


def test_every_declared_column_has_a_reader_header():
    bad = [(where, c) for where, c in declared_columns() if rp.is_code_name(rp.header(c))]
    assert list(declared_columns()), "found no *_COLUMNS lists in the chapter modules"
    assert not bad, f"columns without a reader's header in report.HEADERS: {bad}"


def test_headers_are_mapped_and_code_names_refused():
    md = rp.markdown_table([{"method": "pinv", "teq_over_t_median": 0.5, "fit_s": 1.25}])
    assert heads(tables_in(md)[0]) == ["method", "median T_eq / T", "fit (s)"]
    assert "teq_over_t_median" not in md
    with pytest.raises(ValueError, match="code names"):
        rp.markdown_table([{"method": "pinv", "some_new_field": 1.0}])


# -- the row limit ---------------------------------------------------------------------------------
def test_a_short_table_is_shown_whole():
    rows = [{"step": i} for i in range(rp.MAX_ROWS)]
    md = rp.markdown_table(rows)
    assert "dropdown" not in md
    assert len(tables_in(md)) == 1 and len(tables_in(md)[0]) == 2 + rp.MAX_ROWS


def test_a_long_table_shows_max_rows_and_collapses_the_rest():
    rows = [{"step": i, "loss": 1.0 / (i + 1)} for i in range(27)]
    md = rp.markdown_table(rows)
    shown, rest = md.split("```{dropdown}")
    assert len(tables_in(shown)) == 1 and len(tables_in(shown)[0]) == 2 + rp.MAX_ROWS
    assert "The other 15 rows (27 in all)" in rest
    assert rest.rstrip().endswith("```")
    hidden = tables_in(rest)
    assert len(hidden) == 1 and heads(hidden[0]) == ["step", "loss"]
    # every row is still there, once, in order
    steps = [int(line.split("|")[1]) for t in tables_in(md) for line in t[2:]]
    assert steps == list(range(27))


def test_the_csv_is_named():
    md = rp.markdown_table([{"step": i} for i in range(20)], csv="_build/results/ci/x-table.csv")
    assert md.endswith("Every row: `_build/results/ci/x-table.csv`.")


# -- wide tables ------------------------------------------------------------------------------------
def wide_rows(n_rows: int = 3, n_cols: int = 14):
    return [{"method": f"method {r}", **{f"q{c}": 123456.789 * (c + 1) + r for c in range(n_cols)}}
            for r in range(n_rows)]


def table_px(table: list[str]) -> float:
    lines = [[c.strip() for c in line.strip("|").split(" | ")] for line in [table[0]] + table[2:]]
    return sum(rp.min_width_px([row[i] for row in lines]) for i in range(len(lines[0])))


def test_a_narrow_table_is_one_table():
    md = rp.markdown_table(wide_rows(n_cols=3))
    assert len(tables_in(md)) == 1


def test_a_wide_table_is_split_into_tables_that_fit():
    rows = wide_rows()
    one = "\n".join(rp._pipe_table([["method"] + [f"q{c}" for c in range(14)]] +
                                   [[rp._cell(v) for v in r.values()] for r in rows]))
    assert table_px(one.split("\n")) > rp.TEXT_COLUMN_PX, "the planted table is not wide"
    parts = tables_in(rp.markdown_table(rows))
    assert len(parts) >= 2
    for t in parts:
        assert heads(t)[0] == "method", "every part starts with the column that names a row"
        assert table_px(t) <= rp.TEXT_COLUMN_PX
        assert len(t) == 2 + len(rows)
    # every column shown once (after the key), in order
    assert [h for t in parts for h in heads(t)[1:]] == [f"q{c}" for c in range(14)]


def test_keys_lead_every_part():
    rows = [{"optimizer": "adam", "fit": "paper", **{f"q{c}": 1234567.0 for c in range(12)}}]
    for t in tables_in(rp.markdown_table(rows, keys=2)):
        assert heads(t)[:2] == ["optimizer", "fit"]


def test_a_long_wide_table_collapses_in_every_part():
    md = rp.markdown_table(wide_rows(n_rows=20))
    assert md.count("```{dropdown} The other 8 rows (20 in all)") == len(tables_in(md)) // 2 >= 2


def test_width_reads_words_not_markup():
    assert rp.min_width_px(["[short](a/very/long/target/of/a/link.html#anchor)"]) == \
        rp.min_width_px(["short"])
    assert rp.min_width_px(["a b c"]) < rp.min_width_px(["abc"])


def test_the_columns_that_name_a_row_are_found():
    rows = [{"optimizer": "adam", "fit": "paper", "T": 50, "loss": 0.1, "fit s": 2.0}]
    assert rp.label_columns(rows, list(rows[0])) == 3
    assert rp.label_columns([{"loss": 0.5, "a": "x"}], ["loss", "a"]) == 1
    assert rp.label_columns([{"ok": True, "a": "x"}], ["ok", "a"]) == 1
    wide = [{"optimizer": "adam", "fit": "paper", **{f"q{c}": 1234567.0 for c in range(12)}}]
    for t in tables_in(rp.markdown_table(wide)):
        assert heads(t)[:2] == ["optimizer", "fit"]


def test_a_bar_in_a_header_or_cell_keeps_the_columns():
    md = rp.markdown_table([{"max |λ|": "1.02", "note": "a | b"}])
    table = tables_in(md)[0]
    assert all(line.count("|") - line.count("\\|") == 3 for line in table)


def test_a_wide_table_of_text_is_split_too():
    """Every column text (nothing but names): the names cannot all lead, values must fit."""
    rows = [{"setting": f"setting_number_{i}", "ci": "('sgd_momentum', 0.01)", "paper": "('sgd_momentum', 0.01)",
             "full": "('sgd_momentum', 0.01)"} for i in range(3)]
    parts = tables_in(rp.markdown_table(rows))
    assert len(parts) >= 2
    assert all(heads(t)[0] == "setting" and table_px(t) <= rp.TEXT_COLUMN_PX for t in parts)


def test_a_collapsed_table_fits_inside_its_dropdown():
    rows = [{"run": f"r{i}", **{f"q{c}": 123456.789 for c in range(6)}} for i in range(20)]
    whole = tables_in(rp.markdown_table(rows[:rp.MAX_ROWS]))
    assert len(whole) == 1 and rp.TEXT_COLUMN_PX - rp.DROPDOWN_PX < table_px(whole[0]) <= rp.TEXT_COLUMN_PX
    parts = tables_in(rp.markdown_table(rows))
    assert len(parts) == 4  # two groups of columns, each shown and collapsed
    for t in parts:
        assert table_px(t) <= rp.TEXT_COLUMN_PX - rp.DROPDOWN_PX


def test_the_front_page_scorecard_moves_its_notes_below_the_table():
    from koopman_repro import scorecard as sc
    from koopman_repro.scorecard.tables import HEAD, front_page_markdown
    rows = sc.evaluate({}, {})
    md = front_page_markdown(rows)
    table, notes = md.split("```{dropdown}")
    lines = tables_in(table)
    assert len(lines) == 1 and heads(lines[0]) == HEAD[:-1] and len(lines[0]) == 2 + len(rows)
    assert "notes" not in heads(lines[0])
    items = [line for line in notes.split("\n") if line.startswith("- ")]
    assert len(items) == len(rows) and all("rule: " in line for line in items)
    assert sc.table_markdown(rows).count("rule: ") == len(items)  # every note still shown
