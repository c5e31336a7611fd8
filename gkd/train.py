"""Training the student: direct (cross-entropy) or distilled from the teacher's soft targets.

``train`` is keyword-only and used the same way from Python and from the CLI::

    result = train(train_set=splits.train, validation_set=splits.validation,
                   config=TrainConfig(epochs=60), teacher_targets=targets)
    probabilities = predict_proba(result.model, splits.test)
    save_checkpoint(Path("student.pt"), result)

Datasets are anything with the ``MotionDataset`` attributes ``sequences`` (N, T, L, 3),
``lengths`` (N,), ``labels`` (N,) and ``class_names``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gkd.student import MotionTransformer, Preprocessing

__all__ = [
    "LOCAL_WARP_SEGMENTS",
    "EpochStats",
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "decoupled_kd_terms",
    "ensemble_proba",
    "load_checkpoint",
    "member_seeds",
    "predict",
    "predict_proba",
    "relation_loss",
    "resolve_device",
    "save_checkpoint",
    "train",
]

CHECKPOINT_FORMAT = "gkd-student"
CHECKPOINT_VERSION = 1
# Parts of a sequence that TrainConfig.local_warp plays at speeds of their own.
LOCAL_WARP_SEGMENTS = 4


class DatasetLike(Protocol):
    """The parts of ``gkd.datasets.MotionDataset`` that training reads."""

    sequences: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    class_names: list[str]


@dataclass
class TrainConfig:
    """Everything that decides a training run (stored in checkpoints).

    Model
        d_model, n_heads, n_layers, dim_feedforward (None: 2 * d_model), dropout,
        frames_per_token, positions, preprocessing (see :class:`gkd.student.MotionTransformer` and
        :class:`gkd.student.Preprocessing`; None: ``Preprocessing.for_landmarks`` of the
        training set's landmark names: centred on the hip centre when there is one, with
        pairwise landmark distances for skeletons of up to 32 landmarks).
    Optimisation
        epochs, batch_size, lr (peak), weight_decay (AdamW, not on biases and norms),
        warmup_epochs (linear warm-up, then cosine decay to zero), grad_clip (max gradient norm,
        None for none), label_smoothing (direct training only, see below), ema_epochs (time
        constant, in epochs, of an exponential moving average of the weights, updated after
        every optimiser step; validation, selection and the returned model then use the
        average, which smooths the step-to-step noise of small batches; 0 for none; 5 lost
        the cross-validation on training subjects by 1.5 points, docs/results.md).
    Label smoothing
        label_smoothing: the directly trained student's cross-entropy target puts
        1 - this + this / C on the label and this / C on every other class. Distillation
        leaves its cross-entropy term unsmoothed: its teacher term already pulls towards a
        soft target, which at the default temperature is close to flat. 0.44 matches the distilled
        student's mixed target on UTD-MHAD (0.58 on the label) and beat no smoothing in the
        cross-validation on training subjects (direct 92.4 → 93.5 %, +1.0, standard error
        0.44; docs/results.md): the direct baseline gets the regularisation distillation gets.
    Distillation (used only when teacher targets are given)
        loss = alpha·CE(labels) + beta·T²·KL(teacher ‖ softmax(logits / T)), T = temperature
        (1; 4 scored −1.9 points, standard error 0.9, in the cross-validation on training
        subjects, docs/results.md: the teacher's targets are already soft, and matching them
        with softmax(logits / 4) leaves the student's own predictions sharper than they are),
        + relation_weight·R when relation_weight > 0: R (:func:`relation_loss`) compares the
        distances between the batch's pooled student features with the teacher's distances
        between the same sequences (``train``'s ``teacher_distances``), each divided by its
        mean over the batch, so the student learns the teacher's geometry of whole sequences
        and not only its class probabilities (distance-wise relational distillation, Park et
        al., CVPR 2019). 0 for none; 10 did not clear the cross-validation on training
        subjects (+0.4 points, standard error 0.8; docs/results.md).
        non_target_weight: None keeps the KL term whole. A number splits it, as decoupled
        knowledge distillation does (Zhao et al., CVPR 2022; :func:`decoupled_kd_terms`):
        ``KL = TCKD + (1 - p_label)·NCKD``, where TCKD compares the teacher's and the student's
        probability of the label and NCKD their distributions over the other classes, each
        renormalised. The loss is then ``alpha·CE + T²·(beta·TCKD + non_target_weight·NCKD)``,
        so the teacher's view of which wrong classes a sample resembles can be weighted on its
        own, not only through ``1 - p_label``. In the cross-validation on UTD-MHAD's training
        subjects 4 (ten times the default loss's 0.4) scored −0.8 points (standard error
        0.85) and 0 scored −4.6 (0.87; docs/results.md): the non-target part matters as a
        spread, not as more signal.
    Augmentation (training batches only)
        augment (switch), rotation_degrees (uniform rotation about the vertical axis within
        ±this), scale_range (per-axis scale factor in 1 ± this), time_warp (speed factor in
        1 ± this, by linear interpolation), local_warp (speed of each of
        ``LOCAL_WARP_SEGMENTS`` equal stretches of time in 1 ± this, on top of that: a random
        monotone warp that speeds up one part of a movement and slows another, as the DTW
        teacher allows; 0 keeps one speed per sequence), amplitude_range (each sequence's
        motion about its time-averaged pose scaled by a factor in 1 ± this: a gentler or more
        vigorous performance of the same action; 0 for none), gap (one stretch of up to this
        fraction of the frames replaced by a straight line between its ends, as a tracker fills
        an occlusion, so no one part of a movement can be relied on; 0 for none; 0.3 lost the
        cross-validation on training subjects by 0.6 points, standard error 0.55), vertical_axis
        (0, 1 or 2; 1 is y, up for Kinect).
    Selection and runtime
        select ("accuracy": best validation accuracy, ties to the lower validation loss;
        "loss": lowest validation loss), seed, device ("cpu", "cuda" or "auto"), threads (torch
        CPU threads during training, None leaves it), deterministic (torch deterministic
        algorithms during training; CPU runs with a fixed seed repeat exactly without it),
        eval_batch_size.

    The defaults were chosen on UTD-MHAD's validation subject (paper protocol: train on subjects
    1-4, validate on 5; the test subjects were never looked at): augmentation added about 7
    points, two-frame tokens matched one-frame tokens at half the time, 150 epochs were no
    better than 100 (then; see below), a wider model (d_model 128) was not better then. A run
    took about a minute on one CPU core at d_model 64, 2-3 minutes at 128. Relative positions
    were chosen later by cross-validation over subjects 1, 3 and 5 with each held-out subject
    also played back 1.25× and 0.8× as long (``benches/tune_mhad.py --stretch``): the distilled
    student's mean over the three speeds rose from 81.8 to 86.9 % (80 → 87 % when played
    slower), while at the recorded speed it fell from 90.0 to 87.2 %. By the same rule and
    folds, d_model 128 then beat 64 (86.9 → 87.8 %; the direct transformer 85.2 → 88.6 %), so
    relative positions made the wider model worth its cost; inference stays well under a
    millisecond a sample. Dropout 0.2 then beat 0.1 by the same rule (seeds 0-3: 86.9 → 87.3 %;
    the direct transformer 86.1 → 87.1 %), a margin within the cross-validation's noise; on the
    test subjects it was no gain (docs/results-history.md). 150 epochs then beat 100 under a sharper
    rule (a margin above two standard errors of the paired fold-and-seed differences, over four
    seeds): distilled 87.3 → 88.1 %, +0.8 with standard error 0.35; the direct transformer did not
    change. 200 epochs then beat 150 by the same rule: 88.1 → 88.8 %, +0.75 with standard error 0.31
    (the direct transformer +0.3, standard error 0.45). A local time warp of 0.3 then beat none by
    the same rule: distilled 88.8 → 93.8 %, +5.0 with standard error 1.2, 10 of 12 fold-and-seed
    pairs won (the direct transformer, cross-validated later: 87.6 → 92.4 %, +4.9 with standard
    error 0.9).
    """

    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    dim_feedforward: int | None = None
    dropout: float = 0.2
    frames_per_token: int = 2
    positions: Literal["frame", "relative"] = "relative"
    preprocessing: Preprocessing | None = None
    epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 5
    grad_clip: float | None = 1.0
    label_smoothing: float = 0.44
    ema_epochs: float = 0.0
    alpha: float = 0.5
    beta: float = 0.5
    temperature: float = 1.0
    relation_weight: float = 0.0
    non_target_weight: float | None = None
    augment: bool = True
    rotation_degrees: float = 15.0
    scale_range: float = 0.1
    time_warp: float = 0.1
    local_warp: float = 0.3
    amplitude_range: float = 0.0
    gap: float = 0.0
    vertical_axis: int = 1
    select: Literal["accuracy", "loss"] = "accuracy"
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    deterministic: bool = False
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        positive = (
            "d_model",
            "n_heads",
            "n_layers",
            "frames_per_token",
            "epochs",
            "batch_size",
            "eval_batch_size",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        if self.warmup_epochs < 0:
            raise ValueError(f"TrainConfig.warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr!r}")
        non_negative = (
            "weight_decay",
            "alpha",
            "beta",
            "label_smoothing",
            "rotation_degrees",
            "ema_epochs",
            "relation_weight",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        bounded = ("scale_range", "time_warp", "local_warp", "amplitude_range", "gap")
        for name in (*bounded, "label_smoothing", "dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(
                    f"TrainConfig.{name} must be in [0, 1), got {getattr(self, name)!r}"
                )
        if self.non_target_weight is not None and not self.non_target_weight >= 0:
            raise ValueError(
                "TrainConfig.non_target_weight must be >= 0 or None, "
                f"got {self.non_target_weight!r}"
            )
        if not self.temperature > 0:
            raise ValueError(f"TrainConfig.temperature must be positive, got {self.temperature!r}")
        if self.vertical_axis not in (0, 1, 2):
            raise ValueError(
                f"TrainConfig.vertical_axis must be 0, 1 or 2, got {self.vertical_axis}"
            )
        if self.positions not in ("frame", "relative"):
            raise ValueError(
                f"TrainConfig.positions must be 'frame' or 'relative', got {self.positions!r}"
            )
        if self.select not in ("accuracy", "loss"):
            raise ValueError(
                f"TrainConfig.select must be 'accuracy' or 'loss', got {self.select!r}"
            )
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise ValueError(
                f"TrainConfig.device must be 'cpu', 'cuda' or 'auto', got {self.device!r}"
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"TrainConfig.threads must be >= 1 or None, got {self.threads}")
        if isinstance(self.preprocessing, Mapping):
            self.preprocessing = Preprocessing.from_dict(self.preprocessing)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type form (for checkpoints and JSON)."""
        out = asdict(self)
        if self.preprocessing is not None:
            out["preprocessing"] = self.preprocessing.to_dict()
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {unknown}")
        return cls(**dict(values))


