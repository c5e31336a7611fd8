"""Whole experiments (gkd.experiment): choices on validation only, outputs, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import gkd.experiment as experiment
from gkd.blends import blend_sequences
from gkd.cache import cached_pairwise
from gkd.datasets import make_synthetic_motion, save_npz
from gkd.distances import cross, pairwise, with_motion
from gkd.experiment import (
    DIRECT,
    DISTILLED,
    KNN,
    TeacherConfig,
    predict_file,
    run_experiment,
    run_npz,
)
from gkd.student import Preprocessing
from gkd.teacher import MHAD_BLENDS, MHAD_LEAD, soft_targets
from gkd.train import TrainConfig, load_checkpoint, predict_proba

TINY = TrainConfig(epochs=2, d_model=16, n_heads=2, n_layers=1, batch_size=16, warmup_epochs=1)


@pytest.fixture(scope="module")
def motion():
    return make_synthetic_motion(3, n_subjects=4, per_subject=3, n_landmarks=6, max_frames=16)


def rows(dataset, *subjects):
    return np.flatnonzero(np.isin(dataset.subjects, subjects))


def run(dataset, tmp_path, **options):
    arguments = {
        "train_index": rows(dataset, 1, 2),
        "validation_index": rows(dataset, 3),
        "test_index": rows(dataset, 4),
        "train_config": TINY,
        "cache_dir": tmp_path / "cache",
        "device": "cpu",
        "threads": 1,
        "timing_repeats": 1,
        **options,
    }
    return run_experiment(dataset, **arguments)


def test_writes_table_json_plots_and_checkpoints(motion, tmp_path):
    out = tmp_path / "out"
    result = run(motion, tmp_path, out=out, seeds=(3, 4), metadata={"command": "test"})
    assert set(result.runs) == {KNN, DIRECT, DISTILLED}
    assert len(result.runs[KNN]) == 1 and len(result.runs[DISTILLED]) == 2
    for method_runs in result.runs.values():
        for metrics in method_runs:
            assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["f1"] <= 1
            assert metrics["infer_ms"] > 0
    # the synthetic classes are easy for the geometric teacher
    assert result.runs[KNN][0]["accuracy"] > 0.9
    document = json.loads((out / "results.json").read_text())
    assert document["metadata"]["command"] == "test"
    assert document["metadata"]["k"] == result.k
    assert document["metadata"]["seeds"] == [3, 4]
    assert document["metadata"]["dataset"]["splits"]["validation"]["subjects"] == [3]
    assert document["summary"][DIRECT]["accuracy"]["n"] == 2
    # the configuration as trained: TINY's fields, preprocessing filled in by training
    assert document["metadata"]["train_config"]["d_model"] == TINY.d_model
    assert document["metadata"]["train_config"]["preprocessing"] is not None
    # the copy of gkd that ran, so that a run from a frozen copy of the tree says so
    source = Path(document["metadata"]["machine"]["gkd_source"])
    assert (source / "experiment.py").samefile(experiment.__file__)
    markdown = (out / "results.md").read_text()
    assert markdown == result.markdown
    assert "| k-NN teacher |" in markdown and "mean ± std over 2 seeds" in markdown
    assert "1 torch thread)" in markdown  # threads=1
    assert "blends labelled" not in markdown  # no blends, no such stage
    names = {p.relative_to(out).as_posix() for p in result.files}
    assert {
        "results.json",
        "results.md",
        "plots/knn_k.png",
        "plots/training.png",
        "plots/confusion_knn.png",
        "plots/confusion_distilled.png",
        "checkpoints/direct_seed3.pt",
        "checkpoints/distilled_seed4.pt",
    } <= names
    for path in result.files:
        assert path.is_file() and path.stat().st_size > 0
    model, info = load_checkpoint(out / "checkpoints" / "distilled_seed3.pt")
    assert info["extra"]["k"] == result.k
    assert info["extra"]["temperature"] == result.temperature
    probabilities = predict_proba(model, motion.subset(rows(motion, 4)))
    predicted = probabilities.argmax(axis=1)
    accuracy = np.mean(predicted == motion.labels[rows(motion, 4)])
    assert accuracy == pytest.approx(result.runs[DISTILLED][0]["accuracy"])


def test_test_labels_never_influence_a_choice(motion, tmp_path, monkeypatch):
    """Scrambling the test labels changes the test scores and nothing else."""
    trained = []
    real_train = experiment.train

    def spy(**kwargs):
        result = real_train(**kwargs)
        trained.append((kwargs["teacher_targets"], [s.to_dict() for s in result.history]))
        return result

    monkeypatch.setattr(experiment, "train", spy)
    first = run(motion, tmp_path)
    scrambled = motion.subset(np.arange(len(motion)))
    test = rows(motion, 4)
    scrambled.labels[test] = np.random.default_rng(0).permutation(scrambled.labels[test])
    scrambled.labels[test] = (scrambled.labels[test] + 1) % motion.n_classes
    second = run(scrambled, tmp_path)
    assert (first.k, first.temperature) == (second.k, second.temperature)
    half = len(trained) // 2  # the first run's trainings (with refits), then the second's
    for (targets_a, history_a), (targets_b, history_b) in zip(
        trained[:half], trained[half:], strict=True
    ):
        assert (targets_a is None) == (targets_b is None)
        if targets_a is not None:
            assert np.array_equal(targets_a, targets_b)
        for a, b in zip(history_a, history_b, strict=True):
            assert {k: v for k, v in a.items() if k != "seconds"} == {
                k: v for k, v in b.items() if k != "seconds"
            }
    assert first.runs[KNN][0]["accuracy"] != second.runs[KNN][0]["accuracy"]


def test_soft_targets_leave_each_training_sample_out(motion, tmp_path, monkeypatch):
    captured = {}
    real_train = experiment.train

    def spy(**kwargs):
        if kwargs["teacher_targets"] is not None:
            refit = kwargs["validation_set"] is None
            captured["refit" if refit else "targets"] = kwargs["teacher_targets"]
        return real_train(**kwargs)

    monkeypatch.setattr(experiment, "train", spy)
    result = run(motion, tmp_path, teacher=TeacherConfig(temperature=0.05))
    assert result.temperature == 0.05
    assert "temperature 0.05 (fixed)" in result.markdown
    distances = cached_pairwise(
        motion.sequences, lengths=motion.lengths, cache_dir=tmp_path / "cache"
    )
    train = rows(motion, 1, 2)
    block = distances[np.ix_(train, train)]
    off_diagonal = block[~np.eye(len(train), dtype=bool)]
    scale = off_diagonal.max() - off_diagonal.min()

    def expected(subset: np.ndarray, normalization: str = "none", divide_by: float = scale):
        return soft_targets(
            distances[np.ix_(subset, subset)] / divide_by,
            motion.labels[subset],
            n_classes=motion.n_classes,
            temperature=0.05,
            normalization=normalization,
            self_index=np.arange(len(subset)),
        )

    np.testing.assert_allclose(captured["targets"], expected(train), rtol=1e-12)
    # the paper's global min-max gives the same targets (softmax ignores the shift)
    paper = expected(train, normalization="global", divide_by=1.0)
    np.testing.assert_allclose(captured["targets"], paper, rtol=1e-9, atol=1e-12)
    # the refit's targets cover train + validation rows, on the training matrix's scale
    refit = expected(rows(motion, 1, 2, 3))
    np.testing.assert_allclose(captured["refit"], refit, rtol=1e-12)


def test_teacher_with_motion_gives_the_targets_of_its_own_matrix(motion, tmp_path, monkeypatch):
    captured: list[np.ndarray] = []
    real_train = experiment.train

    def spy(**kwargs):
        if kwargs["teacher_targets"] is not None and kwargs["validation_set"] is not None:
            captured.append(kwargs["teacher_targets"])
        return real_train(**kwargs)

    monkeypatch.setattr(experiment, "train", spy)
    train = rows(motion, 1, 2)
    for lead in (0.0, 3.0):  # one cache folder: each matrix is found under its own key
        result = run(
            motion,
            tmp_path,
            students=("distilled",),
            teacher=TeacherConfig(temperature=0.05, lead=lead),
        )
        frames = with_motion(motion.sequences, lengths=motion.lengths, lead=lead)
        distances = pairwise(frames if lead else motion.sequences, lengths=motion.lengths)
        block = distances[np.ix_(train, train)]
        expected = soft_targets(
            block,
            motion.labels[train],
            n_classes=motion.n_classes,
            temperature=0.05,
            normalization="global",
            self_index=np.arange(len(train)),
        )
        np.testing.assert_allclose(captured[-1], expected, rtol=1e-9, atol=1e-12)
        assert result.document["metadata"]["teacher"]["lead"] == lead
        assert ("frames with motion (lead 3 frames)" in result.markdown) == bool(lead)
    assert not np.allclose(captured[0], captured[1])


def test_blends_join_the_distilled_students_training_with_the_teachers_targets(
    motion, tmp_path, monkeypatch
):
    calls: list[dict] = []
    real_train = experiment.train

    def spy(**kwargs):
        calls.append(kwargs)
        return real_train(**kwargs)

    monkeypatch.setattr(experiment, "train", spy)
    result = run(motion, tmp_path, teacher=TeacherConfig(temperature=0.05, blends=1.0))
    train, refit = rows(motion, 1, 2), rows(motion, 1, 2, 3)
    sizes = {
        (k["teacher_targets"] is not None, k["validation_set"] is None): len(k["train_set"])
        for k in calls
    }
    # The direct transformer sees the training rows alone; the distilled student one blend more
    # for each training (and, in the refit, validation) row.
    assert sizes == {
        (False, False): len(train),
        (False, True): len(refit),
        (True, False): 2 * len(train),
        (True, True): 2 * len(refit),
    }
    selection = next(k for k in calls if k["teacher_targets"] is not None)
    centre = Preprocessing.for_landmarks(motion.landmark_names).centre_landmarks
    blends = blend_sequences(motion.subset(train), len(train), seed=0, centre_landmarks=centre)
    seen = selection["train_set"]
    np.testing.assert_array_equal(seen.sequences[: len(train)], motion.subset(train).sequences)
    np.testing.assert_array_equal(seen.sequences[len(train) :], blends.dataset.sequences)
    np.testing.assert_array_equal(seen.labels[len(train) :], blends.dataset.labels)
    # A blend's target: its distances to the training rows but its two sources, on the
    # training matrix's scale.
    distances = pairwise(motion.sequences, lengths=motion.lengths)
    block = distances[np.ix_(train, train)]
    off_diagonal = block[~np.eye(len(train), dtype=bool)]
    scale = off_diagonal.max() - off_diagonal.min()
    to_train = cross(
        blends.dataset.sequences,
        motion.subset(train).sequences,
        lengths_a=blends.dataset.lengths,
        lengths_b=motion.lengths[train],
    )
    expected = soft_targets(
        to_train / scale,
        motion.labels[train],
        n_classes=motion.n_classes,
        temperature=0.05,
        normalization="none",
        exclude=blends.exclude(len(train)),
    )
    np.testing.assert_allclose(selection["teacher_targets"][len(train) :], expected, rtol=1e-9)
    assert "1 teacher-labelled blends per training sequence" in result.markdown
    assert result.document["metadata"]["teacher"]["blends"] == 1.0
    # Labelling the blends is a stage of its own in the wall time.
    blends_seconds = result.document["metadata"]["stage_seconds"]["teacher_blends"]
    assert blends_seconds > 0
    assert f"blends labelled {blends_seconds:.0f} s, students" in result.markdown


@pytest.mark.parametrize("relation_weight", [0.0, 2.0])
def test_relational_term_gets_the_teachers_distances_of_its_rows(
    motion, tmp_path, monkeypatch, relation_weight
):
    captured: dict[str, np.ndarray | None] = {}
    real_train = experiment.train

    def spy(**kwargs):
        method = "distilled" if kwargs["teacher_targets"] is not None else "direct"
        stage = "refit" if kwargs["validation_set"] is None else "select"
        captured[f"{method} {stage}"] = kwargs["teacher_distances"]
        return real_train(**kwargs)

    monkeypatch.setattr(experiment, "train", spy)
    run(motion, tmp_path, train_config=replace(TINY, relation_weight=relation_weight))
    assert captured["direct select"] is None and captured["direct refit"] is None
    if relation_weight == 0:  # off: no matrix is cut out at all
        assert captured["distilled select"] is None and captured["distilled refit"] is None
        return
    distances = cached_pairwise(
        motion.sequences, lengths=motion.lengths, cache_dir=tmp_path / "cache"
    )
    train = rows(motion, 1, 2)
    refit = np.concatenate([train, rows(motion, 3)])  # train rows, then validation rows
    for stage, chosen in (("select", train), ("refit", refit)):
        got = captured[f"distilled {stage}"]
        np.testing.assert_array_equal(got, distances[np.ix_(chosen, chosen)])


def test_temperature_is_the_validation_cross_entropy_minimum(motion, tmp_path):
    result = run(
        motion, tmp_path, teacher=TeacherConfig(temperature=None, temperatures=(0.01, 0.1, 1.0))
    )
    scores = result.document["metadata"]["temperature_validation"]
    assert set(scores) == {"0.01", "0.1", "1"}
    best = min(scores, key=lambda t: scores[t]["cross_entropy"])
    assert float(best) == result.temperature
    # T = 1 on distances scaled to [0, 1] is almost uniform: the worst fit
    assert scores["1"]["cross_entropy"] > scores[best]["cross_entropy"]


def test_refit_trains_again_on_train_and_validation(motion, tmp_path, monkeypatch):
    sizes = []
    real_train = experiment.train

    def spy(**kwargs):
        sizes.append((len(kwargs["train_set"]), kwargs["validation_set"] is None))
        return real_train(**kwargs)

    monkeypatch.setattr(experiment, "train", spy)
    run(motion, tmp_path)  # refit is the default
    n_train, n_both = len(rows(motion, 1, 2)), len(rows(motion, 1, 2, 3))
    assert sizes == [(n_train, False), (n_both, True), (n_train, False), (n_both, True)]
    sizes.clear()
    run(motion, tmp_path, refit=False)
    assert sizes == [(n_train, False), (n_train, False)]


def spy_on_training(monkeypatch) -> list[tuple[int, bool, int]]:
    """Every training run from now on: (epochs asked, on a validation set?, best epoch)."""
    calls = []
    real_train = experiment.train

    def spy(**kwargs):
        result = real_train(**kwargs)
        calls.append(
            (kwargs["config"].epochs, kwargs["validation_set"] is not None, result.best_epoch)
        )
        return result

    monkeypatch.setattr(experiment, "train", spy)
    return calls


def test_refit_scale_lengthens_the_refit(motion, tmp_path, monkeypatch):
    calls = spy_on_training(monkeypatch)
    out, config = tmp_path / "out", replace(TINY, epochs=5)
    first = run(motion, tmp_path, out=out, train_config=config, refit_scale=2.5)
    chosen = [best for epochs, selecting, best in calls if selecting]  # direct, distilled
    assert [epochs for epochs, selecting, _ in calls if selecting] == [5, 5]
    assert [epochs for epochs, selecting, _ in calls if not selecting] == [
        max(1, round(2.5 * best)) for best in chosen
    ]
    assert first.document["metadata"]["refit_scale"] == {"direct": 2.5, "distilled": 2.5}
    assert "then refit on train + validation for 2.5× the chosen epochs" in first.markdown
    # Other scales (here the defaults, one per student) reuse the runs that chose the epochs:
    # refits only.
    calls.clear()
    again = run(motion, tmp_path, out=out, train_config=config)
    defaults = {"direct": 2.0, "distilled": 1.5}
    assert again.document["metadata"]["refit_scale"] == experiment.REFIT_SCALES == defaults
    assert [(epochs, selecting) for epochs, selecting, _ in calls] == [
        (max(1, round(scale * best)), False)
        for scale, best in zip(defaults.values(), chosen, strict=True)
    ]
    assert "for a multiple of the chosen epochs (direct 2×, distilled 1.5×)" in again.markdown
    assert again.document["metadata"]["reused_students"] == []
    assert again.document["metadata"]["reused_selections"] == [
        "direct_seed0.pt",
        "distilled_seed0.pt",
    ]
    assert "2 were only refit here, on the epoch an earlier run chose" in again.markdown
    for method in (DIRECT, DISTILLED):
        assert again.runs[method][0]["best_epoch"] == first.runs[method][0]["best_epoch"]
    # 1.0 keeps the chosen number of epochs, and the table says nothing about a scale.
    calls.clear()
    same = run(motion, tmp_path, out=out, train_config=config, refit_scale=1.0)
    assert [(epochs, selecting) for epochs, selecting, _ in calls] == [
        (best, False) for best in chosen
    ]
    assert "the chosen epochs" not in same.markdown
    # A scale for one student: the other keeps its default, and only the changed one is refit.
    calls.clear()
    mixed = run(motion, tmp_path, out=out, train_config=config, refit_scale={"direct": 1.0})
    assert mixed.document["metadata"]["refit_scale"] == {"direct": 1.0, "distilled": 1.5}
    assert mixed.document["metadata"]["reused_students"] == ["direct_seed0.pt"]
    assert [(epochs, selecting) for epochs, selecting, _ in calls] == [
        (max(1, round(1.5 * chosen[1])), False)
    ]


def test_a_student_only_refit_is_the_one_a_fresh_run_trains(motion, tmp_path, monkeypatch):
    config = replace(TINY, epochs=5)
    out = tmp_path / "out"
    run(motion, tmp_path, out=out, train_config=config, refit=False)
    calls = spy_on_training(monkeypatch)
    refit_only = run(motion, tmp_path, out=out, train_config=config, refit_scale=2.0)
    assert [selecting for _, selecting, _ in calls] == [False, False]  # after --no-refit too
    fresh = run(motion, tmp_path, out=tmp_path / "fresh", train_config=config, refit_scale=2.0)
    for method in (DIRECT, DISTILLED):
        for key in ("accuracy", "f1", "best_epoch", "validation_accuracy"):
            assert refit_only.runs[method][0][key] == fresh.runs[method][0][key]
    for name in ("direct_seed0.pt", "distilled_seed0.pt"):
        weights = [
            load_checkpoint(folder / "checkpoints" / name)[0].state_dict()
            for folder in (out, tmp_path / "fresh")
        ]
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # The selected model itself was not kept by a refit run: --no-refit trains it again.
    calls.clear()
    run(motion, tmp_path, out=out, train_config=config, refit=False)
    assert [selecting for _, selecting, _ in calls] == [True, True]


def test_an_ensemble_averages_its_students(motion, tmp_path, monkeypatch):
    seeds_trained = []
    real_train = experiment.train

    def spy(**kwargs):
        seeds_trained.append((kwargs["config"].seed, kwargs["validation_set"] is None))
        return real_train(**kwargs)

    monkeypatch.setattr(experiment, "train", spy)
    out = tmp_path / "out"
    result = run(motion, tmp_path, seeds=(1,), ensemble=3, out=out)
    # run 1 of three-student ensembles: seeds 3, 4, 5, each chosen on validation, then refit
    per_method = [(s, refit) for s in (3, 4, 5) for refit in (False, True)]
    assert seeds_trained == per_method * 2
    distilled = result.runs[DISTILLED][0]
    assert distilled["member_seeds"] == [3, 4, 5] and len(distilled["best_epoch"]) == 3
    assert result.document["metadata"]["ensemble"] == 3
    assert "ensemble of 3 students" in result.markdown
    paths = [out / "checkpoints" / f"distilled_seed1_member{i}.pt" for i in range(3)]
    test_set = motion.subset(rows(motion, 4))
    members = [load_checkpoint(path)[0] for path in paths]
    assert [load_checkpoint(p)[1]["extra"]["member_seed"] for p in paths] == [3, 4, 5]
    mean = np.mean([predict_proba(m, test_set) for m in members], axis=0)
    accuracy = np.mean(mean.argmax(axis=1) == test_set.labels)
    assert accuracy == pytest.approx(distilled["accuracy"])
    with pytest.raises(ValueError, match="ensemble"):
        run(motion, tmp_path, ensemble=0)


def test_one_student_alone_trains_as_it_would_beside_the_other(motion, tmp_path, monkeypatch):
    """``students=("direct",)`` trains and reports the direct transformer only, and its model is
    the one a run of both students trains for that seed."""
    both = run(motion, tmp_path, seeds=(2,))
    trained = []
    real_train = experiment.train

    def spy(**kwargs):
        trained.append(kwargs["teacher_targets"] is None)
        return real_train(**kwargs)

    monkeypatch.setattr(experiment, "train", spy)
    out = tmp_path / "out"
    alone = run(motion, tmp_path, seeds=(2,), students=("direct",), out=out)
    assert trained == [True, True]  # chosen on validation, then refit; no distillation
    assert set(alone.runs) == {KNN, DIRECT}
    for key in ("accuracy", "f1", "best_epoch", "validation_accuracy"):
        assert alone.runs[DIRECT][0][key] == both.runs[DIRECT][0][key]
    assert alone.document["metadata"]["students"] == ["direct"]
    assert "| Transformer (direct) |" in alone.markdown
    assert "Student (distilled)" not in alone.markdown
    assert f"(direct: [{alone.runs[DIRECT][0]['best_epoch']}])" in alone.markdown
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["direct_seed2.pt"]
    assert not (out / "plots" / "confusion_distilled.png").exists()
    # the order given does not matter: the table keeps direct, then distilled
    trained.clear()
    swapped = run(motion, tmp_path, seeds=(2,), students=["distilled", "direct"])
    assert list(swapped.runs) == [KNN, DIRECT, DISTILLED]
    assert trained == [True, True, False, False]
    for students, message in (((), "at least one"), (("teacher",), "unknown student 'teacher'")):
        with pytest.raises(ValueError, match=message):
            run(motion, tmp_path, students=students)


def counting_train(monkeypatch) -> list[int]:
    """Make ``experiment.train`` record the seed of every student it trains."""
    seeds: list[int] = []
    real_train = experiment.train

    def spy(**kwargs):
        seeds.append(kwargs["config"].seed)
        return real_train(**kwargs)

    monkeypatch.setattr(experiment, "train", spy)
    return seeds


def test_a_rerun_reuses_its_students_and_reports_the_same(motion, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = run(motion, tmp_path, out=out, seeds=(0, 1))

    def no_training(**kwargs):
        raise AssertionError("a student already in the output folder was trained again")

    monkeypatch.setattr(experiment, "train", no_training)
    second = run(motion, tmp_path, out=out, seeds=(0, 1))
    for method in (DIRECT, DISTILLED):
        for before, after in zip(first.runs[method], second.runs[method], strict=True):
            for key in ("accuracy", "f1", "best_epoch", "validation_accuracy", "train_seconds"):
                assert after[key] == before[key]
    names = [f"{short}_seed{seed}.pt" for seed in (0, 1) for short in ("direct", "distilled")]
    assert second.document["metadata"]["reused_students"] == names
    assert first.document["metadata"]["reused_students"] == []
    assert "4 of them came from an earlier run's checkpoints" in second.markdown
    assert second.document["metadata"]["train_config"] == first.document["metadata"]["train_config"]


def test_a_stopped_run_loses_only_the_student_it_was_training(motion, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_train = experiment.train
    calls = []

    def stop_in_the_third_student(**kwargs):
        calls.append(kwargs["config"].seed)
        if len(calls) == 5:  # each student: chosen on validation, then refit
            raise KeyboardInterrupt
        return real_train(**kwargs)

    monkeypatch.setattr(experiment, "train", stop_in_the_third_student)
    with pytest.raises(KeyboardInterrupt):
        run(motion, tmp_path, out=out, seeds=(0, 1))
    saved = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert saved == ["direct_seed0.pt", "distilled_seed0.pt"]  # no temporary file either
    trained = counting_train(monkeypatch)
    resumed = run(motion, tmp_path, out=out, seeds=(0, 1))
    assert trained == [1, 1, 1, 1]  # seed 1's two students, each chosen and refit
    assert resumed.document["metadata"]["reused_students"] == saved
    uninterrupted = run(motion, tmp_path, out=tmp_path / "fresh", seeds=(0, 1))
    for method in (DIRECT, DISTILLED):
        assert [r["accuracy"] for r in resumed.runs[method]] == [
            r["accuracy"] for r in uninterrupted.runs[method]
        ]


def test_students_of_other_settings_or_unreadable_files_are_trained_again(
    motion, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    run(motion, tmp_path, out=out)
    trained = counting_train(monkeypatch)
    other = run(motion, tmp_path, out=out, train_config=replace(TINY, dropout=0.3))
    assert len(trained) == 4 and other.document["metadata"]["reused_students"] == []
    trained.clear()
    run(motion, tmp_path, out=out, train_config=replace(TINY, dropout=0.3))
    assert trained == []  # the folder now holds the dropout-0.3 students
    split = {"train_index": rows(motion, 1, 3), "validation_index": rows(motion, 2)}
    other_split = run(motion, tmp_path, out=out, train_config=replace(TINY, dropout=0.3), **split)
    assert len(trained) == 4 and other_split.document["metadata"]["reused_students"] == []
    trained.clear()
    (out / "checkpoints" / "direct_seed0.pt").write_bytes(b"not a checkpoint")
    rerun = run(motion, tmp_path, out=out, train_config=replace(TINY, dropout=0.3), **split)
    assert len(trained) == 2 and rerun.document["metadata"]["reused_students"] == [
        "distilled_seed0.pt"
    ]
    trained.clear()
    run(motion, tmp_path, out=out, resume=False)
    assert len(trained) == 4


def test_training_settings_of_data_set_experiments():
    settings = experiment._train_config
    default = settings(None, epochs=None, quick=False, default_epochs=40)
    assert default == replace(TrainConfig(), epochs=40)
    quick = settings({"d_model": 32}, epochs=None, quick=True, default_epochs=40)
    assert (quick.d_model, quick.epochs) == (32, experiment.QUICK_EPOCHS)
    assert quick.warmup_epochs <= max(1, experiment.QUICK_EPOCHS // 5)
    assert settings({"epochs": 7}, epochs=None, quick=False, default_epochs=40).epochs == 7
    assert settings({"epochs": 7}, epochs=3, quick=True, default_epochs=40).epochs == 3
    exact = TrainConfig(epochs=4, warmup_epochs=4)
    assert settings(exact, epochs=None, quick=False, default_epochs=40) == exact
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        settings({"layers": 2}, epochs=None, quick=False, default_epochs=40)


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ({"test_index": [0, 1]}, "both the train and test"),
        ({"validation_index": []}, "non-empty"),
        ({"test_index": [10_000]}, "outside"),
        ({"test_index": [30, 30]}, "twice"),
        ({"train_index": np.zeros(3, dtype=bool)}, "mask"),
    ],
)
def test_bad_splits_are_refused(motion, tmp_path, indices, message):
    with pytest.raises(ValueError, match=message):
        run(motion, tmp_path, **indices)


def test_bad_options_are_refused(motion, tmp_path):
    with pytest.raises(ValueError, match="neither a landmark group"):
        run(motion, tmp_path, student_landmarks="left_hand")
    with pytest.raises(ValueError, match="seeds"):
        run(motion, tmp_path, seeds=())
    for scale in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="refit_scale of the direct student must be a posi"):
            run(motion, tmp_path, refit_scale=scale)
    with pytest.raises(ValueError, match="refit_scale of the distilled student must be a pos"):
        run(motion, tmp_path, refit_scale={"distilled": float("inf")})
    with pytest.raises(ValueError, match="refit_scale names unknown student 'teacher'"):
        run(motion, tmp_path, refit_scale={"teacher": 2.0})
    with pytest.raises(ValueError, match="temperatures"):
        TeacherConfig(temperature=0.0)
    with pytest.raises(ValueError, match="normalization"):
        TeacherConfig(normalization="max")  # type: ignore[arg-type]
    for blends in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="TeacherConfig.blends must be a number >= 0"):
            TeacherConfig(blends=blends)
    with pytest.raises(ValueError, match="blends does not work with the 'hand' metric"):
        TeacherConfig(metric="hand", blends=1.0)
    with pytest.raises(ValueError, match="blends and TrainConfig.relation_weight do not go"):
        run(
            motion,
            tmp_path,
            teacher=TeacherConfig(blends=1.0),
            train_config=replace(TINY, relation_weight=1.0),
        )
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            run(motion, tmp_path, device="cuda")


def test_npz_experiment_and_prediction(motion, tmp_path):
    path = tmp_path / "motion.npz"
    save_npz(motion, path)
    with pytest.raises(ValueError, match="test subject 9"):
        run_npz(path=path, test_subjects=[9])
    with pytest.raises(ValueError, match="both a validation and a test"):
        run_npz(path=path, test_subjects=[4], validation_subjects=[4])
    with pytest.raises(FileNotFoundError):
        run_npz(path=tmp_path / "missing.npz", test_subjects=[4])
    result = run_npz(
        path=path,
        test_subjects=[4],
        train_config=TINY,
        out=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        device="cpu",
        threads=1,
    )
    assert result.document["metadata"]["dataset"]["splits"]["train"]["subjects"] == [1, 2]
    predictions = predict_file(checkpoint=tmp_path / "out/checkpoints/direct_seed0.pt", data=path)
    assert predictions.probabilities.shape == (len(motion), motion.n_classes)
    np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(predictions.labels, motion.labels)
    assert np.all(predictions.confidence >= 1.0 / motion.n_classes)

    # Two checkpoints: an ensemble, whose probabilities are the mean of its students'.
    students = [tmp_path / f"out/checkpoints/{m}_seed0.pt" for m in ("direct", "distilled")]
    pair = predict_file(checkpoint=students, data=path)
    alone = [predict_file(checkpoint=c, data=path).probabilities for c in students]
    np.testing.assert_allclose(pair.probabilities, np.mean(alone, axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="at least one checkpoint"):
        predict_file(checkpoint=[], data=path)

    other = make_synthetic_motion(3, n_subjects=1, per_subject=1, n_landmarks=4)
    save_npz(other, tmp_path / "other.npz")
    with pytest.raises(ValueError, match="4 landmarks per frame"):
        predict_file(
            checkpoint=tmp_path / "out/checkpoints/direct_seed0.pt", data=tmp_path / "other.npz"
        )


def test_mhad_end_to_end_in_a_subprocess(tmp_path):
    """`gkd-run mhad --quick` as a user runs it, on a slice of the bundled data (six actions,
    one sequence per subject and action) so that it takes seconds."""
    out = tmp_path / "out"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "gkd",
            "mhad",
            "--quick",
            "--epochs",
            "1",
            "--per-class-limit",
            "1",
            "--class-limit",
            "6",
            "--train-config",
            '{"d_model": 16, "n_heads": 2, "n_layers": 1}',
            "--device",
            "cpu",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert "| k-NN teacher |" in completed.stdout
    assert "UTD-MHAD, paper protocol" in completed.stdout
    document = json.loads((out / "results.json").read_text())
    splits = document["metadata"]["dataset"]["splits"]
    assert splits["test"]["subjects"] == [6, 7, 8]
    assert splits["validation"]["subjects"] == [5]
    assert splits["train"]["sequences"] == 4 * 6
    # UTD-MHAD's default teacher: frames with their motion, two blends per training sequence
    assert document["metadata"]["teacher"]["lead"] == MHAD_LEAD == 10
    assert document["metadata"]["teacher"]["blends"] == MHAD_BLENDS == 2
    # a correct Procrustes-DTW k-NN recognises most actions even from 5 examples each
    assert document["summary"][KNN]["accuracy"]["mean"] > 0.5
    assert Path(out / "checkpoints" / "distilled_seed0.pt").is_file()
