"""gkd: geometric knowledge distillation for motion sequences.

A Procrustes-DTW teacher (Rust, all cores) whose distances become soft targets for a small
transformer student (PyTorch).
"""

from gkd._core import __version__
from gkd.distances import METRICS, HandParams, Metric, cross, max_frame_cost, pairwise

__all__ = [
    "METRICS",
    "HandParams",
    "Metric",
    "__version__",
    "cross",
    "max_frame_cost",
    "pairwise",
]
