"""The cross-validation record: benches/cv_compare.py's arithmetic, and the summary table in
docs/results.md against the JSON lines it is printed from."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_cv_compare():
    spec = importlib.util.spec_from_file_location("cv_compare", ROOT / "benches" / "cv_compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cv_compare"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


cv_compare = _load_cv_compare()


def _write_lane(path: Path, variant: str, scores: np.ndarray) -> None:
    """One tune_mhad JSON line; ``scores`` (pairs, 3 speeds) as fractions."""
    columns = {
        f"distilled{speed}": scores[:, i].tolist() for i, speed in enumerate(cv_compare.SPEEDS)
    }
    path.write_text(json.dumps({"variant": variant, "all": columns}) + "\n")


def test_comparison_matches_a_plain_paired_computation(tmp_path):
    rng = np.random.default_rng(7)
    base = rng.uniform(0.8, 1.0, size=(12, 3))
    new = rng.uniform(0.8, 1.0, size=(12, 3))
    new[3] = base[3]  # one tie
    files = {}
    for side, scores in (("base", base), ("new", new)):
        files[side] = [tmp_path / f"{side}-0-1.jsonl", tmp_path / f"{side}-2-3.jsonl"]
        _write_lane(files[side][0], side, scores[:6])
        _write_lane(files[side][1], side, scores[6:])

    result, base_names, new_names = cv_compare.compare(files["base"], files["new"], "distilled")

    diffs = 100 * (new.mean(axis=1) - base.mean(axis=1))
    assert base_names == ["base", "base"] and new_names == ["new", "new"]
    assert result.gain == pytest.approx(diffs.mean())
    assert result.standard_error == pytest.approx(diffs.std(ddof=1) / np.sqrt(12))
    assert result.won == int((diffs > 1e-12).sum()) and result.tied == 1
    assert result.clears_rule == (diffs.mean() > 2 * diffs.std(ddof=1) / np.sqrt(12))


def test_comparison_refuses_unpaired_seeds(tmp_path):
    scores = np.full((6, 3), 0.9)
    one, two = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _write_lane(one, "a", scores)
    _write_lane(two, "b", scores)
    with pytest.raises(SystemExit, match="same seeds in the same order"):
        cv_compare.compare([one], [one, two], "distilled")


def test_results_table_is_the_one_the_json_lines_give():
    table = cv_compare.judged_table(ROOT / "docs" / "cv" / "judged.json")
    document = (ROOT / "docs" / "results.md").read_text()
    assert table in document, (
        "docs/results.md's table of changes judged by the rule differs from "
        "`python benches/cv_compare.py --table docs/cv/judged.json`; paste the script's output"
    )
