"""Where Koopman training stops keeping up with the optimizer, and why: per reading (optimizer, fit,
training dtype) the longest ``T`` at which the median ``T_eq/T`` passes the front page's rule, and a
diagnosis per layer (growing modes, their growth over ``T``, the layer's share of the weight error)."""
from __future__ import annotations

import math

import numpy as np
import torch

from koopman_lib.metrics import finite_median

from ...scorecard import KEEPS_UP

#: a block operator "grows" when its spectral radius exceeds this: a mode growing by less than 1e-9 per
#: step changes by less than 2e-5 (relative) over the longest T tested, and clipping to the unit disk
#: leaves radii a few 1e-12 above 1 on nearly defective blocks (the rounding of the rebuilt eigenvalues)
GROWING = 1 + 1e-9


def layer_blocks(partition, shapes) -> dict:
    """Where each layer of ``shapes`` lies: ``slices`` (its columns of ``theta``), ``blocks`` (its
    columns of the per-network block arrays, groups in partition order, as
    ``Koopman.spectral_radii_`` concatenated), ``shapes`` (``"fan_in:n_out"``) and ``block_sizes``."""
    offs = np.cumsum([0] + [s.size for s in shapes])
    first = torch.cat([g[:, 0] for g in partition.groups]).numpy()
    size = torch.cat([torch.full((int(g.shape[0]),), int(g.shape[1])) for g in partition.groups])
    layer = torch.as_tensor(np.searchsorted(offs, first, side="right") - 1)
    blocks = [torch.nonzero(layer == l).flatten() for l in range(len(shapes))]
    return {"slices": [slice(int(a), int(b)) for a, b in zip(offs[:-1], offs[1:])], "blocks": blocks,
            "shapes": [f"{s.fan_in}:{s.n_out}" for s in shapes],
            "block_sizes": [sorted(set(size[b].tolist())) for b in blocks]}


def where_it_stops(a: dict, rows: list[dict], layers: dict, keys: dict) -> dict:
    """Where one reading (an optimizer's networks under one fit and training dtype) stops keeping up,
    and why. ``rows``: its table rows (one per ``T``); ``a``: its analysis in :func:`~.readings.analyse`.

    ``longest_T_keeping_up``: the largest tested ``T`` whose median ``T_eq/T >= KEEPS_UP`` (the
    chapter's and the front page's rule; ``None`` if none); ``stops_at_T``: the first larger ``T``
    that fails (``None`` if none fails). The diagnosis is made at ``T_diagnosed`` (``stops_at_T``,
    else the largest ``T``), per layer: the share of blocks whose operator has a mode that grows
    (spectral radius ``> GROWING``), the largest eigenvalue modulus (median over networks of each
    network's largest in the layer), its growth over the prediction, ``|lambda|^(horizon / stride)``
    (as ``log10``; ``|lambda|`` is that of the fit's ``stride``-step operator), the layer's share of
    the squared weight error ``||w_K - w||^2`` and its relative error ``||w_K - w|| / ||w - w(t2)||``
    (medians over networks), and the singular values kept per block (median). ``stride`` and
    ``horizons_by_T``: the fit's steps between snapshots and the steps it predicts for each ``T``
    (:func:`~.fit_methods.horizon`: up to ``stride - 1`` short of ``T``)."""
    by_T = {r["T"]: r for r in rows}
    Ts = sorted(by_T)
    keeps = [T for T in Ts if by_T[T]["teq_over_t_median"] is not None and by_T[T]["teq_over_t_median"] >= KEEPS_UP]
    longest = max(keeps, default=None)
    stop = min((T for T in Ts if T not in keeps and (longest is None or T > longest)), default=None)
    T_ref = stop if stop is not None else max(Ts)
    bt = a["by_T"][T_ref]
    es, ts = bt["layer_error_sq"], bt["layer_travel_sq"]
    radii = a["radii"]

    applications = a["by_T"][T_ref]["horizon"] / (a["stride"] or 1)   # the radii are of the s-step operator

    def log10_growth(rho):
        return None if rho is None or not rho > 0 else applications * math.log10(rho)

    per = []
    for l, blocks in enumerate(layers["blocks"]):
        r = radii[:, blocks]
        rho = finite_median(r.amax(1).tolist())
        per.append({"layer": l + 1, "shape": layers["shapes"][l], "blocks": int(blocks.numel()),
                    "block_sizes": layers["block_sizes"][l],
                    "share_blocks_growing": float((r > GROWING).double().mean()),
                    "max_modulus_median": rho, "max_modulus_max": float(r.max()),
                    "log10_growth_at_T": log10_growth(rho),
                    "error_share_median": finite_median((es[:, l] / es.sum(1)).tolist()),
                    "relative_error_median": finite_median((es[:, l] / ts[:, l]).sqrt().tolist()),
                    "kept_rank_median": None if a["rank"] is None
                    else finite_median(a["rank"][:, blocks].double().mean(1).tolist())})
    shares = [(p["error_share_median"] or -1.0) for p in per]
    dom = per[int(np.argmax(shares))]
    rho = finite_median(radii.amax(1).tolist())
    return {**keys, "keeps_up_threshold": KEEPS_UP, "Ts": Ts, "stride": a["stride"],
            "horizons_by_T": [a["by_T"][T]["horizon"] for T in Ts],
            "teq_over_t_median_by_T": [by_T[T]["teq_over_t_median"] for T in Ts],
            "success_rate_by_T": [by_T[T]["success_rate"] for T in Ts],
            "longest_T_keeping_up": longest, "stops_at_T": stop, "T_diagnosed": T_ref,
            "teq_over_t_median_at_T_diagnosed": by_T[T_ref]["teq_over_t_median"],
            "share_blocks_growing": float((radii > GROWING).double().mean()),
            "max_spectral_radius_median": rho, "log10_growth_at_T": log10_growth(rho),
            "median_relative_weight_error": by_T[T_ref]["median_relative_weight_error"],
            "dominant_layer": dom["layer"], "dominant_layer_error_share": dom["error_share_median"],
            "layers": per}
