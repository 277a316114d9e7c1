"""With --holdout, a model that has read the clips a run scores is refused before any work."""

import json
import os
import shutil

import pytest

from mmrt.cli import main
from mmrt.errors import UserError
from mmrt.training.data.seen import check_unseen, digest

pytestmark = pytest.mark.integration


def _copy(tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, symlinks=True)
    return data


def _refused(command: list[str], data, model, out, capsys) -> str:
    assert main([*command, "--data", str(data), "--pretrained", str(model), "--out", str(out),
                 "--holdout", "0.25", "--quiet"]) == 2
    assert not out.exists()
    return capsys.readouterr().err


def test_a_model_pretrained_on_a_pool_holding_train_clips_is_refused(tiny_data, tiny_pretrained,
                                                                      tmp_path, capsys):
    data = _copy(tiny_data, tmp_path)
    lines = (data / "train.jsonl").read_text().splitlines(keepends=True)[:3]
    with open(data / "pretrain.jsonl", "a") as f:
        f.writelines(lines)
    model = tmp_path / "pretrained"
    shutil.copytree(tiny_pretrained, model)
    config = json.loads((model / "config.json").read_text())
    stage = config["history"][0]
    assert stage["data"] == os.path.realpath(tiny_data)  # what pretraining records: the real path,
    assert stage["pretrain_digest"] == digest(tiny_data, "pretrain")  # and the pool's fingerprint
    stage.update(data=str(data), pretrain_digest=digest(data, "pretrain"))  # as if pretrained on this pool
    (model / "config.json").write_text(json.dumps(config))
    refused = "pretrain.jsonl: 3 of its 123 examples are also in train.jsonl (first: id 'train-000000')"
    for command in (["train", "--method", "lp", "--modalities", "audio"], ["experiment", "--methods", "lp"]):
        assert refused in _refused(command, data, model, tmp_path / command[0], capsys)
    # an experiment that pretrains on the folder itself is refused before pretraining
    out = tmp_path / "pretrains"
    assert main(["experiment", "--methods", "lp", "--data", str(data), "--out", str(out), "--preset", "tiny",
                 "--holdout", "0.25", "--quiet"]) == 2
    assert refused in capsys.readouterr().err and not out.exists()
    # the pool is found by its fingerprint wherever the folder was, or by the folder for older records
    for record in ({"pretrain_digest": digest(data, "pretrain"), "data": "/moved/away"},
                   {"data": os.path.relpath(data)}):
        with pytest.raises(UserError, match="3 of its 123 examples"):
            check_unseen(data, "m", [{"stage": "pretrain", **record}], 0.25, [0])
    # another folder's pool (the fixture's, disjoint from its train) is not this one; nothing to refuse
    theirs = {"stage": "pretrain", "data": str(tiny_data), "pretrain_digest": digest(tiny_data, "pretrain")}
    check_unseen(data, "m", [theirs], 0.25, [0])
    check_unseen(data, "m", [{"stage": "pretrain", "data": str(data)}], 0.0, [0])  # no holdout


def test_a_model_trained_on_the_scored_clips_is_refused(tiny_data, tiny_model, tmp_path, capsys):
    probe = ["train", "--method", "lp", "--modalities", "audio"]
    err = _refused(probe, tiny_data, tiny_model, tmp_path / "lp", capsys)
    said = (f"--pretrained {tiny_model} was trained (ft) on {tiny_data / 'train.jsonl'}, keeping nothing "
            "out: --holdout 0.25 with --seed 0 would score clips it trained on")
    assert said in err
    experiment = ["experiment", "--methods", "lp"]
    assert said in _refused(experiment, tiny_data, tiny_model, tmp_path / "exp", capsys)
    assert said in _refused(["tune", "--lr", "1e-4"], tiny_data, tiny_model, tmp_path / "tune", capsys)
    # trained with the same holdout and seed, it never saw the share scored; with another seed it did
    stage = {"stage": "result", "method": "ft", "data": "/moved/away", "holdout": 0.25, "seed": 0,
             "train_digest": digest(tiny_data, "train")}
    check_unseen(tiny_data, "m", [stage], 0.25, [0])
    with pytest.raises(UserError, match="out --holdout 0.25 with --seed 0: --holdout 0.25 with --seed 1 "):
        check_unseen(tiny_data, "m", [stage], 0.25, [1])
    older = {"stage": "result", "method": "ft", "data": str(tiny_data)}  # before fingerprints and holdouts
    with pytest.raises(UserError, match="in a record that does not say what it kept out"):
        check_unseen(tiny_data, "m", [older], 0.25, [0])


def test_a_model_trained_before_train_changed_is_refused(tiny_data, tmp_path):
    data = _copy(tiny_data, tmp_path)
    stage = {"stage": "result", "method": "ft", "holdout": 0.25, "seed": 0, "data": str(data.resolve()),
             "train_digest": digest(data, "train")}
    check_unseen(data, "m", [stage], 0.25, [0])  # the same holdout of the same train: nothing it read
    lines = (data / "train.jsonl").read_text().splitlines(keepends=True)
    (data / "train.jsonl").write_text("".join(lines[1:]))  # the same seed now draws another share
    with pytest.raises(UserError, match=r"m was trained \(ft\) on .*train.jsonl before it changed"):
        check_unseen(data, "m", [stage], 0.25, [0])


def test_an_experiments_models_record_what_they_read(tiny_av_single, tiny_experiment, tmp_path, capsys):
    model = tiny_experiment / "seed-1" / "models" / "ft" / "audio"
    probe = ["train", "--method", "lp", "--modalities", "audio"]
    err = _refused(probe, tiny_av_single, model, tmp_path / "lp", capsys)
    assert f"was trained (ft) on {tiny_av_single / 'train.jsonl'}, keeping nothing out" in err