@dataclass(frozen=True)
class EpochStats:
    """What one epoch did; passed to the ``progress`` callback and kept in the history.

    ``train_loss`` (the full objective, so with distillation not comparable to a direct run)
    and ``train_accuracy`` are running means over the epoch's (augmented) batches in training
    mode; the validation numbers are cross-entropy and accuracy in eval mode after the epoch.
    """

    epoch: int  # 1-based
    epochs: int  # total planned
    train_loss: float
    train_accuracy: float
    validation_loss: float | None
    validation_accuracy: float | None
    lr: float  # learning rate at the end of the epoch
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """A trained student and how it got there.

    ``model`` holds the weights of ``best_epoch`` (chosen on validation; the last epoch when
    there was no validation set; their moving average when ``config.ema_epochs`` > 0), in eval
    mode, on ``device``. ``config`` is the configuration used, with the preprocessing filled
    in when it was left to the default.
    """

    model: MotionTransformer
    config: TrainConfig
    history: list[EpochStats]
    best_epoch: int
    class_names: list[str]
    device: str
    seconds: float
    distilled: bool

    @property
    def best_validation_accuracy(self) -> float | None:
        return self.history[self.best_epoch - 1].validation_accuracy

    def record(self) -> dict[str, Any]:
        """How the model was trained, in plain types (``training`` of a checkpoint)."""
        return {
            "config": self.config.to_dict(),
            "history": [stats.to_dict() for stats in self.history],
            "best_epoch": self.best_epoch,
            "seconds": self.seconds,
            "device": self.device,
            "distilled": self.distilled,
        }

    @classmethod
    def from_record(
        cls, model: MotionTransformer, record: Mapping[str, Any], class_names: Sequence[str]
    ) -> TrainResult:
        """Inverse of :meth:`record`, around a model loaded from the same checkpoint."""
        return cls(
            model=model,
            config=TrainConfig.from_dict(record["config"]),
            history=[EpochStats(**stats) for stats in record["history"]],
            best_epoch=int(record["best_epoch"]),
            class_names=[str(name) for name in class_names],
            device=str(record["device"]),
            seconds=float(record["seconds"]),
            distilled=bool(record["distilled"]),
        )


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> the GPU when one is present, else the CPU.

    Raises
    ------
    ValueError
        If a GPU is asked for and none is available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    return torch.device(device)


