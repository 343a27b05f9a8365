"""Timing of the MNIST experiment: an epoch of the PyTorch example's loop (paper style) and of
the fast loop, and Koopman training one network along the reported path (fit + guarded rollout)."""
from __future__ import annotations

import math
import statistics
import time

import numpy as np
import torch
from torch import nn

from koopman_lib.estimator import STRIDED_FITS, Koopman, fit_named
from koopman_lib.errors import FitError
from koopman_lib.metrics import finite_median
from koopman_lib.partition import Partition
from koopman_lib.progress import bar
from koopman_lib.training import EnsembleTrainer
from .config import DTYPES, GUARD_GROWTH
from .fits import grid_of, horizon_of
from .training import make_net


class ExampleDataset(torch.utils.data.Dataset):
    """MNIST as torchvision serves it to the PyTorch example: each item goes uint8 array ->
    PIL image -> float tensor in [0, 1] -> normalised, one sample at a time."""

    def __init__(self, raw: np.ndarray, labels: torch.Tensor, normalize):
        self.raw, self.labels, (self.mean, self.std) = raw, labels, normalize

    def __len__(self):
        return len(self.raw)

    def __getitem__(self, i):
        from PIL import Image
        img = Image.fromarray(self.raw[i], mode=None)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).unsqueeze(0)
        return (x - self.mean) / self.std, int(self.labels[i])


def example_net(sizes) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def time_example_epoch(model, optimizer, loader) -> float:
    """One epoch of the PyTorch example's ``train()`` (log_softmax + NLL, ``loss.item()`` every
    10 batches as its logging does, nothing printed). The test pass is not included."""
    model.train()
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        loss = nn.functional.nll_loss(nn.functional.log_softmax(model(x), dim=1), y)
        loss.backward()
        optimizer.step()
        if i % 10 == 0:
            loss.item()
    return time.perf_counter() - start


def koopman_seconds(partition: Partition, recording: torch.Tensor, theta_t2: torch.Tensor, Ts, every: int,
                    fit=None, dtype=torch.float64, method: str = "svd",
                    max_growth: float | None = GUARD_GROWTH) -> tuple[dict, Koopman | None, str | None]:
    """Wall time of Koopman training one network along the reported path, per horizon: cast its
    recorded weights ``recording`` ``(k, 1, D)`` to ``dtype`` and fit every block operator
    (``Koopman(partition, fit=fit, method=method, dtype=dtype).fit``, timed once), plus the guarded
    rollout of ``T`` steps from ``theta_t2`` ``(1, D)`` that the reported losses come from (matrix
    powers between the evaluation points every ``every`` steps), without the test-loss
    evaluations. A strided fit (``fit`` in :data:`koopman_lib.estimator.STRIDED_FITS`) is fitted by
    :func:`koopman_lib.estimator.fit_named` and evolved over its horizon and grid
    (:func:`.fits.horizon_of`, :func:`.fits.grid_of`). Returns ``({T: fit + rollout seconds}, fitted estimator, error)``;
    ``method="cholesky"``: the normal-equation fit instead (no cutoff)."""
    start = time.perf_counter()
    try:
        if fit in STRIDED_FITS:      # the default fit of every s-th snapshot (fit_named)
            kp = fit_named(partition, recording, [fit], dtype=dtype)[fit]
        else:
            kp = Koopman(partition, fit=fit, method=method, dtype=dtype).fit(recording)
    except FitError as e:
        return {T: float("nan") for T in Ts}, None, str(e).split(":")[0]
    fit_s = time.perf_counter() - start
    out = {}
    for T in Ts:
        start = time.perf_counter()
        s = kp.stride_ or 1          # a strided fit: its horizon and grid (as reported, fits.horizon_of, grid_of)
        kp.rollout(theta_t2, horizon_of(T, s), every=grid_of(every, s), max_growth=max_growth)
        out[T] = fit_s + time.perf_counter() - start
    return out, kp, None


