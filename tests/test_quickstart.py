"""`mmrt quickstart` end to end on the tiny size, through the installed console script."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_quickstart_runs_and_reuses_its_data(tmp_path):
    mmrt = Path(sys.executable).with_name("mmrt")  # the console script beside the interpreter
    assert mmrt.is_file(), "the console script is installed with the package"
    cmd = [str(mmrt), "quickstart", "--size", "tiny", "--out", str(tmp_path / "qs")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    for marker in ("[1/7]", "## Splits", "pretrained in", "MASD + WiSE-FT on audio+video", "trained in",
                   "mAP", "transfer", "added at test", "mmrt experiment", "[6/7] export", "parity max error",
                   "[7/7] serve", "video dropped: mAP", "monolithic", "mmrt serve"):
        assert marker in r.stdout
    # the text-only row is the modality the training set lacked, scored by the real model
    text_row = next(line for line in r.stdout.splitlines() if line.startswith("text "))
    assert 0.0 <= float(text_row.split()[1]) <= 1.0 and text_row.endswith("transfer")
    for path in ("data/DATACARD.md", "pretrained/model.safetensors", "model/model.safetensors",
                 "bundle/manifest.json", "bundle/audio.onnx", "bundle/fused.onnx", "bench/report.json",
                 "bench/requests.csv"):
        assert (tmp_path / "qs" / path).is_file()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and f"reusing {tmp_path / 'qs' / 'pretrained'}" in r.stdout


def test_quickstart_reports_an_unusable_out_folder_in_one_line(tmp_path, capsys):
    from mmrt.cli import main

    (tmp_path / "a-file").write_text("")
    assert main(["quickstart", "--size", "tiny", "--out", str(tmp_path / "a-file" / "qs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot create the folder" in err


def test_quickstart_pretrains_again_when_the_architecture_changed(tiny_data, tiny_pretrained, tmp_path,
                                                                 capsys):
    import json
    import shutil

    from mmrt.commands.quickstart import _pretrain
    from mmrt.training.config import load_preset

    folder = tmp_path / "pretrained"
    shutil.copytree(tiny_pretrained, folder)
    assert _pretrain(tiny_data, tmp_path, "tiny", seed=0, data_reused=True) == folder
    assert f"reusing {folder}" in capsys.readouterr().out
    config = json.loads((folder / "config.json").read_text())
    current = load_preset("tiny").arch.pool
    config["arch"]["pool"] = "cls" if current != "cls" else "mean"  # an older design
    (folder / "config.json").write_text(json.dumps(config))
    _pretrain(tiny_data, tmp_path, "tiny", seed=0, data_reused=True)
    out = capsys.readouterr().out
    assert "reusing" not in out and "pretrained in" in out
    assert json.loads((folder / "config.json").read_text())["arch"]["pool"] == current
