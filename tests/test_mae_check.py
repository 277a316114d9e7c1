"""The MAE check on tiny data: the start it compares against is MAE pretraining's own first weights,
each probe is a real `mmrt experiment` run on validation, and the verdict follows its numbers."""

import json
import math
import sys
from types import SimpleNamespace

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


def test_the_check_probes_each_model_with_each_pooling_and_keeps_every_epoch_count(
        tiny_data, tiny_pretrained, tmp_path, monkeypatch):
    out = tmp_path / "check"
    argv = ["mae_check", "--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--preset", "tiny",
            "--contrastive", str(tiny_pretrained)]
    monkeypatch.setattr(sys, "argv", argv)
    mae_check.main()
    run = json.loads((out / "check.json").read_text())["runs"]["1"]
    stage = json.loads((out / "mae-e1" / "config.json").read_text())["history"][0]
    assert run["steps"] == stage["steps"] > 0 and run["seconds_per_step"] > 0 and run["resumed_at"] == 0
    for pool in mae_check.POOLS:
        probe = json.loads((out / f"probe-mae-e1-{pool}" / "results.json").read_text())
        assert probe["settings"]["holdout"] == 0.25  # validation, never eval
        for m in mae_check.MODALITIES:
            r = run["pools"][pool][m]
            assert r["mae"] == probe["methods"]["lp"]["scores"][m][m]
            assert r["loss"] == stage["final_metrics"][m]  # pretraining's own last-epoch loss
            assert r["verdict"] in ("learns", "does not", "inconclusive")
    assert json.loads((out / "mae-e1-mean" / "config.json").read_text())["arch"]["pool"] == "mean"
    mean, own = (load_file(out / name / "model.safetensors") for name in ("mae-e1-mean", "mae-e1"))
    assert all(np.array_equal(mean[k], own[k]) for k in own) and set(mean) == set(own)  # no weights pool
    floors = {m: run["pools"]["max"][m]["floor"] for m in mae_check.MODALITIES}
    assert 0 < floors["audio"] < 0.99 and 0 < floors["video"] < 0.99  # below predicting zero
    assert 0 < floors["text"] < math.log(1000)

    made = (out / "mae-e1" / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(sys, "argv", [*argv[:6], "2", *argv[7:]])
    mae_check.main()  # another epoch count: the first is found, not made again, and kept in the report
    assert (out / "mae-e1" / "model.safetensors").stat().st_mtime_ns == made
    assert list(json.loads((out / "check.json").read_text())["runs"]) == ["1", "2"]
    monkeypatch.setattr(sys, "argv", [*argv, "--holdout", "0.3"])
    with pytest.raises(SystemExit, match="was made with"):
        mae_check.main()


def test_the_verdict_needs_the_margin_over_start_and_chance_and_an_interval_clear_of_zero():
    assert mae_check.verdict(0.12, 0.02, 0.22, above_chance=0.3) == "learns"
    assert mae_check.verdict(0.12, -0.01, 0.25, above_chance=0.3) == "inconclusive"  # interval holds zero
    assert mae_check.verdict(0.12, 0.02, 0.22, above_chance=0.05) == "inconclusive"  # near chance
    assert mae_check.verdict(0.02, -0.03, 0.07, above_chance=0.3) == "does not"
    assert mae_check.verdict(0.05, -0.03, 0.12, above_chance=0.3) == "inconclusive"


def test_the_text_floor_prices_each_word_piece_by_its_frequency_at_its_position_and_length(tmp_path,
                                                                                          monkeypatch):
    class Tokenizer:
        vocab_size = 100

        def __init__(self, *args):
            pass

        def encode(self, titles):  # BOS a b EOS and BOS a EOS, padded
            return np.array([[2, 10, 11, 3], [2, 10, 3, 0]])

    config = SimpleNamespace(arch=SimpleNamespace(preprocessing=SimpleNamespace(max_tokens=4)))
    monkeypatch.setattr(mae_check, "TextTokenizer", Tokenizer)
    monkeypatch.setattr(mae_check, "read_config", lambda _: config)
    monkeypatch.setattr(mae_check, "read_split", lambda *a, **k: [SimpleNamespace(inputs={"text": t})
                                                                  for t in ("a b", "a")])
    # Every (position, length) was seen once with the same piece: probability (1 + backoff) / 2, the
    # backoff each piece's overall frequency (2 of 7 for BOS, a and EOS, 1 of 7 for b), add-one smoothed.
    common, rare = (1 + 3 / 107) / 2, (1 + 2 / 107) / 2
    expected = -(6 * math.log(common) + math.log(rare)) / 7
    assert mae_check.text_floor(tmp_path, tmp_path) == pytest.approx(expected)
