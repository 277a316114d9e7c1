"""`mmrt experiment` on the tiny two-modality single-label data, two seeds."""

import json
import shlex

import numpy as np
import pytest

from mmrt.benchmarks.timing import machine
from mmrt.cli import main
from mmrt.methods import METHODS
from mmrt.robustness import PMatrix, robustness_report

pytestmark = pytest.mark.integration
SUBSETS = ["audio", "video", "audio+video"]


@pytest.fixture(scope="module")
def run(tiny_experiment):
    return tiny_experiment


def test_results_hold_every_method_training_set_and_eval_set(run):
    doc = json.loads((run / "results.json").read_text())
    assert doc["metric"] == "top1" and doc["modalities"] == ["audio", "video"] and doc["seeds"] == [0, 1]
    assert list(doc["methods"]) == list(METHODS)
    for res in doc["methods"].values():
        assert list(res["scores"]) == SUBSETS
        assert all(list(row) == SUBSETS for row in res["scores"].values())
        assert all(0.0 <= v <= 1.0 for row in res["scores"].values() for v in row.values())


def test_scores_are_the_mean_over_seeds_and_metrics_follow_from_them(run):
    doc = json.loads((run / "results.json").read_text())
    seeds = [json.loads((run / f"seed-{s}" / "scores.json").read_text()) for s in (0, 1)]
    for method, res in doc["methods"].items():
        for mt, row in res["scores"].items():
            for me, value in row.items():
                values = [s["methods"][method][mt][me] for s in seeds]
                assert value == pytest.approx(np.mean(values))
                assert res["scores_std"][mt][me] == pytest.approx(np.std(values))
        pm = PMatrix.from_json({"modalities": doc["modalities"], "scores": res["scores"]})
        ft = PMatrix.from_json({"modalities": doc["modalities"], "scores": doc["methods"]["ft"]["scores"]})
        expected = robustness_report(pm, ft)
        assert res["metrics"] == json.loads(json.dumps(expected))
        # The oracle is ft's diagonal, the same for every method; each seed has its own ratio to ft.
        ceiling = res["metrics"]["oracle"]["overall"]["R"]
        assert ceiling == pytest.approx(min(doc["methods"]["ft"]["scores"][me][me] for me in SUBSETS))
        for s in ("0", "1"):
            own = res["per_seed"][s]["metrics"]["overall"]["R"]
            base = doc["methods"]["ft"]["per_seed"][s]["metrics"]["overall"]["R"]
            assert res["per_seed"][s]["ratio"]["overall"]["R"] == pytest.approx(own / base)
    sweep = doc["alpha_sweep"]["wiseft"]
    assert set(sweep) == {"0", "0.5", "1"}
    # alpha 1 is the fine-tuned model itself, alpha 0 the probe.
    assert sweep["1"]["P"] == pytest.approx(doc["methods"]["ft"]["metrics"]["overall"]["P"])
    assert sweep["0"]["P"] == pytest.approx(doc["methods"]["lp"]["metrics"]["overall"]["P"])


