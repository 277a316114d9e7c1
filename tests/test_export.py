"""`mmrt export`: per-modality ONNX graphs in a verified bundle, checked against the PyTorch model
on real files, opened by the torch-free runtime; tampered bundles and bad input refused."""

import hashlib
import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from helpers import run_blocked

from mmrt.bundle import DEFAULT_OPSET, FORMAT_VERSION, MANIFEST, verify_bundle
from mmrt.cli import main
from mmrt.decode import load_audio, load_video
from mmrt.errors import UserError
from mmrt.export.fp16 import front_end_nodes, to_fp16
from mmrt.export.operators import TENSORRT_OPERATORS, tensorrt_problems
from mmrt.export.parity import FP16_TOLERANCE
from mmrt.preprocess import fit_length, prepare_video
from mmrt.runtime.backends.loaded_bundle import open_bundle
from mmrt.runtime.backends.sessions import SessionOptions, choose_providers
from mmrt.split_files import read_split
from mmrt.text import TextTokenizer
from mmrt.training.model.checkpoint import load_model

pytestmark = pytest.mark.integration


@pytest.fixture
def bundle(tiny_bundle):
    return tiny_bundle


@pytest.fixture(scope="module")
def examples(tiny_data, tiny_model):
    """Three eval examples with every modality, decoded from their real files as a client would."""
    model = load_model(tiny_model)
    prep = model.config.arch.preprocessing
    chosen = [ex for ex in read_split(tiny_data, "eval") if len(ex.inputs) == 3][:3]
    tok = TextTokenizer(tiny_model / "tokenizer.model", prep.max_tokens)
    return {
        "AUDIO": np.stack([fit_length(load_audio(ex.inputs["audio"], prep.sample_rate), prep.clip_samples)
                           for ex in chosen]),
        "VIDEO": np.stack([prepare_video(load_video(ex.inputs["video"]), prep.frames, prep.frame_size)
                           for ex in chosen]),
        "TEXT": tok.encode([ex.inputs["text"] for ex in chosen]),
    }


def test_bundle_holds_every_graph_the_tokenizer_and_checksums(bundle, tiny_model):
    names = sorted(p.name for p in bundle.iterdir())
    assert names == ["audio.onnx", "fused.onnx", "head.onnx", MANIFEST, "text.onnx", "tokenizer.model",
                     "video.onnx"]
    doc = json.loads((bundle / MANIFEST).read_text())
    config = json.loads((tiny_model / "config.json").read_text())
    assert doc["format_version"] == FORMAT_VERSION and doc["name"] == "mmrt"
    assert doc["modalities"] == ["audio", "video", "text"]
    assert doc["classes"] == config["classes"] and doc["task"] == "multi-label" and doc["metric"] == "mAP"
    assert doc["embedding_dim"] == config["arch"]["embed_dim"] and doc["opset"] == 20
    prep = doc["preprocessing"]
    assert prep["clip_samples"] == 32000 and prep["frames"] == 8 and prep["tokenizer"] == "tokenizer.model"
    assert prep["mel"]["n_mels"] == config["arch"]["n_mels"] and prep["mel"]["hop_length"] == 160
    assert set(doc["producer"]) >= {"mmrt", "torch", "onnx"}
    assert set(doc["files"]) == set(names) - {MANIFEST}
    for name, digest in doc["files"].items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest
    errors = doc["parity"]["max_error"]
    assert set(errors) == {"audio", "video", "text", "head", "fused"}
    assert all(0 <= e <= doc["parity"]["tolerance"] for e in errors.values())
    assert doc["parity"]["batches"] == [1, 8]


def test_graphs_have_a_dynamic_batch_and_only_tensorrt_operators(bundle):
    for name in ("audio", "video", "text", "head", "fused"):
        graph = onnx.load(str(bundle / f"{name}.onnx"))
        assert graph.opset_import[0].version == DEFAULT_OPSET == 20
        for tensor in list(graph.graph.input) + list(graph.graph.output):
            first = tensor.type.tensor_type.shape.dim[0]
            assert first.dim_param and not first.dim_value, f"{name}: {tensor.name} has a fixed batch"
        ops = {n.op_type for n in graph.graph.node}
        assert ops <= TENSORRT_OPERATORS, f"{name}: {sorted(ops - TENSORRT_OPERATORS)}"
        assert tensorrt_problems(graph) == []
        if name != "head":  # GELU as one operator, not five
            assert "Gelu" in ops and "Erf" not in ops, name
    audio_ops = {n.op_type for n in onnx.load(str(bundle / "audio.onnx")).graph.node}
    assert {"Conv", "Log"} <= audio_ops and not audio_ops & {"STFT", "DFT"}  # front-end inside


