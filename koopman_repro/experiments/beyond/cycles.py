"""Item 6: Koopman training in cycles: optimizer for a while, Koopman jump, repeat; wall-clock
to a target test loss with every cost counted (training, recording, fitting, jumping, evaluating).

Two variants of the cycles (:data:`VARIANTS`, ``Config.cyc_variants``), from the same inits and
batches as the optimizer alone:

- ``"weights"``: the weights are recorded, fitted and jumped; training resumes with Adadelta's
  buffers as they were before the jump (they belong to the old weights).
- ``"weights + optimizer state"`` (issue 25): Adadelta's per-parameter state (``square_avg``,
  ``acc_delta``, each recorded as its square root: the core's default, argued in
  :mod:`koopman_lib.optimizer_state`: a linear map relates quantities that scale alike, and the
  update ``sqrt(acc_delta) / sqrt(square_avg) g`` reads both square roots) is recorded beside the
  weights over each cycle's window (:class:`koopman_lib.optimizer_state.OptimizerStateRecorder`),
  fitted and jumped with them on the same blocks (:class:`~koopman_lib.optimizer_state.StateKoopman`,
  the same float32-resolution cutoff), and both are written back (:func:`koopman_lib.optimizer_state.load_state`,
  the step counter moved on by the jump) for the networks that keep the jump.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.estimator import Koopman
from koopman_lib.metrics import finite_median
from koopman_lib.optimizer_state import OptimizerStateRecorder, StateKoopman, StatePrediction, load_state
from koopman_lib.partition import make_partition
from koopman_lib.progress import bar
from koopman_lib.seeds import network_seeds, shuffle_seed
from ...check_values import EarlyNorms, merge
from .common import (Config, Images, _frac, _timed, load_images, make_evaluator, paper_partition, per_network,
                     study_networks)


class SegmentTrainer:
    """Adadelta on an ensemble, any number of steps at a time (crossing epochs), each member
    with its own reshuffle every pass over the data (batch 64, last batch shorter): member ``e``
    from :func:`shuffle_seed` ``(seed, networks[e])`` (``networks``: default ``0..E-1``).

    The learning rate is ``lr gamma^floor(progress / S)`` with ``progress`` the optimizer steps
    plus the Koopman steps of accepted jumps (:meth:`jumped`), so that after a jump the schedule
    is where the optimizer would have been.
    """

    def __init__(self, net, images: Images, lr: float = 1.0, gamma: float | None = 0.7, batch: int = 64,
                 seed: int = 0, networks=None):
        self.net, self.images, self.batch = net, images, batch
        self.lr, self.gamma = lr, gamma
        self.opt = torch.optim.Adadelta([net.theta], lr=lr)
        networks = range(net.theta.shape[0]) if networks is None else networks
        self.gens = [torch.Generator().manual_seed(shuffle_seed(seed, i)) for i in networks]
        self.N = images.x_train.shape[0]
        self.S = -(-self.N // batch)
        self.perm, self.pos, self.progress, self.opt_steps = None, self.N, 0, 0

    def run(self, n: int, on_step=None) -> float:
        """``n`` optimizer steps; returns their seconds (``on_step(theta)`` excluded)."""
        theta, spent = self.net.theta, 0.0
        for _ in range(n):
            s = time.perf_counter()
            if self.pos >= self.N:
                self.perm = torch.stack([torch.randperm(self.N, generator=g) for g in self.gens])
                self.pos = 0
            idx = self.perm[:, self.pos:self.pos + self.batch]
            self.pos += self.batch
            lr = self.lr * (self.gamma ** (self.progress // self.S) if self.gamma else 1.0)
            for g in self.opt.param_groups:
                g["lr"] = lr
            out = self.net.forward(self.images.x_train[idx], theta)
            y = self.images.y_train[idx]
            loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="sum")
            self.opt.zero_grad(set_to_none=True)
            (loss / idx.shape[1]).backward()
            self.opt.step()
            self.progress += 1
            self.opt_steps += 1
            spent += time.perf_counter() - s
            if on_step is not None:
                on_step(theta.detach())
        return spent

    def jumped(self, T: int) -> None:
        self.progress += T


def run_cycles(cfg: Config) -> dict:
    """Item 6: the optimizer alone and in cycles with Koopman jumps, from the same inits and
    batches; rows of seconds (every cost counted) and steps to the optimizer-alone test loss
    after epoch ``cfg.cyc_target_epoch``, and the two loss curves against wall-clock.

    Network ``i`` draws from ``network_seed(cfg.seed + 2, i)`` and ``shuffle_seed(cfg.seed + 2, i)``.
    The optimizer-alone run is per network: its check values (``"check"``, keys ``cycles:...``) are
    its early weight norms, test loss at every epoch end and steps to the target. The cycles are
    not: the ensemble shares one learning-rate schedule, which a jump kept by any network moves on,
    so a network's cycles depend on the others; with ``cfg.networks`` set (some networks alone) only
    the optimizer-alone run is made (no ``cycles`` rows). The cycles run once per variant of
    ``cfg.cyc_variants`` (:data:`VARIANTS`), each from the same inits and batches."""
    images = load_images("mnist", "paper", cfg.train_subset, cfg.test_subset)
    S = -(-images.x_train.shape[0] // 64)
    partition = make_partition(EnsembleMLP(cfg.mlp_sizes, "relu", 1).shapes, paper_partition(cfg))
    total = cfg.cyc_max_epochs * S
    idx = study_networks(cfg, cfg.cyc_inits)
    early = EarlyNorms(idx, "cycles:")
    alone = _optimizer_alone(cfg, images, total, idx, early)
    target = next(l for p, _, l in alone if p == cfg.cyc_target_epoch * S)
    values = {"alone:steps_to_target": _first_hit(alone, target, len(idx))[1],
              **{f"alone:test_loss@epoch {p // S}": l for p, _, l in alone if p % S == 0}}
    out = {"cycles": [], "cycle_curves": {}, "check": merge(early.values(), per_network(idx, "cycles:", values))}
    if cfg.networks is None:
        bad = [v for v in cfg.cyc_variants if v not in VARIANTS]
        if bad:
            raise ValueError(f"unknown cycle variants {bad}; choose from {VARIANTS}")
        cycles = {v: _cycles(cfg, images, partition, S, total, v) for v in cfg.cyc_variants}
        out["cycles"] = _cycle_rows(cfg, target, alone, cycles)
        out["cycle_curves"] = _cycle_curves(cfg.cyc_inits, target, alone, cycles)
    return out


def _fresh(cfg: Config, networks=None) -> EnsembleMLP:
    """The networks ``networks`` (default all ``cfg.cyc_inits``) both runs of item 6 start from."""
    networks = range(cfg.cyc_inits) if networks is None else networks
    return EnsembleMLP(cfg.mlp_sizes, "relu", len(networks), seeds=network_seeds(cfg.seed + 2, networks))


def _optimizer_alone(cfg: Config, images: Images, total: int, networks: list[int], on_step) -> list:
    """``(progress, seconds, test losses)`` of the optimizer alone on ``networks``, every
    ``cfg.eval_every`` steps up to ``total`` (seconds: training plus evaluation, summed over the
    ensemble); ``on_step(step, theta)`` at step 0 and after every step."""
    net = _fresh(cfg, networks)
    ev = make_evaluator(net, images)
    st = SegmentTrainer(net, images, seed=cfg.seed + 2, networks=networks)
    clock, alone = 0.0, []
    on_step(0, net.theta)
    l0, sec = _timed(lambda: ev(net.theta)[0])
    clock += sec
    alone.append((0, clock, l0))
    for _ in bar(range(total // cfg.eval_every), desc="optimizer alone"):
        clock += st.run(cfg.eval_every, lambda theta: on_step(st.opt_steps, theta))
        l, sec = _timed(lambda: ev(net.theta)[0])
        clock += sec
        alone.append((st.progress, clock, l))
    return alone


#: the cycles' variants (``Config.cyc_variants``, the ``variant`` of their rows): what a jump carries
VARIANTS = ("weights", "weights + optimizer state")
#: the method of each variant's row (the weights-only name is that of files made before the variants)
METHODS = {"weights": "cycles: adadelta + Koopman jumps (float32-resolution cutoff)",
           "weights + optimizer state": "cycles: adadelta + Koopman jumps of the weights and Adadelta's state "
                                        "(float32-resolution cutoff)"}


class _CycleState:
    """The cycles' ensemble, trainer, evaluator, costs so far and trace of evaluations
    ``(progress, seconds, test losses, kind)``; ``carry_state``: the jumps carry Adadelta's state."""

    def __init__(self, cfg: Config, images: Images, carry_state: bool = False):
        self.net = _fresh(cfg)
        self.ev = make_evaluator(self.net, images)
        self.st = SegmentTrainer(self.net, images, seed=cfg.seed + 2)
        self.carry_state = carry_state
        self.costs = {"training": 0.0, "recording": 0.0, "fitting": 0.0, "jumping": 0.0, "evaluating": 0.0}
        self.trace: list = []
        self.tried = self.accepted = 0

    def evaluate_now(self, kind: str):
        l, sec = _timed(lambda: self.ev(self.net.theta)[0])
        self.costs["evaluating"] += sec
        self.trace.append((self.st.progress, sum(self.costs.values()), l, kind))
        return l

    def record_segment(self, n: int, store, every: int) -> None:
        """``n`` optimizer steps, each stored by ``store(theta)`` (its time counted as recording); an
        evaluation every ``every`` steps."""
        def record(theta):
            s = time.perf_counter()
            store(theta)
            self.costs["recording"] += time.perf_counter() - s

        done = 0
        while done < n:
            k = min(every - self.st.opt_steps % every, n - done)
            self.costs["training"] += self.st.run(k, record)
            done += k
            if self.st.opt_steps % every == 0:
                self.evaluate_now("optimizer")

    def segment(self, buf: torch.Tensor, every: int):
        """The next ``len(buf)`` optimizer steps, recorded: the weights into ``buf`` (returned), or
        with :attr:`carry_state` the weights and Adadelta's state (the recorder is returned)."""
        n = len(buf)
        if self.carry_state:
            t = self.st.opt_steps
            rec = OptimizerStateRecorder(self.net, self.st.opt, t + 1, t + n, dtype=self.net.theta.dtype)
            self.record_segment(n, lambda theta: rec(self.st.opt_steps), every)
            return rec
        pos = [0]

        def store(theta):
            buf[pos[0]] = theta
            pos[0] += 1
        self.record_segment(n, store, every)
        return buf

    def _predict(self, partition, recording, T: int):
        """Fit on the recording and jump ``T`` steps (both timed): the weights, and with
        :attr:`carry_state` the :class:`StatePrediction` of weights and state."""
        if self.carry_state:
            kp = StateKoopman(partition, recording.layout, cutoff="float32")
            _, sec = _timed(lambda: kp.fit(recording))
            self.costs["fitting"] += sec
            pred, sec = _timed(lambda: kp.predict(recording.last(), T))
            self.costs["jumping"] += sec
            return pred.theta, pred
        kp = Koopman(partition, cutoff="float32")
        _, sec = _timed(lambda: kp.fit(recording))
        self.costs["fitting"] += sec
        theta_new, sec = _timed(lambda: kp.predict(recording[-1], T))
        self.costs["jumping"] += sec
        return theta_new, None

    def jump(self, partition, recording, T: int) -> bool:
        """Fit on ``recording`` (a segment's), jump ``T`` steps, keep the jump for the networks whose
        test loss went down (with :attr:`carry_state`: and whose predicted state is finite; their
        predicted state is written into the optimizer, its step counter moved on by ``T``); whether
        any kept it."""
        net, trace = self.net, self.trace
        before = trace[-1][2] if trace[-1][0] == self.st.progress else self.evaluate_now("before jump")
        theta_new, pred = self._predict(partition, recording, T)
        old = net.theta.detach().clone()
        with torch.no_grad():
            net.theta.copy_(theta_new.to(net.theta.dtype).nan_to_num(nan=0.0))
        l, sec = _timed(lambda: self.ev(net.theta)[0])
        self.costs["evaluating"] += sec
        ok = torch.isfinite(l) & (l < before)
        if pred is not None:
            for v in pred.state.values():
                ok &= torch.isfinite(v).all(-1)
        with torch.no_grad():
            net.theta.copy_(torch.where(ok.unsqueeze(-1), net.theta, old))
        if pred is not None and bool(ok.any()):
            _load_kept(self.st.opt, net.theta, pred, ok)
        self.tried += len(ok)
        self.accepted += int(ok.sum())
        if bool(ok.any()):
            # one optimizer (one schedule) for the ensemble: a jump kept by any network moves the
            # schedule on; a jump every network rejected costs time but no progress
            self.st.jumped(T)
        trace.append((self.st.progress, sum(self.costs.values()), torch.where(ok, l, before), "after jump"))
        return bool(ok.any())


