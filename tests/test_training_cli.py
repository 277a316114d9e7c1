"""`mmrt pretrain`, `mmrt train` and `mmrt eval` end to end on the tiny dataset, and their bad input."""

import json
import shutil

import pytest
from safetensors.torch import load_file

from mmrt.cli import main
from mmrt.methods import METHODS
from mmrt.training.model.checkpoint import load_model

pytestmark = pytest.mark.integration


@pytest.fixture
def pretrained(tiny_pretrained):
    return tiny_pretrained


def test_pretrain_writes_a_model_directory(pretrained):
    assert sorted(p.name for p in pretrained.iterdir()) == ["MODEL.md", "config.json", "model.safetensors",
                                                            "tokenizer.model"]
    config = json.loads((pretrained / "config.json").read_text())
    assert config["modalities"] == ["audio", "video", "text"]
    assert config["classes"] == []
    stage = config["history"][0]
    assert stage["stage"] == "pretrain" and stage["steps"] > 0
    # alignment is measured on seen and on held-out examples (unseen.jsonl's, then train's inputs),
    # per pair, against chance, in full batches of 32
    assert stage["alignment"]["pretrain"]["examples"] == 96
    assert stage["alignment"]["held_out"]["examples"] == 64
    for name in ("pretrain", "held_out"):
        check = stage["alignment"][name]
        assert set(check["pairs"]) == {"audio+video", "audio+text", "video+text"}
        assert check["chance"]["retrieval"] == pytest.approx(1 / 32)
        assert all(0.0 <= v["retrieval"] <= 1.0 and v["loss"] > 0 for v in check["pairs"].values())
    model = load_model(pretrained)
    assert model.head is None
    card = (pretrained / "MODEL.md").read_text()
    held = stage["alignment"]["held_out"]["pairs"]["audio+text"]
    assert ("| pair | pretraining clips (96): retrieval / loss | held-out clips (64): retrieval / loss |"
            in card)
    assert f"/ {held['loss']:.2f} |" in card.split("| audio+text |")[1].splitlines()[0]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_a_loadable_model(method, tiny_data, pretrained, tmp_path, capsys):
    out = tmp_path / method
    assert main(["train", "--data", str(tiny_data), "--pretrained", str(pretrained), "--method", method,
                 "--modalities", "audio+text", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["MODEL.md", "config.json", "model.safetensors",
                                                     "tokenizer.model"]
    model = load_model(out)
    assert model.config.classes == tuple((tiny_data / "classes.txt").read_text().split())
    result = model.config.history[-1]
    assert result["method"] == method and result["train_modalities"] == "audio+text"
    stages = [h["stage"] for h in model.config.history]
    assert stages[:2] == ["pretrain", "probe"]
    if method != "lp":
        assert stages[2] == {"ft": "finetune", "wiseft": "finetune", "moddrop": "moddrop",
                             "masd-cw": "masd-cw"}.get(method, "masd")
    assert main(["eval", str(out), "--data", str(tiny_data), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["metric"] == "mAP" and len(scores["scores"]) == 7
    assert all(0.0 <= v <= 1.0 for v in scores["scores"].values())


def test_distilling_on_a_carve_out_trains_every_stage_on_the_rest(tiny_data, pretrained, tmp_path):
    """--distill-source carve (the paper's distill-on-Kinetics): a seeded 20% of the labelled
    examples is the pool, the probe and MASD train on the other 80% (after the holdout)."""
    out = tmp_path / "carve"
    assert main(["train", "--data", str(tiny_data), "--pretrained", str(pretrained), "--method", "masd",
                 "--modalities", "audio", "--distill-source", "carve", "--holdout", "0.25", "--out", str(out),
                 "--quiet"]) == 0
    probe, masd = load_model(out).config.history[1:3]
    assert probe["examples"] == 24 and masd["distill_examples"] == 6  # 40 train, 10 held out, 6 carved
    assert masd["recipe"]["distill_source"] == "carve"


def test_linear_probe_leaves_the_encoders_untouched(tiny_data, pretrained, tmp_path):
    out = tmp_path / "lp"
    main(["train", "--data", str(tiny_data), "--pretrained", str(pretrained), "--method", "lp",
          "--modalities", "video", "--out", str(out), "--quiet"])
    before, after = load_file(pretrained / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(before[k].equal(after[k]) for k in before if k.startswith("encoders."))


def test_wiseft_sweep_writes_one_model_per_alpha(tiny_data, pretrained, tmp_path):
    out = tmp_path / "sweep"
    assert main(["train", "--data", str(tiny_data), "--pretrained", str(pretrained), "--method", "wiseft",
                 "--modalities", "audio", "--alpha", "0", "0.5", "1", "--holdout", "0.25", "--out", str(out),
                 "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["alpha-0", "alpha-0.5", "alpha-1"]
    a0, half, a1 = (load_file(out / f"alpha-{a}" / "model.safetensors") for a in ("0", "0.5", "1"))
    key = "encoders.audio.trunk.proj.weight"
    assert not a0[key].equal(a1[key])
    assert ((a0[key] + a1[key]) / 2).allclose(half[key], atol=1e-6)
    validation = load_model(out / "alpha-0.5").config.history[-1]["validation"]
    assert set(validation) >= {"audio", "video", "text", "audio+video+text"}


def test_masd_on_every_modality_says_it_is_fine_tuning(tiny_data, pretrained, tmp_path, caplog):
    caplog.set_level("INFO")
    main(["train", "--data", str(tiny_data), "--pretrained", str(pretrained), "--method", "masd",
          "--modalities", "audio+video+text", "--out", str(tmp_path / "m"), "--quiet"])
    assert "plain fine-tuning" in caplog.text
    assert load_model(tmp_path / "m").config.history[2]["stage"] == "finetune"


@pytest.mark.parametrize("args, message", [
    (["--modalities", "audio+smell"], "unknown modality 'smell'"),
    (["--modalities", ""], "expected modality names"),
    (["--modalities", "text+audio"], "write it as 'audio+text'"),
    (["--alpha", "1.5", "--method", "wiseft"], "--alpha 1.5"),
])
def test_bad_training_options_fail_in_one_line_before_anything_is_written(args, message, tiny_data,
                                                                          pretrained, tmp_path, capsys):
    base = {"--method": "ft", "--modalities": "audio"}
    flags = dict(zip(args[::2], args[1::2], strict=True))
    argv = ["train", "--data", str(tiny_data), "--pretrained", str(pretrained), "--out", str(tmp_path / "o")]
    for k, v in {**base, **flags}.items():
        argv += [k, v]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_unknown_method_is_refused(tiny_data, pretrained, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(tiny_data), "--pretrained", str(pretrained), "--method", "magic",
              "--modalities", "audio", "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    assert "invalid choice: 'magic'" in capsys.readouterr().err


def test_data_lacking_a_needed_modality_is_refused(tiny_av_single, pretrained, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_av_single), "--pretrained", str(pretrained), "--method", "ft",
                 "--modalities", "text", "--out", str(tmp_path / "o")]) == 2
    assert "no example has 'text'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_checkpoint_that_does_not_match_its_preset_is_refused(tiny_data, pretrained, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(pretrained, broken)
    config = json.loads((broken / "config.json").read_text())
    config["arch"]["width"] = 64
    (broken / "config.json").write_text(json.dumps(config))
    assert main(["train", "--data", str(tiny_data), "--pretrained", str(broken), "--method", "lp",
                 "--modalities", "audio", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "weights do not match the config's architecture" in err
    assert not (tmp_path / "o").exists()


def test_not_a_model_directory_is_named(tiny_data, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_data), "--pretrained", str(tmp_path), "--method", "lp",
                 "--modalities", "audio", "--out", str(tmp_path / "o")]) == 2
    assert "not an mmrt model directory" in capsys.readouterr().err
