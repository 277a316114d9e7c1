"""`mmrt quickstart` end to end on the tiny size, through the installed console script."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmrt.cli.quickstart import plainly

pytestmark = pytest.mark.integration


def test_quickstart_runs_and_reuses_its_data(tmp_path):
    mmrt = Path(sys.executable).with_name("mmrt")  # the console script beside the interpreter
    assert mmrt.is_file(), "the console script is installed with the package"
    cmd = [str(mmrt), "quickstart", "--size", "tiny", "--out", str(tmp_path / "qs")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    for marker in ("[1/8]", "## Splits", "pretrained in", "MASD + WiSE-FT on audio+video",
                   "trained and scored in", "mAP", "transfer", "added at test", "mmrt experiment",
                   "[6/8] export",
                   "parity max error", "[7/8] serve", "video dropped: mAP", "monolithic",
                   "[8/8] what the method bought", "mmrt serve"):
        assert marker in r.stdout
    lines = r.stdout.splitlines()
    # text alone is the modality the training set lacked, scored by both real models
    text_row = next(line for line in lines if line.startswith("text "))
    ft, masd = (float(x) for x in text_row.split()[1:3])
    assert 0.0 <= ft <= 1.0 and 0.0 <= masd <= 1.0 and text_row.endswith("transfer")
    # the side-by-side repeats those scores and the workload's, with the signed change
    unseen = next(line for line in lines if line.startswith("text alone (training never saw it)"))
    got = [float(x.strip("[],")) for x in unseen.split()[-5:]]
    assert got[:3] == pytest.approx([ft, masd, masd - ft], abs=1.5e-3)
    assert got[3] <= got[2] <= got[4]  # the change's 95% bootstrap interval holds it
    workload = next(line for line in lines if line.startswith("video dropped (audio+text"))
    served = next(line for line in lines if line.startswith("video dropped: mAP"))
    assert float(workload.split()[-4]) == pytest.approx(float(served.split()[3]), abs=1e-3)
    assert any(line.startswith("served with video dropped: p50") for line in lines)
    summary = json.loads((tmp_path / "qs" / "summary.json").read_text())  # what it printed, for the docs
    assert summary["rows"][0]["change"] == pytest.approx(masd - ft, abs=1.5e-3)
    assert summary["rows"][0]["ci95"] == pytest.approx(got[3:], abs=1e-3) and summary["minutes"] > 0
    # it ends with the side-by-side and the plain sentence on what is clear of zero
    assert lines[-1] == plainly(summary["rows"]) and lines[-1].startswith("In plain words: with text alone")
    assert summary["flags"] == {"size": "tiny", "seed": 0, "pretrain": True, "pretrain_epochs": None}
    for name, digest in summary["plots"].items():  # the plots of this run, as the docs capture them
        assert hashlib.sha256((tmp_path / "qs" / "bench" / name).read_bytes()).hexdigest() == digest
    assert set(summary["plots"]) == {"score.png", "vs_monolithic.png"}
    for path in ("data/DATACARD.md", "pretrained/model.safetensors",
                 "train/models/ft/audio+video/model.safetensors",
                 "train/models/masd+wiseft/audio+video/model.safetensors", "train/report.md",
                 "bundle/manifest.json", "bundle/audio.onnx", "bundle/fused.onnx", "bench/report.json",
                 "bench/requests.csv"):
        assert (tmp_path / "qs" / path).is_file()
    report = (tmp_path / "qs" / "train" / "report.md").read_text()
    assert "95% bootstrap intervals" in report and " [" in report  # one seed: intervals, not ± std
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

    from mmrt.cli.quickstart import _pretrain
    from mmrt.training.model.config import load_preset

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


def test_quickstart_continues_an_interrupted_pretraining(tiny_data, tmp_path, capsys, monkeypatch, caplog):
    import logging

    from mmrt.cli.quickstart import _pretrain
    from mmrt.training.model.checkpoint import read_config
    from mmrt.training.stages.rundir import STATE

    _interrupted_pretraining(tiny_data, tmp_path, monkeypatch)
    folder = tmp_path / "pretrained"
    assert (folder / STATE).is_file() and not (folder / "config.json").exists()
    assert "the same command continues" in capsys.readouterr().out
    with caplog.at_level(logging.INFO, logger="mmrt.training.stages.loop"):
        assert _pretrain(tiny_data, tmp_path, "tiny", seed=0, data_reused=True) == folder
    assert "resuming at step 2 of" in caplog.text
    assert not (folder / STATE).exists() and read_config(folder).history[0]["steps"] > 2


def test_quickstart_starts_again_when_the_interrupted_pretraining_had_another_recipe(
        tiny_data, tmp_path, capsys, monkeypatch):
    from mmrt.cli.quickstart import _pretrain
    from mmrt.training.stages.rundir import STATE

    _interrupted_pretraining(tiny_data, tmp_path, monkeypatch, epochs=3)
    _pretrain(tiny_data, tmp_path, "tiny", seed=0, data_reused=True)  # the preset's epochs now
    out = capsys.readouterr().out
    assert "cannot continue the interrupted pretraining" in out
    assert "saved with other training settings" in out
    assert not (tmp_path / "pretrained" / STATE).exists() and "pretrained in" in out


def _interrupted_pretraining(data, out, monkeypatch, epochs=None) -> None:
    """The quickstart's pretraining stopped by the user's Ctrl-C right after its first
    checkpoint, at step 2."""
    import mmrt.training.stages.loop as loop
    import mmrt.training.stages.pretrain as pretrain_module
    from mmrt.cli.quickstart import _pretrain

    fit, save_state = pretrain_module.fit, loop.save_state

    def save_then_stop(*args, **kwargs):
        save_state(*args, **kwargs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(pretrain_module, "fit", lambda *a, **k: fit(*a, **{**k, "checkpoint_every": 2}))
        patched.setattr(loop, "save_state", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            _pretrain(data, out, "tiny", seed=0, data_reused=False, epochs=epochs)


def test_the_plain_sentence_says_which_changes_are_clear_of_zero():
    rows = [{"label": "text alone (training never saw it)", "ci95": [0.01, 0.05]},
            {"label": "video dropped (audio+text: the bench's workload)", "ci95": [-0.01, 0.02]},
            {"label": "audio dropped (video+text)", "ci95": [-0.04, -0.01]}]
    said = plainly(rows)
    assert "with text alone, MASD+WiSE-FT scores higher than fine-tuning, clear of zero" in said
    assert "with video dropped, the change is not clear of zero" in said
    assert "with audio dropped, MASD+WiSE-FT scores lower than fine-tuning, clear of zero" in said