def _dataset_arrays(dataset: DatasetLike, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sequences as (N, T, L*3) float32 view, lengths int64, labels int64), validated."""
    for attribute in ("sequences", "lengths", "labels", "class_names"):
        if not hasattr(dataset, attribute):
            raise TypeError(f"{name} has no attribute {attribute!r}; pass a MotionDataset")
    sequences = np.asarray(dataset.sequences)
    if sequences.ndim != 4 or sequences.shape[-1] != 3:
        raise ValueError(f"{name}.sequences must have shape (N, T, L, 3), got {sequences.shape}")
    n, frames = sequences.shape[:2]
    if n == 0:
        raise ValueError(f"{name} is empty")
    lengths = np.asarray(dataset.lengths).astype(np.int64)
    labels = np.asarray(dataset.labels).astype(np.int64)
    if lengths.shape != (n,) or labels.shape != (n,):
        raise ValueError(
            f"{name}.lengths and {name}.labels must have shape ({n},), "
            f"got {lengths.shape} and {labels.shape}"
        )
    if lengths.min() < 1 or lengths.max() > frames:
        i = int(np.argmin(lengths)) if lengths.min() < 1 else int(np.argmax(lengths))
        raise ValueError(f"{name}.lengths[{i}] = {lengths[i]} is outside 1..{frames}")
    n_classes = len(dataset.class_names)
    if labels.min() < 0 or labels.max() >= n_classes:
        i = int(np.argmin(labels)) if labels.min() < 0 else int(np.argmax(labels))
        raise ValueError(f"{name}.labels[{i}] = {labels[i]} is not a class (0..{n_classes - 1})")
    flat = sequences.reshape(n, frames, -1)
    return flat, lengths, labels


def _batch(
    sequences: np.ndarray, lengths: np.ndarray, index: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``index`` cut to their longest length: inputs (B, T_b, L*3) and padding mask."""
    batch_lengths = torch.from_numpy(lengths[index])
    frames = int(batch_lengths.max())
    inputs = torch.from_numpy(np.ascontiguousarray(sequences[index, :frames], dtype=np.float32))
    mask = torch.arange(frames)[None, :] >= batch_lengths[:, None]
    return inputs.to(device), mask.to(device)


