"""Motion datasets: one type (:class:`MotionDataset`) from every source.

- UTD-MHAD, bundled: :func:`load_mhad`, :func:`load_mhad_all`
- SIGNUM, brought by the user: :func:`load_signum`
- the user's own data in the generic ``.npz`` format: :func:`load_npz`, :func:`save_npz`
- synthetic data for tests: :func:`make_synthetic_signum`, :func:`make_synthetic_motion`
"""

from .base import Batch, DatasetSplits, MotionDataset, check_values, split_dataset
from .mhad import bundled_data_path, load_mhad, load_mhad_all
from .npz import load_npz, save_npz
from .signum import SIGNUM_GROUPS, SIGNUM_LANDMARKS, load_signum
from .synthetic import make_synthetic_motion, make_synthetic_signum

__all__ = [
    "SIGNUM_GROUPS",
    "SIGNUM_LANDMARKS",
    "Batch",
    "DatasetSplits",
    "MotionDataset",
    "bundled_data_path",
    "check_values",
    "load_mhad",
    "load_mhad_all",
    "load_npz",
    "load_signum",
    "make_synthetic_motion",
    "make_synthetic_signum",
    "save_npz",
    "split_dataset",
]
