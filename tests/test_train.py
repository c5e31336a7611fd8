"""Training, prediction, augmentation and checkpoints (gkd.train)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from gkd.datasets import MotionDataset
from gkd.student import MotionTransformer, Preprocessing
from gkd.teacher import soft_targets
from gkd.train import (
    LOCAL_WARP_SEGMENTS,
    EpochStats,
    TrainConfig,
    TrainResult,
    augment_batch,
    decoupled_kd_terms,
    ensemble_proba,
    load_checkpoint,
    mean_probabilities,
    member_seeds,
    predict,
    predict_proba,
    relation_loss,
    save_checkpoint,
    train,
)

torch.set_num_threads(1)


def synthetic(n_per_class: int, seed: int) -> MotionDataset:
    """Three motions of landmark 0 relative to a 4-landmark body: up, sideways, a circle.

    Each sequence has its own length, position, size and noise; only the motion pattern tells
    the classes apart (chance: 1/3).
    """
    rng = np.random.default_rng(seed)
    frames, landmarks = 16, 4
    n = 3 * n_per_class
    sequences = np.zeros((n, frames, landmarks, 3), dtype=np.float32)
    lengths = rng.integers(8, frames + 1, size=n)
    labels = np.repeat(np.arange(3), n_per_class)
    body = np.random.default_rng(42).normal(size=(landmarks, 3))  # one body for all
    for i in range(n):
        t = np.linspace(0, 1, lengths[i])
        motion = np.zeros((lengths[i], 3))
        if labels[i] == 0:
            motion[:, 1] = t
        elif labels[i] == 1:
            motion[:, 0] = t
        else:
            motion[:, 0] = 0.5 * np.cos(2 * np.pi * t)
            motion[:, 1] = 0.5 * np.sin(2 * np.pi * t)
        frame = np.repeat(body[None], lengths[i], axis=0)
        frame[:, 0] += 2.0 * motion
        frame += rng.normal(scale=0.1, size=frame.shape)
        frame = frame * rng.uniform(0.5, 2.0) + rng.normal(scale=3.0, size=3)
        sequences[i, : lengths[i]] = frame
    return MotionDataset(
        sequences=sequences,
        lengths=lengths,
        labels=labels,
        class_names=["up", "side", "circle"],
        subjects=np.arange(n) % 2,
        landmark_names=[f"p{j}" for j in range(landmarks)],
        source="synthetic",
    )


@pytest.fixture(scope="module")
def data() -> tuple[MotionDataset, MotionDataset]:
    return synthetic(12, seed=0), synthetic(6, seed=1)


def tiny_config(**kwargs) -> TrainConfig:
    options = {
        "d_model": 16,
        "n_heads": 2,
        "n_layers": 1,
        "epochs": 20,
        "batch_size": 8,
        "lr": 3e-3,
        "warmup_epochs": 1,
        "frames_per_token": 1,
        "augment": False,
        "device": "cpu",
        "threads": 1,
    }
    options.update(kwargs)
    return TrainConfig(**options)


@pytest.fixture(scope="module")
def trained(data):
    train_set, validation_set = data
    return train(train_set=train_set, validation_set=validation_set, config=tiny_config())


def accuracy(model: MotionTransformer, dataset: MotionDataset) -> float:
    return float(np.mean(predict(model, dataset) == dataset.labels))


def test_direct_training_beats_chance(trained, data):
    _, validation_set = data
    assert accuracy(trained.model, validation_set) >= 0.8  # chance is 1/3
    assert trained.best_validation_accuracy == pytest.approx(
        accuracy(trained.model, validation_set)
    )
    assert len(trained.history) == 20
    assert not trained.distilled


def crude_teacher(dataset: MotionDataset) -> tuple[np.ndarray, np.ndarray]:
    """A crude teacher: distances between the sequences' first-to-last motion of landmark 0,
    and the leave-one-out soft targets they give."""
    step = np.stack(
        [
            s[length - 1, 0] - s[0, 0]
            for s, length in zip(dataset.sequences, dataset.lengths, strict=True)
        ]
    )
    distances = np.linalg.norm(step[:, None] - step[None], axis=-1)
    targets = soft_targets(
        distances,
        dataset.labels,
        n_classes=3,
        normalization="row",
        temperature=0.2,
        self_index=np.arange(len(step)),
    )
    return distances, targets


def test_distilled_training_beats_chance(data):
    train_set, validation_set = data
    _, targets = crude_teacher(train_set)
    result = train(
        train_set=train_set,
        validation_set=validation_set,
        config=tiny_config(alpha=0.5, beta=0.5, temperature=2.0),
        teacher_targets=targets,
    )
    assert result.distilled
    assert accuracy(result.model, validation_set) >= 0.8


def test_same_seed_same_numbers(data, trained):
    train_set, validation_set = data
    again = train(train_set=train_set, validation_set=validation_set, config=tiny_config())
    assert [s.train_loss for s in again.history] == [s.train_loss for s in trained.history]
    assert [s.validation_loss for s in again.history] == [
        s.validation_loss for s in trained.history
    ]
    np.testing.assert_array_equal(
        predict_proba(again.model, validation_set), predict_proba(trained.model, validation_set)
    )
    other = train(
        train_set=train_set, validation_set=validation_set, config=tiny_config(seed=1, epochs=2)
    )
    assert other.history[0].train_loss != trained.history[0].train_loss


def test_same_seed_same_numbers_with_augmentation(data):
    train_set, _ = data
    config = tiny_config(epochs=2, augment=True, rotation_degrees=30.0)
    first = train(train_set=train_set, validation_set=None, config=config)
    second = train(train_set=train_set, validation_set=None, config=config)
    assert [s.train_loss for s in first.history] == [s.train_loss for s in second.history]


def test_gap_reaches_the_training_batches(data):
    train_set, _ = data
    config = tiny_config(epochs=2, augment=True, rotation_degrees=30.0)
    plain = train(train_set=train_set, validation_set=None, config=config)
    gapped = train(train_set=train_set, validation_set=None, config=replace(config, gap=0.5))
    assert [s.train_loss for s in plain.history] != [s.train_loss for s in gapped.history]


def test_training_leaves_global_torch_state_alone(data):
    train_set, _ = data
    torch.set_num_threads(2)
    try:
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        train(train_set=train_set, validation_set=None, config=tiny_config(epochs=1, threads=1))
        torch.testing.assert_close(torch.rand(3), expected)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path, trained, data):
    _, validation_set = data
    path = tmp_path / "nested" / "student.pt"
    save_checkpoint(path, trained, extra={"teacher": {"metric": "procrustes", "k": 3}})
    # weights_only loading must work: nothing but plain types and tensors in the file.
    assert torch.load(path, weights_only=True)["format"] == "gkd-student"
    model, metadata = load_checkpoint(path)
    np.testing.assert_array_equal(
        predict_proba(model, validation_set), predict_proba(trained.model, validation_set)
    )
    assert metadata["class_names"] == ["up", "side", "circle"]
    assert metadata["extra"] == {"teacher": {"metric": "procrustes", "k": 3}}
    assert metadata["training"]["best_epoch"] == trained.best_epoch
    assert TrainConfig.from_dict(metadata["training"]["config"]) == trained.config
    assert model.preprocessing == trained.model.preprocessing
    # The training record comes back as the TrainResult it was made from, around the model.
    restored = TrainResult.from_record(model, metadata["training"], metadata["class_names"])
    assert restored.record() == trained.record()
    assert restored.history == trained.history and restored.model is model
    assert restored.best_validation_accuracy == trained.best_validation_accuracy


def test_a_checkpoint_is_replaced_whole_or_not_at_all(tmp_path, trained, monkeypatch):
    path = tmp_path / "student.pt"
    save_checkpoint(path, trained)
    before = path.read_bytes()

    def dies_halfway(payload, file):
        Path(file).write_bytes(before[:100])
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, trained, extra={"newer": True})
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # the half-written temporary file is gone


def test_member_seeds_never_overlap_between_runs():
    assert member_seeds(4, 1) == [4]
    assert member_seeds(0, 3) + member_seeds(1, 3) == list(range(6))
    with pytest.raises(ValueError, match="at least one student"):
        member_seeds(0, 0)


def test_mean_probabilities_matches_numpy_mean_and_rejects_bad_members():
    rng = np.random.default_rng(3)
    members = [rng.dirichlet(np.ones(4), size=5).astype(np.float32) for _ in range(3)]
    mean = mean_probabilities(members)
    assert mean.dtype == np.float32
    np.testing.assert_allclose(mean, np.stack(members).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, rtol=1e-6)
    assert members[0] is not mean and not np.shares_memory(members[0], mean)
    with pytest.raises(ValueError, match="at least one member"):
        mean_probabilities([])
    with pytest.raises(ValueError, match=r"member 2's probabilities have shape \(5, 3\)"):
        mean_probabilities([members[0], members[1], members[2][:, :3]])


def test_ensemble_proba_is_the_mean_of_its_members(trained, data):
    validation_set = data[1]
    model = trained.model
    other = MotionTransformer(model.n_inputs, model.n_classes, d_model=16, n_heads=2).eval()
    single = [predict_proba(m, validation_set) for m in (model, other)]
    np.testing.assert_allclose(
        ensemble_proba([model, other], validation_set), (single[0] + single[1]) / 2, rtol=1e-6
    )
    np.testing.assert_array_equal(ensemble_proba([other], validation_set), single[1])
    with pytest.raises(ValueError, match="at least one model"):
        ensemble_proba([], validation_set)
    with pytest.raises(ValueError, match="class counts"):
        ensemble_proba([other, MotionTransformer(other.n_inputs, 2)], validation_set)


def test_checkpoint_of_a_bare_model(tmp_path):
    torch.manual_seed(0)
    model = MotionTransformer(
        12, 2, d_model=8, n_heads=2, n_layers=1, preprocessing=Preprocessing(velocities=True)
    ).eval()
    with pytest.raises(ValueError, match="class_names"):
        save_checkpoint(tmp_path / "m.pt", model)
    save_checkpoint(tmp_path / "m.pt", model, class_names=["a", "b"])
    loaded, metadata = load_checkpoint(tmp_path / "m.pt")
    assert metadata["training"] is None
    inputs = torch.randn(2, 5, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded(inputs), model(inputs), rtol=0, atol=0)


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a gkd student checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")


def test_refit_without_validation_keeps_the_last_epoch_and_reports_progress(data):
    train_set, _ = data
    seen: list[EpochStats] = []
    result = train(
        train_set=train_set, validation_set=None, config=tiny_config(epochs=3), progress=seen.append
    )
    assert result.best_epoch == 3
    assert [s.epoch for s in seen] == [1, 2, 3]
    assert all(s.epochs == 3 and s.validation_accuracy is None for s in seen)
    assert result.best_validation_accuracy is None


def test_default_preprocessing_follows_the_landmark_names(data, trained):
    train_set, _ = data
    # No hip: the centroid; a small skeleton: with pairwise distances.
    assert trained.config.preprocessing == Preprocessing(distances=True)
    with_hip = replace(train_set, landmark_names=["head", "hip_center", "hand", "foot"])
    result = train(train_set=with_hip, validation_set=None, config=tiny_config(epochs=1))
    assert result.config.preprocessing == Preprocessing(centre_landmarks=(1,), distances=True)
    assert result.model.preprocessing == result.config.preprocessing
    chosen = Preprocessing(centre="frame")
    result = train(
        train_set=with_hip, validation_set=None, config=tiny_config(epochs=1, preprocessing=chosen)
    )
    assert result.model.preprocessing == chosen


def test_learning_rate_warms_up_then_decays(trained):
    rates = [s.lr for s in trained.history]
    peak = trained.config.lr
    assert rates[0] == pytest.approx(peak)  # end of the one warm-up epoch
    assert all(a >= b for a, b in zip(rates[:-1], rates[1:], strict=True))
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)


def test_model_selection_returns_the_best_validation_epoch(trained, data):
    accuracies = [s.validation_accuracy for s in trained.history]
    best = trained.history[trained.best_epoch - 1]
    assert best.validation_accuracy == max(accuracies)
    tied = [s for s in trained.history if s.validation_accuracy == max(accuracies)]
    assert best.validation_loss == min(s.validation_loss for s in tied)


def test_weight_average_follows_every_optimiser_step(data):
    """The returned weights are a NumPy EMA of the raw weights seen after each step."""
    train_set, _ = data
    snapshots: dict[int, list[np.ndarray]] = {}

    def record(optimizer, args, kwargs):
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                snapshots.setdefault(id(parameter), []).append(parameter.detach().numpy().copy())

    config = tiny_config(epochs=3, ema_epochs=2.0)
    hook = register_optimizer_step_post_hook(record)
    try:
        result = train(train_set=train_set, validation_set=None, config=config)
    finally:
        hook.remove()
    steps_per_epoch = math.ceil(len(train_set.labels) / config.batch_size)
    decay = math.exp(-1.0 / (2.0 * steps_per_epoch))  # weight 1/e after two epochs
    for name, parameter in result.model.named_parameters():
        steps = snapshots[id(parameter)]
        assert len(steps) == 3 * steps_per_epoch
        expected = steps[0].astype(np.float64)  # the average starts at the first step's weights
        for weights in steps[1:]:
            expected = decay * expected + (1.0 - decay) * weights
        got = parameter.detach().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, err_msg=name)
        assert not np.allclose(got, steps[-1]), name  # not simply the last step


def test_weight_average_is_what_validation_selects(data):
    train_set, validation_set = data
    result = train(
        train_set=train_set, validation_set=validation_set, config=tiny_config(ema_epochs=1.0)
    )
    assert result.model.training is False
    best = result.history[result.best_epoch - 1].validation_accuracy
    assert accuracy(result.model, validation_set) == pytest.approx(best)
    plain = train(train_set=train_set, validation_set=validation_set, config=tiny_config())
    assert [s.validation_loss for s in result.history] != [s.validation_loss for s in plain.history]


def test_augment_batch_keeps_shape_of_each_frame():
    rng = np.random.default_rng(0)
    lengths = torch.tensor([5, 3])
    inputs = torch.from_numpy(rng.normal(size=(2, 5, 12)).astype(np.float32))
    mask = torch.arange(5)[None, :] >= lengths[:, None]
    inputs[mask] = 0
    generator = torch.Generator().manual_seed(0)
    rotated, rotated_mask = augment_batch(
        inputs, mask, rotation_degrees=90.0, scale_range=0.0, time_warp=0.0, generator=generator
    )
    assert torch.equal(rotated_mask, mask)
    before = inputs.reshape(2, 5, 4, 3)
    after = rotated.reshape(2, 5, 4, 3)
    # A rotation about the vertical (y) axis keeps heights and all in-frame distances.
    torch.testing.assert_close(after[..., 1], before[..., 1])
    torch.testing.assert_close(
        torch.cdist(after[~mask], after[~mask]), torch.cdist(before[~mask], before[~mask])
    )
    assert not torch.allclose(after, before)
    assert torch.all(rotated[mask] == 0)


def _ramp_batch(lengths: list[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch whose every value is its frame index (0 at padding), and its mask."""
    frames = max(lengths)
    ramp = torch.arange(frames, dtype=torch.float32)[None, :, None].repeat(len(lengths), 1, width)
    mask = torch.arange(frames)[None, :] >= torch.tensor(lengths)[:, None]
    ramp[mask] = 0
    return ramp, mask


