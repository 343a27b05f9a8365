"""The replication's divergence claims with an interval over networks (issue 23): the two-part rule
(koopman_repro.scorecard.divergence_parts) recomputed on the networks of the replication row's
per-network curve, resampled by the scorecard's bootstrap; checked against the committed paper file's
rows and on synthetic curves whose networks agree or disagree."""
from __future__ import annotations

import numpy as np
import pytest

from koopman_lib.metrics import finite_median
from koopman_repro import rows as declared
from koopman_repro import scorecard as sc
from koopman_repro.report import paper_results
from koopman_repro.scorecard import measure_mnist as mm
from koopman_repro.scorecard.fits import select_fit
from koopman_repro.scorecard.measure_mnist import REPLICATION_CURVES
from test_scorecard import row_of

#: steps per epoch of the synthetic files
S = 10
#: the claim of each kind of layer-1 operators
CLAIM = {"node": "replication-divergence", "layer": "replication-divergence-layer"}


def synthetic(start, end, optimizer, kind="node") -> dict:
    """An ``mnist.json`` with the replication's row of ``kind`` operators after 2 epochs and its
    per-network curve: network i's Koopman test loss goes from ``start[i]`` to ``end[i]``, Adadelta's
    ends at ``optimizer[i]``; the row holds the medians over the networks, as the experiment writes them."""
    start, end, optimizer = (np.asarray(x, dtype=float) for x in (start, end, optimizer))
    steps = [0, S, 2 * S]
    koopman = np.column_stack([start, (start + end) / 2, end])
    adadelta = np.column_stack([start, optimizer, optimizer])
    curve = {"steps": steps, "koopman_loss": koopman.tolist(), "koopman_acc": np.zeros_like(koopman).tolist(),
             "optimizer_steps": steps, "optimizer_loss": adadelta.tolist(),
             "optimizer_acc": np.zeros_like(adadelta).tolist()}
    row = row_of("mnist", "replication", setting="replication", fit="replication", partition=kind, dtype="float32",
                 T_epochs=2, n_members=len(end),
                 test_loss_t2=finite_median(start), final_test_loss_koopman=finite_median(end),
                 final_test_loss_optimizer=finite_median(optimizer),
                 koopman_loss_growth_median=finite_median(end / start), max_spectral_radius=1.0)
    return {"replication": [row], "ablation_curves": {REPLICATION_CURVES[(kind, "paper")]: curve},
            "steps_per_epoch": S, "provenance": {"profile": "paper"}}


def measured(res: dict, kind: str = "node", fit: str = "paper") -> sc.Measured:
    return mm.mnist_divergence(kind)(select_fit({"mnist": res}, fit))


def verdict(res: dict, kind: str = "node") -> str:
    return sc.claim_row(CLAIM[kind], {}, {"mnist": res})["verdict"]


# -- the committed paper file ------------------------------------------------------------------
@pytest.fixture(scope="module")
def paper():
    res = paper_results("mnist")
    if res is None:
        pytest.skip("no committed results/paper/mnist.json")
    return res


@pytest.mark.parametrize("kind, fit", [("node", "paper"), ("layer", "paper"), ("node", "default")])
def test_the_networks_give_the_aggregate_row_on_the_committed_paper_file(paper, kind, fit):
    """The per-network curve read for each replication row is of that row's networks: its medians are
    the row's, and the rule recomputed on all of them is the row's value; the interval is of that value
    and contains it."""
    res = select_fit({"mnist": paper}, fit)["mnist"]
    rows = [r for r in declared.table(res, "replication", "mnist")
            if mm.is_replication_row(r, kind) and r.T_epochs == mm.MNIST_T]
    assert rows, "the committed paper file has the replication's row"
    row = rows[0]
    columns, why = mm.divergence_networks(res, row, kind)
    assert why == "" and all(len(c) == row.n_members for c in columns)
    ko, _, opt, growth = sc.intervals.finite_medians(sc.intervals.paired(columns))
    assert (ko, opt, growth) == pytest.approx((row.final_test_loss_koopman, row.final_test_loss_optimizer,
                                               row.koopman_loss_growth_median), rel=1e-12)
    grows, above, _ = mm.divergence_parts(row)
    m = measured(paper, kind, fit)
    assert mm.divergence_statistic(sc.intervals.paired(columns)) == m.value == (grows + above) / 2
    iv = m.interval
    assert iv is not None and m.no_interval == "" and iv.n == row.n_members and iv.value == m.value
    assert iv.ci_low <= m.value <= iv.ci_high and 0.0 <= iv.ci_low and iv.ci_high <= 1.0
    assert sc.RULES["divergence"].verdict(m.judged()) in sc.VERDICTS


