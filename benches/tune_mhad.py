"""Choose the student's defaults by cross-validation over UTD-MHAD training subjects only.

Issue 7 asks that every choice be made without the test subjects. One validation subject
(108 sequences) is a noisy judge, so this script holds out each tuning subject in turn
(leave-one-subject-out over ``--subjects``), trains the direct transformer and the distilled
student on the others, and reports the mean validation accuracy of each variant.

The default tuning subjects, 1, 3 and 5, are training subjects of both UTD-MHAD protocols
(paper: test 6-8; cross-subject: test 2, 4, 6, 8), so nothing chosen here has seen a test
subject of either protocol.

A variant is ``default`` or a list of changes from the current defaults,
``field=value,field=value`` with JSON values:

- ``targets``: ``leave-one-out`` (the default: each training sample's own entry left out),
  ``leave-subject-out`` (every reference of the sample's own subject left out) or
  ``keep-self`` (the paper's targets: each sample's own zero distance kept, as gkd-run's
  ``TeacherConfig(leave_one_out=False)``) or ``class-mean`` (every sample gets the mean
  leave-one-out target of its class: which actions look alike, not what one sample resembles);
- ``temperature``: the soft-target temperature, or ``auto`` for the candidate with the
  lowest validation cross-entropy (gkd-run's ``--temperature auto``);
- ``kd_temperature``: ``TrainConfig.temperature``, the temperature of the student's logits;
- ``velocities``, ``distances``, ``frames``: :class:`gkd.student.Preprocessing` fields;
- ``blends``: add this many (times the training set) blends of two training sequences to
  the distilled student's training set, labelled by the teacher (default gkd-run mhad's,
  ``MHAD_BLENDS`` = 2; 0: none; ``blend_low``: the first source's smallest weight, default
  0.5); when a variant names ``blends``, the direct transformer trains on the same blends with
  their first source's label, the control that says whether a gain is the teacher's or the
  blends';
- any other :class:`gkd.train.TrainConfig` field.

A direct transformer is trained only when the variant changes it, and never with
``--methods distilled`` (a third less time when only the distilled student's score decides,
as it does under the rule in docs/results.md). ``--refit-check`` instead
compares, per held-out subject, a distilled student selected on a validation subject with
one refit on training + validation subjects (gkd-run's default; ``--methods direct`` does the
same for the direct transformer); ``--ensemble-check``
compares single students with the mean of their probabilities over ``--seeds`` (gkd-run's
``--ensemble``). Both checks train without blends.

``--stretch 1.25 0.8`` also scores every student on its held-out subject played back 1.25×
and 0.8× as long: a people-move-at-different-speeds check that training subjects of alike
speed cannot give on their own (it chose ``TrainConfig.positions = "relative"``).
``--knn-check`` gives the 1-NN teacher's held-out accuracy at the same speeds;
``--teacher-groups`` makes that teacher align each body part on its own and sum the parts;
``--teacher-band`` gives the teacher a Sakoe-Chiba band (there and in the students' targets);
``--teacher-lead`` gives its frames their motion (``TeacherConfig.lead``, there and in the
targets; default gkd-run mhad's, ``MHAD_LEAD`` = 10; 0: poses alone).

Students train on the CPU unless ``--device`` says otherwise. A GPU's floating-point sums
differ from the CPU's, so compare variants trained on the same device.

Usage::

    python benches/tune_mhad.py --variants default temperature=auto --seeds 0 1
    python benches/tune_mhad.py --variants 'distances=false' --threads 1 --out cv.jsonl
    python benches/tune_mhad.py --refit-check --seeds 0 1
    python benches/tune_mhad.py --refit-check --refit-scale 1.5 --stretch 1.25 0.8
    python benches/tune_mhad.py --refit-check --methods direct --refit-scale 1.5 2 \\
        --stretch 1.25 0.8
    python benches/tune_mhad.py --ensemble-check --seeds 0 1 2 --threads 1
    python benches/tune_mhad.py --variants default positions=frame --stretch 1.25 0.8
    python benches/tune_mhad.py --knn-check --stretch 1.25 0.8
    python benches/tune_mhad.py --knn-check --teacher-groups torso,left_arm,right_arm
    python benches/tune_mhad.py --knn-check --subjects 1 2 3 4 5 --teacher-band 10
    python benches/tune_mhad.py --knn-check --subjects 1 2 3 4 5 --teacher-lead 10
    python benches/tune_mhad.py --variants default dropout=0.3 --device cuda --threads 4
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import gkd
from gkd.cache import DistanceCache
from gkd.datasets import MotionDataset, load_mhad_all

# The pipeline's own scale and temperature rule (private helpers), so the folds match it.
from gkd.experiment import (
    SilentReporter,
    TeacherConfig,
    _choose_temperature,
    _stacked,
    _teacher_blends,
    _teacher_cross,
    _teacher_distances,
    _training_scale,
)
from gkd.student import Preprocessing, resample_frames
from gkd.teacher import DEFAULT_TEMPERATURE, MHAD_BLENDS, MHAD_LEAD, knn_predict, soft_targets
from gkd.train import TrainConfig, predict, predict_proba, resolve_device, train

# Which copy of gkd runs: a frozen copy of the tree imports the editable install's gkd unless
# PYTHONPATH names the copy, and the two look alike in the output otherwise.
GKD_SOURCE = str(Path(gkd.__file__).resolve().parent)


def _train_targets(
    distances: np.ndarray,
    rows: np.ndarray,
    data,
    *,
    scale: float,
    temperature: float,
    mode: str,
) -> np.ndarray:
    """Soft targets of the training rows: own entry (or own subject) left out, or kept; with
    ``class-mean`` each row's class's mean leave-one-out target."""
    own_subject = data.subjects[rows][:, None] == data.subjects[rows][None, :]
    targets = soft_targets(
        distances[np.ix_(rows, rows)] / scale,
        data.labels[rows],
        n_classes=data.n_classes,
        temperature=temperature,
        normalization="none",
        self_index=np.arange(len(rows)) if mode in ("leave-one-out", "class-mean") else None,
        exclude=own_subject if mode == "leave-subject-out" else None,
    )
    if mode != "class-mean":
        return targets
    labels = data.labels[rows]
    class_sums = np.zeros((data.n_classes, data.n_classes))
    np.add.at(class_sums, labels, targets)
    counts = np.bincount(labels, minlength=data.n_classes)
    return class_sums[labels] / counts[labels, None]


def _with_blends(
    train_set: MotionDataset,
    targets: np.ndarray,
    *,
    ratio: float,
    low: float,
    scale: float,
    temperature: float,
    teacher: TeacherConfig,
    seed: int,
    threads: int | None,
) -> tuple[MotionDataset, np.ndarray]:
    """The training set plus ``ratio * N`` blends of training sequences, labelled by the teacher
    as gkd-run labels them (``TeacherConfig.blends``); ``low``: the first source's smallest
    weight."""
    made, blend_targets = _teacher_blends(
        train_set,
        replace(teacher, blends=ratio),
        seed=seed,
        low=low,
        scale=scale,
        temperature=temperature,
        threads=threads,
    )
    return _stacked(train_set, made.dataset), np.concatenate([targets, blend_targets])


def _slowed(dataset: MotionDataset, stretch: float) -> MotionDataset:
    """Every sequence played back ``stretch`` times as long (linear interpolation).

    A held-out subject made artificially slower (``stretch`` > 1) or faster. A student that
    learnt the training subjects' pace loses accuracy either way. The DTW teacher does not
    lose when the subject is slower, but does lose when it is faster (``--knn-check``).
    """
    lengths = np.maximum(np.round(dataset.lengths * stretch).astype(np.int64), 1)
    sequences = np.zeros(
        (len(dataset), int(lengths.max()), dataset.n_landmarks, 3), dtype=np.float32
    )
    for row, (points, old, new) in enumerate(
        zip(dataset.sequences, dataset.lengths, lengths, strict=True)
    ):
        batch = torch.from_numpy(points[None, :old].reshape(1, old, -1).astype(np.float32))
        unpadded = torch.zeros((1, old), dtype=torch.bool)
        played = resample_frames(batch, unpadded, int(new)) if new > 1 else batch[:, :1]
        sequences[row, :new] = played.numpy().reshape(new, dataset.n_landmarks, 3)
    return replace(dataset, sequences=sequences, lengths=lengths)


TARGET_MODES = ("leave-one-out", "leave-subject-out", "keep-self", "class-mean")


def _scale(distances: np.ndarray, rows: np.ndarray, mode: str = "leave-one-out") -> float:
    """The pipeline's global min-max scale of the training rows (with ``keep-self`` the
    zero diagonal counts, as in gkd-run without leave-one-out)."""
    return _training_scale(distances[np.ix_(rows, rows)], leave_one_out=mode != "keep-self")


def _loo_targets(distances: np.ndarray, rows: np.ndarray, data, t: float) -> np.ndarray:
    """Leave-one-out targets of ``rows`` at temperature ``t``, scaled by their own matrix."""
    return _train_targets(
        distances, rows, data, scale=_scale(distances, rows), temperature=t, mode="leave-one-out"
    )


def _refit_check(data, distances: np.ndarray, config: TrainConfig, args, t: float) -> None:
    """Held-out accuracy of a student selected on validation vs one refit on train + validation.

    For each held-out subject, the last remaining tuning subject validates; the refit trains
    on all remaining subjects for the epoch count chosen on validation (``--refit`` of gkd-run),
    and for each ``--refit-scale`` that many times as long. Every model is also scored on the
    held-out subject played back at each ``--stretch``. One line per subject, seed and student
    (``--methods``: the distilled student unless told otherwise).
    """
    subjects = data.subjects
    for held_out in args.subjects:
        rest = [s for s in args.subjects if s != held_out]
        train_rows = np.flatnonzero(np.isin(subjects, rest[:-1]))
        both_rows = np.flatnonzero(np.isin(subjects, rest))
        val_set = data.subset(np.flatnonzero(subjects == rest[-1]))
        test_set = data.subset(np.flatnonzero(subjects == held_out))
        # The same for every seed and refit length: computed once per held-out subject.
        train_set, train_targets = (
            data.subset(train_rows),
            _loo_targets(distances, train_rows, data, t),
        )
        both_set, both_targets = data.subset(both_rows), _loo_targets(distances, both_rows, data, t)
        played = {"": test_set, **{f"@x{f:g}": _slowed(test_set, f) for f in args.stretch}}
        for seed, method in itertools.product(args.seeds, args.methods):
            distilled = method == "distilled"
            cfg = replace(config, seed=seed)
            selected = train(
                train_set=train_set,
                validation_set=val_set,
                config=cfg,
                teacher_targets=train_targets if distilled else None,
            )
            models = {"selected": selected.model}
            for scale in (1.0, *args.refit_scale):
                refit = train(
                    train_set=both_set,
                    validation_set=None,
                    config=replace(cfg, epochs=max(1, round(scale * selected.best_epoch))),
                    teacher_targets=both_targets if distilled else None,
                )
                models["refit" if scale == 1.0 else f"refit*{scale:g}"] = refit.model
            scores = {
                name + speed: float(np.mean(predict(model, held) == held.labels))
                for name, model in models.items()
                for speed, held in played.items()
            }
            record = {"refit_check": held_out, "validation": rest[-1], "seed": seed}
            record.update(student=method, epoch=selected.best_epoch)
            print(json.dumps({**record, **scores}), flush=True)


def _ensemble_check(data, distances: np.ndarray, config: TrainConfig, args, t: float) -> None:
    """Held-out accuracy of single students vs the mean of their probabilities over seeds.

    No epoch is selected on the held-out subject: every student trains for ``config.epochs``
    on the other tuning subjects, so single and ensemble scores are both honest estimates.
    """
    totals: dict[str, list[float]] = {"direct": [], "distilled": []}
    ensembles: dict[str, list[float]] = {"direct": [], "distilled": []}
    for held_out in args.subjects:
        rows = np.flatnonzero(np.isin(data.subjects, args.subjects) & (data.subjects != held_out))
        test_set = data.subset(np.flatnonzero(data.subjects == held_out))
        targets = _loo_targets(distances, rows, data, t)
        for method, soft in (("direct", None), ("distilled", targets)):
            probabilities = [
                predict_proba(
                    train(
                        train_set=data.subset(rows),
                        validation_set=None,
                        config=replace(config, seed=seed),
                        teacher_targets=soft,
                    ).model,
                    test_set,
                )
                for seed in args.seeds
            ]
            singles = [float(np.mean(p.argmax(1) == test_set.labels)) for p in probabilities]
            mean_p = np.mean(probabilities, axis=0)
            ensemble = float(np.mean(mean_p.argmax(1) == test_set.labels))
            totals[method] += singles
            ensembles[method].append(ensemble)
            print(
                json.dumps(
                    {
                        "ensemble_check": held_out,
                        "method": method,
                        "seeds": args.seeds,
                        "singles": singles,
                        "ensemble": ensemble,
                    }
                ),
                flush=True,
            )
    for method in totals:
        print(
            f"{method}: single students {100 * np.mean(totals[method]):.1f}, "
            f"ensembles of {len(args.seeds)} {100 * np.mean(ensembles[method]):.1f}",
            flush=True,
        )


def _knn_check(data, teacher: TeacherConfig, args) -> None:
    """Held-out 1-NN accuracy of the teacher at the recorded speed and at each ``--stretch``."""
    for held_out in args.subjects:
        rows = np.isin(data.subjects, args.subjects) & (data.subjects != held_out)
        references = data.subset(np.flatnonzero(rows))
        queries = data.subset(np.flatnonzero(data.subjects == held_out))
        scores = {}
        for stretch in [1.0, *args.stretch]:
            played = queries if stretch == 1.0 else _slowed(queries, stretch)
            d = _teacher_cross(played, references, teacher, threads=args.threads)
            hits = knn_predict(d, references.labels, k=1) == played.labels
            scores[f"x{stretch:g}"] = float(np.mean(hits))
        print(json.dumps({"knn_check": held_out, **scores}), flush=True)


def _parse(spec: str) -> dict[str, Any]:
    """'temperature=0.1,velocities=true' -> {"temperature": 0.1, "velocities": True}."""
    if "=" not in spec:
        raise SystemExit(f"variant {spec!r} is neither 'default' nor 'field=value,...'")
    out: dict[str, Any] = {}
    for item in spec.split(","):
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a bare word: leave-subject-out, auto

    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--subjects", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["default"],
        help="'default' or 'field=value,field=value' changes from the defaults",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda", "auto"],
        default="cpu",
        help="where the students train (default cpu: scores repeat exactly on a machine with "
        "the same thread count; a GPU's floating-point sums differ)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=["direct", "distilled"],
        default=None,
        help="students to train (default both, a direct one only when the variant changes it; "
        "with --refit-check the distilled one)",
    )
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/cache"))
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    parser.add_argument(
        "--stretch",
        type=float,
        nargs="*",
        default=[],
        help="also score each chosen student on the held-out subject played this many times "
        "as long (1.25: 20 %% slower)",
    )
    parser.add_argument(
        "--refit-check",
        action="store_true",
        help="instead: students (distilled unless --methods says) selected on validation vs "
        "refit on train + validation",
    )
    parser.add_argument(
        "--refit-scale",
        type=float,
        nargs="*",
        default=[],
        help="with --refit-check: also refit for this many times the chosen epochs "
        "(1.5: half as long again)",
    )
    parser.add_argument(
        "--ensemble-check",
        action="store_true",
        help="instead: single students vs the mean of their probabilities over --seeds",
    )
    parser.add_argument(
        "--knn-check",
        action="store_true",
        help="instead: the teacher's held-out 1-NN accuracy at the recorded speed and --stretch",
    )
    parser.add_argument(
        "--teacher-groups",
        default="",
        help="with --knn-check: comma-separated landmark groups (torso, left_arm, ...), each "
        "aligned on its own and the distances summed (default: the whole skeleton)",
    )
    parser.add_argument(
        "--teacher-band",
        type=int,
        default=None,
        help="the teacher's Sakoe-Chiba band half-width in frames, for --knn-check and for the "
        "students' soft targets (default: no band, as gkd-run)",
    )
    parser.add_argument(
        "--teacher-lead",
        type=float,
        default=MHAD_LEAD,
        help="frames ahead along each landmark's velocity that the teacher's frames also carry "
        "(TeacherConfig.lead), for --knn-check and for the students' soft targets "
        f"(default: gkd-run mhad's, {MHAD_LEAD:g}; 0: poses alone)",
    )
    args = parser.parse_args()
    print(f"gkd imported from {GKD_SOURCE}", file=sys.stderr, flush=True)
    if args.methods is None:
        args.methods = ["distilled"] if args.refit_check else ["direct", "distilled"]
    try:
        resolve_device(args.device)  # fail before any work, not at the first student
    except ValueError as error:
        raise SystemExit(f"--device: {error}") from None

    data = load_mhad_all()
    if args.teacher_band is not None and args.teacher_band < 0:
        raise SystemExit(f"--teacher-band must be >= 0 frames, got {args.teacher_band}")
    try:
        teacher = TeacherConfig(
            groups=tuple(g for g in args.teacher_groups.split(",") if g),
            band=args.teacher_band,
            lead=args.teacher_lead,
        )
    except ValueError as error:
        raise SystemExit(f"--teacher-lead: {error}") from None
    if teacher.groups and not args.knn_check:
        raise SystemExit("--teacher-groups is for --knn-check only")
    for group in teacher.groups:
        try:
            data.select_landmarks(group)
        except ValueError as error:
            raise SystemExit(f"--teacher-groups: {error}") from None
    if args.refit_scale and not args.refit_check:
        raise SystemExit("--refit-scale is for --refit-check only")
    if args.knn_check:  # computes its own fold distances; the full matrix is not needed
        _knn_check(data, teacher, args)
        return
    distances = _teacher_distances(
        data,
        teacher,
        cache=DistanceCache(args.cache_dir),
        threads=args.threads,
        reporter=SilentReporter(),
    )
    labels, subjects, n_classes = data.labels, data.subjects, data.n_classes
    for name in args.variants:
        changes = {} if name == "default" else _parse(name)
        mode = changes.pop("targets", "leave-one-out")
        if mode not in TARGET_MODES:
            raise SystemExit(
                f"variant {name!r}: targets must be one of {TARGET_MODES}, got {mode!r}"
            )
        fixed_t = changes.pop("temperature", None)
        kd_t = changes.pop("kd_temperature", None)
        # A variant that names blends is the control: the direct transformer trains on them too.
        direct_blends = "blends" in changes
        blend_ratio = float(changes.pop("blends", MHAD_BLENDS))
        blend_low = float(changes.pop("blend_low", 0.5))
        features = {
            key: changes.pop(key) for key in ("velocities", "distances", "frames") if key in changes
        }
        config = TrainConfig(**changes, threads=args.threads, device=args.device)
        if kd_t is not None:
            config = replace(config, temperature=kd_t)
        if args.epochs:
            config = replace(config, epochs=args.epochs)
        if (args.refit_check or args.ensemble_check) and direct_blends:
            raise SystemExit(
                f"variant {name!r}: blends are not in --refit-check or --ensemble-check"
            )
        if args.refit_check:
            if fixed_t == "auto":
                raise SystemExit("--refit-check needs a fixed temperature")
            _refit_check(data, distances, config, args, fixed_t or DEFAULT_TEMPERATURE)
            continue
        if args.ensemble_check:
            if fixed_t == "auto":
                raise SystemExit("--ensemble-check needs a fixed temperature")
            _ensemble_check(data, distances, config, args, fixed_t or DEFAULT_TEMPERATURE)
            continue
        scores: dict[str, list[float]] = {
            m: [] for m in ("direct", "distilled", "direct-last", "distilled-last")
        }
        for stretch in args.stretch:
            scores.update({f"direct@x{stretch:g}": [], f"distilled@x{stretch:g}": []})
        start = time.perf_counter()
        for held_out in args.subjects:
            train_rows = np.flatnonzero(np.isin(subjects, args.subjects) & (subjects != held_out))
            val_rows = np.flatnonzero(subjects == held_out)
            scale = _scale(distances, train_rows, mode)
            if fixed_t == "auto":
                t, _ = _choose_temperature(
                    distances[np.ix_(val_rows, train_rows)],
                    labels[train_rows],
                    labels[val_rows],
                    TeacherConfig(temperature=None),
                    n_classes=n_classes,
                    scale=scale,
                )
            else:
                t = fixed_t or DEFAULT_TEMPERATURE
            targets = _train_targets(
                distances, train_rows, data, scale=scale, temperature=t, mode=mode
            )
            train_set, val_set = data.subset(train_rows), data.subset(val_rows)
            stretched_sets = [_slowed(val_set, stretch) for stretch in args.stretch]
            student_set = train_set
            # The relational term compares the training rows' own distances (no blends there).
            relations = distances[np.ix_(train_rows, train_rows)]
            if blend_ratio > 0:
                if config.relation_weight > 0:
                    raise SystemExit(
                        f"variant {name!r}: blends and relation_weight do not go together "
                        "(add blends=0)"
                    )
                student_set, targets = _with_blends(
                    train_set,
                    targets,
                    ratio=blend_ratio,
                    low=blend_low,
                    scale=scale,
                    temperature=t,
                    teacher=teacher,
                    seed=held_out,
                    threads=args.threads,
                )
            for seed in args.seeds:
                cfg = replace(config, seed=seed)
                if features:
                    cfg = replace(
                        cfg,
                        preprocessing=Preprocessing.for_landmarks(data.landmark_names, **features),
                    )
                for method, soft in (("direct", None), ("distilled", targets)):
                    if method not in args.methods:
                        continue
                    if (
                        method == "direct"
                        and name != "default"
                        and not set(changes)
                        - {"alpha", "beta", "relation_weight", "non_target_weight"}
                        and not features
                        and not direct_blends
                    ):
                        continue  # teacher-only or distillation-only change: direct is default's
                    result = train(
                        train_set=student_set
                        if method == "distilled" or direct_blends
                        else train_set,
                        validation_set=val_set,
                        config=cfg,
                        teacher_targets=soft,
                        teacher_distances=relations if cfg.relation_weight > 0 else None,
                    )
                    acc = result.best_validation_accuracy or 0.0
                    last = result.history[-1].validation_accuracy or 0.0
                    scores[method].append(acc)
                    scores[method + "-last"].append(last)
                    slowed = ""
                    for stretch, played in zip(args.stretch, stretched_sets, strict=True):
                        hit = float(np.mean(predict(result.model, played) == played.labels))
                        scores[f"{method}@x{stretch:g}"].append(hit)
                        slowed += f", x{stretch:g} {100 * hit:.1f}"
                    print(
                        f"{name} subject {held_out} seed {seed} T={t:g} {method}: "
                        f"{100 * acc:.1f} (epoch {result.best_epoch}), last {100 * last:.1f}"
                        + slowed,
                        flush=True,
                    )
        summary = {m: float(np.mean(v)) * 100 for m, v in scores.items() if v}
        line = {
            "variant": name,
            "subjects": args.subjects,
            "seeds": args.seeds,
            "mean": summary,
            "all": scores,
            "seconds": time.perf_counter() - start,
            "teacher": {"band": teacher.band, "lead": teacher.lead, "blends": blend_ratio},
            "gkd_source": GKD_SOURCE,
        }
        print(json.dumps(line), flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
