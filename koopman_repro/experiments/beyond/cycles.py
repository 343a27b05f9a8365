"""Item 6: Koopman training in cycles: optimizer for a while, Koopman jump, repeat; wall-clock
to a target test loss with every cost counted (training, recording, fitting, jumping, evaluating).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.estimator import Koopman
from koopman_lib.partition import make_partition
from koopman_lib.progress import bar
from ..images import shuffle_seed
from .common import Config, Images, _frac, _median, _timed, load_images, make_evaluator, paper_partition


class SegmentTrainer:
    """Adadelta on an ensemble, any number of steps at a time (crossing epochs), each member
    with its own reshuffle every pass over the data (batch 64, last batch shorter).

    The learning rate is ``lr gamma^floor(progress / S)`` with ``progress`` the optimizer steps
    plus the Koopman steps of accepted jumps (:meth:`jumped`), so that after a jump the schedule
    is where the optimizer would have been.
    """

    def __init__(self, net, images: Images, lr: float = 1.0, gamma: float | None = 0.7, batch: int = 64,
                 seed: int = 0):
        self.net, self.images, self.batch = net, images, batch
        self.lr, self.gamma = lr, gamma
        self.opt = torch.optim.Adadelta([net.theta], lr=lr)
        E = net.theta.shape[0]
        self.gens = [torch.Generator().manual_seed(shuffle_seed(seed, e)) for e in range(E)]
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
    images = load_images("mnist", "paper", cfg.train_subset, cfg.test_subset)
    E = cfg.cyc_inits
    S = -(-images.x_train.shape[0] // 64)
    every = cfg.eval_every
    partition = make_partition(EnsembleMLP(cfg.mlp_sizes, "relu", 1).shapes, paper_partition(cfg))
    total = cfg.cyc_max_epochs * S

    def fresh():
        return EnsembleMLP(cfg.mlp_sizes, "relu", E, seed=cfg.seed + 2)

    # -- the optimizer alone (same inits, same batches), evaluated every `every` steps ---------
    net = fresh()
    ev = make_evaluator(net, images)
    st = SegmentTrainer(net, images, seed=cfg.seed + 2)
    clock, alone = 0.0, []
    l0, sec = _timed(lambda: ev(net.theta)[0])
    clock += sec
    alone.append((0, clock, l0))
    for _ in bar(range(total // every), desc="optimizer alone"):
        clock += st.run(every)
        l, sec = _timed(lambda: ev(net.theta)[0])
        clock += sec
        alone.append((st.progress, clock, l))
    target = next(l for p, _, l in alone if p == cfg.cyc_target_epoch * S)

    # -- cycles ----------------------------------------------------------------------------
    net = fresh()
    ev = make_evaluator(net, images)
    st = SegmentTrainer(net, images, seed=cfg.seed + 2)
    costs = {"training": 0.0, "recording": 0.0, "fitting": 0.0, "jumping": 0.0, "evaluating": 0.0}
    trace = []

    def evaluate_now(kind):
        l, sec = _timed(lambda: ev(net.theta)[0])
        costs["evaluating"] += sec
        trace.append((st.progress, sum(costs.values()), l, kind))
        return l

    evaluate_now("start")
    for _ in range(cfg.cyc_warmup_epochs * S // every):
        costs["training"] += st.run(every)
        evaluate_now("optimizer")
    tried = accepted = 0
    buf = torch.empty(cfg.cyc_record, E, net.n_params, dtype=net.theta.dtype)
    pb = bar(total=total, desc="cycles")
    while st.progress < total:
        pos = [0]

        def record(theta):
            s = time.perf_counter()
            buf[pos[0]] = theta
            pos[0] += 1
            costs["recording"] += time.perf_counter() - s

        done = 0
        while done < cfg.cyc_record:
            n = min(every - st.opt_steps % every, cfg.cyc_record - done)
            costs["training"] += st.run(n, record)
            done += n
            if st.opt_steps % every == 0:
                evaluate_now("optimizer")
        if st.progress + cfg.cyc_T > total:
            break
        before = trace[-1][2] if trace[-1][0] == st.progress else evaluate_now("before jump")
        kp = Koopman(partition, cutoff="float32")
        _, sec = _timed(lambda: kp.fit(buf))
        costs["fitting"] += sec
        theta_new, sec = _timed(lambda: kp.predict(buf[-1], cfg.cyc_T))
        costs["jumping"] += sec
        old = net.theta.detach().clone()
        with torch.no_grad():
            net.theta.copy_(theta_new.to(net.theta.dtype).nan_to_num(nan=0.0))
        l, sec = _timed(lambda: ev(net.theta)[0])
        costs["evaluating"] += sec
        ok = torch.isfinite(l) & (l < before)
        with torch.no_grad():
            net.theta.copy_(torch.where(ok.unsqueeze(-1), net.theta, old))
        tried += E
        accepted += int(ok.sum())
        if bool(ok.any()):
            # one optimizer (one schedule) for the ensemble: a jump kept by any network moves the
            # schedule on; a jump every network rejected costs time but no progress
            st.jumped(cfg.cyc_T)
        trace.append((st.progress, sum(costs.values()), torch.where(ok, l, before), "after jump"))
        pb.update(cfg.cyc_record + (cfg.cyc_T if bool(ok.any()) else 0))
    pb.close()

    def first_hit(points):
        """Per member: (seconds, progress) of the first evaluation at or below the target."""
        secs, prog = [], []
        for e in range(E):
            hit = next(((c, p) for p, c, l, *_ in points if float(l[e]) <= float(target[e])), (None, None))
            secs.append(hit[0] / E if hit[0] is not None else float("nan"))
            prog.append(hit[1] if hit[1] is not None else float("nan"))
        return secs, prog

    a_sec, a_prog = first_hit(alone)
    c_sec, c_prog = first_hit(trace)
    setting = (f"target: the optimizer-alone test loss after epoch {cfg.cyc_target_epoch}; warm-up "
               f"{cfg.cyc_warmup_epochs} epochs; cycles of {cfg.cyc_record} recorded steps + {cfg.cyc_T}-step jump")
    rows = [
        {"method": "adadelta alone", "setting": setting, "target_test_loss_median": _median(target),
         "seconds_to_target_median": _median(a_sec), "reached_fraction": _frac(np.isfinite(a_sec)),
         "steps_to_target_median": _median(a_prog), "jumps_accepted": None, "jumps_tried": None,
         "seconds_training": alone[-1][1] / E, "seconds_recording": 0.0, "seconds_fitting": 0.0,
         "seconds_jumping": 0.0, "seconds_evaluating": None},
        {"method": "cycles: adadelta + Koopman jumps (float32-resolution cutoff)", "setting": setting,
         "target_test_loss_median": _median(target), "seconds_to_target_median": _median(c_sec),
         "reached_fraction": _frac(np.isfinite(c_sec)), "steps_to_target_median": _median(c_prog),
         "jumps_accepted": accepted, "jumps_tried": tried, "seconds_training": costs["training"] / E,
         "seconds_recording": costs["recording"] / E, "seconds_fitting": costs["fitting"] / E,
         "seconds_jumping": costs["jumping"] / E, "seconds_evaluating": costs["evaluating"] / E},
    ]
    curves = {"alone": {"progress": [p for p, *_ in alone], "seconds_per_network": [c / E for _, c, *_ in alone],
                        "loss_median": [_median(l) for *_, l in alone]},
              "cycles": {"progress": [p for p, *_ in trace], "seconds_per_network": [c / E for _, c, *_ in trace],
                         "loss_median": [_median(x[2]) for x in trace], "kind": [x[3] for x in trace]},
              "target_median": _median(target)}
    return {"cycles": rows, "cycle_curves": curves}
