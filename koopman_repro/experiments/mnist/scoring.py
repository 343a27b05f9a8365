"""The one scoring of a prediction at a horizon, for the Koopman fits and for the optimizer against
itself alike (issue 23, item 1: one function, two callers): ``T_eq = Q + R`` (S10) and its parts
against the network's own optimizer run, ``T_eq / T``, the test loss and accuracy at the horizon,
and the equivalent run times (S10 eq. 13)."""
from __future__ import annotations

from koopman_lib.metrics import TEq, equivalent_runtime, t_eq_parts


def score_horizon(loss: float, acc: float, epoch_losses: list, h: int, who: str, horizon_steps: int) -> dict:
    """One network's entry at horizon ``h`` epochs for a prediction whose test loss and accuracy at
    the horizon are ``loss``, ``acc`` (``nan`` where it has none), scored against ``epoch_losses``
    (the network's own optimizer run: its test loss at t2 and after every later epoch): ``T_eq_epochs``,
    ``Q``, ``R``, ``censored``, ``teq_over_t`` and ``<who>_loss``, ``<who>_acc`` (``who``:
    ``"koopman"`` for a fit, ``"null"`` for the optimizer against itself), and ``horizon_steps``, the
    optimizer steps the prediction made (a strided fit's can be up to ``s - 1`` short of ``h`` epochs)."""
    parts = t_eq_parts(loss, epoch_losses)
    return {"T_eq_epochs": parts.value, "Q": parts.Q, "R": parts.R, "censored": parts.censored,
            "teq_over_t": parts.value / h, f"{who}_loss": loss, f"{who}_acc": acc, "horizon_steps": horizon_steps}


def add_equivalent_times(entries: list[dict], timing: dict, after: int) -> None:
    """Add to each horizon entry its equivalent run time (S10 eq. 13) with the paper-style and the
    fast-loop epoch times of ``timing`` over the ``after`` optimizer epochs after t2."""
    tau_paper, tau_fast = timing["epoch_seconds_paper_style"], timing["epoch_seconds_fast_loop"]
    for r in entries:
        p = TEq(r["T_eq_epochs"], r["Q"], r["R"], r["censored"])
        r["equivalent_seconds_paper_style"] = equivalent_runtime(p, [tau_paper] * after)
        r["equivalent_seconds_fast_loop"] = equivalent_runtime(p, [tau_fast] * after)
