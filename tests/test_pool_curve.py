"""The distillation-pool curve benchmark end to end on tiny data: real experiments, one figure per size."""

import json
import sys

import pytest

from lab import distill_pool_curve

pytestmark = pytest.mark.integration


def test_the_curve_runs_ft_once_and_masd_per_pool_size(tiny_data, tiny_pretrained, tmp_path, monkeypatch):
    out = tmp_path / "curve"
    monkeypatch.setattr(sys, "argv", ["curve", "--data", str(tiny_data), "--pretrained", str(tiny_pretrained),
                                      "--out", str(out), "--sizes", "8,32", "--control"])
    distill_pool_curve.main()
    doc = json.loads((out / "curve.json").read_text())
    assert set(doc["points"]) == {"ft", "8", "32", "control"}
    assert doc["points"]["control"]["size"] == len((tiny_data / "distill.jsonl").read_text().splitlines())
    assert sorted(p.name for p in out.iterdir()) == ["control", "curve.json", "curve.md", "curve.png", "ft",
                                                     "pool-32", "pool-8"]
    for size in ("8", "32"):
        results = json.loads((out / f"pool-{size}" / "results.json").read_text())
        assert results["settings"]["recipe"]["distill_source"] == "unseen"
        assert results["settings"]["recipe"]["distill_examples"] == int(size)
        assert "ft" not in results["methods"]  # fine-tuning ran once, in RUN/ft
        for method in distill_pool_curve.METHODS:
            point = doc["points"][size][method]
            assert 0.0 <= point["R"] <= 1.0
            assert point["closed_R"] is None or isinstance(point["closed_R"], float)
    assert "| 32 | masd+wiseft |" in (out / "curve.md").read_text()


def test_the_plot_draws_when_no_size_has_a_gap_to_close(tmp_path):
    """Fine-tuning at or above the specialists leaves every share empty: still a figure, saying so."""
    none = {m: {"closed_R": None, "closed_R_transfer": None} for m in distill_pool_curve.METHODS}
    distill_pool_curve.plot(tmp_path / "curve.png", [8, 32], {"8": none, "32": none}, "no gap")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_the_control_is_drawn_beside_the_unseen_pools(tmp_path):
    point = {m: {"closed_R": 0.5, "closed_R_transfer": 0.3} for m in distill_pool_curve.METHODS}
    control = {"size": 16,
               **{m: {"closed_R": 0.4, "closed_R_transfer": None} for m in distill_pool_curve.METHODS}}
    points = {"8": point, "32": point}
    distill_pool_curve.plot(tmp_path / "with.png", [8, 32], {**points, "control": control}, "t")
    distill_pool_curve.plot(tmp_path / "without.png", [8, 32], points, "t")
    assert (tmp_path / "with.png").read_bytes() != (tmp_path / "without.png").read_bytes()
