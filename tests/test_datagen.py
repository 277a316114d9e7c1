"""The bundled dataset: real files, valid manifests, determinism, knobs that do what they say."""

import json
import re

import cv2
import numpy as np
import pytest
import soundfile as sf

from mmrt.cli import main
from mmrt.decode import load_audio, load_video
from mmrt.split_files import read_classes, read_split
from mmrt.training.datagen import make as make_module
from mmrt.training.datagen.config import DIGITS, SIZES, GeneratorConfig

pytestmark = pytest.mark.integration
SPLITS = ("pretrain", "train", "eval", "distill", "unseen")


def test_files_open_in_soundfile_and_opencv(tiny_data):
    ex = read_split(tiny_data, "train")[0]
    info = sf.info(ex.inputs["audio"])
    assert (info.samplerate, info.channels, info.frames) == (16_000, 1, 32_000)
    cap = cv2.VideoCapture(ex.inputs["video"])
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 16
    ok, frame = cap.read()
    assert ok and frame.shape == (64, 64, 3)


def test_split_files_are_valid_with_expected_sizes(tiny_data):
    assert read_classes(tiny_data) == list(DIGITS)
    for split in SPLITS:
        examples = read_split(tiny_data, split)
        assert len(examples) == SIZES["tiny"][split]
        assert all(ex.modalities == {"audio", "video", "text"} for ex in examples)
    for ex in read_split(tiny_data, "train") + read_split(tiny_data, "eval"):
        assert 1 <= len(ex.labels) <= 2
    pretrain = read_split(tiny_data, "pretrain")
    assert {ex.id for ex in read_split(tiny_data, "distill")} <= {ex.id for ex in pretrain}
    # The unseen distillation pool shares no example and no audio file with pretraining.
    unseen = read_split(tiny_data, "unseen")
    assert not {ex.id for ex in unseen} & {ex.id for ex in pretrain}
    seen_audio = {open(ex.inputs["audio"], "rb").read() for ex in pretrain}
    assert not any(open(ex.inputs["audio"], "rb").read() in seen_audio for ex in unseen)
    for split in ("pretrain", "unseen"):
        first = json.loads((tiny_data / f"{split}.jsonl").read_text().splitlines()[0])
        assert first["labels"] is None  # the pools are unlabeled


def test_same_seed_gives_identical_output_whatever_the_worker_count(tiny_data, tiny_data_again):
    for name in [f"{s}.jsonl" for s in SPLITS] + ["classes.txt", "datacard.json"]:
        assert (tiny_data / name).read_bytes() == (tiny_data_again / name).read_bytes(), name
    for ex in read_split(tiny_data, "eval")[:12]:
        other = str(ex.inputs["audio"]).replace(str(tiny_data), str(tiny_data_again))
        np.testing.assert_array_equal(load_audio(ex.inputs["audio"], 16_000),
                                      load_audio(other, 16_000))
        other = str(ex.inputs["video"]).replace(str(tiny_data), str(tiny_data_again))
        np.testing.assert_array_equal(load_video(ex.inputs["video"]), load_video(other))


def test_unseen_pool_size_is_a_flag_and_zero_writes_none(tmp_path, capsys):
    argv = ["data", "make", "--size", "tiny", "--modalities", "text", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--unseen-size", "7"]) == 0
    assert len(read_split(tmp_path / "a", "unseen")) == 7
    assert main([*argv, "--out", str(tmp_path / "b"), "--unseen-size", "0"]) == 0
    assert not (tmp_path / "b" / "unseen.jsonl").exists()
    assert main([*argv, "--out", str(tmp_path / "c"), "--unseen-size", "-1"]) == 2
    assert "--unseen-size -1" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_a_larger_pool_or_train_split_starts_with_the_smaller_one(tmp_path, capsys):
    """Every example is seeded by its index: --pretrain-size and --train-size grow a split without
    changing the examples it already had, or any other split (a pool-size curve nests its pools)."""
    argv = ["data", "make", "--size", "tiny", "--modalities", "audio,text", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "small")]) == 0
    assert main([*argv, "--out", str(tmp_path / "big"), "--pretrain-size", "150", "--train-size", "55"]) == 0
    for split, size in (("pretrain", 150), ("train", 55)):
        small = (tmp_path / "small" / f"{split}.jsonl").read_text().splitlines()
        big = (tmp_path / "big" / f"{split}.jsonl").read_text().splitlines()
        assert len(big) == size and big[:len(small)] == small
    for name in ("eval.jsonl", "unseen.jsonl", "audio/eval-000003.wav", "audio/pretrain-000100.wav"):
        assert (tmp_path / "big" / name).read_bytes() == (tmp_path / "small" / name).read_bytes(), name
    for flag in ("--pretrain-size", "--train-size"):
        assert main([*argv, "--out", str(tmp_path / "bad"), flag, "0"]) == 2
        assert f"{flag} 0: expected a count" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_another_seed_gives_other_data(tmp_path, tiny_data):
    cfg = GeneratorConfig(size="tiny", seed=8, modalities=("text",))
    make_module.make_dataset(cfg, tmp_path / "d", workers=1, progress=False)
    assert (tmp_path / "d" / "train.jsonl").read_text() != (tiny_data / "train.jsonl").read_text()


