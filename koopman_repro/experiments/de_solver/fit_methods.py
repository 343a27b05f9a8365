"""The fits of every reading: the book's named fits (:data:`koopman_lib.estimator.BOOK_FITS`: the fits of
:data:`koopman_lib.fit.FITS` from one factorisation per block, the strided ones from a second one of every
``s``-th snapshot) and the side comparison of fit methods at the paper's cutoff (``Config.fit_methods``)."""
from __future__ import annotations

import torch

from koopman_lib.estimator import BOOK_FITS, STRIDED_FITS, Koopman, fit_named
from koopman_lib.fit import FITS
from koopman_lib.solvers import METHODS
from koopman_lib.stride import choose_stride, floor_horizon

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


def base_fit(fit: str) -> str:
    """The fit of :data:`koopman_lib.fit.FITS` a book fit is made of (a strided fit's unstrided one)."""
    return STRIDED_FITS.get(fit, fit)


def cutoff_name(fit: str) -> str:
    """The ``FitSpec`` name of a book fit (a strided fit's is its unstrided fit's)."""
    return FITS[base_fit(fit)].name


def fit_label(fit: str) -> str:
    """The ``fit_method`` of the rows of named fit ``fit``: ``"pinv"`` for the paper's (``F' pinv(F)``
    with MATLAB's cutoff, the label of earlier results files), ``"pinv:<FitSpec.name>"`` for the others,
    ``"pinv:<FitSpec.name>:strided"`` for the strided fits (distinct per fit)."""
    if fit == "paper":
        return "pinv"
    return f"pinv:{cutoff_name(fit)}" + (":strided" if fit in STRIDED_FITS else "")


def fit_stride(fit: str, k: int, partition) -> int:
    """The stride named fit ``fit`` fits a window of ``k`` snapshots with: the rule's
    (:func:`koopman_lib.stride.choose_stride`, from the window's length and the block sizes alone) for a
    strided fit, else 1. :func:`koopman_fits` fits with exactly this stride (``stride_``)."""
    return choose_stride(k, partition) if fit in STRIDED_FITS else 1


def horizon(T: int, stride: int) -> int:
    """The optimizer steps a fit of stride ``stride`` predicts in place of ``T``: ``T`` itself at stride 1,
    else :func:`koopman_lib.stride.floor_horizon` (up to ``stride - 1`` steps short), 0 for ``T < stride``."""
    return T if stride == 1 else (floor_horizon(T, stride) if T >= stride else 0)


def koopman_fits(partition, snapshots: torch.Tensor, fits=BOOK_FITS) -> dict[str, Koopman]:
    """``{name: fitted Koopman}`` for the named fits ``fits`` of :data:`koopman_lib.estimator.BOOK_FITS` on
    a recording ``(k, E, D)`` (:func:`koopman_lib.estimator.fit_named`)."""
    return fit_named(partition, snapshots, fits)