def _augment_only(
    inputs: torch.Tensor, mask: torch.Tensor, *, seed: int, **part: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``augment_batch`` with only the named parts switched on."""
    settings = {"rotation_degrees": 0.0, "scale_range": 0.0, "time_warp": 0.0, **part}
    return augment_batch(inputs, mask, generator=torch.Generator().manual_seed(seed), **settings)


def test_augment_batch_time_warp_resamples_within_range():
    lengths = [20, 10]
    ramp, mask = _ramp_batch(lengths, 3)
    generator = torch.Generator().manual_seed(3)
    warped, warped_mask = augment_batch(
        ramp, mask, rotation_degrees=0.0, scale_range=0.0, time_warp=0.3, generator=generator
    )
    new_lengths = (~warped_mask).sum(dim=1)
    for i, length in enumerate(lengths):
        assert math.floor(length / 1.3) <= new_lengths[i] <= math.ceil(length / 0.7)
        track = warped[i, : new_lengths[i], 0]
        # Linear interpolation of a ramp: starts at 0, ends at the last frame, evenly spaced.
        assert track[0] == pytest.approx(0.0)
        assert track[-1] == pytest.approx(length - 1, rel=1e-5)
        assert torch.allclose(torch.diff(track), torch.diff(track)[0].expand(len(track) - 1))
    assert torch.all(warped[warped_mask] == 0)


def test_augment_batch_local_warp_is_piecewise_linear_and_monotone():
    # Lengths 21 and 9 put the part boundaries of LOCAL_WARP_SEGMENTS = 4 on whole frames, so
    # the steps of a warped ramp are constant within each part: 5 and 2 steps per part.
    assert LOCAL_WARP_SEGMENTS == 4
    lengths = [21, 9]
    ramp, mask = _ramp_batch(lengths, 6)
    warped, warped_mask = _augment_only(ramp, mask, seed=5, local_warp=0.5)
    assert torch.equal(warped_mask, mask)  # no global speed change: lengths kept
    for i, length in enumerate(lengths):
        track = warped[i, :length, 0].double().numpy()
        assert track[0] == pytest.approx(0.0)
        assert track[-1] == pytest.approx(length - 1, rel=1e-5)
        steps = np.diff(track).reshape(LOCAL_WARP_SEGMENTS, -1)
        np.testing.assert_allclose(steps, steps[:, :1].repeat(steps.shape[1], axis=1), atol=1e-5)
        # Each part's speed, relative to the mean, lies within (1 ± 0.5) / (1 ∓ 0.5).
        relative = steps[:, 0] / steps[:, 0].mean()
        assert np.all(relative > 0.5 / 1.5) and np.all(relative < 1.5 / 0.5)
        assert relative.max() - relative.min() > 0.05  # the parts really differ in speed
    assert torch.all(warped[warped_mask] == 0)


def test_augment_batch_amplitude_scales_motion_about_the_mean_pose():
    rng = np.random.default_rng(1)
    lengths = [7, 4]
    inputs = torch.from_numpy(rng.normal(size=(2, 7, 15)).astype(np.float32))
    mask = torch.arange(7)[None, :] >= torch.tensor(lengths)[:, None]
    inputs[mask] = 0
    scaled, scaled_mask = _augment_only(inputs, mask, seed=2, amplitude_range=0.4)
    assert torch.equal(scaled_mask, mask)
    factors = []
    for i, length in enumerate(lengths):
        before = inputs[i, :length].double().numpy().reshape(length, 5, 3)
        after = scaled[i, :length].double().numpy().reshape(length, 5, 3)
        mean_pose = before.mean(axis=0)
        np.testing.assert_allclose(after.mean(axis=0), mean_pose, atol=1e-5)
        factor = np.sum((after - mean_pose) * (before - mean_pose)) / np.sum(
            (before - mean_pose) ** 2
        )
        np.testing.assert_allclose(after - mean_pose, factor * (before - mean_pose), atol=1e-5)
        assert 0.6 <= factor <= 1.4
        factors.append(factor)
    assert abs(factors[0] - factors[1]) > 1e-3  # one draw per sequence
    assert not np.allclose(factors, 1.0)
    assert torch.all(scaled[scaled_mask] == 0)


def test_augment_batch_gap_fills_one_stretch_with_a_straight_line():
    rng = np.random.default_rng(4)
    lengths = [40, 25, 1]
    inputs = torch.from_numpy(rng.normal(size=(3, 40, 6)).astype(np.float32))
    mask = torch.arange(40)[None, :] >= torch.tensor(lengths)[:, None]
    inputs[mask] = 0
    spans = []
    for seed in range(20):
        gapped, gapped_mask = _augment_only(inputs, mask, seed=seed, gap=0.5)
        assert torch.equal(gapped_mask, mask)
        assert torch.all(gapped[gapped_mask] == 0)
        for i, length in enumerate(lengths):
            before = inputs[i, :length].double().numpy()
            after = gapped[i, :length].double().numpy()
            changed = np.flatnonzero(np.any(np.abs(after - before) > 1e-6, axis=1))
            if changed.size == 0:
                continue
            first, last = changed[0], changed[-1]
            assert last - first + 1 <= 0.5 * length  # one stretch, at most half the frames
            # The stretch's frames lie on the straight line between the frames around it.
            left, right = max(first - 1, 0), min(last + 1, length - 1)
            t = np.arange(left, right + 1)[:, None]
            line = before[left] + (t - left) / (right - left) * (before[right] - before[left])
            np.testing.assert_allclose(after[left : right + 1], line, atol=1e-5)
            spans.append(last - first + 1)
    assert len(spans) > 20 and len(set(spans)) > 5  # stretches of many lengths were drawn
    # Switched off, the gap draws nothing: the batch is exactly the one without it.
    plain, _ = _augment_only(inputs, mask, seed=7, rotation_degrees=10.0)
    off, _ = _augment_only(inputs, mask, seed=7, rotation_degrees=10.0, gap=0.0)
    assert torch.equal(plain, off)


def whole_batch(dataset: MotionDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sequence as one padded batch: inputs (N, T, L*3) float32 and the padding mask."""
    sequences = dataset.sequences.reshape(*dataset.sequences.shape[:2], -1)
    inputs = torch.from_numpy(sequences).float()
    mask = torch.arange(inputs.shape[1])[None] >= torch.from_numpy(dataset.lengths)[:, None]
    return inputs, mask


def initial_logits(dataset: MotionDataset, result) -> np.ndarray:
    """Logits (float64) of the model ``train`` started from, on the whole of ``dataset``.

    Needs ``dropout=0`` in the run's config, so that training mode computes the same."""
    config = result.config
    torch.manual_seed(config.seed)  # the same initial weights as inside train
    initial = MotionTransformer(
        dataset.sequences.shape[2] * 3,
        len(dataset.class_names),
        d_model=config.d_model,
        n_heads=config.n_heads,
        n_layers=config.n_layers,
        dropout=0.0,
        preprocessing=config.preprocessing,
        frames_per_token=config.frames_per_token,
        positions=config.positions,
    )
    with torch.no_grad():
        return initial(*whole_batch(dataset)).double().numpy()


def numpy_log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_label_smoothing_applies_to_direct_training_only(data):
    """One full-batch step: the recorded loss is the initial model's smoothed cross-entropy
    (NumPy) when training directly, and smoothing leaves a distilled run untouched."""
    train_set, _ = data
    n = len(train_set.labels)
    config = tiny_config(epochs=1, batch_size=n, dropout=0.0, label_smoothing=0.3)
    result = train(train_set=train_set, validation_set=None, config=config)
    log_p = numpy_log_softmax(initial_logits(train_set, result))
    target = np.full((n, 3), 0.3 / 3)
    target[np.arange(n), train_set.labels] += 0.7
    expected = -np.mean(np.sum(target * log_p, axis=1))
    assert result.history[0].train_loss == pytest.approx(expected, rel=1e-5)

    _, targets = crude_teacher(train_set)

    def distilled(smoothing: float) -> list[float]:
        run = train(
            train_set=train_set,
            validation_set=None,
            config=tiny_config(epochs=3, label_smoothing=smoothing),
            teacher_targets=targets,
        )
        return [s.train_loss for s in run.history]

    assert distilled(0.0) == distilled(0.3)


def numpy_relation_loss(features: np.ndarray, distances: np.ndarray) -> float:
    """Plain-loop reference of the distance-wise relational loss."""
    student, teacher = [], []
    for i in range(len(features)):
        for j in range(i + 1, len(features)):
            student.append(np.sqrt(np.sum((features[i] - features[j]) ** 2)))
            teacher.append(distances[i, j])
    gap = np.array(student) / np.mean(student) - np.array(teacher) / np.mean(teacher)
    huber = np.where(np.abs(gap) < 1, 0.5 * gap**2, np.abs(gap) - 0.5)
    return float(np.mean(huber))


def test_relation_loss_matches_numpy_reference_and_ignores_units():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(7, 5))
    points = rng.normal(size=(7, 2))  # the teacher's own geometry, unrelated to the features
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    distances[0, 1] = distances[1, 0] = 40.0  # one far pair: the linear part of the Huber loss
    got = relation_loss(torch.from_numpy(features), torch.from_numpy(distances))
    expected = numpy_relation_loss(features, distances)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    assert expected > 0.1
    rescaled = relation_loss(torch.from_numpy(3 * features), torch.from_numpy(0.2 * distances))
    assert rescaled.item() == pytest.approx(expected, rel=1e-10)
    # Zero exactly when the student's geometry is the teacher's, up to units.
    own = np.linalg.norm(features[:, None] - features[None], axis=-1)
    same = relation_loss(torch.from_numpy(features), torch.from_numpy(5 * own))
    assert same.item() == pytest.approx(0.0, abs=1e-12)


