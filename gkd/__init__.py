"""gkd: geometric knowledge distillation for motion sequences.

A Procrustes-DTW teacher (Rust, all cores) whose distances become soft class probabilities
that train a small transformer student (PyTorch)::

    import gkd

    splits = gkd.load_mhad(protocol="cross-subject")
    d = gkd.cross(splits.test.sequences, splits.train.sequences,
                  lengths_a=splits.test.lengths, lengths_b=splits.train.lengths)
    predicted = gkd.knn_predict(d, splits.train.labels, k=1)

The PyTorch parts (``train``, ``MotionTransformer``, checkpoints) are imported on first use,
so ``import gkd`` stays quick for distance work.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gkd._core import __version__
from gkd.blends import Blends, blend_sequences
from gkd.datasets import (
    Batch,
    DatasetSplits,
    MotionDataset,
    load_mhad,
    load_mhad_all,
    load_npz,
    load_signum,
    save_npz,
    split_dataset,
)
from gkd.distances import (
    METRICS,
    HandParams,
    Metric,
    cross,
    max_frame_cost,
    pairwise,
    with_motion,
)
from gkd.metrics import classification_metrics
from gkd.teacher import choose_k, knn_predict, soft_targets

if TYPE_CHECKING:
    from gkd.student import MotionTransformer
    from gkd.train import (
        TrainConfig,
        TrainResult,
        load_checkpoint,
        predict_proba,
        save_checkpoint,
        train,
    )

# Names served lazily from the modules that import torch.
_LAZY = {
    "MotionTransformer": "gkd.student",
    "TrainConfig": "gkd.train",
    "TrainResult": "gkd.train",
    "train": "gkd.train",
    "predict_proba": "gkd.train",
    "save_checkpoint": "gkd.train",
    "load_checkpoint": "gkd.train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gkd' has no attribute {name!r}")


__all__ = [
    "METRICS",
    "Batch",
    "Blends",
    "DatasetSplits",
    "HandParams",
    "Metric",
    "MotionDataset",
    "MotionTransformer",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "blend_sequences",
    "choose_k",
    "classification_metrics",
    "cross",
    "knn_predict",
    "load_checkpoint",
    "load_mhad",
    "load_mhad_all",
    "load_npz",
    "load_signum",
    "max_frame_cost",
    "pairwise",
    "predict_proba",
    "save_checkpoint",
    "save_npz",
    "soft_targets",
    "split_dataset",
    "train",
    "with_motion",
]
