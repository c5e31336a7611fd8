"""Test accuracy of every saved student of UTD-MHAD runs, one per seed (evaluation only).

``gkd-run mhad --ensemble N`` saves each of its students, and member i of run s is trained
exactly as the single student of seed ``s * N + i`` (:func:`gkd.train.member_seeds`). So the
checkpoints of three ensemble runs hold nine single students per method, at no extra
training. This script scores them all on the test split of ``--protocol``:

- each seed's accuracy, direct and distilled;
- mean ± sample std over seeds, and the paired difference distilled − direct (mean, standard
  error, seeds won);
- the mean accuracy per test subject;
- with ``--ensemble N``, every ensemble run whose N students are all present (run s averages
  the probabilities of seeds ``s * N`` to ``s * N + N - 1``, as ``gkd-run mhad --ensemble N``
  does): accuracy and macro precision, recall and F1. The single-student run's seeds 0-2 then
  give ensemble run 0 of three without training it;
- with ``--per-action S ...``, for each of these test subjects the five actions the distilled
  students get wrong most often: the 1-NN accuracy on them of ``gkd-run mhad``'s teacher
  (``MHAD_TEACHER``, frames with their motion; its references are the protocol's training
  subjects, distances from ``--cache-dir``), the direct and distilled
  students' (over all seeds' predictions), and the distilled students' most common wrong
  answer.

A seed found in more than one ``--run`` (the single-student run's seeds 0-2 and the first
ensemble run's members, say) is scored once, after checking that both checkpoints predict
the same class for every test sequence. It chooses nothing: the defaults were fixed before
(``benches/tune_mhad.py``).

Usage::

    python benches/student_seeds.py --protocol paper \\
        --run runs/s6/mhad-paper --run runs/s6/mhad-paper-ens3
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from gkd import load_mhad
from gkd.cache import DistanceCache
from gkd.datasets import MotionDataset
from gkd.datasets.mhad import PROTOCOLS, load_mhad_all
from gkd.experiment import MHAD_TEACHER, SilentReporter, _teacher_distances
from gkd.metrics import classification_metrics
from gkd.teacher import knn_predict
from gkd.train import load_checkpoint, mean_probabilities, member_seeds, predict_proba

CHECKPOINT = re.compile(r"(?P<kind>direct|distilled)_seed(?P<run>\d+)(?:_member(?P<member>\d+))?")


def student_checkpoints(run_dir: Path, kind: str) -> dict[int, Path]:
    """A run folder's ``kind`` checkpoints by the seed their student was trained with."""
    found = []
    for path in sorted(run_dir.glob(f"checkpoints/{kind}_seed*.pt")):
        match = CHECKPOINT.fullmatch(path.stem)
        if match is None:
            raise SystemExit(f"{path}: not a checkpoint name gkd-run writes")
        member = match["member"]
        found.append((int(match["run"]), None if member is None else int(member), path))
    members_per_run = Counter(run for run, member, _ in found if member is not None)
    by_seed = {}
    for run, member, path in found:
        seed = run if member is None else member_seeds(run, members_per_run[run])[member]
        by_seed[seed] = path
    return by_seed