def test_relation_loss_gradients_stay_finite():
    features = torch.zeros(4, 3, requires_grad=True)  # every pair at distance 0
    relation_loss(features, torch.ones(4, 4)).backward()
    assert torch.isfinite(features.grad).all()
    single = torch.ones(1, 3, requires_grad=True)  # a batch of one has no pairs
    loss = relation_loss(single, torch.zeros(1, 1))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(single.grad, torch.zeros(1, 3))


def test_relation_term_brings_the_students_geometry_to_the_teachers(data):
    train_set, _ = data
    _, targets = crude_teacher(train_set)
    # A geometry the soft targets do not carry: the classes on a line, "up" - "side" - "circle".
    position = train_set.labels.astype(np.float64)
    distances = np.abs(position[:, None] - position[None]) + 0.2
    np.fill_diagonal(distances, 0.0)

    def mismatch(weight: float) -> float:
        result = train(
            train_set=train_set,
            validation_set=None,
            config=tiny_config(relation_weight=weight),
            teacher_targets=targets,
            teacher_distances=distances,
        )
        with torch.no_grad():
            features = result.model.encode(*whole_batch(train_set))
        return relation_loss(features, torch.from_numpy(distances)).item()

    assert mismatch(5.0) < 0.25 * mismatch(0.0)