def _load_kept(opt, theta: torch.Tensor, pred: StatePrediction, ok: torch.Tensor) -> None:
    """Write the predicted state of the networks ``ok`` into ``opt`` (the others keep theirs) and the
    weights ``theta`` (already the kept ones), the step counter moved on by ``pred.T``
    (:func:`load_state`). The ensemble's leaf ``theta`` ``(E, D)`` has its state in the flat layout."""
    own = opt.state[theta]
    state = {b: torch.where(ok.unsqueeze(-1), v, own[b].to(v.dtype)) for b, v in pred.state.items()}
    load_state(theta, opt, StatePrediction(theta.detach().clone(), state, pred.T, pred.layout))


def _cycles(cfg: Config, images: Images, partition, S: int, total: int, variant: str = "weights") -> dict:
    """Warm-up, then cycles of ``cfg.cyc_record`` recorded steps and a ``cfg.cyc_T``-step jump
    until ``total`` steps of progress (``variant``: what a jump carries, :data:`VARIANTS`): the
    trace, the costs and the jumps tried and kept."""
    every = cfg.eval_every
    state = _CycleState(cfg, images, carry_state=variant == "weights + optimizer state")
    state.evaluate_now("start")
    for _ in range(cfg.cyc_warmup_epochs * S // every):
        state.costs["training"] += state.st.run(every)
        state.evaluate_now("optimizer")
    buf = torch.empty(cfg.cyc_record, cfg.cyc_inits, state.net.n_params, dtype=state.net.theta.dtype)
    pb = bar(total=total, desc=f"cycles ({variant})")
    while state.st.progress < total:
        recording = state.segment(buf, every)
        if state.st.progress + cfg.cyc_T > total:
            break
        kept = state.jump(partition, recording, cfg.cyc_T)
        pb.update(cfg.cyc_record + (cfg.cyc_T if kept else 0))
    pb.close()
    return {"trace": state.trace, "costs": state.costs, "tried": state.tried, "accepted": state.accepted}


def _first_hit(points: list, target: torch.Tensor, E: int) -> tuple[list, list]:
    """Per member: (seconds per network, progress) of the first evaluation at or below the target
    (``nan`` where none was)."""
    secs, prog = [], []
    for e in range(E):
        hit = next(((c, p) for p, c, l, *_ in points if float(l[e]) <= float(target[e])), (None, None))
        secs.append(hit[0] / E if hit[0] is not None else float("nan"))
        prog.append(hit[1] if hit[1] is not None else float("nan"))
    return secs, prog


def _cycle_rows(cfg: Config, target: torch.Tensor, alone: list, cycles: dict) -> list[dict]:
    """The rows of the ``cycles`` table: the optimizer alone, then the cycles of each variant."""
    E = cfg.cyc_inits
    setting = (f"target: the optimizer-alone test loss after epoch {cfg.cyc_target_epoch}; warm-up "
               f"{cfg.cyc_warmup_epochs} epochs; cycles of {cfg.cyc_record} recorded steps + {cfg.cyc_T}-step jump")
    a_sec, a_prog = _first_hit(alone, target, E)
    rows = [{"method": "adadelta alone", "setting": setting, "target_test_loss_median": finite_median(target),
             "seconds_to_target_median": finite_median(a_sec), "reached_fraction": _frac(np.isfinite(a_sec)),
             "steps_to_target_median": finite_median(a_prog), "jumps_accepted": None, "jumps_tried": None,
             "seconds_training": alone[-1][1] / E, "seconds_recording": 0.0, "seconds_fitting": 0.0,
             "seconds_jumping": 0.0, "seconds_evaluating": None, "variant": "optimizer alone",
             "final_test_loss_median": finite_median(alone[-1][2]), "final_progress": alone[-1][0]}]
    for variant, c in cycles.items():
        costs = c["costs"]
        c_sec, c_prog = _first_hit(c["trace"], target, E)
        rows.append({"method": METHODS[variant], "setting": setting, "target_test_loss_median": finite_median(target),
                     "seconds_to_target_median": finite_median(c_sec), "reached_fraction": _frac(np.isfinite(c_sec)),
                     "steps_to_target_median": finite_median(c_prog), "jumps_accepted": c["accepted"],
                     "jumps_tried": c["tried"], "seconds_training": costs["training"] / E,
                     "seconds_recording": costs["recording"] / E, "seconds_fitting": costs["fitting"] / E,
                     "seconds_jumping": costs["jumping"] / E, "seconds_evaluating": costs["evaluating"] / E,
                     "variant": variant, "final_test_loss_median": finite_median(c["trace"][-1][2]),
                     "final_progress": c["trace"][-1][0]})
    return rows


#: the key of each variant's curve in ``cycle_curves`` (the weights-only one is that of older files)
CURVE_KEYS = {"weights": "cycles", "weights + optimizer state": "cycles_state"}


def _cycle_curves(E: int, target: torch.Tensor, alone: list, cycles: dict) -> dict:
    """Median test loss against seconds per network, the optimizer alone and the cycles of each variant."""
    out = {"alone": {"progress": [p for p, *_ in alone], "seconds_per_network": [c / E for _, c, *_ in alone],
                     "loss_median": [finite_median(l) for *_, l in alone]}}
    for variant, c in cycles.items():
        trace = c["trace"]
        out[CURVE_KEYS[variant]] = {"progress": [p for p, *_ in trace],
                                    "seconds_per_network": [sec / E for _, sec, *_ in trace],
                                    "loss_median": [finite_median(x[2]) for x in trace], "kind": [x[3] for x in trace]}
    out["target_median"] = finite_median(target)
    return out