def measure_timing(cfg, data, partition, recording, theta_t2, S) -> dict:
    """Per-network epoch times of the PyTorch example's loop and of the fast loop, and the time
    of Koopman training one network (:func:`koopman_seconds`) for every fit of the table and
    every horizon (and the Cholesky fit at the paper's horizon), interleaved over
    ``timing_repeats`` repeats in this process; medians. ``recording`` ``(k, 1, D)``, ``theta_t2``
    ``(1, D)``: one network's recorded window and weights at t2; ``S`` steps per epoch."""
    torch.manual_seed(cfg.seed)
    model = example_net(cfg.sizes)
    opt = torch.optim.Adadelta(model.parameters(), lr=cfg.lr)
    loader = torch.utils.data.DataLoader(ExampleDataset(data.raw_train, data.y_train, cfg.normalize),
                                         batch_size=cfg.batch_size, shuffle=True)
    xtr, _ = data.normalized(cfg.normalize, DTYPES[cfg.train_dtype])
    fast_net = make_net(cfg, [0])
    fast = EnsembleTrainer(fast_net, xtr, data.y_train, cfg.batch_size, "adadelta", cfg.lr, cfg.gamma,
                           member_seeds=[1])
    dtype = DTYPES[cfg.fit_dtype]
    Ts = [h * S for h in cfg.horizons_epochs]
    rows: dict = {"paper_style": [], "fast_loop": [], "cholesky": [],
                  **{name: {f"T{h}": [] for h in cfg.horizons_epochs} for name in cfg.fits}}
    chol_error = None
    for _ in bar(range(cfg.timing_repeats), desc="timing"):
        rows["paper_style"].append(time_example_epoch(model, opt, loader))
        rows["fast_loop"].append(fast.run_epoch().seconds)
        for name in cfg.fits:
            secs, _, _ = koopman_seconds(partition, recording, theta_t2, Ts, cfg.eval_every, name, dtype)
            for h, T in zip(cfg.horizons_epochs, Ts):
                rows[name][f"T{h}"].append(secs[T])
        secs, _, err = koopman_seconds(partition, recording, theta_t2, [cfg.T_epochs * S], cfg.eval_every,
                                       dtype=dtype, method="cholesky")
        rows["cholesky"].append(secs[cfg.T_epochs * S])
        chol_error = chol_error or err
    return {"epoch_seconds_paper_style": statistics.median(rows["paper_style"]),
            "epoch_seconds_fast_loop": statistics.median(rows["fast_loop"]),
            "koopman_seconds": {name: {key: finite_median(v, empty=math.nan) for key, v in rows[name].items()}
                                for name in cfg.fits},
            "koopman_seconds_cholesky": finite_median(rows["cholesky"], empty=math.nan),
            "cholesky_error": chol_error, "repeats": rows, "threads": torch.get_num_threads(),
            "note": "per network; epochs exclude the test pass; koopman_seconds[fit][T<h>] = the fit and "
                    "evolution the reported Koopman losses come from: Koopman(partition, fit=<fit>, "
                    f"dtype={cfg.fit_dtype}).fit(one network's recorded window) (cast chunk by chunk to the fit "
                    "dtype, QR + SVD of every block; timed once per repeat) + the rollout of h epochs with the "
                    f"guard, matrix powers between the evaluation points every {cfg.eval_every} steps, test-loss "
                    "evaluations excluded (a rollout the guard stops ends early); koopman_seconds_cholesky: the "
                    f"same with Koopman(partition, method='cholesky') at T = {cfg.T_epochs} epochs"}


def no_timing(cfg) -> dict:
    """:func:`measure_timing`'s result when nothing is timed (``timing_repeats = 0``, e.g. the
    regeneration check's reruns): every time ``nan``, so every speedup is ``nan`` too."""
    nan = math.nan
    return {"epoch_seconds_paper_style": nan, "epoch_seconds_fast_loop": nan,
            "koopman_seconds": {name: {f"T{h}": nan for h in cfg.horizons_epochs} for name in cfg.fits},
            "koopman_seconds_cholesky": nan, "cholesky_error": None, "repeats": {}, "threads": torch.get_num_threads(),
            "note": "not measured (timing_repeats = 0)"}