def augment_batch(
    inputs: torch.Tensor,
    padding_mask: torch.Tensor,
    *,
    rotation_degrees: float,
    scale_range: float,
    time_warp: float,
    local_warp: float = 0.0,
    amplitude_range: float = 0.0,
    gap: float = 0.0,
    vertical_axis: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random geometric augmentation of a padded batch of raw coordinates.

    Each sequence gets its own draw: a speed change (linear interpolation to
    ``round(length / speed)`` frames, speed uniform in ``1 ± time_warp``; with ``local_warp``
    the new frames' time is cut into ``LOCAL_WARP_SEGMENTS`` equal parts, each played at its
    own relative speed, uniform in ``1 ± local_warp``), a gap (a stretch of up to ``gap`` of
    the frames, its length and place uniform, replaced by the straight line between the frames
    on either side, as a tracker fills an occlusion), a change of motion amplitude (every
    frame's offset from the sequence's time-averaged pose scaled by a factor uniform in
    ``1 ± amplitude_range``), a rotation about the vertical axis through the sequence's
    centroid (angle uniform in ``± rotation_degrees``) and a per-axis scale about the centroid
    (factors uniform in ``1 ± scale_range``).

    Parameters
    ----------
    inputs : torch.Tensor, shape (B, T, L*3)
        Raw coordinates.
    padding_mask : torch.Tensor of bool, shape (B, T)
        True at padded frames (a valid prefix per row).
    rotation_degrees, scale_range, time_warp, local_warp, amplitude_range, gap : float
        Ranges as described; 0 switches a part off.
    vertical_axis : int, default 1
        Coordinate index of the vertical axis.
    generator : torch.Generator, optional
        CPU random generator, for reproducible draws.

    Returns
    -------
    inputs, padding_mask : torch.Tensor
        The augmented batch (the frame count may change with ``time_warp``); padding is zero.
    """
    batch, frames, width = inputs.shape
    device = inputs.device
    lengths = (~padding_mask).sum(dim=1)

    def uniform(spread: float) -> torch.Tensor:
        draw = torch.rand(batch, generator=generator, dtype=torch.float32) * 2.0 - 1.0
        return (draw * spread).to(device)

    points = inputs.reshape(batch, frames, width // 3, 3)
    if time_warp > 0 or local_warp > 0:
        speed = 1.0 + uniform(time_warp) if time_warp > 0 else torch.ones(batch, device=device)
        new_lengths = torch.round(lengths / speed).clamp_min(1).long()
        new_frames = int(new_lengths.max())
        t = torch.arange(new_frames, device=device, dtype=torch.float32)[None, :]
        last = (lengths - 1).to(torch.float32)[:, None]
        step = last / (new_lengths - 1).clamp_min(1).to(torch.float32)[:, None]
        if local_warp > 0:
            progress = (t * step / last.clamp_min(1.0)).clamp(max=1.0)
            position = _warped(progress, local_warp, uniform) * last
        else:
            position = torch.minimum(t * step, last)  # (B, new_frames), in source frames
        before = position.floor().long()
        after = torch.minimum(before + 1, (lengths - 1)[:, None])
        weight = (position - before.to(torch.float32))[:, :, None, None]
        points = _frames_at(points, before) * (1.0 - weight) + _frames_at(points, after) * weight
        padding_mask = torch.arange(new_frames, device=device)[None, :] >= new_lengths[:, None]
        lengths = new_lengths
    if gap > 0:
        points = _with_gap(points, lengths, gap, generator)
    valid = (~padding_mask).to(points.dtype)[:, :, None, None]
    if amplitude_range > 0:
        frames_valid = valid.sum(dim=1, keepdim=True).clamp_min(1.0)
        mean_pose = (points * valid).sum(dim=1, keepdim=True) / frames_valid
        factor = (1.0 + uniform(amplitude_range))[:, None, None, None]
        points = (mean_pose + factor * (points - mean_pose)) * valid
    count = valid.sum(dim=1, keepdim=True) * points.shape[2]
    centroid = (points * valid).sum(dim=(1, 2), keepdim=True) / count
    centred = points - centroid
    if rotation_degrees > 0:
        angle = uniform(math.radians(rotation_degrees))
        cos, sin = torch.cos(angle), torch.sin(angle)
        a, b = [axis for axis in range(3) if axis != vertical_axis]
        rotation = torch.zeros(batch, 3, 3, device=device, dtype=points.dtype)
        rotation[:, vertical_axis, vertical_axis] = 1.0
        rotation[:, a, a] = cos
        rotation[:, a, b] = -sin
        rotation[:, b, a] = sin
        rotation[:, b, b] = cos
        centred = torch.einsum("btlj,bij->btli", centred, rotation)
    if scale_range > 0:
        factors = torch.stack([1.0 + uniform(scale_range) for _ in range(3)], dim=1)
        centred = centred * factors[:, None, None, :]
    points = (centred + centroid) * valid
    return points.reshape(batch, points.shape[1], width), padding_mask


def _with_gap(
    points: torch.Tensor, lengths: torch.Tensor, gap: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Each sequence of ``points`` (B, T, L, 3) with one stretch filled in by a straight line.

    The stretch holds ``floor(u · gap · length)`` frames (u uniform in [0, 1)) at a uniform
    place; its frames are interpolated between the last frame before it and the first after
    it (the sequence's first or last frame where the stretch touches an end).
    """
    batch, frames = points.shape[:2]
    device = points.device
    draws = torch.rand(batch, 2, generator=generator, dtype=torch.float32).to(device)
    span = (draws[:, 0] * gap * lengths).floor().long()
    start = (draws[:, 1] * (lengths - span + 1)).floor().long().minimum(lengths - span)
    left = (start - 1).clamp_min(0)
    right = torch.minimum(start + span, lengths - 1)
    t = torch.arange(frames, device=device)[None, :]
    inside = (t >= start[:, None]) & (t < (start + span)[:, None])
    weight = (t - left[:, None]).to(points.dtype) / (right - left).clamp_min(1)[:, None]
    weight = weight.clamp(0.0, 1.0)[:, :, None, None]
    filled = _frames_at(points, left[:, None]) * (1.0 - weight)
    filled = filled + _frames_at(points, right[:, None]) * weight
    return torch.where(inside[:, :, None, None], filled, points)


def _frames_at(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``points[b, index[b, f]]`` for a batch (B, T, L, 3) and frame indices (B, F)."""
    shape = (*index.shape, *points.shape[2:])
    return torch.gather(points, 1, index[:, :, None, None].expand(shape))


def _warped(
    progress: torch.Tensor, spread: float, uniform: Callable[[float], torch.Tensor]
) -> torch.Tensor:
    """A random monotone map of [0, 1] onto itself, one per row of ``progress`` (B, F).

    Output time is cut into ``LOCAL_WARP_SEGMENTS`` equal parts; part k advances through the
    source at relative speed ``1 + uniform(spread)``, normalised so the whole sequence is
    still covered from its first frame to its last.
    """
    speeds = torch.stack([1.0 + uniform(spread) for _ in range(LOCAL_WARP_SEGMENTS)], dim=1)
    shares = speeds / speeds.sum(dim=1, keepdim=True)  # (B, S), source time per part
    starts = torch.cumsum(shares, dim=1) - shares
    scaled = progress * LOCAL_WARP_SEGMENTS
    part = scaled.floor().long().clamp(max=LOCAL_WARP_SEGMENTS - 1)
    within = scaled - part.to(scaled.dtype)
    return torch.gather(starts, 1, part) + within * torch.gather(shares, 1, part)


def _lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to the peak, then cosine decay to zero (per optimiser step)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _ema_decay(ema_epochs: float, steps_per_epoch: int) -> float:
    """Per-step decay whose weight falls to 1/e after ``ema_epochs`` epochs of steps."""
    return math.exp(-1.0 / (ema_epochs * steps_per_epoch))


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only: biases and norm gains stay undecayed (AdamW practice)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


@contextlib.contextmanager
def _runtime(config: TrainConfig, device: torch.device) -> Iterator[None]:
    """Seeded, optionally single-threaded / deterministic torch state, restored afterwards."""
    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        if config.deterministic:
            if device.type == "cuda":
                # cuBLAS needs this to be reproducible (read when cuBLAS starts).
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(config.seed)
            yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_deterministic)


def relation_loss(features: torch.Tensor, teacher_distances: torch.Tensor) -> torch.Tensor:
    """Distance-wise relational distillation loss of one batch.

    The Euclidean distances between every two rows of ``features`` (B, D) and the teacher's
    distances ``teacher_distances`` (B, B) of the same pairs are each divided by their mean
    over the B·(B-1)/2 pairs (so only the shape of the geometry counts, not its units), then
    compared by the smooth L1 (Huber, δ = 1) loss, averaged over the pairs. Only pairs i < j are
    used: the diagonal is zero for both and the teacher's matrix is symmetric. A batch of one
    has no pairs and gives 0.
    """
    first, second = torch.triu_indices(len(features), len(features), offset=1)
    if len(first) == 0:
        return features.sum() * 0.0  # keeps the graph (and the device) of a real loss
    student = (features[first] - features[second]).norm(dim=1)
    teacher = teacher_distances[first, second].to(student.dtype)
    tiny = torch.finfo(student.dtype).tiny
    student = student / student.mean().clamp_min(tiny)
    teacher = teacher / teacher.mean().clamp_min(tiny)
    return F.smooth_l1_loss(student, teacher)


def decoupled_kd_terms(
    logits: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two parts of KL(teacher ‖ softmax(logits)) per row: (TCKD, NCKD), each shape (B,).

    TCKD is the KL divergence between the binary distributions (p_label, 1 - p_label) of the
    teacher and the student; NCKD is the KL divergence between their distributions over the
    other classes, each renormalised to sum to 1. Then ``KL = TCKD + (1 - p_label)·NCKD``
    row by row, with p_label the teacher's (Zhao et al., "Decoupled Knowledge Distillation",
    CVPR 2022). Pass ``logits / T`` for a temperature T. A row whose teacher puts everything on
    the label has no non-target distribution; its NCKD is 0.
    """
    log_p = F.log_softmax(logits, dim=1)
    is_label = F.one_hot(labels, logits.shape[1]).bool()
    log_p_label = log_p.gather(1, labels[:, None]).squeeze(1)
    # log(1 - p_label) as a log-sum-exp over the other classes: exact even when p_label ≈ 1.
    log_p_rest = torch.logsumexp(log_p.masked_fill(is_label, -torch.inf), dim=1)
    teacher_label = teacher.gather(1, labels[:, None]).squeeze(1)
    teacher_rest = (1 - teacher_label).clamp_min(0)
    tckd = (
        torch.xlogy(teacher_label, teacher_label)
        - teacher_label * log_p_label
        + torch.xlogy(teacher_rest, teacher_rest)
        - teacher_rest * log_p_rest
    )
    tiny = torch.finfo(teacher.dtype).tiny
    teacher_other = teacher.masked_fill(is_label, 0) / teacher_rest.clamp_min(tiny)[:, None]
    # masked_fill, not -inf arithmetic: 0·(-inf) would make the label's entry NaN.
    log_student_other = (log_p - log_p_rest[:, None]).masked_fill(is_label, 0)
    nckd = (torch.xlogy(teacher_other, teacher_other) - teacher_other * log_student_other).sum(
        dim=1
    )
    return tckd, nckd


def _matrix(values: ArrayLike, shape: tuple[int, int], name: str, axes: str) -> np.ndarray:
    """``values`` as float64 of exactly ``shape``, or a ValueError naming ``name`` and its axes."""
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.shape != shape:
        raise ValueError(f"{name} must have shape {shape} ({axes}), got {matrix.shape}")
    return matrix


def _check_distances(teacher_distances: ArrayLike | None, n: int) -> torch.Tensor | None:
    if teacher_distances is None:
        return None
    distances = _matrix(teacher_distances, (n, n), "teacher_distances", "train rows x train rows")
    bad = ~np.isfinite(distances) | (distances < 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"teacher_distances must be finite and non-negative; entry ({i}, {j}) is "
            f"{float(distances[i, j])}"
        )
    return torch.from_numpy(distances.astype(np.float32))


def _check_teacher(
    teacher_targets: ArrayLike | None, n: int, n_classes: int
) -> torch.Tensor | None:
    if teacher_targets is None:
        return None
    targets = _matrix(teacher_targets, (n, n_classes), "teacher_targets", "train rows x classes")
    if not np.all(np.isfinite(targets)) or targets.min() < 0:
        raise ValueError("teacher_targets must be finite and non-negative")
    sums = targets.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > 1e-4):
        i = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"teacher_targets rows must sum to 1; row {i} sums to {sums[i]:.6g}")
    return torch.from_numpy((targets / sums[:, None]).astype(np.float32))