def test_at_opset_23_attention_is_one_operator_and_padded_text_still_matches(tiny_model, tmp_path):
    out = tmp_path / "bundle23"
    assert main(["export", str(tiny_model), "--out", str(out), "--opset", "23"]) == 0
    ops = {n.op_type for n in onnx.load(str(out / "text.onnx")).graph.node}
    assert "Attention" in ops and "Softmax" not in ops
    doc = json.loads((out / MANIFEST).read_text())
    # parity ran on token ids with padding, through ONNX Runtime's Attention kernel
    assert doc["opset"] == 23 and doc["parity"]["max_error"]["text"] <= doc["parity"]["tolerance"]


def test_the_operator_check_catches_a_spectral_op():
    from onnx import TensorProto, helper

    node = helper.make_node("STFT", ["x", "step"], ["y"])
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 512, 1]),
              helper.make_tensor_value_info("step", TensorProto.INT64, [])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.COMPLEX64, None)]
    graph = helper.make_graph([node], "g", inputs, outputs)
    assert tensorrt_problems(helper.make_model(graph)) == ["operator STFT", "tensor type COMPLEX64"]


def test_runtime_graphs_match_the_torch_model_on_real_files(bundle, tiny_model, examples):
    model = load_model(tiny_model).eval()
    loaded = open_bundle(bundle, SessionOptions(threads=1), baseline=True)
    assert loaded.manifest.modalities == ("audio", "video", "text")
    with torch.no_grad():
        for m in loaded.manifest.modalities:
            got = loaded.encoders[m].run({m.upper(): examples[m.upper()]})["EMBEDDING"]
            want = model.encode(m, torch.from_numpy(examples[m.upper()])).numpy()
            assert got.shape == (3, 32) and np.abs(got - want).max() < 1e-4
        # audio + text only, as the runtime fuses it: mean of the two embeddings, then the head
        z = {m: loaded.encoders[m].run({m.upper(): examples[m.upper()]})["EMBEDDING"]
             for m in ("audio", "text")}
        scores = loaded.head.run({"EMBEDDING": (z["audio"] + z["text"]) / 2})["SCORES"]
        inputs = {m: torch.from_numpy(examples[m.upper()]) for m in ("audio", "video", "text")}
        present = {m: torch.ones(3, dtype=torch.bool) for m in inputs}
        want = torch.sigmoid(model(inputs, present, use=("audio", "text"))).numpy()
    assert np.abs(scores - want).max() < 1e-4
    # the monolithic baseline: video fed as zeros and marked absent gives the same answer
    feeds = {**examples, "VIDEO": np.zeros_like(examples["VIDEO"]),
             "PRESENT": np.array([[1, 0, 1]] * 3, dtype=np.float32)}
    fused = loaded.fused.run(feeds)
    assert np.abs(fused["SCORES"] - scores).max() < 1e-4
    assert np.abs(fused["EMBEDDING"] - (z["audio"] + z["text"]) / 2).max() < 1e-4


def test_single_label_audio_video_model_exports_softmax_scores(tiny_av_single, tmp_path):
    pre, model_dir, out = tmp_path / "pre", tmp_path / "model", tmp_path / "bundle"
    assert main(["pretrain", "--data", str(tiny_av_single), "--out", str(pre), "--preset", "tiny",
                 "--epochs", "1", "--quiet"]) == 0
    assert main(["train", "--data", str(tiny_av_single), "--pretrained", str(pre), "--method", "lp",
                 "--modalities", "audio+video", "--out", str(model_dir), "--quiet"]) == 0
    assert main(["export", str(model_dir), "--out", str(out)]) == 0
    manifest = verify_bundle(out)
    assert manifest.modalities == ("audio", "video") and manifest.task == "single-label"
    assert manifest.metric == "top1" and manifest.preprocessing["tokenizer"] is None
    assert sorted(manifest.files) == ["audio.onnx", "head.onnx", "video.onnx"]
    head = open_bundle(out).head
    z = np.random.default_rng(0).normal(size=(5, manifest.embedding_dim)).astype(np.float32)
    scores = head.run({"EMBEDDING": z})["SCORES"]
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5) and (scores >= 0).all()


