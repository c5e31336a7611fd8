"""Inference time per sample on UTD-MHAD, measured the same way as ``gkd-run mhad`` does.

Re-measures, on a quiet machine, the timing column of an experiment whose results and
checkpoints are in ``--run`` (a ``gkd-run mhad --out`` folder): k-NN = one test sequence
against every reference (train + validation) plus the vote; students = batched CPU inference
over the test split from the saved checkpoints. Medians over ``--repeats`` after a warm-up.

Usage::

    python benches/inference_timing.py --run runs/mhad-paper --protocol paper
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from gkd import cross, knn_predict, load_mhad
from gkd.metrics import time_inference
from gkd.train import load_checkpoint, predict_proba


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--protocol", choices=["paper", "cross-subject"], default="paper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    splits = load_mhad(protocol=args.protocol)
    test = splits.test
    references = np.concatenate([splits.train.sequences, splits.validation.sequences])
    reference_lengths = np.concatenate([splits.train.lengths, splits.validation.lengths])
    reference_labels = np.concatenate([splits.train.labels, splits.validation.labels])
    if references.shape[1] != test.sequences.shape[1]:
        raise SystemExit("train and test frame counts differ; pad them first")
    counter = iter(range(1 << 62))

    def one_query() -> None:
        i = next(counter) % len(test)
        d = cross(
            test.sequences[i : i + 1],
            references,
            lengths_a=test.lengths[i : i + 1],
            lengths_b=reference_lengths,
            threads=args.threads,
        )
        knn_predict(d, reference_labels, k=1)

    knn = time_inference(one_query, n_samples=1, warmup=1, repeats=args.repeats)
    print(
        f"k-NN teacher: {knn:.1f} ms/sample, {len(references)} references, {args.threads} threads"
    )
    for kind in ("direct", "distilled"):
        times = []
        for checkpoint in sorted(args.run.glob(f"checkpoints/{kind}_seed*.pt")):
            model, _ = load_checkpoint(checkpoint)
            times.append(
                time_inference(
                    lambda model=model: predict_proba(model, test, batch_size=256, device="cpu"),
                    n_samples=len(test),
                    warmup=1,
                    repeats=args.repeats,
                )
            )
        print(f"{kind} student: {statistics.median(times):.3f} ms/sample, {len(times)} seeds")


if __name__ == "__main__":
    main()
