"""`mmrt bench` end to end on the tiny bundle and the tiny dataset's real files, through real servers."""

import csv
import json
import shutil

import numpy as np
import pytest

from mmrt.benchmarks.workload import DropPlan, load_examples, plan
from mmrt.bundle import verify_bundle
from mmrt.cli import main
from mmrt.runtime.frontends.server import Server, ServerOptions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def report(tiny_bundle, tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "report"
    assert main(["bench", "--bundle", str(tiny_bundle), "--data", str(tiny_data), "--out", str(out), "--drop",
                 "video", "--baseline", "--streaming", "--concurrency", "1,2", "--requests", "16",
                 "--threads", "1", "--quiet"]) == 0
    return out


def test_report_scores_every_subset_the_dropout_leaves(report):
    doc = json.loads((report / "report.json").read_text())
    assert doc["metric"] == "mAP" and doc["drop"] == ["video"] and doc["examples"] == 16
    assert list(doc["subsets"]) == ["audio", "text", "audio+text", "audio+video+text"]
    for row in doc["subsets"].values():
        assert 0.0 <= row["score"] <= 1.0 and row["requests"] > 0 and row["errors"] == 0
        lat = row["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"]
        assert 0 < row["server_ms"]["p50"] <= lat["p50"]  # the server's share of the client's time
    left = [doc["subsets"][k]["score"] for k in ("audio", "text", "audio+text")]
    rob = doc["robustness"]
    assert rob["P"] == pytest.approx(np.mean(left)) and rob["R"] == pytest.approx(min(left))
    assert rob["change"]["text"] == pytest.approx(doc["subsets"]["text"]["score"] - rob["full"])
    assert set(doc["overall"]["concurrency"]) == {"1", "2"}
    assert doc["precision"] == "fp32" and doc["baseline"]["precision"] == "fp32"  # no INT8 graphs in it
    assert "encoders in FP32 (monolithic baseline in FP32)" in (report / "report.md").read_text()


def test_every_score_and_p_and_r_carry_a_bootstrap_interval_around_them(report):
    doc = json.loads((report / "report.json").read_text())
    rob = doc["robustness"]
    rows = [*doc["subsets"].values(), doc["overall"], *doc["baseline"]["subsets"].values()]
    pairs = [(row["score"], row["ci95"]) for row in rows] + [(rob[k], rob["ci95"][k]) for k in ("P", "R")]
    pairs += [(rob["change"][k], rob["change_ci95"][k]) for k in rob["change"]]
    for value, ci in pairs:
        assert ci["low"] <= value + 1e-9 and value - 1e-9 <= ci["high"]
    # 16 examples: the intervals are wide, and the text-only one does not collapse to a point
    text = doc["subsets"]["text"]["ci95"]
    assert text["high"] - text["low"] > 0.02
    assert 0.0 < doc["chance"] < doc["subsets"]["audio+video+text"]["ci95"]["high"]
    md = (report / "report.md").read_text()
    assert "change vs full set [95% CI]" in md and "negative is a loss" in md
    assert (report / "score.png").is_file()
    assert f"{rob['change']['text']:+.3f} [" in md  # signed, with its interval


def test_the_monolithic_baseline_answers_alike_at_its_own_cost(report):
    doc = json.loads((report / "report.json").read_text())
    for name, row in doc["vs_baseline"].items():
        assert row["score"] == pytest.approx(row["baseline_score"], abs=1e-6), name
        assert row["p50_ratio"] > 0
    assert set(doc["baseline"]["subsets"]) == set(doc["subsets"])


def test_streamed_sequences_end_where_one_request_with_everything_would(report):
    doc = json.loads((report / "report.json").read_text())
    stream = doc["streaming"]
    assert stream["errors"] == 0 and stream["sequences"] == doc["overall"]["requests"]
    assert stream["score_final"] == pytest.approx(doc["overall"]["score"], abs=1e-6)
    assert stream["first_answer_ms"]["p50"] <= stream["final_answer_ms"]["p50"]


def test_requests_csv_has_a_row_per_request_and_plots_are_written(report):
    rows = list(csv.DictReader((report / "requests.csv").open()))
    phases = {r["phase"] for r in rows}
    assert {"mmrt audio", "mmrt overall x2", "stream", "baseline monolithic audio+text"} <= phases
    assert all(r["ok"] == "1" for r in rows)
    doc = json.loads((report / "report.json").read_text())
    assert sum(r["phase"] == "mmrt text" for r in rows) == doc["subsets"]["text"]["requests"]
    for png in ("latency.png", "score.png", "vs_monolithic.png"):
        assert (report / png).stat().st_size > 1000
    assert "## Against the monolithic graph" in (report / "report.md").read_text()


def test_random_sensor_failures_are_seeded_and_respect_the_rate(tiny_data, tiny_bundle):
    m = verify_bundle(tiny_bundle)
    examples = load_examples(tiny_data, m.modalities, m.classes, limit=60, progress=False)
    drop = DropPlan(frozenset({"video"}), (("audio", 0.5),), seed=3)
    first, again = plan(examples, m.modalities, drop), plan(examples, m.modalities, drop)
    assert first == again and all("video" not in c for c in first)
    with_audio = sum("audio" in c for c in first)
    has_audio = sum("audio" in ex.inputs for ex in examples)
    assert 0.25 * has_audio < with_audio < 0.75 * has_audio
    assert plan(examples, m.modalities, DropPlan(drop.drop, drop.rates, seed=4)) != first


def test_bench_against_a_running_server_by_url(tiny_bundle, tiny_data, tmp_path, capsys):
    server = Server(tiny_bundle, ServerOptions(port=0, metrics_port=None, threads=1)).start()
    try:
        assert main(["bench", "--url", server.address, "--data", str(tiny_data), "--out", str(tmp_path / "r"),
                     "--drop-rate", "audio=0.5", "--requests", "8", "--quiet"]) == 0
    finally:
        server.stop(0)
    assert "nothing dropped" in capsys.readouterr().out
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert doc["drop_rate"] == {"audio": 0.5} and len(doc["subsets"]) == 7


@pytest.mark.parametrize("argv, expected", [
    (["--drop", "audio", "--drop", "video", "--drop", "text"], "every modality is dropped"),
    (["--drop", "smell"], "unknown modality 'smell'"),
    (["--drop-rate", "audio=2"], "expected MODALITY=P with P between 0 and 1"),
    (["--concurrency", "0"], "expected positive integers"),
])
def test_bad_bench_input_is_one_line(tiny_bundle, tiny_data, tmp_path, capsys, argv, expected):
    out = str(tmp_path / "r")
    assert main(["bench", "--bundle", str(tiny_bundle), "--data", str(tiny_data), "--out", out, "--quiet",
                 *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_no_server_and_no_baseline_graph_are_explained(tiny_bundle, tiny_data, tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["bench", "--url", "127.0.0.1:1", "--data", str(tiny_data), "--out", out]) == 2
    assert "cannot read the model's configuration" in capsys.readouterr().err
    bare = tmp_path / "bare"
    shutil.copytree(tiny_bundle, bare)
    doc = json.loads((bare / "manifest.json").read_text())
    del doc["graphs"]["fused"], doc["files"]["fused.onnx"]
    (bare / "manifest.json").write_text(json.dumps(doc))
    (bare / "fused.onnx").unlink()
    assert main(["bench", "--bundle", str(bare), "--data", str(tiny_data), "--out", str(tmp_path / "r"),
                 "--baseline"]) == 2
    assert "has no fused.onnx" in capsys.readouterr().err
