"""koopman_lib: Koopman training of neural networks (Dogra & Redman, NeurIPS 2020), reproduced.

Float64 is used for recorded trajectories and operator fits throughout.
"""
from .errors import FitError, NotFittedError
from .solvers import GramAccumulator, affine_observables, finite_section, solve_normal_equations
from .spectra import clip_spectrum, eigenvalues, spectral_radius
from .evolve import Rollout, iterate, jump, path, rollout
from .fit import Cutoff, FitSpec, Operators, factorise, fit_operators
from .partition import (LayerShape, Partition, PartitionError, flatten_params, layer_shapes, load_flat,
                        make_partition)
from .recorder import TrajectoryRecorder
from .stride import choose_stride, floor_horizon, stride_spectrum, strided_window
from .seeds import branch_seed, network_seed, shuffle_seed
from .estimator import Koopman, fit_named
from .optimizer_state import (OptimizerStateRecorder, StateKoopman, StateLayout, StatePrediction, StateRollout,
                              flatten_state, load_state)
from .metrics import (Interval, TEq, bootstrap_interval, equivalent_runtime, error_ratio, speedup, success, t_eq,
                      t_eq_parts, wilson_interval)

__version__ = "0.1.0"
__all__ = [
    "FitError", "NotFittedError", "GramAccumulator", "affine_observables", "clip_spectrum", "eigenvalues", "finite_section",
    "solve_normal_equations", "spectral_radius", "iterate", "jump", "path", "rollout", "Cutoff", "FitSpec",
    "Operators", "factorise", "fit_operators", "LayerShape", "Partition",
    "PartitionError", "flatten_params", "layer_shapes", "load_flat", "make_partition", "TrajectoryRecorder",
    "Koopman", "Rollout", "TEq", "equivalent_runtime", "error_ratio", "speedup", "success", "t_eq",
    "t_eq_parts", "choose_stride", "stride_spectrum", "Interval", "bootstrap_interval", "wilson_interval",
    "OptimizerStateRecorder", "StateKoopman", "StateLayout", "StatePrediction", "StateRollout", "flatten_state",
    "load_state", "network_seed", "shuffle_seed", "branch_seed", "fit_named", "floor_horizon",
    "strided_window",
]
