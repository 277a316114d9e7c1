"""The downstream recipe end to end: `mmrt train` with its flags and distillation pools, `mmrt tune`
on validation only, and their bad input."""

import json
import shlex
import shutil

import pytest

from mmrt.benchmarks.timing import machine
from mmrt.cli import main
from mmrt.training.experiments.tune import choose
from mmrt.training.model.checkpoint import load_model

pytestmark = pytest.mark.integration


def test_train_follows_the_recipe_flags(tiny_data, tiny_pretrained, tmp_path):
    out = tmp_path / "m"
    assert main(["train", "--data", str(tiny_data), "--pretrained", str(tiny_pretrained), "--method", "masd",
                 "--modalities", "audio", "--out", str(out), "--steps", "3", "--mixup", "0.5",
                 "--drop-path", "0.1", "--augment", "on", "--distill-source", "unseen",
                 "--distill-examples", "8", "--distill-reduction", "sum", "--quiet"]) == 0
    stage = next(h for h in load_model(out).config.history if h["stage"] == "masd")
    assert stage["steps"] == 3 and stage["schedule"]["steps"] == 3 and stage["distill_examples"] == 8
    assert stage["recipe"] == {**stage["recipe"], "mixup": 0.5, "drop_path": 0.1, "augment": True,
                               "distill_source": "unseen", "distill_reduction": "sum"}
    model = load_model(out)
    assert all(b.drop_path == 0.0 for m in model.encoders.values() for b in m.trunk.blocks)