@pytest.mark.parametrize("damage", ["flip", "delete", "version", "unlisted"])
def test_a_tampered_or_incomplete_bundle_is_refused_naming_the_file(bundle, tmp_path, damage):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    doc = json.loads((copy / MANIFEST).read_text())
    if damage == "flip":
        data = bytearray((copy / "video.onnx").read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / "video.onnx").write_bytes(bytes(data))
        expected = "video.onnx: checksum mismatch"
    elif damage == "delete":
        (copy / "head.onnx").unlink()
        expected = "head.onnx: missing from the bundle"
    elif damage == "version":
        doc["format_version"] = FORMAT_VERSION + 1
        (copy / MANIFEST).write_text(json.dumps(doc))
        expected = f"bundle format version {FORMAT_VERSION + 1}"
    else:
        del doc["files"]["text.onnx"]
        (copy / MANIFEST).write_text(json.dumps(doc))
        expected = "text.onnx: used by the manifest but has no checksum"
    with pytest.raises(UserError, match=expected):
        open_bundle(copy)


def test_runtime_opens_and_runs_a_bundle_without_torch(bundle, tmp_path):
    r = run_blocked(f"""
        import sys
        import numpy as np
        from mmrt.runtime import open_bundle
        b = open_bundle({str(bundle)!r})
        z = b.encoders["audio"].run({{"AUDIO": np.zeros((2, 32000), np.float32)}})["EMBEDDING"]
        s = b.head.run({{"EMBEDDING": z}})["SCORES"]
        assert s.shape == (2, 10) and "torch" not in sys.modules
        print("ok")
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_providers_come_in_priority_order_and_unknown_ones_are_refused():
    chosen = choose_providers()
    assert chosen[-1] == "CPUExecutionProvider" and "AzureExecutionProvider" not in chosen
    with pytest.raises(UserError, match="'NoSuchExecutionProvider' is not available"):
        choose_providers(["NoSuchExecutionProvider"])


def test_fp16_copy_keeps_the_front_end_fp32_and_stays_close(bundle):
    model = onnx.load(str(bundle / "audio.onnx"))
    front = set(front_end_nodes(model))
    assert front and any(n.op_type == "Log" for n in model.graph.node if n.name in front)
    half = to_fp16(onnx.load(str(bundle / "audio.onnx")))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in half.graph.initializer)
    import onnxruntime as ort

    pcm = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 32000)).astype(np.float32)
    full = ort.InferenceSession(str(bundle / "audio.onnx")).run(None, {"AUDIO": pcm})[0]
    reduced = ort.InferenceSession(half.SerializeToString()).run(None, {"AUDIO": pcm})[0]
    assert reduced.dtype == np.float32 and np.abs(full - reduced).max() < FP16_TOLERANCE


def _fails(argv, capsys, tmp_path, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging left


def test_bad_input_gets_one_line_and_leaves_no_bundle(tiny_model, tiny_pretrained, tmp_path, capsys):
    out = str(tmp_path / "out")
    _fails(["export", str(tmp_path), "--out", out], capsys, tmp_path, "not an mmrt model directory")
    _fails(["export", str(tiny_model), "--out", out, "--opset", "12"], capsys, tmp_path,
           "--opset 12: the dynamo exporter writes opset 18 to")
    _fails(["export", str(tiny_pretrained), "--out", out], capsys, tmp_path, "without a classifier head")
    broken = tmp_path / "model"
    shutil.copytree(tiny_model, broken)
    (broken / "tokenizer.model").unlink()
    _fails(["export", str(broken), "--out", out], capsys, tmp_path, "tokenizer.model: missing")
    _fails(["export", str(tiny_model), "--out", out, "--data", str(tmp_path / "nowhere")], capsys, tmp_path,
           "no manifest found")


def test_parity_past_the_tolerance_fails_naming_the_graph(tiny_model, tmp_path, capsys):
    _fails(["export", str(tiny_model), "--out", str(tmp_path / "out"), "--tolerance", "1e-12"], capsys,
           tmp_path, "audio.onnx: parity check failed at batch 1")


def test_a_graph_the_runtime_cannot_run_fails_naming_it(tiny_model, tmp_path, capsys, monkeypatch):
    from mmrt.runtime.backends.sessions import OrtGraph

    run = OrtGraph.run

    def refuse_text(self, feeds):
        if "TEXT" in feeds:
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned\nstack...")
        return run(self, feeds)

    monkeypatch.setattr(OrtGraph, "run", refuse_text)
    _fails(["export", str(tiny_model), "--out", str(tmp_path / "out")], capsys, tmp_path,
           "text.onnx: the exported graph does not run at batch 1 ([ONNXRuntimeError] : 1 : FAIL")


def test_tensorrt_where_it_is_not_installed_says_so(tiny_model, tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    _fails(["export", str(tiny_model), "--out", str(tmp_path / "out"), "--tensorrt"], capsys, tmp_path,
           "--tensorrt: TensorRT is not installed here")