def test_modalities_can_be_left_out_and_single_label(tiny_av_single):
    for split in SPLITS:
        for ex in read_split(tiny_av_single, split):
            assert ex.modalities == {"audio", "video"}
    assert all(len(ex.labels) == 1 for ex in read_split(tiny_av_single, "eval"))
    card = json.loads((tiny_av_single / "datacard.json").read_text())
    assert card["metric"] == "top-1" and "text" not in card
    assert not (tiny_av_single / "text").exists()


def test_title_knob_controls_how_often_titles_name_the_label(tiny_named_titles, tiny_data):
    foreign = {"null", "eins", "cero", "uno", "zéro", "un"}  # none may leak into English titles
    for ex in read_split(tiny_named_titles, "train"):
        words = set(re.findall(r"[a-zé]+", ex.inputs["text"].lower()))
        assert set(ex.labels) <= words and not words & foreign
    card = json.loads((tiny_data / "datacard.json").read_text())
    assert 0.15 <= card["text"]["share_naming_label"] <= 0.35  # default knob 0.25
    named = 0
    for ex in read_split(tiny_data, "train") + read_split(tiny_data, "eval"):
        named += set(ex.labels) <= set(re.findall(r"[a-z]+", ex.inputs["text"]))
    assert named / 100 < 0.6  # most titles do not name the label outright


def test_data_card_reports_counts_snr_and_voices(tiny_data):
    card = json.loads((tiny_data / "datacard.json").read_text())
    assert card["splits"]["train"]["examples"] == 40
    assert sum(card["splits"]["train"]["label_counts"].values()) >= 40
    lo, hi = card["audio"]["snr_db_range"]
    assert lo <= card["audio"]["snr_db_observed"]["min"] <= card["audio"]["snr_db_observed"]["max"] <= hi
    assert card["audio"]["voices_used"] > 10
    assert 0.7 < card["audio"]["labelled_digits_spoken_share"] < 1.0  # imperfect by design
    assert "## Splits" in (tiny_data / "DATACARD.md").read_text()
    # the generator's own code identified, not only the package's version
    from mmrt.training.datagen.datacard import generator_code
    assert card["generator_code"] == generator_code() and len(card["generator_code"]) == 64
    assert f"sha256 {generator_code()[:12]}" in (tiny_data / "DATACARD.md").read_text()


def test_a_failure_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = make_module._make_example

    def flaky(job):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk on fire")
        return real(job)

    monkeypatch.setattr(make_module, "_make_example", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        make_module.make_dataset(GeneratorConfig(size="tiny", modalities=("text",)),
                                 tmp_path / "out", workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_bad_knobs_and_existing_folders(tmp_path, capsys):
    assert main(["data", "make", "--out", str(tmp_path / "x"), "--audio-miss", "1.5"]) == 2
    assert "--audio-miss 1.5: expected a probability" in capsys.readouterr().err
    assert main(["data", "make", "--out", str(tmp_path / "x"), "--snr-db", "9", "-3"]) == 2
    assert "expected MIN <= MAX" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main(["data", "make", "--out", str(tmp_path / "full"), "--size", "tiny"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert main(["data", "make", "--out", str(tmp_path / "x"), "--seed", "-3"]) == 2
    assert "--seed -3: expected a non-negative integer" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("")
    assert main(["data", "make", "--out", str(tmp_path / "a-file" / "d"), "--size", "tiny"]) == 2
    assert "cannot create the folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["data", "make", "--out", str(tmp_path / "x"), "--size", "huge"])
    assert e.value.code == 2


def test_cli_makes_a_dataset(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["data", "make", "--out", str(out), "--size", "tiny", "--modalities", "text",
                 "--workers", "1", "--no-progress"]) == 0
    assert "train 40" in capsys.readouterr().out
    assert len(read_split(out, "eval")) == 60