def numpy_kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) of two probability vectors, with 0·log 0 = 0."""
    used = p > 0
    return float(np.sum(p[used] * np.log(p[used] / q[used])))


def numpy_decoupled_kd(
    logits: np.ndarray, teacher: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Plain-loop reference of decoupled KD's two terms, straight from their definitions."""
    tckd, nckd = [], []
    for z, p_t, y in zip(logits, teacher, labels, strict=True):
        p_s = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        binary_t, binary_s = np.array([p_t[y], 1 - p_t[y]]), np.array([p_s[y], 1 - p_s[y]])
        tckd.append(numpy_kl(binary_t, binary_s))
        others = [c for c in range(len(z)) if c != y]
        if p_t[others].sum() == 0:
            nckd.append(0.0)
            continue
        q_t, q_s = p_t[others] / p_t[others].sum(), p_s[others] / p_s[others].sum()
        nckd.append(numpy_kl(q_t, q_s))
    return np.array(tckd), np.array(nckd)


def test_decoupled_kd_terms_match_numpy_reference_and_split_the_kl():
    rng = np.random.default_rng(5)
    logits = 3 * rng.normal(size=(6, 5))
    teacher = rng.dirichlet(np.ones(5), size=6)
    teacher[4] = np.eye(5)[2]  # all on the label: no non-target distribution
    teacher[5, [0, 3]] = 0.0  # some classes without mass
    teacher[5] /= teacher[5].sum()
    labels = np.array([0, 1, 2, 3, 2, 4])
    z = torch.from_numpy(logits).requires_grad_()
    tckd, nckd = decoupled_kd_terms(z, torch.from_numpy(teacher), torch.from_numpy(labels))
    expected_tckd, expected_nckd = numpy_decoupled_kd(logits, teacher, labels)
    np.testing.assert_allclose(tckd.detach().numpy(), expected_tckd, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(nckd.detach().numpy(), expected_nckd, rtol=1e-10, atol=1e-12)
    assert expected_nckd[4] == 0.0 and expected_nckd[:4].min() > 0.01
    # KL(teacher ‖ student) = TCKD + (1 - p_label)·NCKD, row by row.
    p_student = np.exp(numpy_log_softmax(logits))
    kl = np.array([numpy_kl(a, b) for a, b in zip(teacher, p_student, strict=True)])
    p_label = teacher[np.arange(6), labels]
    np.testing.assert_allclose(expected_tckd + (1 - p_label) * expected_nckd, kl, rtol=1e-10)
    (tckd.sum() + nckd.sum()).backward()
    assert torch.isfinite(z.grad).all()
    # Both terms vanish when the student's probabilities are the teacher's.
    same = torch.from_numpy(np.log(np.clip(teacher, 1e-300, None)))
    tckd, nckd = decoupled_kd_terms(same, torch.from_numpy(teacher), torch.from_numpy(labels))
    assert tckd.abs().max().item() < 1e-12 and nckd.abs().max().item() < 1e-12


def test_non_target_weight_gives_the_decoupled_loss(data):
    """One full-batch step: the recorded loss is alpha·CE + T²·(beta·TCKD + w·NCKD) of the
    initial model (NumPy), and None keeps the whole KL."""
    train_set, _ = data
    n = len(train_set.labels)
    _, targets = crude_teacher(train_set)
    labels = train_set.labels
    t, alpha, beta = 2.0, 0.3, 0.6
    losses = {}
    for weight in (None, 4.0):
        config = tiny_config(
            epochs=1,
            batch_size=n,
            dropout=0.0,
            alpha=alpha,
            beta=beta,
            temperature=t,
            non_target_weight=weight,
        )
        result = train(
            train_set=train_set, validation_set=None, config=config, teacher_targets=targets
        )
        losses[weight] = result.history[0].train_loss
        logits = initial_logits(train_set, result)
    ce = -np.mean(numpy_log_softmax(logits)[np.arange(n), labels])
    tckd, nckd = numpy_decoupled_kd(logits / t, targets, labels)
    p_label = targets[np.arange(n), labels]
    whole = alpha * ce + beta * t * t * np.mean(tckd + (1 - p_label) * nckd)
    assert losses[None] == pytest.approx(whole, rel=1e-5)
    split = alpha * ce + t * t * (beta * np.mean(tckd) + 4.0 * np.mean(nckd))
    assert losses[4.0] == pytest.approx(split, rel=1e-5)
    assert abs(split - whole) > 0.05 * whole


def test_train_rejects_bad_input(data):
    train_set, validation_set = data
    with pytest.raises(ValueError, match="teacher_targets must have shape"):
        train(
            train_set=train_set,
            validation_set=None,
            config=tiny_config(epochs=1),
            teacher_targets=np.full((3, 3), 1 / 3),
        )
    bad_rows = np.full((len(train_set.labels), 3), 0.5)
    with pytest.raises(ValueError, match="sum to 1"):
        train(
            train_set=train_set,
            validation_set=None,
            config=tiny_config(epochs=1),
            teacher_targets=bad_rows,
        )
    renamed = replace(validation_set, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="class_names"):
        train(train_set=train_set, validation_set=renamed, config=tiny_config(epochs=1))
    # Any object with the MotionDataset attributes is accepted, so train checks them itself.
    too_long = SimpleNamespace(**{**vars(train_set), "lengths": train_set.lengths + 100})
    with pytest.raises(ValueError, match=r"train_set.lengths\[\d+\] = 1\d\d is outside"):
        train(train_set=too_long, validation_set=None, config=tiny_config(epochs=1))
    distances, targets = crude_teacher(train_set)
    relational = tiny_config(epochs=1, relation_weight=1.0)
    with pytest.raises(ValueError, match="needs teacher_distances"):
        train(train_set=train_set, validation_set=None, config=relational, teacher_targets=targets)
    broken = distances.copy()
    broken[2, 5] = np.nan
    for bad, message in (
        (distances[:-1], r"teacher_distances must have shape \(36, 36\)"),
        (broken, r"entry \(2, 5\) is nan"),
    ):
        with pytest.raises(ValueError, match=message):
            train(
                train_set=train_set,
                validation_set=None,
                config=relational,
                teacher_targets=targets,
                teacher_distances=bad,
            )
    with pytest.raises(TypeError, match="MotionDataset"):
        train(train_set=object(), validation_set=None, config=tiny_config(epochs=1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": 0.0}, "lr"),
        ({"ema_epochs": -1.0}, "ema_epochs"),
        ({"relation_weight": -0.5}, "relation_weight"),
        ({"non_target_weight": -1.0}, "non_target_weight"),
        ({"non_target_weight": float("nan")}, "non_target_weight"),
        ({"time_warp": 1.0}, "time_warp"),
        ({"local_warp": -0.1}, "local_warp"),
        ({"amplitude_range": 1.0}, "amplitude_range"),
        ({"gap": 1.0}, "gap"),
        ({"gap": -0.2}, "gap"),
        ({"select": "f1"}, "select"),
        ({"device": "tpu"}, "device"),
        ({"vertical_axis": 3}, "vertical_axis"),
        ({"positions": "absolute"}, "positions"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_config_dict_round_trip():
    config = TrainConfig(preprocessing=Preprocessing(centre="frame", centre_landmarks=(3,)))
    assert TrainConfig.from_dict(config.to_dict()) == config
    relative = TrainConfig(positions="relative")
    assert TrainConfig.from_dict(relative.to_dict()) == relative
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"epochz": 3})
