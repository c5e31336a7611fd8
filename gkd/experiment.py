"""Whole experiments: teacher distances, k-NN, the direct transformer and the distilled student.

One call runs the paper's comparison end to end and writes its evidence::

    from pathlib import Path
    from gkd.experiment import run_mhad
    result = run_mhad(protocol="paper", out=Path("runs/mhad-paper"))
    print(result.markdown)

The steps, for a dataset with training, validation and test rows:

1. the teacher's distance matrix over all sequences, once, from the on-disk cache or computed
   in resumable blocks (:mod:`gkd.cache`), then indexed for every train / validation / test
   block it is needed in;
2. k-NN: k chosen by accuracy on the validation split (references: the training split); the
   test predictions use the training and validation rows as references (nothing is fitted, so
   the validation subjects are data like any other once k is fixed);
3. the teacher's soft targets at a fixed softmax temperature (``TeacherConfig.temperature``,
   or with ``None`` the candidate with the lowest cross-entropy on the validation split);
   training rows leave their own entry out;
4. per seed, the transformer trained directly and the student distilled from the soft targets,
   each keeping the epoch with the best validation accuracy, each saved as soon as it is
   trained (a rerun into the same folder reuses the students it finds there for the same
   data and settings, so a stopped run goes on where it stopped);
5. test metrics (accuracy, macro precision / recall / F1) and inference milliseconds per sample,
   measured the same way for each method after a warm-up (k-NN: distances from one test
   sample to every reference, plus the vote; students: batched inference over the test split
   on the CPU, and on the GPU when there is one);
6. ``results.md``, ``results.json``, plots and checkpoints under the output folder.

Every choice is made on the validation split; the test split is used only for the final numbers.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from gkd.blends import Blends, blend_sequences
from gkd.cache import DistanceCache
from gkd.datasets import (
    DatasetSplits,
    MotionDataset,
    load_mhad_all,
    load_npz,
    load_signum,
)
from gkd.datasets.mhad import PROTOCOLS
from gkd.distances import (
    HandParams,
    Metric,
    ProgressCallback,
    check_lead,
    cross,
    with_motion,
)
from gkd.metrics import classification_metrics, confusion_matrix, time_inference
from gkd.report import (
    plot_confusion_matrix,
    plot_k_curve,
    plot_training_curves,
    results_markdown,
    write_results,
)
from gkd.student import MotionTransformer, Preprocessing
from gkd.teacher import (
    DEFAULT_TEMPERATURE,
    MHAD_BLENDS,
    MHAD_LEAD,
    choose_k,
    knn_predict,
    soft_targets,
)
from gkd.train import (
    EpochStats,
    TrainConfig,
    TrainResult,
    ensemble_proba,
    load_checkpoint,
    member_seeds,
    resolve_device,
    save_checkpoint,
    train,
)

__all__ = [
    "DEFAULT_TEMPERATURES",
    "MHAD_EPOCHS",
    "MHAD_TEACHER",
    "QUICK_EPOCHS",
    "REFIT_SCALES",
    "ExperimentResult",
    "Predictions",
    "Reporter",
    "TeacherConfig",
    "predict_file",
    "run_experiment",
    "run_mhad",
    "run_npz",
    "run_signum",
]

# Training epochs for UTD-MHAD: TrainConfig's default, chosen by cross-validation on UTD-MHAD's
# training subjects (see gkd/train.py), kept here so that a change there cannot break the time
# budget: the whole default run (one seed: direct and distilled, each selected then refit) took
# 765 s with today's refits (direct 2x, distilled 1.5x) on 2 idle cores of an AMD EPYC (AVX2);
# before the longer refits, 672 s at 200 epochs with the local warp on such a machine, plus
# 30 s for a fresh distance cache (1,124 s before the warp on another such machine; 307 s at
# 150 epochs on an earlier, faster one). --quick: a check that it all works.
MHAD_EPOCHS = 200
QUICK_EPOCHS = 8

# The refit's length in chosen epochs, per student. Its schedule is squeezed into those epochs,
# so at 1.0 it gets less learning than the chosen run had (56 against 87 peak-rate epochs at
# epoch 110 of 200). In the refit check on UTD-MHAD's training subjects 1, 3, 5
# (benches/tune_mhad.py --refit-check; docs/results.md) 1.5 beat 1.0 for the distilled student
# by 2.2 points (standard error 0.6, 10 of 12 won) and 2 did not beat 1.5 (+0.5, SE 0.3); for
# the direct transformer 2 beat 1.5 by 1.5 points (SE 0.4, 10 of 12 won).
REFIT_SCALES: Mapping[str, float] = MappingProxyType({"direct": 2.0, "distilled": 1.5})

RefitScale = float | Mapping[str, float] | None
"""One refit length for every student, or lengths by student name (a student not named keeps
its length in :data:`REFIT_SCALES`); None: :data:`REFIT_SCALES`."""

# Softmax temperatures on min-max normalised distances (range 1): the paper's d̃ spans [0, 1],
# so useful temperatures are far below 1 (at T = 1 every target is almost uniform).
DEFAULT_TEMPERATURES: tuple[float, ...] = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)

TrainSettings = TrainConfig | Mapping[str, Any] | None
"""A full :class:`TrainConfig`, or a mapping of fields that override the data set's defaults."""


# Method names: the rows of the results table and the keys of results.json.
KNN, DIRECT, DISTILLED = "k-NN teacher", "Transformer (direct)", "Student (distilled)"

# The students an experiment can train, by their short names (``students=``, ``--students``).
STUDENTS: dict[str, str] = {"direct": DIRECT, "distilled": DISTILLED}


