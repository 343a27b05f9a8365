"""MNIST: the paper's Table 2 / Fig. 3 (section 5, supplement S10) and the replication that diverged.

Three parts, all on the 784:20:20:20:10 ReLU classifier trained with Adadelta:

1. **The paper's experiment.** ``n_inits`` networks trained for 10 epochs (lr 1.0, StepLR
   0.7 per epoch, batch 64, normalisation 0.1307/0.3081), the weights after every step of
   epochs 3-5 recorded (2814 snapshots), Quasi-Node (q = 157) operators for layer 1 and Node
   operators for the other layers fitted in float64 with each of ``cfg.fits``
   (:data:`koopman_lib.fit.FITS`: the paper's ``pinv``, the library's default, the default
   clipped to the unit disk), the weights evolved ``T = 1, 2, 5`` epochs (test loss every
   ``eval_every`` steps, matrix powers in between), ``T_eq = Q + R`` (S10) from the per-epoch
   test losses of the continued Adadelta run, equivalent run time (S10 eq. 13) and two speedups
   per fit and horizon. The cutoff sweep: every cutoff of ``cfg.cutoff_sweep``, with and without
   clipping, on every init, at the same horizons (evaluated once per epoch).
2. **The replication's settings** (Rao 2024): normalisation 0.5/0.5, no StepLR, window
   epochs 4-5 (its notebook's 0-indexed ``t1, t2 = 3, 5``), Koopman training from the end of the
   5th epoch, ``n_replication_inits`` networks, float32 fits with JAX's default ``pinv`` cutoff, full-node (785-dim) and
   layer-wise (15700-dim in layer 1) operators, T = 1 and 2 epochs.
3. **One factor at a time** between the two: normalisation, StepLR, window length, layer-1
   partition, fit dtype and pinv cutoff, each switched alone starting from the replication's
   settings (and, at profile ``paper``, also starting from the paper's), with the spectral
   radius of the fitted operators and the growth of the predicted test loss.

Memory: float64 snapshots of all inits (2814 x 16750 x 25 x 8 B = 9.4 GB) do not fit, so the
inits are trained in groups of ``group_size`` with a *stored* recording per group. The
training runs in float32 (the PyTorch example's default), so the snapshots are stored in
float32 without loss and cast to float64 (or kept in float32 for the replication's fits)
one init at a time when fitting.

Which method gives which number: every Koopman number comes from SVD fits on the stored
snapshots (the paper's method and the library's), made and evolved by the package's core: ``Koopman.fit_variants``
(one QR + SVD per block, :mod:`koopman_lib.fit`, serves every cutoff of a run; cutoffs are
:class:`koopman_lib.fit.Cutoff` values: ``"paper"`` = MATLAB's ``max(m, k) eps64``, ``"jax"`` =
the replication's ``10 max(m, k) eps32``) and ``Koopman.rollout``
(:func:`koopman_lib.evolve.rollout`). Cholesky on the normal equations (what a streaming
``TrajectoryRecorder`` / :class:`~koopman_lib.GramAccumulator` computes) is run on init 0 only,
to compare operators, predictions and cost with ``pinv`` (``results["cholesky_check"]``).
The layer-wise operators of the replication are never formed densely: ``U = F' F^+ =
(F' V S^{-1}) U_F^T`` is kept as two thin factors ``A (m, r)`` and ``B (r, m)`` and evolved as
``w_t = A M^{t-1} B w_0`` with ``M = B A`` (``r x r``, ``r <= k - 1``).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..config import torch_threads
from koopman_lib.estimator import Koopman
from koopman_lib.evolve import path as evolve_path
from koopman_lib.fit import FITS, Cutoff, FitSpec, singular_values, spectrum_summary
from koopman_lib.metrics import TEq, equivalent_runtime, finite_median, success, t_eq_parts
from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.errors import FitError
from koopman_lib.solvers import finite_section
from koopman_lib.partition import Partition, make_partition
from koopman_lib.progress import bar
from koopman_lib.training import EnsembleTrainer
from .images import PAPER_NORMALIZE, REPLICATION_NORMALIZE, Images, Run, normalise, raw_images, shuffle_seed, train_run

DTYPES = {"float32": torch.float32, "float64": torch.float64}
GUARD_GROWTH = 1e3   # a Koopman evolution is stopped when its weight norm grows 1000-fold (or turns non-finite)


# ------------------------------------------------------------------------------------------
# settings
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """Settings of the MNIST experiment. Paper values from Table S7 and the PyTorch MNIST
    example; fields marked *unstated* are our choices (see the chapter)."""

    # network and optimizer (paper Table S7 / PyTorch examples/mnist)
    sizes: tuple = (784, 20, 20, 20, 10)
    activation: str = "relu"
    lr: float = 1.0                      # Adadelta (rho 0.9, eps 1e-6: torch defaults, as the example)
    gamma: float | None = 0.7            # StepLR per epoch
    batch_size: int = 64                 # 938 steps per epoch (last batch 32)
    normalize: tuple = PAPER_NORMALIZE
    epochs: int = 10
    train_dtype: str = "float32"         # unstated: the PyTorch example trains in float32
    # Koopman training (paper S10)
    n_inits: int = 25
    window_epochs: tuple = (3, 5)        # weights after every step of epochs 3..5: 2814 snapshots
    T_epochs: int = 2                    # the paper's horizon (Table 2)
    horizons_epochs: tuple = (1, 2, 5)   # ours: every fit is also evolved 1 and 5 epochs ("where it stops")
    partition: tuple = ("quasi_node:157", "node", "node", "node")
    fit_dtype: str = "float64"           # MATLAB double in the authors' code
    cutoff: str = "paper"                # pinv cutoff (koopman_lib.fit.Cutoff): "paper" = max(m, k) eps64 (MATLAB)
    fits: tuple = ("paper", "default", "default-stabilised")   # koopman_lib.fit.FITS: the table's rows
    # the cutoff sweep, on every init, each cutoff with and without clipping to the unit disk
    cutoff_sweep: tuple = ("paper", 1e-10, 1e-8, 1e-6, 1e-4, "resolution", 1e-3, "jax")
    sweep_stabilised: tuple = (False, True)
    replication_fits: tuple = ("paper", "default", "default-stabilised")  # the replication's settings, refitted
    eval_every: int = 67                 # unstated: test loss every 67 steps (14 per epoch); must divide 938
    # bookkeeping
    group_size: int = 5                  # inits trained together (stored float32 recording: 190 MB per init)
    seed: int = 0
    torch_threads: int = 1               # intra-op threads while the run lasts (restored after): the tensors are
                                         # small, and on a shared 2-core machine 2 threads ran a step 25x slower
    timing_repeats: int = 3              # paper-style / fast-loop epochs and Koopman fits timed (median)
    train_subset: int | None = None      # None: all 60000 training images (tests use a few hundred)
    test_subset: int | None = None       # None: all 10000 test images
    # the replication (Rao 2024) and the ablation
    replication_normalize: tuple = REPLICATION_NORMALIZE
    replication_window_epochs: tuple = (4, 5)  # the notebook's t1, t2 = 3, 5 (0-indexed): epochs 4-5 recorded,
                                               # Koopman training from the end of the 5th epoch
    replication_T_epochs: tuple = (1, 2)
    replication_cutoff: str = "jax"      # the replication's cutoff, JAX's default: Cutoff("jax") = 10 max(m, k) eps32
    n_ablation_inits: int = 3
    n_replication_inits: int = 10        # the replication's rows (node and layer-wise): Adadelta without decay is noisy
    ablation_directions: tuple = ("from_replication", "from_paper")
    layerwise: bool = True               # the replication's layer-wise operators (15700-dim in layer 1)


PROFILES = {
    "paper": Config(group_size=9),
    # ci: fewer inits, a shorter sweep, the replication refitted with the default fit only (a
    # float64 eigendecomposition of its 785-dim node blocks takes seconds per network)
    "ci": Config(n_inits=3, group_size=3, eval_every=134, timing_repeats=1, n_ablation_inits=1, n_replication_inits=5,
                 ablation_directions=("from_replication",), cutoff_sweep=("paper", "resolution"),
                 replication_fits=("default",)),
}


# ------------------------------------------------------------------------------------------
# numerics: every fit and evolution goes through the core (koopman_lib.fit, .evolve, .estimator)
# ------------------------------------------------------------------------------------------
#: ``Koopman.estimate_bytes`` counts dense ``m x m`` operators; the replication's layer-wise blocks
#: (m = 15700 > k - 1) are kept as thin factors ``A (m, r)``, ``B (r, m)`` (about ``3 m k`` numbers per
#: block, like the snapshots), so its dense estimate (~10 GB) does not apply to them
LOW_RANK_MEMORY_LIMIT = 32 * 2**30


def fit_cutoffs(partition: Partition, window: torch.Tensor, dtype, cutoffs,
                memory_limit: int | None = None) -> dict:
    """``{cutoff: fitted Koopman}`` for the recording ``window`` ``(k, E, D)`` (any float dtype, cast
    chunk by chunk to ``dtype``): one factorisation per block (QR then SVD,
    :func:`koopman_lib.fit.factorise`) serves every cutoff (:class:`koopman_lib.fit.Cutoff` values);
    blocks with ``m > k - 1`` keep the low-rank form ``U = A B``."""
    kw = {} if memory_limit is None else {"memory_limit": memory_limit}
    return Koopman(partition, dtype=dtype, **kw).fit_variants(window, {c: c for c in cutoffs})


def rtol_of(cutoff, m: int, k: int) -> float:
    """The relative singular-value cutoff of ``cutoff`` for ``F`` of shape ``(m, k)``."""
    return Cutoff(cutoff).rtol(m, k)


# ------------------------------------------------------------------------------------------
# data and training
# ------------------------------------------------------------------------------------------
@dataclass
class Data:
    """Raw MNIST in [0, 1] (float32) plus labels, normalised on request."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    raw_train: np.ndarray  # uint8 (N, 28, 28), for the paper-style (per-sample transform) loop

    @classmethod
    def load(cls, train_subset=None, test_subset=None) -> "Data":
        from koopman_lib.data import FILES, locate, read_idx
        xtr, ytr, xte, yte = raw_images("mnist")
        raw = read_idx(locate(FILES["train"][0]))
        if train_subset:
            xtr, ytr, raw = xtr[:train_subset], ytr[:train_subset], raw[:train_subset]
        if test_subset:
            xte, yte = xte[:test_subset], yte[:test_subset]
        return cls(xtr, ytr, xte, yte, raw)

    def normalized(self, normalize, dtype=torch.float32):
        return normalise(self.x_train, normalize).to(dtype), normalise(self.x_test, normalize).to(dtype)


