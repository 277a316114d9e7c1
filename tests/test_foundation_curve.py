"""The pretraining-pool curve end to end on tiny data: nested pools, the same steps, alignment on
held-out clips and validation scores per size."""

import json
import sys

import pytest

from lab import foundation_curve

pytestmark = pytest.mark.integration


def test_each_pool_is_a_prefix_pretrained_for_about_the_same_steps(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "curve"
    monkeypatch.setattr(sys, "argv", ["curve", "--data", str(tiny_data), "--out", str(out),
                                      "--sizes", "120,64", "--steps", "6", "--preset", "tiny"])
    foundation_curve.main()
    doc = json.loads((out / "curve.json").read_text())
    assert doc["holdout"] == 0.25 and set(doc["points"]) == {"120", "64"}
    pool = (tiny_data / "pretrain.jsonl").read_text().splitlines(keepends=True)
    for size, epochs in (("120", 2), ("64", 3)):  # batch 32: 3 and 2 steps an epoch
        assert (out / f"data-{size}" / "pretrain.jsonl").read_text() == "".join(pool[:int(size)])
        assert (out / f"data-{size}" / "eval.jsonl").resolve() == (tiny_data / "eval.jsonl").resolve()
        view_pool = {json.loads(line)["id"] for line in pool[:int(size)]}
        distill = [json.loads(line)["id"] for line in (out / f"data-{size}" / "distill.jsonl").open()]
        assert len(distill) == 40 and set(distill) <= view_pool  # a sample of its own pool
        point = doc["points"][size]
        assert point["epochs"] == epochs and point["steps"] == 6
        assert set(point["retrieval"]) == {"pretrain", "held_out"}
        assert all(0.0 <= v <= 1.0 for check in point["retrieval"].values() for v in check.values())
        results = json.loads((out / f"val-{size}" / "results.json").read_text())
        assert results["settings"]["holdout"] == 0.25  # scored on validation, never eval
        assert point["validation"]["ft"]["P"] == results["methods"]["ft"]["metrics"]["overall"]["P"]
    table = (out / "curve.md").read_text()
    assert table.index("| 64 | 3 |") < table.index("| 120 | 2 |")
    assert (out / "curve.png").stat().st_size > 1000