def print_ensembles(
    kind: str, probabilities: dict[int, np.ndarray], size: int, labels: np.ndarray, n_classes: int
) -> None:
    """Score every ensemble run of ``size`` students whose members are all in ``probabilities``."""
    runs = sorted({seed // size for seed in probabilities})
    complete = [r for r in runs if all(s in probabilities for s in member_seeds(r, size))]
    if not complete:
        print(f"  no complete ensemble of {size} students")
    for run in complete:
        seeds = member_seeds(run, size)
        predicted = mean_probabilities([probabilities[seed] for seed in seeds]).argmax(axis=1)
        metrics = classification_metrics(labels, predicted, n_classes=n_classes)
        print(
            f"  {kind} ×{size}, run {run} (seeds {seeds[0]}-{seeds[-1]}): "
            + ", ".join(f"{name} {100 * value:.1f}" for name, value in metrics.items())
        )


def nearest_neighbour_hits(
    protocol: str, test_sequences: np.ndarray, cache_dir: Path
) -> np.ndarray:
    """Whether gkd-run mhad's teacher as a 1-NN, references the protocol's training subjects,
    gets each test row.

    Distances come from the full UTD-MHAD matrix in the cache (computed there if absent). The
    test rows are found by subject and checked to be ``test_sequences``, row for row.
    """
    data = load_mhad_all()
    distances = _teacher_distances(
        data, MHAD_TEACHER, cache=DistanceCache(cache_dir), threads=None, reporter=SilentReporter()
    )
    train_subjects, test_subjects = PROTOCOLS[protocol]
    references = np.flatnonzero(np.isin(data.subjects, train_subjects))
    queries = np.flatnonzero(np.isin(data.subjects, test_subjects))
    if not np.array_equal(data.sequences[queries], test_sequences):
        raise SystemExit(f"the {protocol} test split is not UTD-MHAD's test subjects in order")
    predicted = knn_predict(
        distances[np.ix_(queries, references)],
        data.labels[references],
        k=1,
        n_classes=data.n_classes,
    )
    return predicted == data.labels[queries]


def print_per_action(
    test: MotionDataset,
    subjects: list[int],
    hits: dict[str, np.ndarray],
    wrong: np.ndarray,
    knn: np.ndarray,
) -> None:
    """The five actions of each subject where the distilled students err most (see --per-action).

    ``hits[kind]`` is (seeds, test rows) of correct predictions (direct may be absent: a run of
    the distilled student alone); ``wrong`` is the distilled students' predictions, same shape.
    """
    names = test.class_names
    for subject in subjects:
        rows = []
        for action in range(test.n_classes):
            mine = (test.subjects == subject) & (test.labels == action)
            if mine.any():
                answers = Counter(int(p) for p in wrong[:, mine].ravel() if p != action)
                rows.append((hits["distilled"][:, mine].mean(), action, mine, answers))
        if not rows:
            raise SystemExit(f"--per-action: subject {subject} is not a test subject")
        print(f"subject {subject}: action, sequences, k-NN / direct / distilled %, wrong answers")
        for distilled, action, mine, answers in sorted(rows, key=lambda r: (r[0], r[1]))[:5]:
            common = ", ".join(f"{names[p]} {n}" for p, n in answers.most_common(2))
            direct = f"{100 * hits['direct'][:, mine].mean():.0f}" if "direct" in hits else "-"
            print(
                f"  {names[action]}: {int(mine.sum())}, {100 * knn[mine].mean():.0f} / "
                f"{direct} / {100 * distilled:.0f}"
                + (f"; {common} of {wrong[:, mine].size}" if common else "")
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--run", type=Path, action="append", required=True)
    parser.add_argument("--protocol", choices=["paper", "cross-subject"], default="paper")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--ensemble", type=int, default=1, help="also score ensemble runs of this many students"
    )
    parser.add_argument(
        "--per-action",
        type=int,
        nargs="+",
        default=[],
        metavar="SUBJECT",
        help="also print the actions these test subjects' sequences are most often missed on",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="teacher distance cache")
    args = parser.parse_args()
    if args.ensemble < 1:
        parser.error(f"--ensemble must be at least 1, got {args.ensemble}")
    torch.set_num_threads(args.threads)

    test = load_mhad(protocol=args.protocol).test
    subjects = np.unique(test.subjects)
    accuracy: dict[str, dict[int, float]] = {}
    all_hits: dict[str, np.ndarray] = {}
    distilled_predictions = np.empty(0)
    for kind in ("direct", "distilled"):
        probabilities: dict[int, np.ndarray] = {}
        for run_dir in args.run:
            for seed, path in student_checkpoints(run_dir, kind).items():
                proba = predict_proba(load_checkpoint(path)[0], test)
                if seed in probabilities:
                    same = np.array_equal(probabilities[seed].argmax(axis=1), proba.argmax(axis=1))
                    print(f"{kind} seed {seed}: also in {run_dir}, predictions identical: {same}")
                    continue
                probabilities[seed] = proba
        if not probabilities:  # a run of one student only (gkd-run --students)
            print(f"{kind}: no checkpoints under {[str(r) for r in args.run]}")
            continue
        predictions = {seed: proba.argmax(axis=1) for seed, proba in probabilities.items()}
        accuracy[kind] = {
            seed: 100 * float(np.mean(predictions[seed] == test.labels))
            for seed in sorted(predictions)
        }
        scores = np.array(list(accuracy[kind].values()))
        hits = np.array([predictions[seed] == test.labels for seed in accuracy[kind]])
        all_hits[kind] = hits
        if kind == "distilled":
            distilled_predictions = np.array([predictions[seed] for seed in accuracy[kind]])
        per_subject = [100 * hits[:, test.subjects == s].mean() for s in subjects]
        print(
            f"{kind}: {scores.mean():.1f} ± {scores.std(ddof=1) if len(scores) > 1 else 0:.1f} "
            f"over {len(scores)} seeds; "
            + ", ".join(f"{seed}: {a:.1f}" for seed, a in accuracy[kind].items())
        )
        print(
            "  per test subject: "
            + ", ".join(f"{s}: {m:.1f}" for s, m in zip(subjects, per_subject, strict=True))
        )
        if args.ensemble > 1:
            print_ensembles(kind, probabilities, args.ensemble, test.labels, test.n_classes)
    if not accuracy:
        raise SystemExit(f"no checkpoints under {[str(r) for r in args.run]}")
    paired = sorted(set(accuracy.get("direct", {})) & set(accuracy.get("distilled", {})))
    gain = np.array([accuracy["distilled"][s] - accuracy["direct"][s] for s in paired])
    if len(gain) > 1:
        print(
            f"distilled − direct over {len(gain)} paired seeds: {gain.mean():+.1f} "
            f"(SE {gain.std(ddof=1) / np.sqrt(len(gain)):.1f}), won {int((gain > 0).sum())}, "
            f"tied {int((gain == 0).sum())}"
        )
    if args.per_action:
        if "distilled" not in accuracy:
            raise SystemExit("--per-action needs the distilled students' checkpoints")
        knn = nearest_neighbour_hits(args.protocol, test.sequences, args.cache_dir)
        print_per_action(test, args.per_action, all_hits, distilled_predictions, knn)


if __name__ == "__main__":
    main()