@torch.inference_mode()
def _evaluate(
    model: MotionTransformer,
    sequences: np.ndarray,
    lengths: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Logits (N, C) on the CPU, batches of similar length to keep padding small."""
    model.eval()
    order = np.argsort(lengths, kind="stable")
    logits = torch.empty(len(lengths), model.n_classes)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        inputs, mask = _batch(sequences, lengths, index, device)
        logits[torch.from_numpy(index)] = model(inputs, mask).float().cpu()
    return logits


def train(
    *,
    train_set: DatasetLike,
    validation_set: DatasetLike | None,
    config: TrainConfig | None = None,
    teacher_targets: ArrayLike | None = None,
    teacher_distances: ArrayLike | None = None,
    progress: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train a :class:`~gkd.student.MotionTransformer`, directly or by distillation.

    Parameters
    ----------
    train_set : MotionDataset
        Training sequences.
    validation_set : MotionDataset or None
        Evaluated after every epoch; the best epoch's weights are returned (see
        ``TrainConfig.select``). None trains for exactly ``config.epochs`` and keeps the last
        epoch: the refit step, on train + validation with the epoch count found before.
    config : TrainConfig, optional
        Hyperparameters; default ``TrainConfig()``.
    teacher_targets : array_like, shape (N_train, C), optional
        Soft targets for the training rows (same order), e.g. from
        :func:`gkd.teacher.soft_targets` with the training sample's own entry left out. Given:
        distillation loss ``alpha·CE + beta·T²·KL`` (or its decoupled form, see
        ``TrainConfig.non_target_weight``); None: plain cross-entropy.
    teacher_distances : array_like, shape (N_train, N_train), optional
        The teacher's distances between the training rows (same order); needed by the
        relational term when distilling with ``config.relation_weight`` > 0, unused otherwise.
    progress : callable, optional
        Called with an :class:`EpochStats` after every epoch.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        If the datasets or targets are malformed or disagree in classes or landmarks.
    TypeError
        If a dataset lacks the ``MotionDataset`` attributes.
    """
    config = config or TrainConfig()
    if config.preprocessing is None:
        names = getattr(train_set, "landmark_names", None) or []
        config = replace(config, preprocessing=Preprocessing.for_landmarks(names))
    device = resolve_device(config.device)
    sequences, lengths, labels = _dataset_arrays(train_set, "train_set")
    class_names = [str(name) for name in train_set.class_names]
    n_classes = len(class_names)
    validation = None
    if validation_set is not None:
        validation = _dataset_arrays(validation_set, "validation_set")
        if list(validation_set.class_names) != class_names:
            raise ValueError("validation_set.class_names differ from train_set.class_names")
        if validation[0].shape[2] != sequences.shape[2]:
            raise ValueError(
                f"validation_set has {validation[0].shape[2] // 3} landmarks, "
                f"train_set has {sequences.shape[2] // 3}"
            )
    teacher = _check_teacher(teacher_targets, len(labels), n_classes)
    relations = _check_distances(teacher_distances, len(labels))
    if teacher is None or config.relation_weight == 0:
        relations = None
    elif relations is None:
        raise ValueError(
            f"TrainConfig.relation_weight is {config.relation_weight}: distillation then needs "
            "teacher_distances (train rows x train rows)"
        )
    labels_t = torch.from_numpy(labels)
    n = len(labels)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = min(config.warmup_epochs * steps_per_epoch, total_steps)

    started = time.perf_counter()
    history: list[EpochStats] = []
    with _runtime(config, device):
        model = MotionTransformer(
            sequences.shape[2],
            n_classes,
            d_model=config.d_model,
            n_heads=config.n_heads,
            n_layers=config.n_layers,
            dim_feedforward=config.dim_feedforward,
            dropout=config.dropout,
            preprocessing=config.preprocessing,
            frames_per_token=config.frames_per_token,
            positions=config.positions,
        ).to(device)
        optimizer = torch.optim.AdamW(_parameter_groups(model, config.weight_decay), lr=config.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _lr_factor(step, warmup_steps, total_steps)
        )
        # The average is what gets validated and returned; the raw model only takes the steps.
        averaged: AveragedModel | None = None
        if config.ema_epochs > 0:
            decay = _ema_decay(config.ema_epochs, steps_per_epoch)
            averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
        evaluated = model if averaged is None else cast(MotionTransformer, averaged.module)
        augment_generator = torch.Generator().manual_seed(config.seed + 1)
        shuffle = np.random.default_rng(config.seed)
        best_key: tuple[float, float] | None = None
        best_epoch = config.epochs
        best_state: dict[str, torch.Tensor] | None = None
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            loss_sum, correct = 0.0, 0
            order = shuffle.permutation(n)
            for start in range(0, n, config.batch_size):
                index = order[start : start + config.batch_size]
                inputs, mask = _batch(sequences, lengths, index, device)
                if config.augment:
                    inputs, mask = augment_batch(
                        inputs,
                        mask,
                        rotation_degrees=config.rotation_degrees,
                        scale_range=config.scale_range,
                        time_warp=config.time_warp,
                        local_warp=config.local_warp,
                        amplitude_range=config.amplitude_range,
                        gap=config.gap,
                        vertical_axis=config.vertical_axis,
                        generator=augment_generator,
                    )
                target = labels_t[index].to(device)
                # forward() is head(encode()); the relational term needs the features too.
                features = model.encode(inputs, mask)
                logits = model.head(features)
                smoothing = config.label_smoothing if teacher is None else 0.0
                hard = F.cross_entropy(logits, target, label_smoothing=smoothing)
                if teacher is None:
                    loss = hard
                else:
                    soft = teacher[torch.from_numpy(index)].to(device)
                    t = config.temperature
                    if config.non_target_weight is None:
                        log_p = F.log_softmax(logits / t, dim=1)
                        kl = F.kl_div(log_p, soft, reduction="batchmean")
                        loss = config.alpha * hard + config.beta * t * t * kl
                    else:
                        tckd, nckd = decoupled_kd_terms(logits / t, soft, target)
                        kd = config.beta * tckd.mean() + config.non_target_weight * nckd.mean()
                        loss = config.alpha * hard + t * t * kd
                    if relations is not None:
                        rows = torch.from_numpy(index)
                        pairs = relations[rows][:, rows].to(device)
                        loss = loss + config.relation_weight * relation_loss(features, pairs)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                if averaged is not None:
                    averaged.update_parameters(model)
                loss_sum += float(loss.detach()) * len(index)
                correct += int((logits.detach().argmax(dim=1) == target).sum())
            validation_loss = validation_accuracy = None
            if validation is not None:
                val_logits = _evaluate(evaluated, *validation[:2], config.eval_batch_size, device)
                val_labels = torch.from_numpy(validation[2])
                validation_loss = float(F.cross_entropy(val_logits, val_labels))
                validation_accuracy = float((val_logits.argmax(dim=1) == val_labels).float().mean())
                key = (
                    (validation_accuracy, -validation_loss)
                    if config.select == "accuracy"
                    else (-validation_loss, validation_accuracy)
                )
                if best_key is None or key > best_key:
                    best_key, best_epoch = key, epoch
                    best_state = copy.deepcopy(evaluated.state_dict())
            stats = EpochStats(
                epoch=epoch,
                epochs=config.epochs,
                train_loss=loss_sum / n,
                train_accuracy=correct / n,
                validation_loss=validation_loss,
                validation_accuracy=validation_accuracy,
                lr=float(optimizer.param_groups[0]["lr"]),
                seconds=time.perf_counter() - epoch_start,
            )
            history.append(stats)
            if progress is not None:
                progress(stats)
        if best_state is None and averaged is not None:
            best_state = averaged.module.state_dict()
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
    return TrainResult(
        model=model,
        config=config,
        history=history,
        best_epoch=best_epoch,
        class_names=class_names,
        device=str(device),
        seconds=time.perf_counter() - started,
        distilled=teacher is not None,
    )


def predict_proba(
    model: MotionTransformer,
    dataset: DatasetLike,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Class probabilities of every sequence in ``dataset``.

    Parameters
    ----------
    model : MotionTransformer
        A trained student (e.g. ``TrainResult.model`` or from :func:`load_checkpoint`).
    dataset : MotionDataset
        Sequences to classify; the labels are not used.
    batch_size : int, default 256
        Sequences per forward pass (grouped by length to limit padding).
    device : str or torch.device, optional
        Where to run; default: where the model's weights are. The model is moved there.

    Returns
    -------
    numpy.ndarray of float32, shape (N, C)
        Softmax probabilities, rows in the dataset's order.

    Raises
    ------
    ValueError
        If the dataset's landmark count does not match the model.
    """
    if device is None:
        target = next(model.parameters()).device
    else:
        target = resolve_device(device) if isinstance(device, str) else device
    model.to(target)
    sequences = np.asarray(dataset.sequences)
    if sequences.ndim != 4 or sequences.shape[2] * 3 != model.n_inputs:
        raise ValueError(
            f"dataset.sequences has shape {sequences.shape}; the model expects "
            f"(N, T, {model.n_inputs // 3}, 3)"
        )
    lengths = np.asarray(dataset.lengths).astype(np.int64)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    flat = sequences.reshape(sequences.shape[0], sequences.shape[1], -1)
    logits = _evaluate(model, flat, lengths, batch_size, target)
    return torch.softmax(logits, dim=1).numpy()


def ensemble_proba(
    models: Sequence[MotionTransformer],
    dataset: DatasetLike,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Mean class probabilities of several students (an ensemble); see :func:`predict_proba`.

    Raises
    ------
    ValueError
        If ``models`` is empty or the students disagree on the number of classes.
    """
    if not models:
        raise ValueError("an ensemble needs at least one model")
    classes = {model.n_classes for model in models}
    if len(classes) > 1:
        raise ValueError(f"the students of an ensemble predict different class counts {classes}")
    return mean_probabilities(
        [predict_proba(model, dataset, batch_size=batch_size, device=device) for model in models]
    )


def mean_probabilities(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of several students' ``(n_samples, n_classes)`` class probabilities.

    Summed in the given order, so that an ensemble scored from saved probabilities
    (``benches/student_seeds.py``) breaks argmax ties exactly as :func:`ensemble_proba` does.

    Raises
    ------
    ValueError
        If ``probabilities`` is empty or its arrays differ in shape.
    """
    if not probabilities:
        raise ValueError("an ensemble needs at least one member's probabilities")
    first = np.asarray(probabilities[0])
    total = first.astype(np.result_type(first.dtype, np.float32), copy=True)
    for index, member in enumerate(probabilities[1:], start=1):
        member = np.asarray(member)
        if member.shape != first.shape:
            raise ValueError(
                f"member {index}'s probabilities have shape {member.shape}, "
                f"member 0's {first.shape}"
            )
        total += member
    return total / len(probabilities)


def member_seeds(seed: int, size: int) -> list[int]:
    """Seeds of the ``size`` students of run ``seed``: ``seed * size + i``.

    Runs 0, 1, 2 of three-student ensembles use seeds 0-2, 3-5 and 6-8, so no two runs share a
    student, and a single student (``size`` 1) keeps its run's seed.
    """
    if size < 1:
        raise ValueError(f"an ensemble needs at least one student, got {size}")
    return [seed * size + i for i in range(size)]


def predict(
    model: MotionTransformer,
    dataset: DatasetLike,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Predicted class index per sequence (int64, shape (N,)); see :func:`predict_proba`."""
    probabilities = predict_proba(model, dataset, batch_size=batch_size, device=device)
    return probabilities.argmax(axis=1).astype(np.int64)


def save_checkpoint(
    path: Path,
    result: TrainResult | MotionTransformer,
    *,
    class_names: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Save weights, model hyperparameters, preprocessing, class names and training record.

    The file is a ``torch.save`` of plain types and tensors only, so it loads with
    ``torch.load(weights_only=True)``. It is written to a temporary name and then renamed, so
    a process killed while saving leaves the earlier file (or none), never a truncated one.

    Parameters
    ----------
    path : pathlib.Path
        Output file (parent folders are created).
    result : TrainResult or MotionTransformer
        What to save; a bare model needs ``class_names``.
    class_names : sequence of str, optional
        Overrides (or, for a bare model, supplies) the class names.
    extra : mapping, optional
        Additional plain-type metadata (e.g. teacher settings) stored under ``"extra"``.

    Raises
    ------
    ValueError
        If the class names are missing or do not match the model's class count.
    """
    if isinstance(result, TrainResult):
        model = result.model
        names = list(class_names) if class_names is not None else result.class_names
        training: dict[str, Any] | None = result.record()
    elif isinstance(result, MotionTransformer):
        model = result
        if class_names is None:
            raise ValueError("save_checkpoint of a bare model needs class_names")
        names = list(class_names)
        training = None
    else:
        raise TypeError(f"cannot save a {type(result).__name__}; pass a TrainResult or model")
    if len(names) != model.n_classes:
        raise ValueError(f"{len(names)} class names for a model with {model.n_classes} classes")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "hparams": copy.deepcopy(model.hparams),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "class_names": [str(name) for name in names],
        "training": training,
        "extra": dict(extra) if extra is not None else None,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target, then renamed over it: a run killed while saving leaves the
    # previous file or none, never a truncated one (experiments resume from these files).
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_checkpoint(
    path: Path, *, device: str | torch.device = "cpu"
) -> tuple[MotionTransformer, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : pathlib.Path
        The checkpoint file.
    device : str or torch.device, default "cpu"
        Where to put the model ("auto" picks the GPU when present).

    Returns
    -------
    model : MotionTransformer
        In eval mode; gives the same predictions as the model that was saved.
    metadata : dict
        ``class_names``, ``hparams``, ``training`` (config dict, history, best_epoch, ... or
        None) and ``extra``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a gkd student checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    target = resolve_device(device) if isinstance(device, str) else device
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise ValueError(f"{path} is not a readable gkd checkpoint: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a gkd student checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {payload.get('version')!r}")
    model = MotionTransformer.from_hparams(payload["hparams"])
    model.load_state_dict(payload["state_dict"])
    model.to(target).eval()
    metadata = {key: payload[key] for key in ("class_names", "hparams", "training", "extra")}
    return model, metadata
