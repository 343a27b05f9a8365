"""The fits of every reading: the named fits of :data:`koopman_lib.fit.FITS` (one factorisation per
block) and the side comparison of fit methods at the paper's cutoff (``Config.fit_methods``)."""
from __future__ import annotations

import torch

from koopman_lib.estimator import Koopman
from koopman_lib.fit import FITS
from koopman_lib.solvers import METHODS

#: ``Config.fit_methods`` entry -> ``Koopman(method=...)``: "pinv" (the paper's ``F' pinv(F)``) is the
#: SVD fit with the paper's cutoff; the others are the same least-squares problem solved another way
FIT_METHODS = {m: "svd" if m == "pinv" else m for m in METHODS}
#: ``Config.jump_method``: ``U^T w`` by repeated squaring (``Koopman.predict``). "auto" was the old
#: default, which chose squaring for every ``T < 2**32`` (here ``T <= n_steps - t2``): the same thing
JUMP_METHODS = ("auto", "power")


def koopman_fit(partition, method: str) -> Koopman:
    """The (unfitted) estimator of ``Config.fit_methods`` entry ``method``."""
    m = FIT_METHODS[method]
    return Koopman(partition, method=m, cutoff="paper" if m == "svd" else None)


def fit_label(fit: str) -> str:
    """The ``fit_method`` of the rows of named fit ``fit``: ``"pinv"`` for the paper's (``F' pinv(F)``
    with MATLAB's cutoff, the label of earlier results files), ``"pinv:<FitSpec.name>"`` for the others."""
    return "pinv" if fit == "paper" else f"pinv:{FITS[fit].name}"


def koopman_fits(partition, snapshots: torch.Tensor, fits=tuple(FITS)) -> dict[str, Koopman]:
    """``{name: fitted Koopman}`` for the named fits ``fits`` of :data:`koopman_lib.fit.FITS` on a
    recording ``(k, E, D)``, from one factorisation per block (``Koopman.fit_variants``)."""
    return Koopman(partition).fit_variants(snapshots, {f: FITS[f] for f in fits})