def test_report_plots_and_models_are_written(run):
    report = (run / "report.md").read_text()
    for needle in ("Transferability", "masd+wiseft", "± ", "R / R(ft)", "Table 4", "| oracle |",
                   "fine-tune-to-oracle gap", "each seed", "Scored on eval."):
        assert needle in report
    pngs = sorted(p.name for p in run.glob("*.png"))
    assert {"robustness_vs_performance.png", "overlap.png", "alpha_sweep.png",
            "pmatrix_masd_wiseft.png"} <= set(pngs)
    assert all((run / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    first = json.loads((run / "results.json").read_text())["made"][0]  # the call that made the run
    assert first["command"].startswith("mmrt experiment --data ") and first["command"].endswith("--quiet")
    assert (first["machine"], first["device"], first["processes"]) == (machine(), "cpu", 1)
    assert f"Made by `{first['command']}` on {machine()}, cpu, {first['date']}" in report
    for s in (0, 1):
        for method in METHODS:
            for mt in SUBSETS:
                assert (run / f"seed-{s}" / "models" / method / mt / "model.safetensors").is_file()


def test_a_finished_run_is_not_clobbered_and_resumes_without_work(run, tiny_av_single, capsys):
    before = (run / "results.json").read_text()
    argv = ["experiment", "--data", str(tiny_av_single), "--out", str(run), "--preset", "tiny",
            "--seeds", "0,1", "--alphas", "0,0.5,1", "--quiet"]
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    after = json.loads((run / "results.json").read_text())
    assert after["methods"] == json.loads(before)["methods"]
    # The resuming call is recorded after the one that made the run; a refused one (below) is not.
    assert after["made"][0] == json.loads(before)["made"][0]
    assert after["made"][-1]["command"] == shlex.join(["mmrt", *argv, "--resume"])
    assert "; resumed by `mmrt experiment" in (run / "report.md").read_text()
    # Resuming with another recipe would mix two recipes' models in one table: refused.
    assert main([*argv, "--resume", "--lr", "0.1"]) == 2
    assert "other downstream settings" in capsys.readouterr().err
    assert json.loads((run / "results.json").read_text())["methods"] == after["methods"]
    calls = json.loads((run / "seed-0" / "scores.json").read_text())["made"]
    assert calls and not any("--lr" in c["command"] for c in calls)


def test_unknown_method_in_the_list_is_refused(tiny_av_single, tmp_path, capsys):
    assert main(["experiment", "--data", str(tiny_av_single), "--out", str(tmp_path / "o"),
                 "--preset", "tiny", "--methods", "ft,best"]) == 2
    assert "unknown method 'best'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_stage_that_collapses_to_fine_tuning_reuses_ft(run, tiny_av_single, tmp_path):
    import torch
    from safetensors.torch import load_file

    from mmrt.training.model.checkpoint import load_model

    models = run / "seed-0" / "models"
    scores = json.loads((run / "seed-0" / "scores.json").read_text())

    def weights(method, mt):
        return load_file(str(models / method / mt / "model.safetensors"))

    # moddrop has nothing to drop on one modality; MASD has no student when trained on both
    both = "audio+video"
    for method, mt, twin in [("moddrop", "audio", "ft"), ("moddrop", "video", "ft"), ("masd", both, "ft"),
                             ("masd-cw", both, "ft"), ("masd+wiseft", both, "wiseft")]:
        note = load_model(models / method / mt).config.history[-1]
        assert (note["method"], note["same_as"]) == (method, twin)
        mine, theirs = weights(method, mt), weights(twin, mt)
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
        assert scores["methods"][method][mt] == scores["methods"][twin][mt]
    assert all(row["audio+video"] == scores["alpha_sweep"]["wiseft"][a]["audio+video"]
               for a, row in scores["alpha_sweep"]["masd+wiseft"].items())
    assert "same_as" not in load_model(models / "masd" / "audio").config.history[-1]  # trained for real

    # The premise, checked by training both: moddrop on one modality gives ft's model exactly.
    pre = run / "seed-0" / "pretrained"
    for method in ("ft", "moddrop"):
        assert main(["train", "--data", str(tiny_av_single), "--pretrained", str(pre), "--method", method,
                     "--modalities", "audio", "--out", str(tmp_path / method), "--quiet"]) == 0
    ft, moddrop = load_file(str(tmp_path / "ft" / "model.safetensors")), load_file(
        str(tmp_path / "moddrop" / "model.safetensors"))
    assert all(torch.equal(ft[k], moddrop[k]) for k in ft)


def test_one_seed_reuse_copies_the_bootstrap_and_the_sweep_scores_its_alpha_once(tiny_av_single, tmp_path):
    out = tmp_path / "one"
    assert main(["experiment", "--data", str(tiny_av_single), "--out", str(out), "--preset", "tiny",
                 "--seed", "0", "--methods", "ft,wiseft,masd+wiseft", "--train-sets", "audio+video",
                 "--alphas", "0,0.75,1", "--quiet"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    samples = json.loads((out / "bootstrap.json").read_text())
    both = "audio+video"
    for method, twin in (("masd", "ft"), ("masd+wiseft", "wiseft")):
        assert samples[method][both] == samples[twin][both]  # intervals from the same resampled scores
        assert scores["methods"][method][both] == scores["methods"][twin][both]
    assert scores["alpha_sweep"]["wiseft"]["0.75"][both] == scores["methods"]["wiseft"][both]
    assert scores["alpha_sweep"]["masd+wiseft"] == scores["alpha_sweep"]["wiseft"]
