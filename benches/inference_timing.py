"""Inference time per sample on UTD-MHAD, measured the same way as ``gkd-run mhad`` does.

Re-measures, on a quiet machine, the timing column of an experiment whose results and
checkpoints are in ``--run`` (a ``gkd-run mhad --out`` folder): k-NN = one test sequence
against every reference (train + validation) plus the vote, on the CPU; students = batched
inference over the test split from the saved checkpoints (all students of a run made with
``--ensemble``), on the CPU or with ``--device cuda`` on the GPU. Medians over ``--repeats``
after a warm-up. The k-NN's teacher is ``gkd-run mhad``'s, whose frames carry their motion
(``--lead``, default 10; ``--lead 0``: poses alone): the references' frames are prepared once,
each query's in the timed call, as ``gkd-run`` times it.

Usage::

    python benches/inference_timing.py --run runs/mhad-paper --protocol paper
    python benches/inference_timing.py --run runs/mhad-paper --device cuda --threads 16
    python benches/inference_timing.py --run runs/mhad-paper --lead 0
"""

from __future__ import annotations

import argparse
import re
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from gkd import cross, knn_predict, load_mhad
from gkd.experiment import TeacherConfig
from gkd.metrics import time_inference
from gkd.teacher import MHAD_LEAD
from gkd.train import ensemble_proba, load_checkpoint, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--protocol", choices=["paper", "cross-subject"], default="paper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--lead",
        type=float,
        default=MHAD_LEAD,
        help="the teacher's motion lead in frames (default: gkd-run mhad's; 0: poses alone)",
    )
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="where the students run"
    )
    args = parser.parse_args()
    try:
        resolve_device(args.device)  # fail before any work, not at the first student
    except ValueError as error:
        raise SystemExit(f"--device: {error}") from None
    torch.set_num_threads(args.threads)
    # The clock must wait for the GPU's queued kernels; its first calls pay for lazy setup.
    on_gpu = args.device == "cuda"
    synchronize = torch.cuda.synchronize if on_gpu else None

    splits = load_mhad(protocol=args.protocol)
    test = splits.test
    references = np.concatenate([splits.train.sequences, splits.validation.sequences])
    reference_lengths = np.concatenate([splits.train.lengths, splits.validation.lengths])
    reference_labels = np.concatenate([splits.train.labels, splits.validation.labels])
    if references.shape[1] != test.sequences.shape[1]:
        raise SystemExit("train and test frame counts differ; pad them first")
    teacher = TeacherConfig(lead=args.lead)
    references = teacher.frames(references, reference_lengths)
    counter = iter(range(1 << 62))

    def one_query() -> None:
        i = next(counter) % len(test)
        d = cross(
            teacher.frames(test.sequences[i : i + 1], test.lengths[i : i + 1]),
            references,
            lengths_a=test.lengths[i : i + 1],
            lengths_b=reference_lengths,
            threads=args.threads,
        )
        knn_predict(d, reference_labels, k=1)

    knn = time_inference(one_query, n_samples=1, warmup=1, repeats=args.repeats)
    print(
        f"k-NN teacher: {knn:.1f} ms/sample, {len(references)} references, {args.threads} threads"
        + (f", lead {args.lead:g}" if args.lead else "")
    )
    for kind in ("direct", "distilled"):
        runs: dict[str, list[Path]] = defaultdict(list)  # a run's checkpoints: its students
        for checkpoint in sorted(args.run.glob(f"checkpoints/{kind}_seed*.pt")):
            runs[re.sub(r"_member\d+$", "", checkpoint.stem)].append(checkpoint)
        if not runs:  # a run of one student only (--students)
            print(f"{kind}: no checkpoints in {args.run}")
            continue
        times = []
        for paths in runs.values():
            models = [load_checkpoint(path)[0] for path in paths]
            times.append(
                time_inference(
                    lambda models=models: ensemble_proba(models, test, device=args.device),
                    n_samples=len(test),
                    warmup=2 if on_gpu else 1,
                    repeats=args.repeats,
                    synchronize=synchronize,
                )
            )
        students = {len(paths) for paths in runs.values()}
        where = torch.cuda.get_device_name(0) if on_gpu else f"CPU, {args.threads} threads"
        print(
            f"{kind} ({where}): {statistics.median(times):.4f} ms/sample, {len(runs)} seeds, "
            f"{'/'.join(map(str, sorted(students)))} student(s) each"
        )


if __name__ == "__main__":
    main()
