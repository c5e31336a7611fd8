"""Results tables (Markdown and JSON, mean ± std over seeds) and PNG plots.

Plots are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, so nothing
here touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "METRICS",
    "plot_confusion_matrix",
    "plot_k_curve",
    "plot_training_curves",
    "results_markdown",
    "summarize",
    "write_results",
]

# Metric key -> column heading, in the paper's order. Scores are fractions (0..1) and are
# shown as percentages; "infer_ms" is milliseconds per sample.
METRICS: dict[str, str] = {
    "accuracy": "Acc",
    "precision": "Prec",
    "recall": "Rec",
    "f1": "F1",
    "infer_ms": "Infer ms/sample",
}

Runs = Mapping[str, Sequence[Mapping[str, float | None]]]


def summarize(runs: Runs) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean and spread of each metric over repeated runs (seeds) of each method.

    Parameters
    ----------
    runs : mapping of str to sequence of mapping
        Method name -> one dict per run with keys from :data:`METRICS` (other numeric keys are
        summarised as well); a missing or None value is left out of that metric, and a key
        whose values are not numbers (an ensemble's list of seeds) is not summarised.

    Returns
    -------
    dict
        ``summary[method][metric] = {"mean", "std", "n", "values"}``, std being the sample
        standard deviation (ddof = 1; 0 for a single run).

    Raises
    ------
    ValueError
        If a method has no runs or a value is not finite.
    """
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for method, method_runs in runs.items():
        if len(method_runs) == 0:
            raise ValueError(f"method {method!r} has no runs")
        keys = list(dict.fromkeys(key for run in method_runs for key in run))
        summary[method] = {}
        for key in keys:
            values = [run.get(key) for run in method_runs]
            if any(isinstance(v, (list, tuple, dict, str)) for v in values):
                continue  # e.g. member seeds or per-student epochs: kept in the runs only
            numbers = [float(v) for v in values if v is not None]
            if not numbers:
                continue
            if not all(math.isfinite(v) for v in numbers):
                raise ValueError(f"method {method!r}, metric {key!r} has a non-finite value")
            std = float(np.std(numbers, ddof=1)) if len(numbers) > 1 else 0.0
            summary[method][key] = {
                "mean": float(np.mean(numbers)),
                "std": std,
                "n": len(numbers),
                "values": numbers,
            }
    return summary


def _cell(entry: Mapping[str, Any] | None, key: str) -> str:
    if entry is None:
        return "–"
    if key == "infer_ms":
        text = _format_ms(entry["mean"])
        return f"{text} ± {_format_ms(entry['std'])}" if entry["n"] > 1 else text
    text = f"{100 * entry['mean']:.1f}"
    return f"{text} ± {100 * entry['std']:.1f}" if entry["n"] > 1 else text


def _format_ms(value: float) -> str:
    # Three significant figures across the orders of magnitude that k-NN and students span.
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.3g}"


