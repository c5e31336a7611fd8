"""Motion datasets: one type (:class:`MotionDataset`) from every source.

- UTD-MHAD, bundled: :func:`load_mhad`, :func:`load_mhad_all`
- synthetic data for tests: :func:`make_synthetic_signum`, :func:`make_synthetic_motion`
"""

from .base import Batch, DatasetSplits, MotionDataset, check_values, split_dataset
from .mhad import bundled_data_path, load_mhad, load_mhad_all
from .synthetic import make_synthetic_motion, make_synthetic_signum

__all__ = [
    "Batch",
    "DatasetSplits",
    "MotionDataset",
    "bundled_data_path",
    "check_values",
    "load_mhad",
    "load_mhad_all",
    "make_synthetic_motion",
    "make_synthetic_signum",
    "split_dataset",
]
