"""The MAE check on tiny data: the start it compares against is MAE pretraining's own first weights,
each probe is a real `mmrt experiment` run on validation, and the verdict follows its numbers."""

import json
import math
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from lab import mae_check
from mmrt.training.stages import pretrain as pretrain_stage

pytestmark = pytest.mark.integration


def test_the_start_is_the_weights_mae_pretraining_begins_from(tiny_data, tmp_path, monkeypatch):
    def no_steps(*args, **kwargs):
        return {"steps": 0, "final_loss": math.nan, "skipped_steps": 0, "final_metrics": {},
                "seconds_per_step": None}

    trained = tmp_path / "trained"
    pretrain_stage.pretrain(pretrain_stage.PretrainOptions(
        data=tiny_data, out=trained, preset="tiny", objective="mae", seed=3, epochs=1, progress=False))
    monkeypatch.setattr(pretrain_stage, "fit", no_steps)  # pretraining that stops before its first step
    untrained = tmp_path / "untrained"
    pretrain_stage.pretrain(pretrain_stage.PretrainOptions(
        data=tiny_data, out=untrained, preset="tiny", objective="mae", seed=3, epochs=1, progress=False))

    start = load_file(mae_check.start_weights(trained, tmp_path / "start", seed=3) / "model.safetensors")
    first = load_file(untrained / "model.safetensors")
    assert set(start) == set(first) and all(np.array_equal(start[k], first[k]) for k in first)
    moved = load_file(trained / "model.safetensors")
    assert any(not np.array_equal(moved[k], first[k]) for k in first)  # pretraining did move them


def test_the_check_probes_each_model_and_its_verdict_follows_the_numbers(tiny_data, tiny_pretrained, tmp_path,
                                                                          monkeypatch):
    out = tmp_path / "check"
    argv = ["mae_check", "--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--preset", "tiny",
            "--contrastive", str(tiny_pretrained)]
    monkeypatch.setattr(sys, "argv", argv)
    mae_check.main()
    doc = json.loads((out / "check.json").read_text())
    run = doc["runs"]["1"]
    assert run["steps"] > 0 and run["seconds_per_step"] > 0
    for m in mae_check.MODALITIES:
        r = run["modalities"][m]
        probe = json.loads((out / "probe-mae-e1" / "results.json").read_text())
        assert r["mae"] == probe["methods"]["lp"]["scores"][m][m] and probe["settings"]["holdout"] == 0.25
        assert r["learns"] == (r["mae"] - r["start"] >= mae_check.LEARNS and r["mae"] - r["chance"] >= 0.10)
        assert r["mae_minus_start"] == pytest.approx(r["mae"] - r["start"])
        assert r["headroom"] == pytest.approx(r["contrastive"] - r["start"])
        low, high = r["mae_minus_start_ci95"]
        assert -1 <= low <= high <= 1
        assert r["loss"] is not None and r["loss"] > 0  # the last epoch's, from pretraining
    assert 0 < run["modalities"]["text"]["floor"] < math.log(1000)  # below a uniform guess
    assert 0 < doc["chance"] < 1 and "| audio |" in (out / "check.md").read_text()

    made = (out / "mae-e1" / "model.safetensors").stat().st_mtime_ns
    mae_check.main()  # again: everything found, nothing made anew
    assert (out / "mae-e1" / "model.safetensors").stat().st_mtime_ns == made
    monkeypatch.setattr(sys, "argv", [*argv, "--holdout", "0.3"])
    with pytest.raises(SystemExit, match="was made with"):
        mae_check.main()


def test_a_modality_learns_only_above_both_the_start_and_chance():
    def probe(score):
        return {"scores": dict.fromkeys(mae_check.MODALITIES, score),
                "samples": {m: [score] * 10 for m in mae_check.MODALITIES}}

    floors = dict.fromkeys(mae_check.MODALITIES, 1.0)
    assert not mae_check.compare(probe(0.30), probe(0.18), probe(0.8), 0.25, {}, floors)["audio"]["learns"]
    assert not mae_check.compare(probe(0.30), probe(0.25), probe(0.8), 0.10, {}, floors)["audio"]["learns"]
    assert mae_check.compare(probe(0.40), probe(0.25), probe(0.8), 0.10, {}, floors)["audio"]["learns"]