def results_markdown(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]], *, title: str | None = None
) -> str:
    """The paper's table, Method | Acc | Prec | Rec | F1 | Infer ms/sample, in Markdown.

    Scores are percentages with one decimal; with several runs, ``mean ± std``.

    Parameters
    ----------
    summary : mapping
        Output of :func:`summarize`.
    title : str, optional
        A heading line put above the table.

    Returns
    -------
    str
        The Markdown text, ending with a newline.
    """
    lines = [f"### {title}", ""] if title else []
    lines.append("| Method | " + " | ".join(METRICS.values()) + " |")
    lines.append("|---|" + "---:|" * len(METRICS))
    for method, entries in summary.items():
        cells = [_cell(entries.get(key), key) for key in METRICS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(
    runs: Runs,
    *,
    json_path: Path | None = None,
    markdown_path: Path | None = None,
    title: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Summarise runs and write the table as JSON and/or Markdown.

    Parameters
    ----------
    runs : mapping
        As for :func:`summarize`.
    json_path, markdown_path : pathlib.Path, optional
        Files to write (parent folders are created).
    title : str, optional
        Table heading (also stored in the JSON).
    metadata : mapping, optional
        Plain-type context stored in the JSON under ``"metadata"`` (command, machine, ...).

    Returns
    -------
    dict
        The JSON document: ``{"title", "metadata", "summary", "runs"}``.
    """
    summary = summarize(runs)
    document = {
        "title": title,
        "metadata": dict(metadata) if metadata is not None else {},
        "summary": summary,
        "runs": {
            method: [dict(run) for run in method_runs] for method, method_runs in runs.items()
        },
    }
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if markdown_path is not None:
        markdown_path = Path(markdown_path)
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(results_markdown(summary, title=title), encoding="utf-8")
    return document


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=120)
    return path


def _history_rows(history: Sequence[Any]) -> list[Mapping[str, Any]]:
    return [row if isinstance(row, Mapping) else row.to_dict() for row in history]


def plot_training_curves(
    histories: Sequence[Any] | Mapping[str, Sequence[Any]],
    path: Path,
    *,
    title: str | None = None,
) -> Path:
    """Loss and accuracy per epoch, training and validation, as a PNG.

    Parameters
    ----------
    histories : sequence or mapping of sequences
        One training history (``TrainResult.history``: ``EpochStats`` or their dicts with
        ``epoch``, ``train_loss``, ``train_accuracy``, ``validation_loss``,
        ``validation_accuracy``), or several keyed by a label (e.g. direct and distilled).
    path : pathlib.Path
        Output PNG.
    title : str, optional
        Figure title.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If a history is empty.
    """
    labelled = dict(histories) if isinstance(histories, Mapping) else {"": histories}
    figure = Figure(figsize=(10, 4))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for index, (label, history) in enumerate(labelled.items()):
        rows = _history_rows(history)
        if not rows:
            raise ValueError(f"training history {label!r} is empty")
        colour = f"C{index}"
        prefix = f"{label} " if label else ""
        epochs = [row["epoch"] for row in rows]
        for axes, key in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
            axes.plot(
                epochs,
                [row[f"train_{key}"] for row in rows],
                colour,
                linestyle="--",
                label=f"{prefix}train",
            )
            validation = [row[f"validation_{key}"] for row in rows]
            if any(v is not None for v in validation):
                axes.plot(
                    epochs,
                    [np.nan if v is None else v for v in validation],
                    colour,
                    label=f"{prefix}validation",
                )
    loss_axes.set(xlabel="epoch", ylabel="loss", title="loss")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)


def plot_k_curve(
    scores: Mapping[int, float],
    path: Path,
    *,
    chosen: int | None = None,
    title: str | None = None,
) -> Path:
    """Validation accuracy against k (the output of :func:`gkd.teacher.choose_k`) as a PNG.

    Parameters
    ----------
    scores : mapping of int to float
        k -> validation accuracy (0..1).
    path : pathlib.Path
        Output PNG.
    chosen : int, optional
        The selected k, marked on the curve.
    title : str, optional
        Figure title.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``scores`` is empty or ``chosen`` is not one of its keys.
    """
    if not scores:
        raise ValueError("scores is empty")
    if chosen is not None and chosen not in scores:
        raise ValueError(f"chosen k = {chosen} is not in scores ({sorted(scores)})")
    ks = sorted(scores)
    figure = Figure(figsize=(5, 3.5))
    axes = figure.subplots()
    axes.plot(ks, [100 * scores[k] for k in ks], "o-")
    if chosen is not None:
        axes.plot(
            [chosen], [100 * scores[chosen]], "r*", markersize=14, label=f"chosen k = {chosen}"
        )
        axes.legend()
    axes.set(xlabel="k (neighbours)", ylabel="validation accuracy (%)", xticks=ks)
    axes.grid(alpha=0.3)
    axes.set_title(title or "k-NN: validation accuracy against k")
    figure.tight_layout()
    return _save(figure, path)


def plot_confusion_matrix(
    matrix: np.ndarray,
    path: Path,
    *,
    class_names: Sequence[str] | None = None,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """A confusion matrix (rows true, columns predicted) as a PNG heat map.

    Parameters
    ----------
    matrix : numpy.ndarray, shape (C, C)
        Counts, e.g. from :func:`gkd.metrics.confusion_matrix`.
    path : pathlib.Path
        Output PNG.
    class_names : sequence of str, optional
        Tick labels; default the class indices.
    normalize : bool, default True
        Show each row as fractions of its true class (empty rows stay 0).
    title : str, optional
        Figure title.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``matrix`` is not square or the names do not match its size.
    """
    counts = np.asarray(matrix, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"matrix must be square (C, C), got shape {counts.shape}")
    size = counts.shape[0]
    names = [str(i) for i in range(size)] if class_names is None else list(class_names)
    if len(names) != size:
        raise ValueError(f"{len(names)} class_names for a {size} x {size} matrix")
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        counts = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = min(4 + 0.35 * size, 18)
    figure = Figure(figsize=(side, side * 0.85))
    axes = figure.subplots()
    image = axes.imshow(counts, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    axes.set_xticks(range(size), names, rotation=90, fontsize="small")
    axes.set_yticks(range(size), names, fontsize="small")
    axes.set(xlabel="predicted", ylabel="true")
    if size <= 30:
        threshold = counts.max() / 2 if counts.max() > 0 else 1
        for i in range(size):
            for j in range(size):
                if counts[i, j] > 0:
                    text = f"{counts[i, j]:.2f}" if normalize else f"{int(counts[i, j])}"
                    colour = "white" if counts[i, j] > threshold else "black"
                    axes.text(j, i, text, ha="center", va="center", fontsize=6, color=colour)
    axes.set_title(title or "confusion matrix")
    figure.tight_layout()
    return _save(figure, path)