@dataclass(frozen=True)
class TeacherConfig:
    """The geometric teacher: its distance, its k-NN and its soft targets.

    Attributes
    ----------
    metric : str
        Frame cost (see :func:`gkd.cross`).
    groups : tuple of str
        Landmark groups (or landmark names) with one distance matrix each, summed: the paper's
        SIGNUM teacher is ``("left_hand", "right_hand")`` with the ``hand`` metric. Empty: one
        matrix over all landmarks.
    band, normalize, missing_cost, hand
        DTW band, path-length normalisation, missing-frame cost and hand-cost parameters, as
        for :func:`gkd.cross`.
    lead : float
        Frames ahead along each landmark's velocity (:func:`gkd.with_motion`), so that the
        frame cost sees motion as well as pose; 0 compares poses alone. ``procrustes`` and
        ``procrustes-sum`` only. :func:`run_mhad`'s default teacher uses
        :data:`gkd.teacher.MHAD_LEAD` (10).
    blends : float
        Blends of two training sequences per training sequence (:func:`gkd.blend_sequences`)
        added to the distilled student's training set, each with the teacher's target from its
        distances to the training sequences other than its two sources; 0: none. On UTD-MHAD,
        with ``lead`` 10, 2 raised the distilled student by 1.6 points on held-out training
        subjects (docs/results.md), and :func:`run_mhad`'s default teacher uses
        :data:`gkd.teacher.MHAD_BLENDS` (2). Not with the ``hand`` metric, whose missing hands
        are zeros.
    ks : tuple of int
        k-NN candidates, chosen by validation accuracy.
    weighting : {"uniform", "distance"}
        k-NN vote weighting.
    temperature : float or None
        Soft-target temperature, default :data:`gkd.teacher.DEFAULT_TEMPERATURE` (0.1, chosen
        by cross-validating the distilled student on UTD-MHAD training subjects). None: the
        candidate in ``temperatures`` with the lowest validation cross-entropy, which makes
        the best-calibrated teacher but, on UTD-MHAD, near one-hot training targets and a
        student 4 points worse in that cross-validation.
    temperatures : tuple of float
        Candidates for ``temperature=None``.
    normalization : {"global", "row"}
        How distances are scaled before the softmax: ``"global"``, the paper's min-max over
        the train x train matrix (the same scale is used for the validation queries, so the
        chosen temperature carries over); ``"row"``, min-max within each row.
    leave_one_out : bool
        Leave each training sample's own entry out of its soft target (its zero self-distance
        would otherwise leak its label into the target, as in the paper's code).
    soft_k : int, optional
        Soft targets from each sample's ``soft_k`` nearest references only.
    knn_references : {"train+validation", "train"}
        References of the final k-NN on the test split.
    """

    metric: Metric = "procrustes"
    groups: tuple[str, ...] = ()
    band: int | None = None
    normalize: bool = False
    missing_cost: float | None = None
    hand: HandParams | None = None
    lead: float = 0.0
    blends: float = 0.0
    ks: tuple[int, ...] = (1, 3, 5, 7, 9, 11, 15)
    weighting: Literal["uniform", "distance"] = "uniform"
    temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES
    temperature: float | None = DEFAULT_TEMPERATURE
    normalization: Literal["global", "row"] = "global"
    leave_one_out: bool = True
    soft_k: int | None = None
    knn_references: Literal["train+validation", "train"] = "train+validation"

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(str(g) for g in self.groups))
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"TeacherConfig.ks must be positive integers, got {self.ks}")
        candidates = self.temperatures if self.temperature is None else (self.temperature,)
        if not candidates or not all(math.isfinite(t) and t > 0 for t in candidates):
            raise ValueError(
                f"TeacherConfig temperatures must be positive numbers, got {candidates}"
            )
        if self.normalization not in ("global", "row"):
            raise ValueError(
                f"TeacherConfig.normalization must be 'global' or 'row', got {self.normalization!r}"
            )
        if self.knn_references not in ("train+validation", "train"):
            raise ValueError(
                "TeacherConfig.knn_references must be 'train+validation' or 'train', "
                f"got {self.knn_references!r}"
            )
        if self.soft_k is not None and self.soft_k < 1:
            raise ValueError(f"TeacherConfig.soft_k must be >= 1 or None, got {self.soft_k}")
        object.__setattr__(self, "lead", float(self.lead))
        check_lead(self.lead, self.metric, what="TeacherConfig.lead")
        object.__setattr__(self, "blends", float(self.blends))
        if not (math.isfinite(self.blends) and self.blends >= 0):
            raise ValueError(f"TeacherConfig.blends must be a number >= 0, got {self.blends}")
        if self.blends and self.metric == "hand":
            raise ValueError(
                "TeacherConfig.blends does not work with the 'hand' metric: a missing hand is "
                "stored as zeros, and a blend would mix them with a real hand"
            )

    def frames(self, sequences: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """What the engine compares: the landmarks, and with ``lead`` their motion as well."""
        if not self.lead:
            return sequences
        return with_motion(sequences, lengths=lengths, lead=self.lead, name="sequences")

    def engine_options(self) -> dict[str, Any]:
        """The options of :func:`gkd.cross` that this teacher sets (also the cache's key)."""
        return {
            "metric": self.metric,
            "band": self.band,
            "normalize": self.normalize,
            "missing_cost": self.missing_cost,
            "hand": self.hand,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-type form, for JSON and checkpoints."""
        out = asdict(self)
        out["groups"] = list(self.groups)
        out["ks"] = list(self.ks)
        out["temperatures"] = list(self.temperatures)
        out["hand"] = asdict(self.hand) if self.hand is not None else None
        return out


# gkd-run mhad's teacher: frames with their motion 10 frames ahead, two teacher-labelled blends
# per training sequence (gkd/teacher.py says how they were chosen).
MHAD_TEACHER = TeacherConfig(lead=MHAD_LEAD, blends=MHAD_BLENDS)


class Reporter(Protocol):
    """Where an experiment reports what it is doing (the CLI draws progress bars)."""

    def message(self, text: str) -> None:
        """A one-line note (a stage started, a choice was made)."""

    def distances(self, description: str) -> AbstractContextManager[ProgressCallback]:
        """A context giving the callback ``(pairs_done, pairs_total)`` for one matrix."""

    def training(
        self, description: str, epochs: int
    ) -> AbstractContextManager[Callable[[EpochStats], None]]:
        """A context giving the callback called after every training epoch."""


class SilentReporter:
    """A :class:`Reporter` that reports nothing (the library's default)."""

    def message(self, text: str) -> None:
        """Ignore ``text``."""

    @contextlib.contextmanager
    def distances(self, description: str) -> Iterator[ProgressCallback]:
        """Yield a callback that ignores progress."""
        yield lambda done, total: None

    @contextlib.contextmanager
    def training(self, description: str, epochs: int) -> Iterator[Callable[[EpochStats], None]]:
        """Yield a callback that ignores epochs."""
        yield lambda stats: None


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` measured and wrote.

    Attributes
    ----------
    title : str
        The table's heading.
    runs : dict
        Method -> one metrics dict per run (seed): ``accuracy``, ``precision``, ``recall``,
        ``f1`` (0..1), ``infer_ms`` (CPU), ``infer_ms_gpu`` (or None), ...
    summary : dict
        Mean, std and values per method and metric (:func:`gkd.report.summarize`).
    document : dict
        The JSON document written to ``results.json``.
    markdown : str
        The results table with notes (``results.md``).
    k : int
        Chosen number of neighbours.
    temperature : float
        Chosen (or given) soft-target temperature.
    out : pathlib.Path or None
        The output folder.
    files : list of pathlib.Path
        Every file written.
    seconds : float
        Wall time of the whole experiment.
    """

    title: str
    runs: dict[str, list[dict[str, Any]]]
    summary: dict[str, dict[str, dict[str, Any]]]
    document: dict[str, Any]
    markdown: str
    k: int
    temperature: float
    out: Path | None
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Predictions:
    """A student's predictions for a data file (see :func:`predict_file`).

    Attributes
    ----------
    class_names : list of str
        The checkpoint's classes.
    probabilities : numpy.ndarray
        (N, C) float32 softmax probabilities.
    predicted : numpy.ndarray
        (N,) int64 class indices.
    labels : numpy.ndarray or None
        (N,) int64 true classes from the file when it has them under the same class names.
    """

    class_names: list[str]
    probabilities: np.ndarray
    predicted: np.ndarray
    labels: np.ndarray | None

    @property
    def confidence(self) -> np.ndarray:
        """(N,) probability of the predicted class."""
        return self.probabilities[np.arange(len(self.predicted)), self.predicted]


# ----------------------------------------------------------------------------- helpers


def _check_index(index: ArrayLike, n: int, name: str) -> NDArray[np.int64]:
    array = np.asarray(index)
    if array.dtype == bool:
        if array.shape != (n,):
            raise ValueError(f"{name} as a mask must have shape ({n},), got {array.shape}")
        array = np.flatnonzero(array)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of row numbers")
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer row numbers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.min() < 0 or array.max() >= n:
        bad = int(array[(array < 0) | (array >= n)][0])
        raise ValueError(f"{name} holds row {bad}, outside the dataset's 0..{n - 1}")
    if np.unique(array).size != array.size:
        raise ValueError(f"{name} lists a row twice")
    return array


def _teacher_distances(
    dataset: MotionDataset,
    teacher: TeacherConfig,
    *,
    cache: DistanceCache,
    threads: int | None,
    reporter: Reporter,
) -> NDArray[np.float64]:
    """The teacher's (N, N) matrix over all rows: one cached matrix per group, summed."""
    parts = [(g, dataset.select_landmarks(g)) for g in teacher.groups] or [("all", dataset)]
    settings = teacher.engine_options()
    total: NDArray[np.float64] | None = None
    for name, part in parts:
        label = f"{teacher.metric} DTW" + (f" ({name})" if teacher.groups else "")
        frames = teacher.frames(part.sequences, part.lengths)
        found = cache.lookup(frames, lengths=part.lengths, **settings)
        if found is not None:
            reporter.message(f"{label}: from the cache")
            bar: AbstractContextManager[ProgressCallback | None] = contextlib.nullcontext(None)
        else:
            bar = reporter.distances(label)
        with bar as callback:
            matrix = cache.pairwise(
                frames,
                lengths=part.lengths,
                threads=threads,
                progress=callback,
                **settings,
            )
        total = matrix if total is None else total + matrix
    assert total is not None
    return total


def _teacher_cross(
    queries: MotionDataset,
    references: MotionDataset,
    teacher: TeacherConfig,
    *,
    threads: int | None,
    progress: ProgressCallback | None = None,
    cache: DistanceCache | None = None,
    reporter: Reporter | None = None,
    label: str = "",
) -> NDArray[np.float64]:
    """The teacher's (queries x references) distances: one matrix per group, summed.

    With a ``cache``, each matrix comes from it or is computed and kept there. With a cache
    and a ``reporter``, the reporter shows ``label``'s bar, or says the matrices came from the
    cache; otherwise ``progress`` is called."""
    settings = teacher.engine_options()
    groups = [(queries.select_landmarks(g), references.select_landmarks(g)) for g in teacher.groups]
    # (queries, references, their lengths) for each group.
    operands = [
        (
            teacher.frames(a.sequences, a.lengths),
            teacher.frames(b.sequences, b.lengths),
            a.lengths,
            b.lengths,
        )
        for a, b in groups or [(queries, references)]
    ]
    bar: AbstractContextManager[ProgressCallback | None] = contextlib.nullcontext(progress)
    if cache is not None and reporter is not None:
        if all(
            cache.lookup_cross(q, r, query_lengths=ql, reference_lengths=rl, **settings)
            for q, r, ql, rl in operands
        ):
            reporter.message(f"{label}: from the cache")
            bar = contextlib.nullcontext(None)
        else:
            bar = reporter.distances(label)
    total: NDArray[np.float64] = np.zeros((len(queries), len(references)))
    with bar as callback:
        for q, r, ql, rl in operands:
            if cache is not None:
                total += cache.cross(
                    q,
                    r,
                    query_lengths=ql,
                    reference_lengths=rl,
                    threads=threads,
                    progress=callback,
                    **settings,
                )
            else:
                total += cross(
                    q,
                    r,
                    lengths_a=ql,
                    lengths_b=rl,
                    threads=threads,
                    progress=callback,
                    **settings,
                )
    return total


def _teacher_blends(
    references: MotionDataset,
    teacher: TeacherConfig,
    *,
    seed: int,
    scale: float | None,
    temperature: float,
    threads: int | None,
    progress: ProgressCallback | None = None,
    low: float = 0.5,
    cache: DistanceCache | None = None,
    reporter: Reporter | None = None,
) -> tuple[Blends, NDArray[np.float64]]:
    """``teacher.blends`` blends per sequence of ``references`` and the teacher's targets for
    them: from their distances to the references but their own two sources, on the training
    matrix's ``scale`` (as the training rows' targets). ``low``: as for
    :func:`gkd.blend_sequences`; ``cache`` and ``reporter``: as for :func:`_teacher_cross`."""
    made = blend_sequences(
        references,
        round(teacher.blends * len(references)),
        seed=seed,
        low=low,
        centre_landmarks=Preprocessing.for_landmarks(references.landmark_names).centre_landmarks,
    )
    d = _teacher_cross(
        made.dataset,
        references,
        teacher,
        threads=threads,
        progress=progress,
        cache=cache,
        reporter=reporter,
        label=f"{len(made.dataset)} blends, labelled by the teacher",
    )
    d, mode = _normalised(d, scale, teacher.normalization)
    targets = soft_targets(
        d,
        references.labels,
        n_classes=references.n_classes,
        temperature=temperature,
        normalization=mode,  # type: ignore[arg-type]
        exclude=made.exclude(len(references)),
        k=teacher.soft_k,
    )
    return made, targets


def _stacked(first: MotionDataset, second: MotionDataset) -> MotionDataset:
    """``first``'s sequences, then ``second``'s (the same classes and landmarks)."""
    frames = max(first.max_frames, second.max_frames)
    sequences = np.zeros((len(first) + len(second), frames, first.n_landmarks, 3), np.float32)
    sequences[: len(first), : first.max_frames] = first.sequences
    sequences[len(first) :, : second.max_frames] = second.sequences
    return replace(
        first,
        sequences=sequences,
        lengths=np.concatenate([first.lengths, second.lengths]),
        labels=np.concatenate([first.labels, second.labels]),
        subjects=np.concatenate([first.subjects, second.subjects]),
    )


def _knn_inference_ms(
    queries: list[MotionDataset],
    references: list[MotionDataset],
    reference_labels: np.ndarray,
    teacher: TeacherConfig,
    *,
    k: int,
    n_classes: int,
    threads: int | None,
    repeats: int,
) -> float:
    """Milliseconds for one query: its distances to every reference (all groups) and the vote.

    Each timed call takes the next test sequence, so the figure is not one lucky length. The
    references' frames are prepared once, as a deployed k-NN would keep them; each query's
    are prepared in the timed call.
    """
    n_queries = len(queries[0])
    counter = iter(range(1 << 62))
    reference_frames = [teacher.frames(r.sequences, r.lengths) for r in references]
    options = teacher.engine_options()

    def one_query() -> None:
        i = next(counter) % n_queries
        distances = sum(
            cross(
                teacher.frames(query.sequences[i : i + 1], query.lengths[i : i + 1]),
                frames,
                lengths_a=query.lengths[i : i + 1],
                lengths_b=reference.lengths,
                threads=threads,
                **options,
            )
            for query, reference, frames in zip(queries, references, reference_frames, strict=True)
        )
        knn_predict(
            distances,
            reference_labels,
            k=k,
            weighting=teacher.weighting,
            n_classes=n_classes,
        )

    return time_inference(one_query, n_samples=1, warmup=1, repeats=repeats)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _student_inference_ms(
    models: Sequence[MotionTransformer],
    test: MotionDataset,
    *,
    batch_size: int,
    threads: int | None,
    repeats: int,
) -> tuple[float, float | None]:
    """Batched inference over the test split (every member of an ensemble): ms per sample on
    the CPU, and on the GPU if any."""
    with _torch_threads(threads):
        cpu = time_inference(
            lambda: ensemble_proba(models, test, batch_size=batch_size, device="cpu"),
            n_samples=len(test),
            warmup=1,
            repeats=repeats,
        )
    gpu = None
    if torch.cuda.is_available():
        gpu = time_inference(
            lambda: ensemble_proba(models, test, batch_size=batch_size, device="cuda"),
            n_samples=len(test),
            warmup=2,
            repeats=repeats,
            synchronize=torch.cuda.synchronize,
        )
        for model in models:
            model.to("cpu")
    return cpu, gpu


def _normalised(
    distances: np.ndarray, scale: float | None, normalization: str
) -> tuple[np.ndarray, str]:
    """Distances and the normalisation argument for :func:`gkd.teacher.soft_targets`.

    ``"global"``: divide by the training matrix's range and let the softmax ignore the shift
    (softmax is invariant to a constant per row), so queries from any split share one scale.
    """
    if normalization == "global":
        assert scale is not None
        return distances / scale, "none"
    return distances, normalization


def _choose_temperature(
    validation_distances: np.ndarray,
    train_labels: np.ndarray,
    validation_labels: np.ndarray,
    teacher: TeacherConfig,
    *,
    n_classes: int,
    scale: float | None,
) -> tuple[float, dict[float, dict[str, float]]]:
    """The temperature whose soft predictions have the lowest validation cross-entropy."""
    candidates = teacher.temperatures if teacher.temperature is None else (teacher.temperature,)
    d, mode = _normalised(validation_distances, scale, teacher.normalization)
    scores: dict[float, dict[str, float]] = {}
    rows = np.arange(len(validation_labels))
    for t in candidates:
        p = soft_targets(
            d,
            train_labels,
            n_classes=n_classes,
            temperature=t,
            normalization=mode,  # type: ignore[arg-type]
            k=teacher.soft_k,
        )
        picked = np.clip(p[rows, validation_labels], 1e-12, None)
        scores[t] = {
            "cross_entropy": float(-np.mean(np.log(picked))) + 0.0,  # + 0.0: no "-0.000"
            "accuracy": float(np.mean(p.argmax(axis=1) == validation_labels)),
        }
    best = min(candidates, key=lambda t: (scores[t]["cross_entropy"], t))
    return best, scores


def _training_scale(train_distances: np.ndarray, leave_one_out: bool) -> float:
    """Range (max - min) of the train x train entries the soft targets use.

    With leave-one-out the diagonal is not used; rows are scanned in chunks so that no second
    N x N array is made.
    """
    n = train_distances.shape[0]
    low, high = np.inf, -np.inf
    for start in range(0, n, 1024):
        block = np.array(train_distances[start : start + 1024], dtype=np.float64)
        if leave_one_out:
            own = np.arange(start, start + block.shape[0])
            block[own - start, own] = np.nan
        if np.isnan(block).all():
            continue
        low, high = min(low, float(np.nanmin(block))), max(high, float(np.nanmax(block)))
    spread = high - low
    return spread if np.isfinite(spread) and spread > 0 else 1.0


def _machine(threads: int | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": threads or torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # Which copy of gkd ran: an editable install and a frozen copy of the tree look alike.
        "gkd_source": str(Path(__file__).resolve().parent),
    }
    with contextlib.suppress(Exception):
        from gkd import __version__

        info["gkd"] = __version__
    with contextlib.suppress(OSError):
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    return info


def _students(students: Sequence[str]) -> list[str]:
    """The short names of the students to train, in table order; unknown or none: an error."""
    names = [students] if isinstance(students, str) else list(students)
    unknown = [name for name in names if name not in STUDENTS]
    if unknown:
        raise ValueError(f"unknown student {unknown[0]!r}: choose from {', '.join(STUDENTS)}")
    if not names:
        raise ValueError(f"students must name at least one of {', '.join(STUDENTS)}")
    return [short for short in STUDENTS if short in names]


def _refit_scales(refit_scale: RefitScale, students: Sequence[str]) -> dict[str, float]:
    """Each student's refit length: ``refit_scale`` resolved against :data:`REFIT_SCALES`."""
    if refit_scale is None:
        chosen = dict(REFIT_SCALES)
    elif isinstance(refit_scale, Mapping):
        unknown = [name for name in refit_scale if name not in STUDENTS]
        if unknown:
            raise ValueError(
                f"refit_scale names unknown student {unknown[0]!r}: "
                f"choose from {', '.join(STUDENTS)}"
            )
        chosen = {**REFIT_SCALES, **refit_scale}
    else:
        chosen = dict.fromkeys(STUDENTS, refit_scale)
    scales = {short: chosen[short] for short in students}
    for short, scale in scales.items():
        if isinstance(scale, bool) or not (
            isinstance(scale, int | float) and math.isfinite(scale) and scale > 0
        ):
            raise ValueError(
                f"refit_scale of the {short} student must be a positive number, got {scale!r}"
            )
    return {short: float(scale) for short, scale in scales.items()}


def _format_ms(value: float) -> str:
    return f"{value:.3g}" if 1e-3 <= value < 1e5 else f"{value:.2e}"


# ----------------------------------------------------------------------------- core


def _select_student(
    config: TrainConfig,
    *,
    train_set: MotionDataset,
    validation_set: MotionDataset,
    targets: np.ndarray | None,
    relations: np.ndarray | None,
    reporter: Reporter,
    name: str,
) -> TrainResult:
    """The run that chooses a student's epoch on validation (``relations``: the teacher's
    distances between the training rows, for the relational term)."""
    with reporter.training(name, config.epochs) as callback:
        return train(
            train_set=train_set,
            validation_set=validation_set,
            config=config,
            teacher_targets=targets,
            teacher_distances=relations,
            progress=callback,
        )


def _refit_student(
    config: TrainConfig,
    best_epoch: int,
    *,
    refit_set: MotionDataset,
    refit_targets: np.ndarray | None,
    refit_relations: np.ndarray | None,
    refit_scale: float,
    reporter: Reporter,
    name: str,
) -> TrainResult:
    """The model to score: trained again on ``refit_set`` (train + validation) for
    ``refit_scale`` times the epoch chosen on validation, with ``config`` otherwise."""
    epochs = max(1, round(refit_scale * best_epoch))
    with reporter.training(f"{name}, refit", epochs) as callback:
        return train(
            train_set=refit_set,
            validation_set=None,
            config=replace(config, epochs=epochs),
            teacher_targets=refit_targets,
            teacher_distances=refit_relations,
            progress=callback,
        )


def _digest(*arrays: np.ndarray | None, datasets: Sequence[MotionDataset | None] = ()) -> str:
    """SHA-256 of arrays and of the datasets' valid frames, labels, lengths and names."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(b"-" if array is None else np.ascontiguousarray(array, "<f8").tobytes())
    for data in datasets:
        if data is None:
            digest.update(b"-")
            continue
        digest.update(json.dumps([data.class_names, data.landmark_names]).encode())
        digest.update(np.ascontiguousarray(data.lengths, "<i8").tobytes())
        digest.update(np.ascontiguousarray(data.labels, "<i8").tobytes())
        for sequence, length in zip(data.sequences, data.lengths, strict=True):
            digest.update(np.ascontiguousarray(sequence[:length], "<f4").tobytes())
    return digest.hexdigest()


def _student_key(config: TrainConfig, method: str, refit: float | None, inputs: str) -> str:
    """What decides a trained student: its settings, method and inputs (``_digest``).

    The device and thread count are left out: they change floating-point sums, not what the
    student is. The gkd version is in, so a student from other code is trained again.
    """
    from gkd import __version__

    settings = replace(config, device="cpu", threads=None).to_dict()
    header = {"gkd": __version__, "method": method, "refit": refit, "config": settings}
    return hashlib.sha256((json.dumps(header, sort_keys=True) + inputs).encode()).hexdigest()


def _resumed_student(
    path: Path, key: str, selection: str | None, reporter: Reporter
) -> tuple[TrainResult, TrainResult | None] | None:
    """What an earlier run of the same student saved at ``path``.

    (chosen, scored) when the whole student matches ``key``; (chosen, None) when only the
    run that chose its epoch matches ``selection`` (another refit: only that is trained
    again; None where a refit cannot reuse it). None, with a message saying why, when there
    is no such file or it holds another student. The chosen run's own model is not saved
    when it was refit: its result here carries the checkpoint's model, for its record only.
    """
    if not path.is_file():
        return None
    try:
        model, info = load_checkpoint(path, device="cpu")
    except ValueError as error:
        reporter.message(f"{path} is unreadable ({error}); training that student again")
        return None
    resume = (info["extra"] or {}).get("resume") or {}
    if info["training"] is None or "chosen" not in resume:
        reporter.message(f"{path} has no training record; training that student again")
        return None
    chosen = TrainResult.from_record(model, resume["chosen"], info["class_names"])
    if resume.get("key") == key:
        return chosen, TrainResult.from_record(model, info["training"], info["class_names"])
    if selection is not None and resume.get("selection") == selection:
        return chosen, None
    reporter.message(f"{path} holds a student of other data or settings; training it again")
    return None


def run_experiment(
    dataset: MotionDataset,
    *,
    train_index: ArrayLike,
    validation_index: ArrayLike,
    test_index: ArrayLike,
    teacher: TeacherConfig | None = None,
    train_config: TrainConfig | None = None,
    student_landmarks: str | Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    ensemble: int = 1,
    students: Sequence[str] = tuple(STUDENTS),
    refit: bool = True,
    refit_scale: RefitScale = None,
    out: Path | None = None,
    title: str | None = None,
    cache_dir: Path | None = None,
    threads: int | None = None,
    device: str = "auto",
    timing_repeats: int = 5,
    reporter: Reporter | None = None,
    metadata: dict[str, Any] | None = None,
    resume: bool = True,
) -> ExperimentResult:
    """Run the whole comparison on one dataset split into training, validation and test rows.

    Parameters
    ----------
    dataset : MotionDataset
        All sequences; the three index arrays pick its rows.
    train_index, validation_index, test_index : array_like of int (or bool masks)
        Disjoint, non-empty sets of rows.
    teacher : TeacherConfig, optional
        Distance, k-NN and soft-target settings; default ``TeacherConfig()``.
    train_config : TrainConfig, optional
        Student hyperparameters (``seed``, ``device`` and ``threads`` are set per run from the
        arguments below); default ``TrainConfig()``.
    student_landmarks : str or sequence of str, optional
        Landmark groups (or names) the students read, e.g. ``("left_hand", "right_hand")``;
        default all landmarks.
    seeds : sequence of int, default (0,)
        One training run of each student per seed; the table shows mean ± std.
    ensemble : int, default 1
        Students per run: each run's model is the mean of the class probabilities of this
        many students, trained with seeds ``seed * ensemble + i`` (see
        :func:`gkd.train.member_seeds`); inference costs as many forward passes. In
        leave-one-subject-out checks on UTD-MHAD subjects 1, 3 and 5 (``benches/tune_mhad.py
        --ensemble-check``, seeds 0-2) three students beat one by 3.0 (direct) and 2.9
        (distilled) points. A run's ``best_epoch`` is then the list of its students' epochs and
        ``validation_accuracy`` their mean.
    students : sequence of {"direct", "distilled"}, default both
        The students to train and report. One alone halves the training time, e.g. to add
        seeds to a method whose training changed while the other's did not.
    refit : bool, default True
        After choosing the epoch on validation, train each student again on training +
        validation rows for that many epochs (the validation rows join the teacher's
        references too) and report that model: the students then learn from as many
        subjects as the k-NN uses as references. In leave-one-subject-out checks on
        UTD-MHAD subjects 1, 3 and 5 (``benches/tune_mhad.py --refit-check``) the refit
        student was better on every held-out subject and seed. False: report the model
        selected on validation.
    refit_scale : float or mapping of str to float, optional
        The refit trains for this many times the epochs chosen on validation (rounded): one
        number for every student, or numbers by student name, e.g. ``{"direct": 1.5}``;
        default :data:`REFIT_SCALES` (direct 2, distilled 1.5). Its learning-rate schedule
        is compressed into those epochs, so at 1.0 it gets less learning than the chosen run
        had by its chosen epoch (56 against 87 peak-rate epochs at epoch 110 of 200). The
        defaults won the refit check on UTD-MHAD's training subjects (docs/results.md):
        1.5 beat 1.0 for the distilled student by 2.2 points (standard error 0.6) and 2 did
        not beat 1.5; for the direct transformer 2 beat 1.5 by 1.5 points (SE 0.4).
    out : pathlib.Path, optional
        Folder for ``results.md``, ``results.json``, ``plots/`` and ``checkpoints/``; None
        writes nothing.
    title : str, optional
        Heading of the table.
    cache_dir : pathlib.Path, optional
        Distance cache folder (default :func:`gkd.cache.default_cache_dir`).
    threads : int, optional
        Engine and torch CPU threads; default: the libraries' own defaults.
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where the students train ("auto": the GPU when present).
    timing_repeats : int, default 5
        Timed repetitions of each inference measurement (after one warm-up).
    reporter : Reporter, optional
        Receives messages and progress; default silent.
    metadata : dict, optional
        Extra plain-type context stored in ``results.json`` (e.g. the command line).
    resume : bool, default True
        Reuse every student already in ``out``'s ``checkpoints/`` that an earlier run trained
        on the same data, split, teacher targets and settings with this gkd version (each
        checkpoint records a digest of them), instead of training it again: a run stopped
        midway loses only the student it was training. Its test figures are then computed
        from the saved model, and its training record (epoch, validation accuracy, seconds)
        is the earlier run's. A student saved with another refit (another ``refit_scale``,
        or none) whose epoch was chosen on the same data and settings is only refit: the
        run that chose the epoch is not repeated. False trains every student.

    Returns
    -------
    ExperimentResult

    Raises
    ------
    ValueError
        If the index arrays overlap, are empty or out of range, a split lacks classes
        needed, a landmark group is unknown, or an option is unusable.
    """
    started = time.perf_counter()
    reporter = reporter or SilentReporter()
    teacher = teacher or TeacherConfig()
    base_config = train_config or TrainConfig()
    resolve_device(device)  # fail early on a GPU request without a GPU
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if isinstance(ensemble, bool) or int(ensemble) != ensemble or ensemble < 1:
        raise ValueError(f"ensemble must be a positive number of students, got {ensemble!r}")
    if timing_repeats < 1:
        raise ValueError(f"timing_repeats must be >= 1, got {timing_repeats}")
    methods = _students(students)
    refit_scales = _refit_scales(refit_scale, methods)
    if teacher.blends and base_config.relation_weight > 0:
        raise ValueError(
            "TeacherConfig.blends and TrainConfig.relation_weight do not go together: the "
            "relational term compares training sequences, and blends have no distances to "
            "each other"
        )
    n = len(dataset)
    train_rows = _check_index(train_index, n, "train_index")
    validation_rows = _check_index(validation_index, n, "validation_index")
    test_rows = _check_index(test_index, n, "test_index")
    for a, b, name_a, name_b in (
        (train_rows, validation_rows, "train", "validation"),
        (train_rows, test_rows, "train", "test"),
        (validation_rows, test_rows, "validation", "test"),
    ):
        common = np.intersect1d(a, b)
        if common.size:
            raise ValueError(f"row {int(common[0])} is in both the {name_a} and {name_b} split")
    labels = dataset.labels
    n_classes = dataset.n_classes
    missing = np.setdiff1d(np.unique(labels[test_rows]), np.unique(labels[train_rows]))
    if missing.size:
        raise ValueError(
            f"class {dataset.class_names[int(missing[0])]!r} occurs in the test split but not "
            "in the training split"
        )
    if student_landmarks is not None:
        dataset.select_landmarks(student_landmarks)  # unknown names fail before any work
    for group in teacher.groups:
        dataset.select_landmarks(group)
    title = title or f"{dataset.source}: k-NN teacher, direct transformer, distilled student"
    stages: dict[str, float] = {}
    files: list[Path] = []
    out = Path(out) if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    # 1. Teacher distances over every row, once.
    clock = time.perf_counter()
    reporter.message(
        f"teacher distances: {n} sequences, metric {teacher.metric}"
        + (f" on {' + '.join(teacher.groups)}" if teacher.groups else "")
        + (f", frames with motion (lead {teacher.lead:g})" if teacher.lead else "")
        + (f"; {teacher.blends:g} blends per training sequence" if teacher.blends else "")
    )
    cache = DistanceCache(cache_dir)
    distances = _teacher_distances(
        dataset, teacher, cache=cache, threads=threads, reporter=reporter
    )
    stages["teacher_distances"] = time.perf_counter() - clock

    # 2. k-NN: k on validation (references: training rows), test against the final references.
    clock = time.perf_counter()
    val_by_train = distances[np.ix_(validation_rows, train_rows)]
    k, k_scores = choose_k(
        val_by_train,
        labels[train_rows],
        labels[validation_rows],
        ks=teacher.ks,
        weighting=teacher.weighting,
    )
    reporter.message(f"k-NN: k = {k} (validation accuracy {100 * k_scores[k]:.1f} %)")
    knn_rows = (
        np.concatenate([train_rows, validation_rows])
        if teacher.knn_references == "train+validation"
        else train_rows
    )
    knn_predicted = knn_predict(
        distances[np.ix_(test_rows, knn_rows)],
        labels[knn_rows],
        k=k,
        weighting=teacher.weighting,
        n_classes=n_classes,
    )
    knn_metrics: dict[str, Any] = classification_metrics(
        labels[test_rows], knn_predicted, n_classes=n_classes
    )
    test_data, reference_data = dataset.subset(test_rows), dataset.subset(knn_rows)
    queries = [test_data.select_landmarks(g) for g in teacher.groups] or [test_data]
    references = [reference_data.select_landmarks(g) for g in teacher.groups] or [reference_data]
    knn_metrics["infer_ms"] = _knn_inference_ms(
        queries,
        references,
        labels[knn_rows],
        teacher,
        k=k,
        n_classes=n_classes,
        threads=threads,
        repeats=timing_repeats,
    )
    knn_metrics["infer_ms_gpu"] = None
    stages["knn"] = time.perf_counter() - clock

    # 3. Soft targets: temperature on validation; the training rows leave themselves out.
    train_by_train = distances[np.ix_(train_rows, train_rows)]
    scale = (
        _training_scale(train_by_train, teacher.leave_one_out)
        if teacher.normalization == "global"
        else None
    )
    temperature, temperature_scores = _choose_temperature(
        val_by_train,
        labels[train_rows],
        labels[validation_rows],
        teacher,
        n_classes=n_classes,
        scale=scale,
    )
    reporter.message(
        f"soft targets: temperature {temperature:g} (validation cross-entropy "
        f"{temperature_scores[temperature]['cross_entropy']:.3f})"
    )

    def targets_for(rows: np.ndarray) -> np.ndarray:
        d, mode = _normalised(distances[np.ix_(rows, rows)], scale, teacher.normalization)
        return soft_targets(
            d,
            labels[rows],
            n_classes=n_classes,
            temperature=temperature,
            normalization=mode,  # type: ignore[arg-type]
            self_index=np.arange(len(rows)) if teacher.leave_one_out else None,
            k=teacher.soft_k,
        )

    student_data = dataset.select_landmarks(student_landmarks) if student_landmarks else dataset

    def with_blends(rows: np.ndarray, targets: np.ndarray) -> tuple[MotionDataset, np.ndarray]:
        """The student's sequences of ``rows`` and their ``targets``, with the teacher's blends
        of them (``teacher.blends`` per row) and the blends' targets after them."""
        made, blend_targets = _teacher_blends(
            dataset.subset(rows),
            teacher,
            seed=0,
            scale=scale,
            temperature=temperature,
            threads=threads,
            cache=cache,
            reporter=reporter,
        )
        blended = made.dataset
        if student_landmarks:
            blended = blended.select_landmarks(student_landmarks)
        return _stacked(student_data.subset(rows), blended), np.concatenate(
            [targets, blend_targets]
        )

    # Soft targets and relational blocks only for a distilled student (SIGNUM's training
    # block alone is 6,300² entries).
    distilling = "distilled" in methods
    train_targets = targets_for(train_rows) if distilling else None

    # 4. Students, per seed.
    train_set = student_data.subset(train_rows)
    validation_set = student_data.subset(validation_rows)
    test_set = student_data.subset(test_rows)
    refit_rows = np.concatenate([train_rows, validation_rows])
    refit_set = student_data.subset(refit_rows) if refit else None
    refit_targets = targets_for(refit_rows) if refit and distilling else None
    # What each student trains on: with blends, the distilled student has more sequences.
    student_sets = {DIRECT: (train_set, refit_set), DISTILLED: (train_set, refit_set)}
    if distilling and teacher.blends:
        assert train_targets is not None
        clock = time.perf_counter()
        distilled_train, train_targets = with_blends(train_rows, train_targets)
        distilled_refit = None
        if refit_targets is not None:
            distilled_refit, refit_targets = with_blends(refit_rows, refit_targets)
        student_sets[DISTILLED] = (distilled_train, distilled_refit)
        stages["teacher_blends"] = time.perf_counter() - clock
    # The relational term's distances between training rows: only when it is switched on.
    relational = distilling and base_config.relation_weight > 0
    train_relations = train_by_train if relational else None
    refit_relations = distances[np.ix_(refit_rows, refit_rows)] if relational and refit else None
    runs: dict[str, list[dict[str, Any]]] = {KNN: [knn_metrics]}
    runs.update({STUDENTS[short]: [] for short in methods})
    histories: dict[str, list[EpochStats]] = {}
    confusions: dict[str, np.ndarray] = {
        KNN: confusion_matrix(labels[test_rows], knn_predicted, n_classes=n_classes)
    }
    checkpoint_extra = {
        "source": dataset.source,
        "student_landmarks": (
            None
            if student_landmarks is None
            else [student_landmarks]
            if isinstance(student_landmarks, str)
            else list(student_landmarks)
        ),
        "teacher": teacher.to_dict(),
        "k": k,
        "temperature": temperature,
    }
    clock = time.perf_counter()
    # What the students learn from, for the resume keys: their sequences and the teacher's
    # targets (the relational term's distances follow from the teacher's settings and data).
    # The selection keys leave out the refit's rows and targets: a run that only changes the
    # refit reuses the runs that chose the epochs.
    inputs: dict[str, str] = {}
    selection_inputs: dict[str, str] = {}
    if out is not None:
        settings = json.dumps(checkpoint_extra, sort_keys=True)
        shared = _digest(datasets=(train_set, validation_set, refit_set)) + settings
        inputs = {short: shared for short in methods}
        chosen_on = _digest(datasets=(train_set, validation_set)) + settings
        selection_inputs = {short: chosen_on for short in methods}
        if distilling:
            inputs["distilled"] += _digest(train_targets, refit_targets)
            selection_inputs["distilled"] += _digest(train_targets)
    reused: list[str] = []  # students saved by an earlier run, whole
    reselected: list[str] = []  # students whose chosen run came from an earlier run
    effective: TrainConfig | None = None
    for seed in seeds:
        members = member_seeds(int(seed), ensemble)
        for short in methods:
            method = STUDENTS[short]
            targets = train_targets if method == DISTILLED else None
            chosen: list[TrainResult] = []  # per member: the run that chose the epoch
            reported: list[TrainResult] = []  # per member: the model that is scored
            for member, member_seed in enumerate(members):
                name = f"{short}, seed {member_seed}"
                config = replace(base_config, seed=member_seed, device=device, threads=threads)
                stem = f"{short}_seed{seed}" + (f"_member{member}" if ensemble > 1 else "")
                path = None if out is None else out / "checkpoints" / f"{stem}.pt"
                key = selection = ""
                if path is not None:
                    refit_key = refit_scales[short] if refit else None
                    key = _student_key(config, method, refit_key, inputs[short])
                    selection = _student_key(config, method, None, selection_inputs[short])
                earlier = (
                    _resumed_student(path, key, selection if refit else None, reporter)
                    if path and resume
                    else None
                )
                selected: TrainResult | None = None
                if earlier is not None:
                    result, selected = earlier
                    if selected is not None:  # the whole student: nothing to train or save
                        reused.append(f"{stem}.pt")
                        reporter.message(f"{name}: reusing {path} (trained by an earlier run)")
                    else:
                        reselected.append(f"{stem}.pt")
                        reporter.message(
                            f"{name}: reusing the epoch an earlier run chose ({path}); refitting"
                        )
                else:
                    result = _select_student(
                        config,
                        train_set=student_sets[method][0],
                        validation_set=validation_set,
                        targets=targets,
                        relations=None if targets is None else train_relations,
                        reporter=reporter,
                        name=name,
                    )
                trained = selected is None
                if selected is None:
                    selected = result
                    refit_on = student_sets[method][1]
                    if refit_on is not None:
                        selected = _refit_student(
                            config,
                            result.best_epoch,
                            refit_set=refit_on,
                            refit_targets=None if targets is None else refit_targets,
                            refit_relations=None if targets is None else refit_relations,
                            refit_scale=refit_scales[short],
                            reporter=reporter,
                            name=name,
                        )
                # The config as trained (e.g. preprocessing filled in from the landmarks).
                effective = effective or result.config
                chosen.append(result)
                reported.append(selected)
                reporter.message(
                    f"{name}: best epoch {result.best_epoch}, validation "
                    f"{100 * (result.best_validation_accuracy or 0):.1f} %"
                )
                if path is not None:
                    if trained:
                        resumable = {"key": key, "selection": selection, "chosen": result.record()}
                        extra = {
                            **checkpoint_extra,
                            "method": method,
                            "member_seed": member_seed,
                            "resume": resumable,
                        }
                        save_checkpoint(path, selected, extra=extra)
                    files.append(path)
            models = [r.model for r in reported]
            probabilities = ensemble_proba(models, test_set, device="cpu")
            predicted = probabilities.argmax(axis=1).astype(np.int64)
            metrics: dict[str, Any] = classification_metrics(
                labels[test_rows], predicted, n_classes=n_classes
            )
            batch = reported[0].config.eval_batch_size
            cpu_ms, gpu_ms = _student_inference_ms(
                models, test_set, batch_size=batch, threads=threads, repeats=timing_repeats
            )
            epochs_chosen = [r.best_epoch for r in chosen]
            metrics.update(
                infer_ms=cpu_ms,
                infer_ms_gpu=gpu_ms,
                seed=int(seed),
                member_seeds=members,
                best_epoch=epochs_chosen[0] if ensemble == 1 else epochs_chosen,
                validation_accuracy=float(
                    np.mean([r.best_validation_accuracy or 0.0 for r in chosen])
                ),
                train_seconds=sum(r.seconds for r in chosen)
                + (sum(r.seconds for r in reported) if refit else 0.0),
            )
            runs[method].append(metrics)
            if seed == seeds[0]:
                histories[short] = chosen[0].history
                confusions[method] = confusion_matrix(
                    labels[test_rows], predicted, n_classes=n_classes
                )
            reporter.message(
                f"{short} seed {seed}"
                + (f" (ensemble of {ensemble})" if ensemble > 1 else "")
                + f": test {100 * metrics['accuracy']:.1f} %"
            )
    stages["students"] = time.perf_counter() - clock

    # 5. Report: plots first, so the recorded wall time covers everything but the tables.
    if out is not None:
        files.extend(_plots(out, k_scores, k, histories, confusions, dataset.class_names, seeds))
    info = {
        "dataset": {
            "source": dataset.source,
            "sequences": n,
            "classes": n_classes,
            "landmarks": dataset.n_landmarks,
            "student_landmarks": checkpoint_extra["student_landmarks"],
            "splits": {
                name: {
                    "sequences": int(split.size),
                    "subjects": sorted(int(s) for s in np.unique(dataset.subjects[split])),
                }
                for name, split in (
                    ("train", train_rows),
                    ("validation", validation_rows),
                    ("test", test_rows),
                )
            },
        },
        "teacher": teacher.to_dict(),
        "k": k,
        "k_validation_accuracy": {str(key): value for key, value in k_scores.items()},
        "knn_references": int(knn_rows.size),
        "temperature": temperature,
        "temperature_validation": {f"{t:g}": v for t, v in temperature_scores.items()},
        "distance_scale": scale,
        "train_config": effective.to_dict() if effective is not None else None,
        "seeds": [int(s) for s in seeds],
        "ensemble": int(ensemble),
        "students": list(methods),
        "refit": refit,
        "refit_scale": refit_scales,
        "reused_students": reused,
        "reused_selections": reselected,
        "student_device": str(resolve_device(device)),
        "machine": _machine(threads),
        "stage_seconds": stages,
        "seconds": time.perf_counter() - started,
        "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        **(metadata or {}),
    }
    document = write_results(
        runs,
        json_path=out / "results.json" if out is not None else None,
        title=title,
        metadata=info,
    )
    markdown = _markdown(document["summary"], title, info, runs)
    if out is not None:
        (out / "results.md").write_text(markdown, encoding="utf-8")
        files.extend([out / "results.json", out / "results.md"])
    return ExperimentResult(
        title=title,
        runs=runs,
        summary=document["summary"],
        document=document,
        markdown=markdown,
        k=k,
        temperature=temperature,
        out=out,
        files=files,
        seconds=time.perf_counter() - started,
    )


def _plots(
    out: Path,
    k_scores: dict[int, float],
    k: int,
    histories: dict[str, list[EpochStats]],
    confusions: dict[str, np.ndarray],
    class_names: list[str],
    seeds: Sequence[int],
) -> list[Path]:
    """The k curve, the first seed's training curves and every method's test confusion."""
    plots = out / "plots"
    files = [
        plot_k_curve(k_scores, plots / "knn_k.png", chosen=k),
        plot_training_curves(histories, plots / "training.png", title=f"training, seed {seeds[0]}"),
    ]
    for method, matrix in confusions.items():
        stem = {KNN: "knn", DIRECT: "direct", DISTILLED: "distilled"}[method]
        files.append(
            plot_confusion_matrix(
                matrix,
                plots / f"confusion_{stem}.png",
                class_names=class_names,
                title=f"{method}: test confusion",
            )
        )
    return files


def _refit_note(scales: dict[str, float]) -> str:
    """How long the refits were, for the notes under the table."""
    if len(set(scales.values())) == 1:
        scale = next(iter(scales.values()))
        return "" if scale == 1.0 else f" for {scale:g}× the chosen epochs"
    each = ", ".join(f"{short} {scale:g}×" for short, scale in scales.items())
    return f" for a multiple of the chosen epochs ({each})"


def _markdown(
    summary: dict[str, Any], title: str, info: dict[str, Any], runs: dict[str, list[dict]]
) -> str:
    """The table plus the notes a reader needs to trust it."""
    splits = info["dataset"]["splits"]
    lines = [results_markdown(summary, title=title)]
    lines.append(
        f"Splits (sequences / subjects): train {splits['train']['sequences']} / "
        f"{splits['train']['subjects']}, validation {splits['validation']['sequences']} / "
        f"{splits['validation']['subjects']}, test {splits['test']['sequences']} / "
        f"{splits['test']['subjects']}. Scores in % on the test split"
        + (f", mean ± std over {len(info['seeds'])} seeds." if len(info["seeds"]) > 1 else ".")
    )
    lines.append("")
    lines.append(
        f"Teacher: {info['teacher']['metric']} DTW"
        + (f" on {' + '.join(info['teacher']['groups'])}" if info["teacher"]["groups"] else "")
        + (
            f", frames with motion (lead {info['teacher']['lead']:g} frames)"
            if info["teacher"]["lead"]
            else ""
        )
        + f"; k = {info['k']} chosen on validation "
        f"({100 * info['k_validation_accuracy'][str(info['k'])]:.1f} %), "
        f"{info['knn_references']} references; soft-target temperature "
        f"{info['temperature']:g} "
        + (
            "(fixed)"
            if info["teacher"]["temperature"] is not None
            else "chosen by validation cross-entropy"
        )
        + (", own entry left out" if info["teacher"]["leave_one_out"] else "")
        + (
            f"; {info['teacher']['blends']:g} teacher-labelled blends per training sequence "
            "for the distilled student"
            if info["teacher"]["blends"]
            else ""
        )
        + "."
    )
    epochs = info["train_config"]["epochs"]
    best = "; ".join(
        f"{short}: {[run['best_epoch'] for run in runs[STUDENTS[short]]]}"
        for short in info["students"]
    )
    lines.append("")
    lines.append(
        f"Students: {epochs} epoch{'' if epochs == 1 else 's'} on {info['student_device']}, "
        f"epoch chosen on validation ({best})"
        + (", then refit on train + validation" if info["refit"] else "")
        + (_refit_note(info["refit_scale"]) if info["refit"] else "")
        + (
            f"; each model is an ensemble of {info['ensemble']} students"
            if info.get("ensemble", 1) > 1
            else ""
        )
        + "."
    )
    reused = info.get("reused_students") or []
    if reused:
        lines[-1] += (
            f" {len(reused)} of them came from an earlier run's checkpoints (same data and "
            f"settings), with that run's training record: {', '.join(reused)}."
        )
    reselected = info.get("reused_selections") or []
    if reselected:
        lines[-1] += (
            f" {len(reselected)} were only refit here, on the epoch an earlier run chose "
            f"with the same data and settings: {', '.join(reselected)}."
        )
    gpu = [
        (method, [r["infer_ms_gpu"] for r in method_runs if r.get("infer_ms_gpu") is not None])
        for method, method_runs in runs.items()
    ]
    machine = info["machine"]
    lines.append("")
    lines.append(
        f"Inference ms/sample after a warm-up: k-NN = one test sequence against every "
        f"reference plus the vote; students = batched CPU inference over the test split "
        f"({machine['cpu_count']} CPU cores, {machine['torch_threads']} torch "
        f"thread{'' if machine['torch_threads'] == 1 else 's'})."
        + "".join(
            f" GPU ({machine['cuda']}) {method}: {_format_ms(float(np.mean(v)))} ms/sample."
            for method, v in gpu
            if v
        )
    )
    lines.append("")
    stage = info["stage_seconds"]
    blends = (
        f"blends labelled {stage['teacher_blends']:.0f} s, " if "teacher_blends" in stage else ""
    )
    lines.append(
        f"Wall time {info['seconds']:.0f} s (teacher distances {stage['teacher_distances']:.0f} s, "
        f"{blends}students {stage['students']:.0f} s)."
    )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- datasets


def _concatenate(
    splits: DatasetSplits, landmarks: Sequence[str] | None
) -> tuple[MotionDataset, np.ndarray, np.ndarray, np.ndarray]:
    """One dataset from three splits (padded to the longest), with the rows of each split.

    ``landmarks`` selects groups first, so memory-mapped inputs are only read where needed.
    """
    parts = [splits.train, splits.validation, splits.test]
    if landmarks:
        parts = [p.select_landmarks(list(landmarks)) for p in parts]
    frames = max(p.max_frames for p in parts)
    sequences = np.zeros(
        (sum(len(p) for p in parts), frames, parts[0].n_landmarks, 3), dtype=np.float32
    )
    start = 0
    bounds = []
    for part in parts:
        sequences[start : start + len(part), : part.max_frames] = part.sequences
        bounds.append(np.arange(start, start + len(part)))
        start += len(part)
    for part in parts[1:]:
        if part.class_names != parts[0].class_names:
            raise ValueError("the splits name their classes differently")
        if part.landmark_names != parts[0].landmark_names:
            raise ValueError("the splits name their landmarks differently")
    combined = replace(
        parts[0],
        sequences=sequences,
        lengths=np.concatenate([p.lengths for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        subjects=np.concatenate([p.subjects for p in parts]),
    )
    return combined, bounds[0], bounds[1], bounds[2]


def _train_config(
    settings: TrainSettings, *, epochs: int | None, quick: bool, default_epochs: int
) -> TrainConfig:
    """The training configuration of a data-set experiment.

    A :class:`TrainConfig` is taken as it is; a mapping overrides fields of ``TrainConfig()``
    with ``default_epochs`` (and, unless it names one, a warm-up that fits the run). ``quick``
    and then ``epochs`` override the epoch count of either.
    """
    if isinstance(settings, TrainConfig):
        config = settings
        fit_warmup = False
    else:
        overrides = dict(settings or {})
        config = TrainConfig.from_dict({"epochs": default_epochs, **overrides})
        fit_warmup = "warmup_epochs" not in overrides
    if quick:
        config = replace(config, epochs=QUICK_EPOCHS)
    if epochs is not None:
        config = replace(config, epochs=int(epochs))
    if fit_warmup:
        # A warm-up longer than a fifth of a short run wastes most of it.
        warmup = min(config.warmup_epochs, max(1, config.epochs // 5))
        config = replace(config, warmup_epochs=warmup)
    return config


def _subjects_rows(subjects: np.ndarray, wanted: Sequence[int], what: str) -> np.ndarray:
    present = set(np.unique(subjects).tolist())
    unknown = sorted(set(int(s) for s in wanted) - present)
    if unknown:
        raise ValueError(
            f"{what} subject {unknown[0]} has no sequence (subjects present: {sorted(present)})"
        )
    return np.flatnonzero(np.isin(subjects, list(wanted)))


def _subject_split(
    subjects: np.ndarray,
    test_subjects: Sequence[int],
    validation_subjects: Sequence[int] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Rows of train / validation / test by subject; validation defaults to the last training
    subject. Returns the validation subjects too."""
    test_rows = _subjects_rows(subjects, test_subjects, "test")
    training = sorted(set(np.unique(subjects).tolist()) - {int(s) for s in test_subjects})
    if validation_subjects is None:
        if len(training) < 2:
            raise ValueError(
                f"need at least two training subjects to hold one out for validation, "
                f"have {training}"
            )
        validation_subjects = [training[-1]]
    overlap = sorted({int(s) for s in validation_subjects} & {int(s) for s in test_subjects})
    if overlap:
        raise ValueError(f"subject {overlap[0]} is both a validation and a test subject")
    validation_rows = _subjects_rows(subjects, validation_subjects, "validation")
    train_rows = np.setdiff1d(np.arange(len(subjects)), np.union1d(test_rows, validation_rows))
    if train_rows.size == 0:
        raise ValueError("no training subject is left after the validation and test subjects")
    return train_rows, validation_rows, test_rows, sorted(int(s) for s in validation_subjects)


def run_mhad(
    *,
    protocol: Literal["paper", "cross-subject"] = "paper",
    validation_subjects: Sequence[int] | None = None,
    quick: bool = False,
    epochs: int | None = None,
    seeds: Sequence[int] = (0,),
    ensemble: int = 1,
    students: Sequence[str] = tuple(STUDENTS),
    teacher: TeacherConfig | None = None,
    train_config: TrainSettings = None,
    refit: bool = True,
    refit_scale: RefitScale = None,
    out: Path | None = None,
    cache_dir: Path | None = None,
    threads: int | None = None,
    device: str = "auto",
    per_class_limit: int | None = None,
    class_limit: int | None = None,
    reporter: Reporter | None = None,
    metadata: dict[str, Any] | None = None,
    resume: bool = True,
) -> ExperimentResult:
    """The experiment on the bundled UTD-MHAD skeletons.

    The teacher's matrix covers all 861 sequences (cached once, shared by both protocols).

    Parameters
    ----------
    protocol : {"paper", "cross-subject"}
        ``"paper"``: subjects 1-5 train, 6-8 test; ``"cross-subject"``: 1, 3, 5, 7 / 2, 4, 6, 8.
    validation_subjects : sequence of int, optional
        Training subjects held out for every choice; default the last one (5, or 7).
    quick : bool
        Fewer epochs (:data:`QUICK_EPOCHS` instead of :data:`MHAD_EPOCHS`) and fewer timing
        repeats: a check that everything works, in a few minutes.
    epochs : int, optional
        Training epochs (overrides the default, ``train_config`` and ``quick``).
    train_config : TrainConfig or mapping, optional
        A full configuration, or fields overriding ``TrainConfig()`` with
        :data:`MHAD_EPOCHS` epochs.
    per_class_limit : int, optional
        Keep only the first this many sequences of each (subject, action): for tests.
    class_limit : int, optional
        Keep only the first this many actions: for tests.
    teacher : TeacherConfig, optional
        Default :data:`MHAD_TEACHER`, ``TeacherConfig(lead=10, blends=2)``: frames with their
        motion 10 frames ahead and two teacher-labelled blends per training sequence, adopted on
        UTD-MHAD's training subjects (:data:`gkd.teacher.MHAD_LEAD`). ``TeacherConfig()`` gives
        the teacher of poses alone, without blends.
    seeds, ensemble, students, refit, refit_scale, out, cache_dir, threads, device, reporter,
    metadata, resume
        As for :func:`run_experiment`.

    Returns
    -------
    ExperimentResult

    Raises
    ------
    ValueError
        If the protocol or a subject is unknown.
    FileNotFoundError
        If the bundled data file is missing.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    dataset = load_mhad_all()
    if class_limit is not None:
        if class_limit < 2:
            raise ValueError(f"class_limit must be >= 2, got {class_limit}")
        dataset = dataset.subset(dataset.labels < class_limit)
        dataset = replace(dataset, class_names=dataset.class_names[:class_limit])
    if per_class_limit is not None:
        if per_class_limit < 1:
            raise ValueError(f"per_class_limit must be >= 1, got {per_class_limit}")
        keys = dataset.subjects * 1000 + dataset.labels
        keep = np.zeros(len(dataset), dtype=bool)
        for key in np.unique(keys):
            keep[np.flatnonzero(keys == key)[:per_class_limit]] = True
        dataset = dataset.subset(keep)
    train_subjects, test_subjects = PROTOCOLS[protocol]
    train_rows, validation_rows, test_rows, held_out = _subject_split(
        dataset.subjects, test_subjects, validation_subjects
    )
    config = _train_config(train_config, epochs=epochs, quick=quick, default_epochs=MHAD_EPOCHS)
    first = [s for s in train_subjects if s not in held_out]
    title = (
        f"UTD-MHAD, {protocol} protocol: train subjects {first}, validation {held_out}, "
        f"test {list(test_subjects)}"
    )
    return run_experiment(
        dataset,
        train_index=train_rows,
        validation_index=validation_rows,
        test_index=test_rows,
        teacher=teacher or MHAD_TEACHER,
        train_config=config,
        seeds=seeds,
        ensemble=ensemble,
        students=students,
        refit=refit,
        refit_scale=refit_scale,
        out=out,
        title=title,
        cache_dir=cache_dir,
        threads=threads,
        device=device,
        timing_repeats=3 if quick else 5,
        reporter=reporter,
        metadata={"protocol": protocol, "quick": quick, **(metadata or {})},
        resume=resume,
    )


def run_signum(
    *,
    data: Path,
    quick: bool = False,
    epochs: int | None = None,
    seeds: Sequence[int] = (0,),
    ensemble: int = 1,
    students: Sequence[str] = tuple(STUDENTS),
    teacher: TeacherConfig | None = None,
    train_config: TrainSettings = None,
    refit: bool = True,
    refit_scale: RefitScale = None,
    out: Path | None = None,
    cache_dir: Path | None = None,
    threads: int | None = None,
    device: str = "auto",
    reporter: Reporter | None = None,
    metadata: dict[str, Any] | None = None,
    resume: bool = True,
) -> ExperimentResult:
    """The experiment on SIGNUM landmarks in the paper's folder layout.

    The teacher, as in the paper: the ``hand`` metric on each hand (21 landmarks, wrist
    first), the two matrices summed. The students read both hands.

    Parameters
    ----------
    data : pathlib.Path
        The folder (see :func:`gkd.datasets.load_signum`).
    quick : bool
        :data:`QUICK_EPOCHS` training epochs.
    epochs : int, optional
        Training epochs (default ``TrainConfig().epochs``; overrides ``train_config``).
    train_config : TrainConfig or mapping, optional
        A full configuration, or fields overriding ``TrainConfig()``.
    seeds, ensemble, students, teacher, refit, refit_scale, out, cache_dir, threads, device,
    reporter, metadata, resume
        As for :func:`run_experiment`.

    Returns
    -------
    ExperimentResult

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing (the message says what to obtain and how
        to lay it out).
    ValueError
        If a file is malformed.
    """
    splits = load_signum(Path(data))
    hands = ("left_hand", "right_hand")
    dataset, train_rows, validation_rows, test_rows = _concatenate(splits, hands)
    teacher = teacher or TeacherConfig(metric="hand", groups=hands)
    config = _train_config(
        train_config, epochs=epochs, quick=quick, default_epochs=TrainConfig().epochs
    )
    return run_experiment(
        dataset,
        train_index=train_rows,
        validation_index=validation_rows,
        test_index=test_rows,
        teacher=teacher,
        train_config=config,
        student_landmarks=hands,
        seeds=seeds,
        ensemble=ensemble,
        students=students,
        refit=refit,
        refit_scale=refit_scale,
        out=out,
        title="SIGNUM (both hands): k-NN teacher, direct transformer, distilled student",
        cache_dir=cache_dir,
        threads=threads,
        device=device,
        timing_repeats=3 if quick else 5,
        reporter=reporter,
        metadata={"data": str(Path(data).expanduser()), "quick": quick, **(metadata or {})},
        resume=resume,
    )


def run_npz(
    *,
    path: Path,
    test_subjects: Sequence[int],
    validation_subjects: Sequence[int] | None = None,
    teacher: TeacherConfig | None = None,
    student_landmarks: str | Sequence[str] | None = None,
    quick: bool = False,
    epochs: int | None = None,
    seeds: Sequence[int] = (0,),
    ensemble: int = 1,
    students: Sequence[str] = tuple(STUDENTS),
    train_config: TrainSettings = None,
    refit: bool = True,
    refit_scale: RefitScale = None,
    out: Path | None = None,
    cache_dir: Path | None = None,
    threads: int | None = None,
    device: str = "auto",
    reporter: Reporter | None = None,
    metadata: dict[str, Any] | None = None,
    resume: bool = True,
) -> ExperimentResult:
    """The experiment on data in the generic ``.npz`` format, split by subject.

    Parameters
    ----------
    path : pathlib.Path
        The file (see :func:`gkd.datasets.load_npz`).
    test_subjects : sequence of int
        Subjects held out for the final numbers.
    validation_subjects : sequence of int, optional
        Subjects held out for every choice; default the largest remaining subject id.
    teacher : TeacherConfig, optional
        Distance settings; default ``TeacherConfig()`` (Procrustes DTW on all landmarks).
    student_landmarks : str or sequence of str, optional
        Groups or landmarks the students read; default all.
    quick : bool
        :data:`QUICK_EPOCHS` training epochs.
    epochs : int, optional
        Training epochs (default ``TrainConfig().epochs``; overrides ``train_config``).
    train_config : TrainConfig or mapping, optional
        A full configuration, or fields overriding ``TrainConfig()``.
    seeds, ensemble, students, refit, refit_scale, out, cache_dir, threads, device, reporter,
    metadata, resume
        As for :func:`run_experiment`.

    Returns
    -------
    ExperimentResult

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is malformed or a subject is unknown.
    """
    dataset = load_npz(Path(path))
    if not test_subjects:
        raise ValueError("test_subjects must name at least one subject")
    train_rows, validation_rows, test_rows, held_out = _subject_split(
        dataset.subjects, test_subjects, validation_subjects
    )
    config = _train_config(
        train_config, epochs=epochs, quick=quick, default_epochs=TrainConfig().epochs
    )
    return run_experiment(
        dataset,
        train_index=train_rows,
        validation_index=validation_rows,
        test_index=test_rows,
        teacher=teacher,
        train_config=config,
        student_landmarks=student_landmarks,
        seeds=seeds,
        ensemble=ensemble,
        students=students,
        refit=refit,
        refit_scale=refit_scale,
        out=out,
        title=(
            f"{Path(path).name}: validation subjects {held_out}, test subjects "
            f"{sorted(int(s) for s in test_subjects)}"
        ),
        cache_dir=cache_dir,
        threads=threads,
        device=device,
        timing_repeats=3 if quick else 5,
        reporter=reporter,
        metadata={"data": str(Path(path).expanduser()), "quick": quick, **(metadata or {})},
        resume=resume,
    )


def predict_file(
    *,
    checkpoint: Path | Sequence[Path],
    data: Path,
    device: str = "cpu",
    batch_size: int = 256,
) -> Predictions:
    """Classify every sequence of a generic ``.npz`` file with a saved student (or several).

    The landmarks the student was trained on (recorded in checkpoints written by
    :func:`run_experiment`, e.g. both hands for SIGNUM) are selected from the file first.

    Parameters
    ----------
    checkpoint : pathlib.Path or sequence of pathlib.Path
        A student checkpoint (``checkpoints/*.pt`` of an experiment), or the checkpoints of
        an ensemble (``*_member0.pt``, ``*_member1.pt``, ...), whose class probabilities are
        averaged.
    data : pathlib.Path
        Sequences in the generic ``.npz`` format.
    device : {"cpu", "cuda", "auto"}, default "cpu"
        Where to run the model.
    batch_size : int, default 256
        Sequences per forward pass.

    Returns
    -------
    Predictions

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    ValueError
        If a checkpoint is not a gkd student, the checkpoints of an ensemble disagree on
        classes or landmarks, or the data's landmarks do not fit them.
    """
    paths = (
        [Path(checkpoint)] if isinstance(checkpoint, (str, Path)) else [Path(c) for c in checkpoint]
    )
    if not paths:
        raise ValueError("predict_file needs at least one checkpoint")
    loaded = [load_checkpoint(path, device=device) for path in paths]
    info = loaded[0][1]
    landmarks = (info.get("extra") or {}).get("student_landmarks")
    for path, (_, other) in zip(paths[1:], loaded[1:], strict=True):
        if list(other["class_names"]) != list(info["class_names"]):
            raise ValueError(f"{path} names other classes than {paths[0]}")
        if (other.get("extra") or {}).get("student_landmarks") != landmarks:
            raise ValueError(f"{path} reads other landmarks than {paths[0]}")
    dataset = load_npz(Path(data))
    if landmarks:
        try:
            dataset = dataset.select_landmarks(landmarks)
        except ValueError as error:
            raise ValueError(
                f"{data}: the student reads landmarks {landmarks}, which this file lacks ({error})"
            ) from error
    for path, (model, _) in zip(paths, loaded, strict=True):
        if dataset.n_landmarks * 3 != model.n_inputs:
            raise ValueError(
                f"{data}: {dataset.n_landmarks} landmarks per frame, but the student in "
                f"{path} reads {model.n_inputs // 3}"
            )
    models = [model for model, _ in loaded]
    probabilities = ensemble_proba(models, dataset, batch_size=batch_size)
    class_names = list(info["class_names"])
    labels = dataset.labels if dataset.class_names == class_names else None
    return Predictions(
        class_names=class_names,
        probabilities=probabilities,
        predicted=probabilities.argmax(axis=1).astype(np.int64),
        labels=labels,
    )