def member_seeds(cfg: Config, i: int) -> tuple[int, int]:
    """(init seed, shuffle seed) of init ``i``: the same in every training condition, so the
    paper run, the replication run and the ablation runs of init ``i`` are paired."""
    return 1000 * cfg.seed + i, shuffle_seed(cfg.seed, i)


def make_net(cfg: Config, ids: list[int]) -> EnsembleMLP:
    dtype = DTYPES[cfg.train_dtype]
    net = EnsembleMLP(cfg.sizes, cfg.activation, len(ids), dtype=dtype)
    with torch.no_grad():
        for j, i in enumerate(ids):
            net.theta[j] = EnsembleMLP(cfg.sizes, cfg.activation, 1, seed=member_seeds(cfg, i)[0],
                                       dtype=dtype).theta[0]
    return net


@dataclass(frozen=True)
class Condition:
    """A training condition: input normalisation and StepLR factor (``None``: constant lr)."""

    normalize: tuple
    gamma: float | None

    @property
    def name(self) -> str:
        norm = "norm 0.1307/0.3081" if tuple(self.normalize) == PAPER_NORMALIZE else \
            f"norm {self.normalize[0]}/{self.normalize[1]}"
        return f"{norm}, " + (f"StepLR {self.gamma}" if self.gamma else "no StepLR")


def tracked_coordinates(sh) -> list[tuple[str, int]]:
    """A few weights and biases shown in the trajectory figure (Fig. 3b): ``(label, index)`` in the
    flat parameters of a network with layers ``sh`` (``EnsembleMLP.shapes``)."""
    off = [0]
    for s in sh:
        off.append(off[-1] + s.size)
    centre = min(14 * 28 + 14, sh[0].fan_in - 1)
    return [
        (f"layer 1, node 0, weight from pixel {centre}", off[0] + 0 * sh[0].row + centre),
        ("layer 1, node 3, bias", off[0] + 3 * sh[0].row + sh[0].fan_in),
        ("layer 2, node 5, weight 7", off[1] + 5 * sh[1].row + 7),
        ("layer 3, node 2, bias", off[2] + 2 * sh[2].row + sh[2].fan_in),
        ("output, node 4, weight 10", off[3] + 4 * sh[3].row + 10),
    ]


class Tracker:
    """Per-step callback: the coordinates ``coords`` of member 0 after steps ``first..last``,
    ``values`` ``(last - first + 1, len(coords))`` (float64)."""

    def __init__(self, coords: list[int], first: int, last: int):
        self.coords, self.first = torch.tensor(coords), first
        self.values = torch.empty(last - first + 1, len(coords), dtype=torch.float64)

    def __call__(self, step: int, theta: torch.Tensor) -> None:
        if self.first <= step < self.first + self.values.shape[0]:
            self.values[step - self.first] = theta[0, self.coords]


