"""INT8 encoders: exported as QDQ copies calibrated on training examples, checked by the score they
keep on every subset, served with `--precision`, and refused with one clear line when they cannot be."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import tritonclient.grpc as tc

from mmrt.bundle import verify_bundle
from mmrt.cli import main
from mmrt.errors import UserError
from mmrt.export import score_check
from mmrt.export.operators import tensorrt_problems
from mmrt.modalities import all_subsets, subset_key
from mmrt.runtime.backends import precision
from mmrt.runtime.backends.loaded_bundle import open_bundle
from mmrt.runtime.frontends.server import Server, ServerOptions

pytestmark = pytest.mark.integration

MODALITIES = ("audio", "video", "text")


@pytest.fixture(scope="module")
def int8_bundle(tiny_model, tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "bundle"
    assert main(["export", str(tiny_model), "--out", str(out), "--int8", "--calibration-examples", "24",
                 "--max-score-drop", "0.05", "--data", str(tiny_data)]) == 0
    return out


def test_the_bundle_holds_a_checked_int8_copy_of_each_encoder(int8_bundle, tiny_data):
    manifest = verify_bundle(int8_bundle)  # every INT8 file is checksummed like the rest
    doc = manifest.int8
    for m in MODALITIES:
        spec = manifest.graphs[m]
        assert spec.int8 == f"{m}.int8.onnx" and spec.int8 in manifest.files
        graph = doc["graphs"][m]
        assert graph["quantized"] > 0 and graph["calibration_examples"] == 24
        assert graph["operators"]["QuantizeLinear"] > 0 and graph["operators"]["DequantizeLinear"] > 0
        assert graph["kept_float"]["product of two activations"] > 0  # attention stays in float
        assert 0.9 < graph["embedding"]["min_cosine"] <= 1.0 + 1e-6
        assert tensorrt_problems(onnx.load(str(int8_bundle / spec.int8))) == []  # INT8 engines can be built
    assert doc["graphs"]["audio"]["kept_float"]["log-mel front-end"] > 0
    assert doc["graphs"]["video"]["kept_float"]["convolution stem"] > 0
    assert manifest.graphs["head"].int8 is None  # the head stays FP32
    assert doc["calibration"]["data"] == f"{tiny_data}/train.jsonl"
    assert doc["eval"] == f"{tiny_data}/eval.jsonl"
    assert set(doc["score"]) == {subset_key(s, MODALITIES) for s in all_subsets(MODALITIES)}
    for row in doc["score"].values():
        assert row["change"] == pytest.approx(row["int8"] - row["fp32"]) and row["change"] >= -0.05


def test_int8_is_served_on_request_and_every_answer_says_so(int8_bundle, tiny_engine):
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((2, 20_000)) * 0.1).astype(np.float32)
    answers = {}
    for chosen in ("int8", "fp32"):
        server = Server(int8_bundle, ServerOptions(port=0, http_port=None, metrics_port=None, threads=1,
                                                   precision=chosen)).start()
        try:
            client = tc.InferenceServerClient(server.address)
            x = tc.InferInput("AUDIO", list(audio.shape), "FP32")
            x.set_data_from_numpy(audio)
            result = client.infer("mmrt", [x])
            params = result.get_response().parameters
            assert params["precision"].string_param == chosen
            assert params["modalities_used"].string_param == "audio"
            config = client.get_model_config("mmrt", as_json=True)["config"]
            assert config["parameters"]["precision"]["string_value"] == chosen
            answers[chosen] = result.as_numpy("SCORES")
        finally:
            server.stop(0)
    assert np.abs(answers["int8"] - answers["fp32"]).max() < 0.1  # near, and not the same graphs
    assert not np.array_equal(answers["int8"], answers["fp32"])


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Graph:
    """A graph that takes ``cost`` seconds of the fake clock per row."""

    def __init__(self, clock: _Clock, cost: float):
        self.clock, self.cost = clock, cost

    def run(self, feeds):
        self.clock.now += self.cost * len(next(iter(feeds.values())))
        return {}


@pytest.mark.parametrize("int8_cost, expected", [(0.5, True), (0.95, False), (2.0, False)])
def test_auto_picks_int8_only_when_it_is_clearly_faster(monkeypatch, int8_bundle, int8_cost, expected):
    clock = _Clock()
    monkeypatch.setattr(precision.time, "perf_counter", clock)
    specs = {m: precision.as_int8(spec) for m, spec in verify_bundle(int8_bundle).graphs.items()
             if m in MODALITIES}
    fp32 = {m: _Graph(clock, 1.0) for m in specs}
    int8 = {m: _Graph(clock, int8_cost) for m in specs}
    assert precision.faster_int8(fp32, int8, specs) is expected


def test_auto_on_a_bundle_without_int8_runs_fp32_and_int8_is_refused(tiny_bundle, int8_bundle):
    assert open_bundle(tiny_bundle, precision="auto").precision == "fp32"
    with pytest.raises(UserError, match="has no INT8 graphs"):
        open_bundle(tiny_bundle, precision="int8")
    with pytest.raises(UserError, match="monolithic baseline is FP32 only"):
        open_bundle(tiny_bundle, baseline=True, precision="int8")
    assert open_bundle(int8_bundle, precision="auto").precision in ("fp32", "int8")


def test_serve_refuses_int8_for_a_bundle_without_it_in_one_line(tiny_bundle, capsys):
    assert main(["serve", str(tiny_bundle), "--port", "0", "--http-port", "-1", "--metrics-port", "-1",
                 "--precision", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no INT8 graphs" in err and len(err.splitlines()) == 1, err


def test_a_calibration_split_missing_a_modality_is_named(tiny_model, tiny_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    (data / "train.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "video"}) + "\n"
                                              for r in rows))
    out = tmp_path / "bundle"
    assert main(["export", str(tiny_model), "--out", str(out), "--int8", "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{data}/train.jsonl has no example with video (calibration needs some)" in err, err
    assert not out.exists()  # a failed export leaves nothing behind


def test_a_subset_that_loses_too_much_fails_the_export_naming_it(tiny_model, tiny_data, tmp_path, monkeypatch,
                                                                 capsys):
    def lossy(model, split, fp32, int8):
        return {"audio": {"fp32": 0.60, "int8": 0.61, "change": 0.01},
                "audio+video": {"fp32": 0.70, "int8": 0.65, "change": -0.05}}

    monkeypatch.setattr("mmrt.export.exporter.score_change", lossy)
    out = tmp_path / "bundle"
    assert main(["export", str(tiny_model), "--out", str(out), "--int8", "--data", str(tiny_data)]) == 2
    err = capsys.readouterr().err.strip()
    assert "on audio+video the INT8 graphs score mAP 0.6500 against 0.7000 in FP32" in err, err
    assert "over --max-score-drop 0.01" in err and not out.exists()


def test_the_drop_check_allows_gains_and_drops_within_the_bound():
    change = {"audio": {"fp32": 0.5, "int8": 0.52, "change": 0.02},
              "text": {"fp32": 0.5, "int8": 0.49, "change": -0.01}}
    score_check.check_drop(change, 0.01, "mAP")  # exactly at the bound passes
    with pytest.raises(UserError, match="on text the INT8"):
        score_check.check_drop(change, 0.005, "mAP")


@pytest.mark.parametrize("argv, expected", [
    (["--int8", "--calibration-examples", "0"], "--calibration-examples 0: expected 1 or more"),
    (["--int8", "--max-score-drop", "-0.1"], "--max-score-drop -0.1: expected 0 or more"),
])
def test_bad_int8_options_are_one_line(tiny_model, tmp_path, capsys, argv, expected):
    assert main(["export", str(tiny_model), "--out", str(tmp_path / "b"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err


def test_bench_runs_and_reports_the_precision_asked(int8_bundle, tiny_data, tmp_path):
    out = tmp_path / "report"
    assert main(["bench", "--bundle", str(int8_bundle), "--data", str(tiny_data), "--out", str(out), "--drop",
                 "video", "--precision", "int8", "--requests", "8", "--threads", "1", "--quiet"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["precision"] == "int8" and doc["overall"]["errors"] == 0
    assert "encoders in INT8." in (out / "report.md").read_text()


def test_a_graph_without_weights_to_quantize_is_refused_by_name(tmp_path):
    from onnx import TensorProto, helper

    from mmrt.export.int8 import quantize_graph

    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"], name="relu")], "plain", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(tmp_path / "plain.onnx"))
    batches = [{"X": np.ones((2, 4), np.float32)}]
    with pytest.raises(UserError, match="plain.onnx has no layer with weights to quantize"):
        quantize_graph(tmp_path / "plain.onnx", tmp_path / "plain.int8.onnx", batches)
    assert not (tmp_path / "plain.int8.onnx").exists()


def test_the_int8_benchmark_times_and_profiles_every_encoder(int8_bundle, tiny_data, tmp_path):
    from lab import int8_latency

    assert int8_latency.main([str(int8_bundle), "--data", str(tiny_data), "--threads", "1", "--repeats", "5",
                              "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["latency"]) == {f"{m} b{b}" for m in MODALITIES for b in (1, 8)}
    assert all(row["fp32_ms"] > 0 and row["int8_ms"] > 0 for row in report["latency"].values())
    for m in MODALITIES:  # the profile shows the quantized products in INT8, and none in FP32
        assert "QuantizeLinear" in report["operators_ms_b8"][m]["int8"]
        assert "QuantizeLinear" not in report["operators_ms_b8"][m]["fp32"]
    assert "| audio b8 |" in (tmp_path / "report.md").read_text()
