"""TensorRT engines built, loaded and served, on a machine with an NVIDIA GPU, TensorRT and
cuda-python (`pip install -e ".[gpu]"`); skipped anywhere else, so the suite passes on CPUs."""

import numpy as np
import pytest

from mmrt.runtime.backends.tensorrt_engine import tensorrt_runtime_available

pytestmark = [pytest.mark.gpu, pytest.mark.integration,
              pytest.mark.skipif(tensorrt_runtime_available() is not None,
                                 reason=f"TensorRT engines cannot run here: {tensorrt_runtime_available()}")]


@pytest.fixture(scope="module")
def engine_bundle(tiny_model, tmp_path_factory):
    from mmrt.cli import main

    out = tmp_path_factory.mktemp("trt") / "bundle"
    assert main(["export", str(tiny_model), "--out", str(out), "--tensorrt", "--fp16"]) == 0
    return out


def test_fp16_engines_are_built_checked_and_loaded(engine_bundle):
    from mmrt.bundle import verify_bundle
    from mmrt.runtime.backends.loaded_bundle import open_bundle

    manifest = verify_bundle(engine_bundle)
    assert manifest.tensorrt is not None and manifest.tensorrt["precision"] == "fp16"
    assert all(manifest.graphs[m].engine for m in manifest.modalities)
    bundle = open_bundle(engine_bundle)
    assert {g.kind for g in bundle.encoders.values()} == {"tensorrt"}


def test_served_engines_answer_as_the_onnx_graphs_do(engine_bundle, tiny_engine):
    import tritonclient.grpc as tc

    from mmrt.runtime.frontends.server import Server, ServerOptions

    pcm = np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32) * 0.1
    titles = np.array([b"counting to seven", b"one more than six"], dtype=object)
    server = Server(engine_bundle, ServerOptions(port=0, metrics_port=None)).start()
    try:
        client = tc.InferenceServerClient(server.address)
        audio = tc.InferInput("AUDIO", list(pcm.shape), "FP32")
        audio.set_data_from_numpy(pcm)
        text = tc.InferInput("TEXT", [2, 1], "BYTES")
        text.set_data_from_numpy(titles[:, None])
        result = client.infer("mmrt", [audio, text])
        assert result.get_response().parameters["precision"].string_param == "fp16"
        expected = tiny_engine.infer({"AUDIO": pcm, "TEXT": titles}).scores  # ONNX Runtime on the CPU
        np.testing.assert_allclose(result.as_numpy("SCORES"), expected, atol=2e-2)
    finally:
        server.stop(0)
