"""Classification metrics and an inference timer used the same way for every method."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "accuracy",
    "classification_metrics",
    "confusion_matrix",
    "precision_recall_f1",
    "time_inference",
]


def _check_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(y_true)
    predicted = np.asarray(y_pred)
    if truth.ndim != 1 or predicted.shape != truth.shape:
        raise ValueError(
            f"y_true and y_pred must be 1-D of the same length, got {truth.shape} and "
            f"{predicted.shape}"
        )
    if truth.size == 0:
        raise ValueError("y_true is empty")
    for name, array in (("y_true", truth), ("y_pred", predicted)):
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
        if array.min() < 0:
            raise ValueError(f"{name}[{int(np.argmin(array))}] is negative")
    return truth.astype(np.int64), predicted.astype(np.int64)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction (0..1) of predictions equal to the truth.

    Raises
    ------
    ValueError
        If the arrays are empty or differ in shape.
    """
    truth, predicted = _check_pair(y_true, y_pred)
    return float(np.mean(truth == predicted))


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int | None = None
) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (N,)
        True and predicted class indices.
    n_classes : int, optional
        Matrix size; default: one more than the largest index seen.

    Returns
    -------
    numpy.ndarray of int64, shape (C, C)
        ``matrix[i, j]`` = number of samples of class i predicted as j.

    Raises
    ------
    ValueError
        If shapes differ, the arrays are empty or an index is not below ``n_classes``.
    """
    truth, predicted = _check_pair(y_true, y_pred)
    largest = int(max(truth.max(), predicted.max()))
    if n_classes is None:
        n_classes = largest + 1
    elif largest >= n_classes:
        raise ValueError(f"class index {largest} is not below n_classes = {n_classes}")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def precision_recall_f1(
    y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int | None = None
) -> tuple[float, float, float]:
    """Macro-averaged precision, recall and F1.

    Averaged over the classes that occur in ``y_true`` or ``y_pred`` (scikit-learn's
    convention). A class never predicted has precision 0, a class with precision and recall 0
    has F1 0 (no division by zero); macro F1 is the mean of the per-class F1 scores.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (N,)
        True and predicted class indices.
    n_classes : int, optional
        Passed to :func:`confusion_matrix`.

    Returns
    -------
    precision, recall, f1 : float
        Each in 0..1.
    """
    matrix = confusion_matrix(y_true, y_pred, n_classes=n_classes).astype(np.float64)
    true_positive = np.diag(matrix)
    predicted_count = matrix.sum(axis=0)
    true_count = matrix.sum(axis=1)
    present = (predicted_count + true_count) > 0
    precision = np.divide(
        true_positive, predicted_count, out=np.zeros_like(true_positive), where=predicted_count > 0
    )
    recall = np.divide(
        true_positive, true_count, out=np.zeros_like(true_positive), where=true_count > 0
    )
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(true_positive), where=total > 0)
    return (
        float(precision[present].mean()),
        float(recall[present].mean()),
        float(f1[present].mean()),
    )


def classification_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int | None = None
) -> dict[str, float]:
    """Accuracy and macro precision, recall and F1 in one dict.

    Returns
    -------
    dict[str, float]
        Keys ``"accuracy"``, ``"precision"``, ``"recall"``, ``"f1"``; values in 0..1.
    """
    precision, recall, f1 = precision_recall_f1(y_true, y_pred, n_classes=n_classes)
    return {
        "accuracy": accuracy(y_true, y_pred),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def time_inference(
    run: Callable[[], object],
    *,
    n_samples: int,
    warmup: int = 1,
    repeats: int = 5,
    synchronize: Callable[[], None] | None = None,
) -> float:
    """Milliseconds per sample of an inference call, after a warm-up.

    ``run`` is called ``warmup`` times untimed (lazy initialisation, caches, GPU kernels), then
    ``repeats`` times timed with :func:`time.perf_counter`; the result is the median run time
    divided by ``n_samples``. Use the same settings for every method being compared: for
    k-NN, ``run`` computes one query's distances to the training set and votes
    (``n_samples=1``); for the student, one batched pass over the test set.

    Parameters
    ----------
    run : callable
        Performs the inference for ``n_samples`` samples; its result is discarded.
    n_samples : int
        Samples processed by one call of ``run``.
    warmup : int, default 1
        Untimed calls first.
    repeats : int, default 5
        Timed calls.
    synchronize : callable, optional
        Called before the clock is read (e.g. ``torch.cuda.synchronize``), so asynchronous
        GPU work is counted.

    Returns
    -------
    float
        Median milliseconds per sample.

    Raises
    ------
    ValueError
        If ``n_samples`` or ``repeats`` is below 1 or ``warmup`` is negative.
    """
    if n_samples < 1 or repeats < 1 or warmup < 0:
        raise ValueError(
            f"need n_samples >= 1, repeats >= 1, warmup >= 0; got {n_samples}, {repeats}, {warmup}"
        )
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        run()
    sync()
    elapsed = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        elapsed.append(time.perf_counter() - start)
    return statistics.median(elapsed) * 1000.0 / n_samples