@pytest.mark.parametrize("flags,message", [
    (["--distill-source", "unseen"], "unseen.jsonl does not exist"),
    (["--distill-examples", "100000"], "--distill-examples 100000: the pretrain pool"),
    (["--mixup", "2"], "--mixup 2.0: expected a share from 0 to 1"),
])
def test_a_bad_distillation_pool_is_one_line_and_nothing_written(flags, message, tiny_data, tiny_pretrained,
                                                                  tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "unseen.jsonl").unlink()
    out = tmp_path / "m"
    assert main(["train", "--data", str(data), "--pretrained", str(tiny_pretrained), "--method", "masd",
                 "--modalities", "audio", "--out", str(out), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_an_empty_unseen_pool_is_refused(tiny_data, tiny_pretrained, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "unseen.jsonl").write_text("")
    assert main(["train", "--data", str(data), "--pretrained", str(tiny_pretrained), "--method", "masd-cw",
                 "--modalities", "video", "--out", str(tmp_path / "m"), "--distill-source", "unseen",
                 "--quiet"]) == 2
    assert "unseen.jsonl: empty split file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def no_eval(tiny_data, tmp_path_factory):
    """The tiny data without eval.jsonl: validation must never need it."""
    data = tmp_path_factory.mktemp("noeval") / "data"
    shutil.copytree(tiny_data, data)
    (data / "eval.jsonl").unlink()
    return data


@pytest.fixture(scope="module")
def search(no_eval, tiny_pretrained, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "run"
    argv = ["tune", "--data", str(no_eval), "--pretrained", str(tiny_pretrained), "--out", str(out),
            "--lr", "1e-3,3e-2", "--steps", "2", "--holdout", "0.25", "--quiet"]
    code = main(argv)
    return out, argv, code


def test_tune_scores_every_point_on_validation_and_chooses_by_the_rule(search):
    out, argv, code = search
    doc = json.loads((out / "tune.json").read_text())
    assert list(doc["points"]) == ["lr-0.001_steps-2_mixup-0_drop_path-0_augment-off",
                                   "lr-0.03_steps-2_mixup-0_drop_path-0_augment-off"]
    assert doc["chosen"] == choose(doc["points"]) and code == (0 if doc["chosen"] else 1)
    for name, point in doc["points"].items():
        assert len(point["ft"]) == 7 and point["finetune"]["steps"] == 2
        assert point["ft_beats_lp"] == all(point["ft"][mt] > point["lp"][mt] for mt in point["ft"])
        results = json.loads((out / "points" / name / "results.json").read_text())
        assert results["settings"]["holdout"] == 0.25
        assert "Scored on validation" in (out / "points" / name / "report.md").read_text()
    md = (out / "tune.md").read_text()
    assert "lp (the probe)" in md and "never eval" in md
    # Where it was made: the command that reproduces it, the machine and the date, in both files.
    command = shlex.join(["mmrt", *argv])
    assert doc["made"][0]["command"] == command and doc["made"][0]["machine"] == machine()
    assert f"Made by `{command}` on {machine()}, cpu, {doc['made'][0]['date']}" in md
    for name in doc["points"]:  # each point's run names the search that made it
        results = json.loads((out / "points" / name / "results.json").read_text())
        assert results["made"][0]["command"] == command


def test_tune_resumes_without_training_again_and_shares_points_between_grids(search):
    out, argv, _ = search
    before = json.loads((out / "tune.json").read_text())
    shared = (out / "points" / "lr-0.001_steps-2_mixup-0_drop_path-0_augment-off" / "models" / "ft"
              / "audio" / "model.safetensors")
    stamp = shared.stat().st_mtime_ns
    assert main([*argv, "--resume"]) in (0, 1)
    assert json.loads((out / "tune.json").read_text())["points"] == before["points"]
    # A coordinate-wise step in the same folder: the point it shares is not trained again.
    lr = argv.index("--lr")
    assert main([*argv[:lr], "--lr", "1e-3", *argv[lr + 2:], "--mixup", "0,0.5", "--resume"]) in (0, 1)
    doc = json.loads((out / "tune.json").read_text())
    assert list(doc["points"]) == ["lr-0.001_steps-2_mixup-0_drop_path-0_augment-off",
                                   "lr-0.001_steps-2_mixup-0.5_drop_path-0_augment-off"]
    assert shared.stat().st_mtime_ns == stamp
    # The search names its three calls; the shared point, the call that made it and the one after.
    assert [c["command"].endswith("--resume") for c in doc["made"]] == [False, True, True]
    point = json.loads((out / "points" / "lr-0.001_steps-2_mixup-0_drop_path-0_augment-off"
                        / "results.json").read_text())["made"]
    assert point[0]["command"] == before["made"][0]["command"] and "--mixup 0,0.5" in point[-1]["command"]


def test_choice_skips_a_point_whose_fine_tune_loses_to_the_probe():
    points = {"strong-but-weak-baseline": {"ft_mean": 0.9, "ft_beats_lp": False},
              "honest": {"ft_mean": 0.6, "ft_beats_lp": True}, "worse": {"ft_mean": 0.5, "ft_beats_lp": True}}
    assert choose(points) == "honest"
    assert choose({"only": {"ft_mean": 0.9, "ft_beats_lp": False}}) is None


@pytest.mark.parametrize("flags,message", [
    (["--lr", "1e-3", "--holdout", "0"], "--holdout 0: a grid search is scored on validation only"),
    (["--lr", ","], "--lr ',': no values"),
    (["--augment", "maybe"], "--augment 'maybe': expected a comma list of on,off"),
    (["--steps", "5,5"], "a value is repeated"),
])
def test_tune_bad_input_is_one_line(flags, message, tiny_data, tiny_pretrained, tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["tune", "--data", str(tiny_data), "--pretrained", str(tiny_pretrained), "--out", str(out),
                 *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_experiment_on_validation_runs_only_the_training_sets_asked(no_eval, tiny_pretrained, tmp_path,
                                                                    capsys):
    out = tmp_path / "e"
    argv = ["experiment", "--data", str(no_eval), "--pretrained", str(tiny_pretrained), "--holdout", "0.25",
            "--methods", "lp", "--quiet"]
    assert main([*argv, "--out", str(out), "--train-sets", "audio+text"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert list(doc["methods"]["lp"]["scores"]) == ["audio+text"]
    assert "oracle" not in doc["methods"]["lp"]["metrics"]  # the oracle needs every training set
    assert not (out / "pretrained").exists()  # --pretrained: nothing pretrained again
    assert main([*argv, "--out", str(tmp_path / "bad"), "--train-sets", "audio+smell"]) == 2
    assert "--train-sets" in capsys.readouterr().err and not (tmp_path / "bad").exists()
