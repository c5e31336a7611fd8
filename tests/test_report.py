"""Metrics, the inference timer, results tables and plots (gkd.metrics, gkd.report)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gkd.metrics import (
    accuracy,
    classification_metrics,
    confusion_matrix,
    precision_recall_f1,
    time_inference,
)
from gkd.report import (
    plot_confusion_matrix,
    plot_k_curve,
    plot_training_curves,
    results_markdown,
    summarize,
    write_results,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# ---------------------------------------------------------------- metrics


def test_confusion_matrix_counts():
    matrix = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], n_classes=4)
    expected = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(matrix, expected)
    assert confusion_matrix([1], [0]).shape == (2, 2)


def test_macro_scores_hand_computed():
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 0, 2]
    # Class 0: P 1/2, R 1/2; class 1: P 1/2, R 1; class 2: P 1, R 2/3.
    precision, recall, f1 = precision_recall_f1(y_true, y_pred)
    assert precision == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert recall == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)
    f1_per_class = [0.5, 2 * 0.5 / 1.5, 2 * (2 / 3) / (5 / 3)]
    assert f1 == pytest.approx(np.mean(f1_per_class))
    assert accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert classification_metrics(y_true, y_pred) == {
        "accuracy": pytest.approx(4 / 6),
        "precision": pytest.approx(precision),
        "recall": pytest.approx(recall),
        "f1": pytest.approx(f1),
    }


def test_macro_scores_are_zero_division_safe():
    # Class 1 is never predicted, class 2 never occurs: both score 0 where undefined.
    precision, recall, f1 = precision_recall_f1([0, 1], [0, 2], n_classes=4)
    assert precision == pytest.approx((1 + 0 + 0) / 3)  # class 3 occurs nowhere: not averaged
    assert recall == pytest.approx((1 + 0 + 0) / 3)
    assert f1 == pytest.approx(1 / 3)
    assert precision_recall_f1([1, 1], [1, 1]) == (1.0, 1.0, 1.0)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="same length"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
    with pytest.raises(TypeError, match="y_pred"):
        accuracy([0, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="n_classes"):
        confusion_matrix([0, 3], [0, 1], n_classes=3)


def test_time_inference_warms_up_then_times():
    calls: list[str] = []
    synced: list[int] = []
    ms = time_inference(
        lambda: calls.append("run"),
        n_samples=10,
        warmup=2,
        repeats=3,
        synchronize=lambda: synced.append(len(calls)),
    )
    assert len(calls) == 5
    assert synced == [2, 3, 4, 5]  # after the warm-up, then after every timed run
    assert ms >= 0
    with pytest.raises(ValueError, match="n_samples"):
        time_inference(lambda: None, n_samples=0)


# ---------------------------------------------------------------- tables


RUNS = {
    "k-NN (k=1)": [
        {"accuracy": 0.90, "precision": 0.91, "recall": 0.90, "f1": 0.89, "infer_ms": 120.0}
    ],
    "Student (distilled)": [
        {"accuracy": 0.93, "precision": 0.94, "recall": 0.93, "f1": 0.92, "infer_ms": 0.05},
        {"accuracy": 0.95, "precision": 0.95, "recall": 0.95, "f1": 0.95, "infer_ms": 0.07},
        {"accuracy": 0.94, "precision": 0.96, "recall": 0.94, "f1": 0.95, "infer_ms": None},
    ],
}


def test_summarize_mean_and_sample_std():
    summary = summarize(RUNS)
    student = summary["Student (distilled)"]
    assert student["accuracy"]["mean"] == pytest.approx(0.94)
    assert student["accuracy"]["std"] == pytest.approx(0.01)  # ddof = 1
    assert student["accuracy"]["n"] == 3
    assert student["infer_ms"]["n"] == 2  # the None is left out
    assert summary["k-NN (k=1)"]["f1"]["std"] == 0.0
    ensembles = summarize({"e": [{"accuracy": 0.9, "member_seeds": [0, 1]}, {"accuracy": 0.8}]})
    assert set(ensembles["e"]) == {"accuracy"}  # lists are kept in the runs, not summarised
    with pytest.raises(ValueError, match="no runs"):
        summarize({"empty": []})
    with pytest.raises(ValueError, match="non-finite"):
        summarize({"bad": [{"accuracy": float("nan")}]})


def test_markdown_table_in_the_papers_format():
    text = results_markdown(summarize(RUNS), title="UTD-MHAD, paper protocol")
    lines = text.splitlines()
    assert lines[0] == "### UTD-MHAD, paper protocol"
    assert lines[2] == "| Method | Acc | Prec | Rec | F1 | Infer ms/sample |"
    assert lines[4] == "| k-NN (k=1) | 90.0 | 91.0 | 90.0 | 89.0 | 120 |"
    assert lines[5] == (
        "| Student (distilled) | 94.0 ± 1.0 | 95.0 ± 1.0 | 94.0 ± 1.0 | 94.0 ± 1.7 "
        "| 0.06 ± 0.0141 |"
    )


def test_write_results_json_and_markdown(tmp_path):
    document = write_results(
        RUNS,
        json_path=tmp_path / "out" / "results.json",
        markdown_path=tmp_path / "out" / "results.md",
        title="t",
        metadata={"command": "gkd-run mhad"},
    )
    loaded = json.loads((tmp_path / "out" / "results.json").read_text())
    assert loaded == json.loads(json.dumps(document))
    assert loaded["metadata"] == {"command": "gkd-run mhad"}
    assert loaded["summary"]["k-NN (k=1)"]["accuracy"]["mean"] == 0.90
    assert loaded["runs"]["Student (distilled)"][2]["infer_ms"] is None
    assert "| Student (distilled) |" in (tmp_path / "out" / "results.md").read_text()


# ---------------------------------------------------------------- plots


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000


def test_plots_write_png_files(tmp_path):
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_accuracy": 1 - 1 / (e + 1),
            "validation_loss": 1.2 / e,
            "validation_accuracy": 0.9 - 1 / (e + 2),
        }
        for e in range(1, 6)
    ]
    refit = [dict(row, validation_loss=None, validation_accuracy=None) for row in history]
    assert_png(plot_training_curves(history, tmp_path / "curves.png"))
    assert_png(
        plot_training_curves({"direct": history, "refit": refit}, tmp_path / "both.png", title="t")
    )
    assert_png(plot_k_curve({1: 0.9, 3: 0.92, 5: 0.91}, tmp_path / "k.png", chosen=3))
    matrix = confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2], n_classes=3)
    assert_png(
        plot_confusion_matrix(matrix, tmp_path / "sub" / "cm.png", class_names=["a", "b", "c"])
    )
    assert_png(plot_confusion_matrix(matrix, tmp_path / "cm_counts.png", normalize=False))


def test_plots_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plot_training_curves([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="chosen"):
        plot_k_curve({1: 0.5}, tmp_path / "x.png", chosen=3)
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="class_names"):
        plot_confusion_matrix(np.eye(2), tmp_path / "x.png", class_names=["a"])
    assert not (tmp_path / "x.png").exists()