# -- synthetic networks ------------------------------------------------------------------------
def test_networks_that_disagree_give_an_interval_across_the_threshold_and_an_inconclusive_verdict():
    """Half the networks blow up, half keep improving below Adadelta: on all of them both parts hold
    (the median sits between the halves), but resamples with more improving networks hold neither."""
    n = 10
    end = [1.0] * (n // 2) + [0.1] * (n // 2)
    res = synthetic([0.2] * n, end, [0.2] * n)
    m = measured(res)
    assert m.value == 1.0 and m.interval.value == m.value and m.interval.n == n
    assert m.interval.ci_low < sc.RULES["divergence"].bound() <= m.interval.ci_high
    assert m.interval.ci_low <= m.value <= m.interval.ci_high
    assert verdict(res) == sc.INCONCLUSIVE


@pytest.mark.parametrize("kind", ["node", "layer"])
def test_networks_that_all_diverge_give_a_degenerate_interval(kind):
    rng = np.random.default_rng(1)
    start = rng.uniform(0.2, 0.25, 8)
    res = synthetic(start, start * rng.uniform(2.0, 30.0, 8), rng.uniform(0.18, 0.2, 8), kind)
    m = measured(res, kind)
    assert (m.value, m.interval.ci_low, m.interval.ci_high) == (1.0, 1.0, 1.0)
    assert verdict(res, kind) == sc.REPRODUCED


def test_networks_that_all_keep_improving_below_adadelta_give_zero_on_the_whole_interval():
    res = synthetic([0.2] * 6, [0.15, 0.16, 0.17, 0.14, 0.15, 0.16], [0.19] * 6)
    m = measured(res)
    assert (m.value, m.interval.ci_low, m.interval.ci_high) == (0.0, 0.0, 0.0)
    assert verdict(res) == sc.NOT_REPRODUCED


def test_networks_the_guard_stopped_are_left_out_of_the_medians_as_in_the_row():
    """A network whose rollout blew up (no loss at the horizon) counts neither way, as in the row's
    finite medians; the rule on the remaining networks is the row's value."""
    end = [0.5, 0.6, float("nan"), 0.7, float("nan")]
    res = synthetic([0.2] * 5, end, [0.2] * 5)
    m = measured(res)
    assert m.interval is not None and m.interval.value == m.value == 1.0


def test_without_the_curve_or_with_another_networks_curve_there_is_no_interval():
    res = synthetic([0.2] * 6, [0.5] * 3 + [0.1] * 3, [0.2] * 6)
    no_curve = {**res, "ablation_curves": {}}
    m = measured(no_curve)
    assert m.interval is None and m.no_interval == mm.NO_REPLICATION_NETWORKS
    assert verdict(no_curve) == sc.INCONCLUSIVE
    # a curve whose medians are not the row's (other networks): read as no interval, never mixed in
    other = {**res, "replication": [{**res["replication"][0], "final_test_loss_koopman": 0.9}]}
    m = measured(other)
    assert m.interval is None and m.no_interval == mm.NOT_THE_ROWS_NETWORKS
    # the horizon missing from the curve
    short = {**res, "steps_per_epoch": S + 1}
    assert measured(short).no_interval == mm.NO_REPLICATION_NETWORKS