def recorded_steps(cfg: Config, S: int) -> tuple[int, int]:
    """The steps every training run stores: after every step of ``cfg.window_epochs`` and of the
    replication's ``cfg.replication_window_epochs`` (``S`` steps per epoch)."""
    first = min(cfg.window_epochs[0], cfg.replication_window_epochs[0])
    last = max(cfg.window_epochs[1], cfg.replication_window_epochs[1])
    return (first - 1) * S + 1, last * S


def train_group(cfg: Config, cond: Condition, ids: list[int], data: Data, epochs: int,
                grid_from: int, grid_to: int, on_step=None, desc: str = "") -> Run:
    """Train inits ``ids`` under ``cond`` for ``epochs`` epochs (:func:`.images.train_run`); record
    (stored, train dtype) the weights after every step of :func:`recorded_steps`; evaluate the
    test set after every ``eval_every``-th step from ``grid_from`` to ``grid_to`` and at every
    epoch end (and at step 0); ``on_step(step, theta)`` after every step."""
    xtr, xte = data.normalized(cond.normalize, DTYPES[cfg.train_dtype])
    images = Images(xtr, data.y_train, xte, data.y_test, tuple(cond.normalize))
    S = -(-xtr.shape[0] // cfg.batch_size)
    return train_run(make_net(cfg, ids), images, epochs, cond.gamma, cfg.eval_every, *recorded_steps(cfg, S), cfg.seed,
                     desc or cond.name, cfg.lr, members=ids, batch_size=cfg.batch_size, eval_span=(grid_from, grid_to),
                     on_step=on_step)


# ------------------------------------------------------------------------------------------
# timing: the PyTorch example's loop (paper style), the fast loop, Koopman fit + jump
# ------------------------------------------------------------------------------------------
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
    evaluations. Returns ``({T: fit + rollout seconds}, fitted estimator, error)``;
    ``method="cholesky"``: the normal-equation fit instead (no cutoff)."""
    start = time.perf_counter()
    try:
        kp = Koopman(partition, fit=fit, method=method, dtype=dtype).fit(recording)
    except FitError as e:
        return {T: float("nan") for T in Ts}, None, str(e).split(":")[0]
    fit_s = time.perf_counter() - start
    out = {}
    for T in Ts:
        start = time.perf_counter()
        kp.rollout(theta_t2, T, every=every, max_growth=max_growth)
        out[T] = fit_s + time.perf_counter() - start
    return out, kp, None


# ------------------------------------------------------------------------------------------
# the experiment
# ------------------------------------------------------------------------------------------
def _median(x) -> float:
    return finite_median(x, empty=float("nan"))


def _round(x: torch.Tensor, decimals: int = 7) -> torch.Tensor:
    return torch.round(x.double(), decimals=decimals)


def _round_complex(lam: torch.Tensor, digits: int = 6) -> dict:
    lam = lam.reshape(-1).to(torch.complex128)
    return {"re": np.round(lam.real.numpy(), digits).tolist(), "im": np.round(lam.imag.numpy(), digits).tolist()}


def layer1_spec(kind: str) -> tuple:
    return ("quasi_node:157", "node", "node", "node") if kind == "quasi_node" else (kind,) * 4


def ablation_settings(cfg: Config) -> list[dict]:
    """One-factor-at-a-time settings. Each factor has a replication value and a paper value."""
    factors = {
        "normalisation": ("normalize", tuple(cfg.replication_normalize), tuple(cfg.normalize)),
        "StepLR": ("gamma", None, cfg.gamma),
        "window": ("window", tuple(cfg.replication_window_epochs), tuple(cfg.window_epochs)),
        "partition": ("partition", "node", "quasi_node"),
        "fit dtype": ("dtype", "float32", cfg.fit_dtype),
        "pinv cutoff": ("cutoff", cfg.replication_cutoff, cfg.cutoff),
    }
    rep = {key: r for key, r, _ in factors.values()}
    pap = {key: p for key, _, p in factors.values()}
    out = []
    for direction in cfg.ablation_directions:
        base, other = (rep, pap) if direction == "from_replication" else (pap, rep)
        base_name = "replication settings" if direction == "from_replication" else "paper settings"
        out.append({"direction": direction, "factor": "none (base)", "name": base_name, **base})
        for fname, (key, _, _) in factors.items():
            s = dict(base)
            s[key] = other[key]
            to = "paper" if direction == "from_replication" else "replication"
            out.append({"direction": direction, "factor": fname, "name": f"{base_name}, {fname} -> {to}", **s})
    return out


def _settings_table(cfg: Config) -> list[dict]:
    return [
        {"setting": "normalisation (mean, std)", "paper": "0.1307 / 0.3081", "replication": "0.5 / 0.5",
         "ours": f"{cfg.normalize[0]} / {cfg.normalize[1]} (replication runs: "
                 f"{cfg.replication_normalize[0]} / {cfg.replication_normalize[1]})"},
        {"setting": "learning-rate schedule", "paper": "StepLR gamma 0.7 per epoch", "replication": "none",
         "ours": f"StepLR gamma {cfg.gamma} (replication runs: none)"},
        {"setting": "recorded window", "paper": "epochs 3-5 (2814 snapshots)", "replication": "0-indexed t1, t2 = 3, 5: epochs 4-5 (1876), Koopman from the end of epoch 5",
         "ours": f"epochs {cfg.window_epochs[0]}-{cfg.window_epochs[1]} (replication: "
                 f"{cfg.replication_window_epochs[0]}-{cfg.replication_window_epochs[1]})"},
        {"setting": "layer-1 operators", "paper": "quasi-node q=157 (100 of 157x157)",
         "replication": "full node (20 of 785x785) and layer-wise (15700x15700)",
         "ours": "quasi-node 157; for the replication all four layers node-wise (weights and bias of a node "
                 "together: 785, 21, 21, 21) and layer-wise (one operator per layer: 15700, 420, 420, 210; "
                 "low-rank form, never formed densely)"},
        {"setting": "fit precision, pinv cutoff", "paper": "float64, MATLAB default max(m,k) eps",
         "replication": "float32, JAX default 10 max(m,k) eps32",
         "ours": f"{cfg.fit_dtype}, '{cfg.cutoff}' (replication: float32, '{cfg.replication_cutoff}')"},
        {"setting": "Koopman horizon T", "paper": "2 epochs", "replication": "1 and 2 epochs",
         "ours": f"{', '.join(map(str, cfg.horizons_epochs))} epochs (the paper's: {cfg.T_epochs}), test loss every "
                 f"{cfg.eval_every} steps, matrix powers in between (replication: {list(cfg.replication_T_epochs)})"},
        {"setting": "fits", "paper": "pinv, MATLAB default cutoff", "replication": "jnp.linalg.pinv (float32)",
         "ours": "each as the paper did it and with the library's default (cutoff at the resolution of the "
                 "float32 recording), with and without clipping the eigenvalues to the unit disk"},
        {"setting": "Koopman steps", "paper": "one step per iteration", "replication": "one step per iteration",
         "ours": "the same states, formed by one product with a cached matrix power between the test-loss "
                 "evaluations (equal up to rounding)"},
        {"setting": "test loss", "paper": "mean over the 10000 test images (PyTorch example)",
         "replication": "not stated in the report (its notebook is not among our sources)", "ours": "mean negative log-likelihood over the 10000 test images"},
        {"setting": "inits", "paper": "25", "replication": "not stated (one shown)",
         "ours": f"{cfg.n_inits} (replication rows: {cfg.n_replication_inits}, medians with quartiles; "
                 f"ablation: {cfg.n_ablation_inits})"},
    ]


def _ablation_rows(cfg, settings, runs_by_cond, partition_of, S):
    """Fit and evolve every ablation setting; one row per setting, plus what the chapter plots."""
    rows, curves, eigs = [], {}, {}
    T_ep = max(max(cfg.replication_T_epochs), cfg.T_epochs)
    # group settings that share a training run, window, partition and dtype (one SVD per block)
    keyf = lambda s: (tuple(s["normalize"]), s["gamma"], tuple(s["window"]), s["partition"], s["dtype"])
    groups: dict = {}
    for i, s in enumerate(settings):
        groups.setdefault(keyf(s), []).append(i)
    results: dict = {}
    for key in bar(list(groups), desc="ablation fits"):
        normalize, gamma, window, part, dtype = key
        run = runs_by_cond[Condition(normalize, gamma)]
        partition = partition_of(layer1_spec(part))
        snaps = run.window(*run.epoch_window(*window))
        variants = sorted({(settings[i]["cutoff"], settings[i].get("clip")) for i in groups[key]}, key=str)
        fits = Koopman(partition, dtype=DTYPES[dtype]).fit_variants(
            snaps, {v: FitSpec(v[0], clip=v[1]) for v in variants})
        t2 = window[1] * S
        theta0 = run.snap(t2)
        for c in variants:
            kp = fits.pop(c)
            ev = kp.rollout(theta0, T_ep * S, every=cfg.eval_every, loss_fn=run.evaluate)
            lams = [op.eigenvalues().reshape(run.E, -1) for op in kp.operators_]     # (E, P*m) per group
            radius = torch.stack([lam.abs().amax(-1) for lam in lams]).amax(0)
            n_out = sum((lam.abs() > 1).sum(-1) for lam in lams)
            eig0 = torch.cat([lam[0] for lam in lams])
            results[(key, c)] = (ev, radius, n_out, run, t2, eig0)
            del kp, lams
        del fits
    for i, s in enumerate(settings):
        ev, radius, n_out, run, t2, eig0 = results[(keyf(s), (s["cutoff"], s.get("clip")))]
        steps = ev.steps
        row = {"direction": s["direction"], "factor": s["factor"], "setting": s["name"],
               "fit": s.get("fit", "replication" if s["direction"] == "from_replication" else "paper"),
               "clip": s.get("clip"),
               "normalize": f"{s['normalize'][0]}/{s['normalize'][1]}",
               "steplr": s["gamma"] is not None, "window_epochs": f"{s['window'][0]}-{s['window'][1]}",
               "partition": s["partition"], "dtype": s["dtype"], "cutoff": s["cutoff"],
               "rtol_layer1": rtol_of(s["cutoff"], 157 if s["partition"] == "quasi_node" else 785,
                                      (s["window"][1] - s["window"][0] + 1) * S - 1),
               "n_members": run.E,
               "max_spectral_radius": _median(radius), "n_eigs_outside_unit_circle": _median(n_out),
               "test_loss_t2": _median(run.loss_at(t2))}
        for T in sorted(set(cfg.replication_T_epochs) | {cfg.T_epochs}):
            j = steps.index(T * S) if T * S in steps else None
            ko = ev.loss[j] if j is not None else torch.full((run.E,), float("nan"))
            row[f"koopman_loss_T{T}"] = _median(ko)
            row[f"optimizer_loss_T{T}"] = _median(run.loss_at(t2 + T * S))
            row[f"koopman_acc_T{T}"] = _median(ev.acc[j]) if j is not None else float("nan")
            row[f"optimizer_acc_T{T}"] = _median(run.grid[t2 + T * S][1])
        row["loss_growth_T2"] = row[f"koopman_loss_T{T_ep}"] / row["test_loss_t2"]
        row["koopman_over_optimizer_T2"] = row[f"koopman_loss_T{T_ep}"] / row[f"optimizer_loss_T{T_ep}"]
        rows.append(row)
        opt_steps, opt_loss, opt_acc = _optimizer_curve(run, t2, T_ep * S)
        curves[s["name"]] = {"steps": steps, "koopman_loss": ev.loss.T, "koopman_acc": ev.acc.T,
                             "optimizer_steps": opt_steps, "optimizer_loss": opt_loss.T, "optimizer_acc": opt_acc.T}
        if s["factor"] == "none (base)":
            eigs[s["name"]] = _round_complex(eig0)
    return rows, curves, eigs


def _layerwise(cfg, run, partition_layer, S):
    """The replication's layer-wise operators (float32, its cutoff) in low-rank form."""
    window = tuple(cfg.replication_window_epochs)
    snaps = run.window(*run.epoch_window(*window))
    kp = fit_cutoffs(partition_layer, snaps, torch.float32, [cfg.replication_cutoff],
                     memory_limit=LOW_RANK_MEMORY_LIMIT)[cfg.replication_cutoff]
    ops = kp.operators_
    t2 = window[1] * S
    T_ep = max(cfg.replication_T_epochs)
    ev = kp.rollout(run.snap(t2), T_ep * S, every=cfg.eval_every, loss_fn=run.evaluate)
    radius = torch.stack([op.spectral_radius().reshape(run.E, -1).amax(-1) for op in ops]).amax(0)
    ranks = [op.rank.reshape(run.E, -1)[0].tolist() for op in ops]   # init 0, per block
    eig0 = _round_complex(torch.cat([op.eigenvalues().reshape(run.E, -1)[0] for op in ops]))
    return ev, radius, t2, eig0, ranks


def run(cfg: Config) -> dict:
    """The whole experiment (see the module docstring), with ``cfg.torch_threads`` intra-op threads."""
    with torch_threads(cfg.torch_threads):
        return _run(cfg)


def _run(cfg: Config) -> dict:
    if cfg.group_size < cfg.n_ablation_inits and cfg.ablation_directions:
        raise ValueError("group_size must be >= n_ablation_inits (the ablation reuses the first group)")
    if "from_paper" in cfg.ablation_directions and cfg.n_ablation_inits > cfg.n_inits:
        raise ValueError("n_ablation_inits must be <= n_inits")
    data = Data.load(cfg.train_subset, cfg.test_subset)
    paper_cond = Condition(tuple(cfg.normalize), cfg.gamma)
    probe = EnsembleMLP(cfg.sizes, cfg.activation, 1)
    shapes = probe.shapes

    def partition_of(spec):
        return make_partition(shapes, list(spec))

    partition = partition_of(cfg.partition)
    S = -(-data.x_train.shape[0] // cfg.batch_size)
    t2 = cfg.window_epochs[1] * S
    T = cfg.T_epochs * S
    H = max(cfg.horizons_epochs) * S        # every fit is evolved to the longest horizon
    rep_t2 = cfg.replication_window_epochs[1] * S
    grid_from = min(t2, rep_t2)
    grid_to = max(t2 + H, rep_t2 + max(cfg.replication_T_epochs) * S)
    after = cfg.epochs - cfg.window_epochs[1]
    if after < max(cfg.horizons_epochs):
        raise ValueError(f"epochs={cfg.epochs} must reach the end of the window plus the longest horizon "
                         f"({cfg.window_epochs[1]} + {max(cfg.horizons_epochs)}): T_eq needs optimizer epochs after t2")
    if cfg.T_epochs not in cfg.horizons_epochs or any(f not in FITS for f in cfg.fits) or "paper" not in cfg.fits:
        raise ValueError(f"horizons_epochs must contain T_epochs={cfg.T_epochs}, and fits must include 'paper' "
                         f"and be names of koopman_lib.fit.FITS {tuple(FITS)}")

    members = []
    curves = {"steps": None, "optimizer_loss": [], "optimizer_acc": [], "epoch_loss": [], "epoch_acc": [],
              "koopman_loss": {}, "koopman_acc": {}}
    out: dict = {}
    timing: dict = {}
    ablation_rows, ablation_curves, ablation_eigs = [], {}, {}
    ids_all = list(range(cfg.n_inits))
    groups = [ids_all[i:i + cfg.group_size] for i in range(0, cfg.n_inits, cfg.group_size)]
    for gi, ids in enumerate(groups):
        # Fig. 3b: a few weights of init 0 from one epoch before t2 to the end of the grid
        track = Tracker([c for _, c in tracked_coordinates(shapes)], max(recorded_steps(cfg, S)[0], t2 - S),
                        grid_to) if gi == 0 else None
        run_a = train_group(cfg, paper_cond, ids, data, cfg.epochs, grid_from, grid_to, on_step=track,
                            desc=f"train inits {ids[0]}-{ids[-1]}")
        window = run_a.window(*run_a.epoch_window(*cfg.window_epochs))
        theta_t2 = run_a.snap(t2)
        # per member: pinv fit (float64, the paper's method), timed as the paper timed it
        loss_fn = run_a.evaluate
        opt_steps, opt_loss, opt_acc = _optimizer_curve(run_a, t2, H)
        epoch_loss = run_a.epoch_losses(cfg.epochs)            # (epochs+1, E)
        epoch_acc = torch.stack([run_a.grid[e * S][1] for e in range(cfg.epochs + 1)])
        curves["steps"] = opt_steps
        init0 = {}
        specs = sweep_specs(cfg)
        for j, i in enumerate(bar(ids, desc="fits + rollouts")):
            row = {"init": i, "test_loss_t2": float(epoch_loss[cfg.window_epochs[1], j]),
                   **{f"optimizer_loss_T{h}": float(run_a.loss_at(t2 + h * S)[j]) for h in cfg.horizons_epochs},
                   **{f"optimizer_acc_T{h}": float(run_a.grid[t2 + h * S][1][j]) for h in cfg.horizons_epochs},
                   "fits": {}}
            # one factorisation per block serves the table's fits and every cutoff of the sweep
            fits = Koopman(partition, dtype=DTYPES[cfg.fit_dtype]).fit_variants(window[:, j:j + 1], specs)
            for name, kp in fits.items():
                # each network evolves with its own guard (weights non-finite or 1000x their norm at t2,
                # checked at every evaluation point); the table's fits are evaluated every eval_every
                # steps (the curves), the other cutoffs of the sweep once per epoch
                main = name in cfg.fits
                ro = kp.rollout(theta_t2[j:j + 1], H, every=cfg.eval_every if main else S, loss_fn=loss_fn,
                                max_growth=GUARD_GROWTH)
                kl = torch.full((len(opt_steps),), float("nan"), dtype=torch.float64)
                ka = kl.clone()
                for st, l, a in zip(ro.steps, ro.loss[:, 0], ro.acc[:, 0]):
                    if st in opt_steps:
                        kl[opt_steps.index(st)], ka[opt_steps.index(st)] = l, a
                ops = kp.operators_
                radii = [op.spectral_radius() for op in ops]                     # one eigensolve per block
                entry = {"max_spectral_radius": float(max(r.max() for r in radii)),
                         "rollout_stopped_at": ro.stopped_at[0], "stop_reason": ro.reason[0],
                         "mean_rank_layer1_blocks": float(ops[0].rank.double().mean()),
                         "blocks_outside_unit_circle": [int((r > 1).sum()) for r in radii]}
                for h in cfg.horizons_epochs:
                    lo, ac = float(kl[opt_steps.index(h * S)]), float(ka[opt_steps.index(h * S)])
                    parts = t_eq_parts(lo, epoch_loss[cfg.window_epochs[1]:, j].tolist())
                    entry[f"T{h}"] = {"T_eq_epochs": parts.value, "Q": parts.Q, "R": parts.R,
                                      "censored": parts.censored, "teq_over_t": parts.value / h,
                                      "koopman_loss": lo, "koopman_acc": ac}
                row["fits"][name] = entry
                if main:
                    curves["koopman_loss"].setdefault(name, []).append(kl)
                    curves["koopman_acc"].setdefault(name, []).append(ka)
                if j == 0 and gi == 0 and main:
                    # init 0's operators, dense (Fig. 3b paths, eigenvalues, the Cholesky comparison)
                    init0[name] = Koopman.from_operators(partition, [op.as_dense() for op in ops])
            members.append(row)
            curves["optimizer_loss"].append(opt_loss[:, j])
            curves["optimizer_acc"].append(opt_acc[:, j])
            curves["epoch_loss"].append(epoch_loss[:, j])
            curves["epoch_acc"].append(epoch_acc[:, j])
            del fits, kp
        if gi == 0:
            # Fig. 3b: optimizer vs Koopman trajectories of a few weights of init 0
            coords = tracked_coordinates(shapes)
            traj = {"labels": [c for c, _ in coords], "optimizer_from_step": track.first,
                    "optimizer": _round(track.values.T), "koopman_from_step": t2}
            traj["koopman"], out["eigenvalues_init0"] = {}, {}
            for name in cfg.fits:
                kt = init0[name]
                kpaths = []
                for _, coord in coords:
                    for g, idx in enumerate(partition.groups):
                        hit = (idx == coord).nonzero()
                        if hit.numel():
                            p, col = int(hit[0, 0]), int(hit[0, 1])
                            U = kt.operators_[g].U[p:p + 1]                     # init 0's operator
                            w0 = theta_t2[0, idx[p]].to(torch.float64).unsqueeze(0)
                            kpaths.append(evolve_path(U, w0, T)[:, 0, col])
                            break
                traj["koopman"][name] = _round(torch.stack(kpaths))
                out["eigenvalues_init0"][name] = _round_complex(torch.cat([op.eigenvalues().reshape(-1)
                                                                          for op in kt.operators_]))
            out["trajectories"] = traj
            out["singular_values_init0"] = spectrum_summary(partition.time_last(window[:, :1]))
            kt = init0["paper"]
            # Cholesky (what a streaming Gram recording gives) vs pinv on init 0
            out["cholesky_check"] = _cholesky_check(partition, window[:, 0], theta_t2[0], T, kt, run_a.evaluate,
                                                    members[0]["fits"]["paper"][f"T{cfg.T_epochs}"]["koopman_loss"])
            # timing, interleaved repeats in this process: init 0's fits and rollouts as reported
            timing = _timing(cfg, data, partition, window[:, :1], theta_t2[:1], S)
            # the ablation starting from the paper's settings reuses this group's recording
            if "from_paper" in cfg.ablation_directions:
                sub = run_a.subset(cfg.n_ablation_inits)
                sets = [s for s in ablation_settings(cfg) if s["direction"] == "from_paper"
                        and (tuple(s["normalize"]), s["gamma"]) == (paper_cond.normalize, paper_cond.gamma)]
                r, c, e = _ablation_rows(cfg, sets, {paper_cond: sub}, partition_of, S)
                ablation_rows += r
                ablation_curves.update(c)
                ablation_eigs.update(e)
        del run_a, window, init0

    # ---- replication and the remaining ablation settings: one training run per condition
    settings = ablation_settings(cfg)
    pending = [s for s in settings if not (s["direction"] == "from_paper" and
                                           (tuple(s["normalize"]), s["gamma"]) == (paper_cond.normalize, paper_cond.gamma))]
    conds = []
    for s in pending:
        c = Condition(tuple(s["normalize"]), s["gamma"])
        if c not in conds:
            conds.append(c)
    rep_cond = Condition(tuple(cfg.replication_normalize), None)
    if rep_cond not in conds:
        conds.insert(0, rep_cond)
    ab_ids = list(range(cfg.n_ablation_inits))
    rep_ids = list(range(max(cfg.n_ablation_inits, cfg.n_replication_inits)))
    rep_setting = next(s for s in settings if s["name"] == "replication settings")
    # the replication's settings with the table's fits (float64 fits of its float32 recording)
    rep_fit_settings = [{**rep_setting, "name": f"replication settings, {name} fit", "fit": name, "dtype": "float64",
                         "cutoff": FITS[name].cutoff.value, "clip": FITS[name].clip} for name in cfg.replication_fits]
    rep_rows = None
    epochs_ab = max(cfg.window_epochs[1], cfg.replication_window_epochs[1]) + \
        max(cfg.T_epochs, max(cfg.replication_T_epochs))
    layer = None
    for cond in conds:
        r = train_group(cfg, cond, rep_ids if cond == rep_cond else ab_ids, data, epochs_ab, grid_from, grid_to,
                        desc=f"train {cond.name}")
        sets = [s for s in pending if Condition(tuple(s["normalize"]), s["gamma"]) == cond]
        if cond == rep_cond:  # the replication's own rows on all its inits; the ablation on the first few
            rep_rows = _ablation_rows(cfg, [rep_setting] + rep_fit_settings, {cond: r}, partition_of, S)
        sub = r.subset(cfg.n_ablation_inits) if r.E > cfg.n_ablation_inits else r
        if sets:
            rows, c, e = _ablation_rows(cfg, sets, {cond: sub}, partition_of, S)
            ablation_rows += rows
            ablation_curves.update(c)
            ablation_eigs.update(e)
        if cond == rep_cond and cfg.layerwise:
            layer = _layerwise(cfg, r, partition_of(("layer",) * 4), S) + (r,)
        del r

    # ---- tables
    curves = {k: (torch.stack(v) if isinstance(v, list) and v and isinstance(v[0], torch.Tensor) else
                  {n: torch.stack(c) for n, c in v.items()} if isinstance(v, dict) else v)
              for k, v in curves.items()}
    order = {s["name"]: i for i, s in enumerate(settings)}
    ablation_rows.sort(key=lambda row: order[row["setting"]])
    table = _table(cfg, members, timing, after, S)
    sweep_rows = _sweep_rows(cfg, members, window_len(cfg, S) - 1, S)
    replication = []
    main_steps = curves["steps"]
    for name in cfg.fits:
        for Te in cfg.replication_T_epochs:
            if Te * S not in main_steps:
                continue
            j = main_steps.index(Te * S)
            replication.append({
                "setting": f"paper (main experiment), {name} fit", "fit": name, "partition": "quasi_node",
                "dtype": cfg.fit_dtype, "cutoff": FITS[name].name,
                "window_epochs": f"{cfg.window_epochs[0]}-{cfg.window_epochs[1]}",
                "normalize": f"{cfg.normalize[0]}/{cfg.normalize[1]}", "steplr": cfg.gamma is not None,
                "T_epochs": Te, "n_members": cfg.n_inits,
                "test_loss_t2": _median([m["test_loss_t2"] for m in members]),
                "final_test_loss_koopman": _median(curves["koopman_loss"][name][:, j]),
                "final_test_loss_optimizer": _median(curves["optimizer_loss"][:, j]),
                "final_test_acc_koopman": _median(curves["koopman_acc"][name][:, j]),
                "final_test_acc_optimizer": _median(curves["optimizer_acc"][:, j]),
                "max_spectral_radius": _median([m["fits"][name]["max_spectral_radius"] for m in members])})
    by_name = {row["setting"]: row for row in ablation_rows}
    base_pap = by_name.get("paper settings")
    rep_curves, rep_fit_rows = {}, []
    if rep_rows is not None:
        (base_rep, *rep_fit_rows), rep_curves, _ = rep_rows
    else:
        base_rep = by_name.get("replication settings")
    for label, row, cv in [("replication", base_rep, rep_curves.get("replication settings")),
                           ("paper", base_pap, ablation_curves.get("paper settings"))] + \
                          [(f"replication, {row['fit']} fit", row, rep_curves.get(row["setting"]))
                           for row in rep_fit_rows]:
        if row is None:
            continue
        for Te in cfg.replication_T_epochs:
            replication.append({"setting": label, "fit": row["fit"], "clip": row["clip"],
                                "partition": row["partition"], "dtype": row["dtype"],
                                "cutoff": row["cutoff"], "window_epochs": row["window_epochs"],
                                "normalize": row["normalize"], "steplr": row["steplr"], "T_epochs": Te,
                                "n_members": row["n_members"], "test_loss_t2": row["test_loss_t2"],
                                "final_test_loss_koopman": row[f"koopman_loss_T{Te}"],
                                "final_test_loss_optimizer": row[f"optimizer_loss_T{Te}"],
                                "final_test_acc_koopman": row[f"koopman_acc_T{Te}"],
                                "final_test_acc_optimizer": row[f"optimizer_acc_T{Te}"],
                                "max_spectral_radius": row["max_spectral_radius"],
                                **(_spreads(cv, Te * S) if cv is not None else {})})
    if rep_curves:
        ablation_curves["replication settings, all inits"] = rep_curves["replication settings"]
        ablation_curves.update({row["setting"]: rep_curves[row["setting"]] for row in rep_fit_rows})
    if layer is not None:
        ev, radius, lt2, eig0, ranks, r = layer
        oc = _optimizer_curve(r, lt2, max(cfg.replication_T_epochs) * S)
        for Te in cfg.replication_T_epochs:
            j = ev.steps.index(Te * S) if Te * S in ev.steps else None
            replication.append({"setting": "replication", "fit": "replication", "clip": None,
                                "partition": "layer", "dtype": "float32",
                                "cutoff": cfg.replication_cutoff,
                                "window_epochs": f"{cfg.replication_window_epochs[0]}-{cfg.replication_window_epochs[1]}",
                                "normalize": f"{cfg.replication_normalize[0]}/{cfg.replication_normalize[1]}",
                                "steplr": False, "T_epochs": Te, "n_members": r.E,
                                "test_loss_t2": _median(r.loss_at(lt2)),
                                "final_test_loss_koopman": _median(ev.loss[j]) if j is not None else float("nan"),
                                "final_test_loss_optimizer": _median(r.loss_at(lt2 + Te * S)),
                                "final_test_acc_koopman": _median(ev.acc[j]) if j is not None else float("nan"),
                                "final_test_acc_optimizer": _median(r.grid[lt2 + Te * S][1]),
                                "max_spectral_radius": _median(radius),
                                **_spreads({"steps": ev.steps, "koopman_loss": ev.loss.T, "optimizer_steps": oc[0],
                                            "optimizer_loss": oc[1].T}, Te * S)})
        opt_steps, opt_loss, opt_acc = oc
        ablation_curves["replication settings, layer-wise"] = {
            "steps": ev.steps, "koopman_loss": ev.loss.T, "koopman_acc": ev.acc.T, "optimizer_steps": opt_steps,
            "optimizer_loss": opt_loss.T, "optimizer_acc": opt_acc.T}
        ablation_eigs["replication settings, layer-wise"] = eig0
        out["layerwise_ranks"] = ranks
    return {
        "table": table, "members": members, "replication": replication, "ablation": ablation_rows,
        "cutoff_sweep": sweep_rows,
        "settings": _settings_table(cfg), "timing": timing, "curves": curves,
        "ablation_curves": ablation_curves, "ablation_eigenvalues": ablation_eigs,
        "steps_per_epoch": S, "snapshots": window_len(cfg, S), **out,
    }


def _spreads(curve: dict, step: int) -> dict:
    """Spread over the networks of one curve's losses at ``step`` after t2: quartiles of the
    Koopman and optimizer test losses, and the per-network growth of the Koopman loss from its
    value at the start of the Koopman phase (step 0 of the curve)."""
    def at(steps, values, t):
        v = torch.as_tensor(values, dtype=torch.float64)          # (E, n)
        j = list(steps).index(t) if t in list(steps) else None
        return v[:, j] if j is not None else torch.full((v.shape[0],), float("nan"), dtype=torch.float64)

    ko = at(curve["steps"], curve["koopman_loss"], step)
    k0 = at(curve["steps"], curve["koopman_loss"], 0)
    op = at(curve["optimizer_steps"], curve["optimizer_loss"], step)

    def q(x, p):
        x = x[torch.isfinite(x)]
        return float(torch.quantile(x, p)) if x.numel() else float("nan")

    growth = ko / k0
    return {"koopman_loss_q25": q(ko, 0.25), "koopman_loss_q75": q(ko, 0.75),
            "optimizer_loss_q25": q(op, 0.25), "optimizer_loss_q75": q(op, 0.75),
            "koopman_loss_growth_median": _median(growth), "koopman_loss_growth_q25": q(growth, 0.25),
            "koopman_loss_growth_q75": q(growth, 0.75),
            "networks_koopman_above_optimizer_median": int((ko > float(np.nanmedian(op.numpy()))).sum())}


def sweep_specs(cfg: Config) -> dict:
    """``{name: FitSpec}`` fitted for every init: the table's fits (:data:`koopman_lib.fit.FITS`)
    and every cutoff of the sweep with and without clipping to the unit disk (named
    ``"<cutoff>"`` / ``"<cutoff>+clip:1"``; a sweep entry equal to a table fit is that fit)."""
    specs = {name: FITS[name] for name in cfg.fits}
    for c in cfg.cutoff_sweep:
        for stab in cfg.sweep_stabilised:
            spec = FitSpec(c, clip=1.0 if stab else None)
            if spec not in specs.values():
                specs[spec.name] = spec
    return specs


def sweep_name(cfg: Config, cutoff, stabilised: bool) -> str:
    """The key of ``members[i]["fits"]`` that holds the sweep entry ``(cutoff, stabilised)``."""
    spec = FitSpec(cutoff, clip=1.0 if stabilised else None)
    return next((n for n, s in sweep_specs(cfg).items() if s == spec), spec.name)


def _table(cfg: Config, members: list, timing: dict, after: int, S: int) -> list[dict]:
    """Table 2, one row per (fit, horizon): success, T_eq/T and the two speedups, each speedup
    against the timed fit + rollout of that very fit and horizon."""
    tau_paper, tau_fast = timing["epoch_seconds_paper_style"], timing["epoch_seconds_fast_loop"]
    table = []
    for name in cfg.fits:
        for h in cfg.horizons_epochs:
            key = f"T{h}"
            t_ko = timing["koopman_seconds"][name][key]            # the timed path of this row
            rows = [m["fits"][name][key] for m in members]
            for r in rows:
                p = TEq(r["T_eq_epochs"], r["Q"], r["R"], r["censored"])
                r["equivalent_seconds_paper_style"] = equivalent_runtime(p, [tau_paper] * after)
                r["equivalent_seconds_fast_loop"] = equivalent_runtime(p, [tau_fast] * after)
                r["speedup_paper_style"] = r["equivalent_seconds_paper_style"] / t_ko
                r["speedup_fast_loop"] = r["equivalent_seconds_fast_loop"] / t_ko
            teq = np.array([r["T_eq_epochs"] for r in rows])
            ok = [r for r in rows if r["T_eq_epochs"] > 0]
            # speedups: median over the inits Koopman training improved (None when none did), and
            # over all inits (a failed init counts 0) in ``*_all``
            med_ok = lambda k: _median([r[k] for r in ok]) if ok else None
            stops = [m["fits"][name]["rollout_stopped_at"] for m in members]
            table.append({
                "variant": f"paper settings, {name} fit", "fit": name, "cutoff": FITS[name].name,
                "n_inits": len(members), "T_epochs": h,
                "success_rate": float(success(teq).mean()),
                "teq_over_t_median": float(np.median(teq / h)),
                "speedup_paper_style_median": med_ok("speedup_paper_style"),
                "speedup_fast_loop_median": med_ok("speedup_fast_loop"),
                "speedup_paper_style_median_all": _median([r["speedup_paper_style"] for r in rows]),
                "speedup_fast_loop_median_all": _median([r["speedup_fast_loop"] for r in rows]),
                "koopman_seconds": t_ko,
                "censored_fraction": float(np.mean([r["censored"] for r in rows])),
                "koopman_loss_T_median": _median([r["koopman_loss"] for r in rows]),
                "optimizer_loss_T_median": _median([m[f"optimizer_loss_T{h}"] for m in members]),
                "test_loss_t2_median": _median([m["test_loss_t2"] for m in members]),
                "koopman_acc_T_median": _median([r["koopman_acc"] for r in rows]),
                "optimizer_acc_T_median": _median([m[f"optimizer_acc_T{h}"] for m in members]),
                "max_spectral_radius_median": _median([m["fits"][name]["max_spectral_radius"] for m in members]),
                "guard_stops": int(sum(s is not None and s <= h * S for s in stops)),
            })
    return table


def _sweep_rows(cfg: Config, members: list, k: int, S: int) -> list[dict]:
    """The cutoff sweep: per (cutoff, stabilised, horizon) over every init, success and median
    T_eq/T (the table's rule), median Koopman loss, spectral radius, layer-1 rank, guard stops."""
    rows = []
    for c in cfg.cutoff_sweep:
        for stab in cfg.sweep_stabilised:
            name = sweep_name(cfg, c, stab)
            fits = [m["fits"][name] for m in members]
            for h in cfg.horizons_epochs:
                teq = np.array([f[f"T{h}"]["T_eq_epochs"] for f in fits])
                rows.append({"cutoff": c, "stabilised": stab, "T_epochs": h, "n_inits": len(members),
                             "success_rate": float(success(teq).mean()),
                             "teq_over_t_median": float(np.median(teq / h)),
                             "rtol_layer1": rtol_of(c, 157, k),
                             "mean_rank_layer1_blocks": _median([f["mean_rank_layer1_blocks"] for f in fits]),
                             "max_spectral_radius": _median([f["max_spectral_radius"] for f in fits]),
                             "koopman_loss_median": _median([f[f"T{h}"]["koopman_loss"] for f in fits]),
                             "optimizer_loss_median": _median([m[f"optimizer_loss_T{h}"] for m in members]),
                             "guard_stops": int(sum(f["rollout_stopped_at"] is not None
                                                    and f["rollout_stopped_at"] <= h * S for f in fits))})
    return rows


def _optimizer_curve(run: Run, t2: int, T: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """The optimizer's test losses and accuracies ``(n, E)`` at the steps ``0, every, .., T`` after ``t2``."""
    return list(range(0, T + 1, run.every)), run.curve(t2, T), run.curve_acc(t2, T)


def window_len(cfg, S) -> int:
    return (cfg.window_epochs[1] - cfg.window_epochs[0] + 1) * S


def _cholesky_check(partition, snaps, theta_t2, T, kt_pinv, evaluate_fn, loss_pinv) -> dict:
    """Init 0: pinv operators (``kt_pinv``, dense) vs Cholesky on the normal equations (= a
    streaming Gram recording), block group by block group."""
    x64 = snaps.to(torch.float64)
    out = {"blocks": [], "loss_pinv_T": loss_pinv}
    chol_ops = []
    for g, (idx, x) in enumerate(zip(partition.groups, partition.time_last(x64))):   # x: (P, m, k)
        S = singular_values(x)
        cond = S[..., 0] / S[..., -1]
        U_p = kt_pinv.operators_[g].as_dense()                        # init 0
        try:
            U_c = finite_section(x, "cholesky")
            rel = ((U_c - U_p).flatten(1).norm(dim=1) / U_p.flatten(1).norm(dim=1))
            failed = 0
            chol_ops.append(U_c)
        except FitError as e:
            rel = torch.full((idx.shape[0],), float("nan"))
            failed = idx.shape[0]
            chol_ops.append(None)
            out.setdefault("errors", []).append(str(e)[:200])
        out["blocks"].append({"block_size": int(idx.shape[1]), "n_blocks": int(idx.shape[0]),
                              "cond_F_median": float(cond.median()), "cond_F_max": float(cond.max()),
                              "rel_diff_median": _median(rel), "rel_diff_max": float(np.nanmax(rel.numpy()))
                              if torch.isfinite(rel).any() else float("nan"), "cholesky_failed_blocks": failed})
    if all(c is not None for c in chol_ops):
        kc = Koopman.from_operators(partition, chol_ops, (), method="cholesky")
        wc = kc.predict(theta_t2, T)
        wp = kt_pinv.predict(theta_t2, T)
        out["weights_rel_diff_T"] = float((wc - wp).norm() / wp.norm())
        out["loss_cholesky_T"] = float(evaluate_fn(wc)[0][0])
    return out


def _timing(cfg, data, partition, recording, theta_t2, S) -> dict:
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
            "koopman_seconds": {name: {key: _median(v) for key, v in rows[name].items()} for name in cfg.fits},
            "koopman_seconds_cholesky": _median(rows["cholesky"]),
            "cholesky_error": chol_error, "repeats": rows, "threads": torch.get_num_threads(),
            "note": "per network; epochs exclude the test pass; koopman_seconds[fit][T<h>] = the fit and "
                    "evolution the reported Koopman losses come from: Koopman(partition, fit=<fit>, "
                    f"dtype={cfg.fit_dtype}).fit(one network's recorded window) (cast chunk by chunk to the fit "
                    "dtype, QR + SVD of every block; timed once per repeat) + the rollout of h epochs with the "
                    f"guard, matrix powers between the evaluation points every {cfg.eval_every} steps, test-loss "
                    "evaluations excluded (a rollout the guard stops ends early); koopman_seconds_cholesky: the "
                    f"same with Koopman(partition, method='cholesky') at T = {cfg.T_epochs} epochs"}
