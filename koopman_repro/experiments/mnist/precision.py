"""The other reading of the paper's precision (issue 23, item 6): the paper's experiment also
trained in float64 (the authors' MATLAB works in double; the PyTorch example, and our main table,
train in float32), on inits ``0..n_float64_inits - 1`` with the fits ``cfg.float64_fits`` (the
paper's and the library's default), in groups of ``float64_group_size`` (a float64 recording is
twice a float32 one), as the DE chapter has both training dtypes. The same code as the main
experiment (:func:`.table2.paper_experiment` on :func:`float64_config`), without the cutoff sweep,
the first group's studies and the optimizer against itself."""
from __future__ import annotations

from dataclasses import replace

from .config import Config
from ...partial import Partial
from .table2 import paper_experiment, table_rows
from .training import Setup


def float64_config(cfg: Config) -> Config:
    """``cfg``'s paper experiment as the float64 condition runs it."""
    return replace(cfg, train_dtype="float64", fits=cfg.float64_fits, cutoff_sweep=(), n_inits=cfg.n_float64_inits,
                   networks=None, group_size=cfg.float64_group_size, null_model=False)


def float64_experiment(cfg: Config, setup: Setup, partial: Partial, timing: dict) -> dict:
    """``{"table_float64": Table 2's rows of the float64 condition, "members_float64": its networks}``
    (empty lists when ``cfg.n_float64_inits`` is 0); each group kept by ``partial`` as ``float64-<inits>``."""
    if not cfg.n_float64_inits:
        return {"table_float64": [], "members_float64": []}
    c64 = float64_config(cfg)
    members, *_ = paper_experiment(c64, setup, None, partial, stage="float64-")
    return {"table_float64": table_rows(c64, members, timing, setup.after, setup.S), "members_float64": members}
