"""koopman_lib: Koopman training of neural networks (Dogra & Redman, NeurIPS 2020), reproduced.

Float64 is used for recorded trajectories and operator fits throughout.
"""
from .operators import (FitError, GramAccumulator, affine_observables, clip_spectrum, eigenvalues,
                        finite_section, solve_normal_equations, spectral_radius)
from .evolve import iterate, jump, path
from .partition import (LayerShape, Partition, PartitionError, flatten_params, layer_shapes, load_flat,
                        make_partition)
from .recorder import TrajectoryRecorder
from .trainer import KoopmanTrainer, Rollout
from .metrics import TEq, equivalent_runtime, error_ratio, speedup, success, t_eq, t_eq_parts

__version__ = "0.1.0"
__all__ = [
    "FitError", "GramAccumulator", "affine_observables", "clip_spectrum", "eigenvalues", "finite_section",
    "solve_normal_equations", "spectral_radius", "iterate", "jump", "path", "LayerShape", "Partition",
    "PartitionError", "flatten_params", "layer_shapes", "load_flat", "make_partition", "TrajectoryRecorder",
    "KoopmanTrainer", "Rollout", "TEq", "equivalent_runtime", "error_ratio", "speedup", "success", "t_eq",
    "t_eq_parts",
]
