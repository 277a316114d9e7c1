"""`mmrt serve`: a real gRPC server on a free loopback port, driven by tritonclient (a third-party
KServe v2 client), against the engine run in-process on the same inputs."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from dataclasses import replace

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from helpers import run_blocked
from tritonclient.utils import InferenceServerException

from mmrt.modalities import all_subsets, subset_key
from mmrt.runtime.engine.batcher import BatchingOptions
from mmrt.runtime.engine.sequences import SequenceLimits
from mmrt.runtime.frontends.server import Server, ServerOptions
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

MODALITIES = ("audio", "video", "text")
OPTIONS = ServerOptions(port=0, metrics_port=0, threads=1)


@pytest.fixture(scope="module")
def server(tiny_bundle):
    s = Server(tiny_bundle, OPTIONS).start()
    yield s
    s.stop(0)


@pytest.fixture(scope="module")
def client(server):
    return tc.InferenceServerClient(server.address)


@pytest.fixture(scope="module")
def arrays():
    """Two examples as a rig sends them: any clip length, any frame count and size, UTF-8 text."""
    rng = np.random.default_rng(0)
    return {"AUDIO": (rng.standard_normal((2, 20_000)) * 0.1).astype(np.float32),
            "VIDEO": rng.integers(0, 256, (2, 5, 48, 40, 3), dtype=np.uint8),
            "TEXT": np.array([b"my son counting to seven", "l'été à huit".encode()], dtype=object)}


def triton_inputs(arrays, names):
    datatypes = {"AUDIO": "FP32", "VIDEO": "UINT8", "TEXT": "BYTES"}
    inputs = []
    for name in names:
        x = tc.InferInput(name, list(arrays[name].shape), datatypes[name])
        x.set_data_from_numpy(arrays[name])
        inputs.append(x)
    return inputs


def infer(client, arrays, names, **kwargs):
    outputs = [tc.InferRequestedOutput("SCORES"), tc.InferRequestedOutput("EMBEDDING")]
    result = client.infer("mmrt", triton_inputs(arrays, names), outputs=outputs, **kwargs)
    params = result.get_response().parameters
    return result.as_numpy("SCORES"), result.as_numpy("EMBEDDING"), params


def test_health_metadata_and_config_answer_like_triton(client):
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mmrt")
    assert not client.is_model_ready("other")
    meta = client.get_model_metadata("mmrt", as_json=True)
    assert [i["name"] for i in meta["inputs"]] == ["AUDIO", "VIDEO", "TEXT"]
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {"SCORES": ["-1", "10"],
                                                               "EMBEDDING": ["-1", "32"]}
    config = client.get_model_config("mmrt", as_json=True)["config"]
    assert config["max_batch_size"] == 32 and all(i["optional"] for i in config["input"])
    assert config["parameters"]["modalities"]["string_value"] == "audio+video+text"
    limits = {k: v["string_value"] for k, v in config["parameters"].items() if k.startswith("max_")}
    assert limits == {"max_batch": "32", "max_audio_samples": "960000", "max_video_frames": "1024",
                      "max_video_side": "4096", "max_video_aspect": "16", "max_text_bytes": "4096",
                      "max_shm_mb": "64", "max_sequences": "1024", "max_sequence_mb": "64"}
    assert client.get_server_metadata(as_json=True)["name"] == "mmrt"


@pytest.mark.parametrize("subset", all_subsets(MODALITIES), ids=lambda s: subset_key(s, MODALITIES))
def test_every_modality_subset_matches_the_engine_in_process(client, tiny_engine, arrays, subset):
    names = [m.upper() for m in MODALITIES if m in subset]
    scores, embedding, params = infer(client, arrays, names)
    want = tiny_engine.infer({n: arrays[n] for n in names})
    assert params["modalities_used"].string_param == subset_key(subset, MODALITIES)
    assert "modalities_failed" not in params and params["server_time_ns"].int64_param > 0
    np.testing.assert_allclose(scores, want.scores, atol=1e-5)
    np.testing.assert_allclose(embedding, want.embedding, atol=1e-5)
    assert scores.shape == (2, 10) and ((scores >= 0) & (scores <= 1)).all()


def test_fused_embedding_is_the_mean_of_single_modality_embeddings(client, arrays):
    single = {m: infer(client, arrays, [m])[1] for m in ("AUDIO", "VIDEO", "TEXT")}
    for names in (["AUDIO", "TEXT"], ["VIDEO", "TEXT"], ["AUDIO", "VIDEO", "TEXT"]):
        _, embedding, _ = infer(client, arrays, names)
        np.testing.assert_allclose(embedding, np.mean([single[n] for n in names], axis=0), atol=1e-6)


def test_scores_are_the_only_output_unless_embedding_is_asked(client, arrays):
    result = client.infer("mmrt", triton_inputs(arrays, ["TEXT"]))
    assert [o.name for o in result.get_response().outputs] == ["SCORES"]


def test_typed_contents_encoding_answers_like_raw_bytes(server, client, arrays):
    request = pb.ModelInferRequest(model_name="mmrt")
    audio = request.inputs.add(name="AUDIO", datatype="FP32", shape=[2, 20_000])
    audio.contents.fp32_contents.extend(arrays["AUDIO"].ravel().tolist())
    text = request.inputs.add(name="TEXT", datatype="BYTES", shape=[2, 1])
    text.contents.bytes_contents.extend(list(arrays["TEXT"]))
    request.outputs.add(name="SCORES")
    with grpc.insecure_channel(server.address) as channel:
        response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    got = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 10)
    np.testing.assert_allclose(got, infer(client, arrays, ["AUDIO", "TEXT"])[0], atol=1e-6)


def test_a_stream_sequence_accumulates_modalities_and_keeps_going_after_errors(client, arrays):
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        order = ["AUDIO", "VIDEO", "TEXT"]
        for i, name in enumerate(order):
            client.async_stream_infer("mmrt", triton_inputs(arrays, [name]), request_id=str(i), sequence_id=7,
                                      sequence_start=i == 0, sequence_end=i == len(order) - 1,
                                      outputs=[tc.InferRequestedOutput("SCORES")])
        got = [answers.get(timeout=60) for _ in order]
        # a closed sequence: the next request without sequence_start is refused, the stream stays open
        client.async_stream_infer("mmrt", triton_inputs(arrays, ["TEXT"]), sequence_id=7)
        refused = answers.get(timeout=60)
        client.async_stream_infer("mmrt", triton_inputs(arrays, ["TEXT"]), request_id="after")
        after = answers.get(timeout=60)
    finally:
        client.stop_stream()
    for k, (result, error) in enumerate(got, start=1):
        assert error is None
        assert result.get_response().parameters["modalities_used"].string_param == \
            "+".join(m.lower() for m in order[:k])
        np.testing.assert_allclose(result.as_numpy("SCORES"), infer(client, arrays, order[:k])[0], atol=1e-5)
    assert refused[1] is not None and "sequence_start" in str(refused[1])
    assert after[1] is None and after[0].get_response().id == "after"


def test_a_newer_reading_of_a_modality_replaces_the_older_one(client, arrays):
    other = {**arrays, "AUDIO": arrays["AUDIO"][::-1].copy()}
    infer(client, arrays, ["AUDIO"], sequence_id=11, sequence_start=True)
    infer(client, arrays, ["TEXT"], sequence_id=11)
    scores, _, params = infer(client, other, ["AUDIO"], sequence_id=11, sequence_end=True)
    assert params["modalities_used"].string_param == "audio+text"
    np.testing.assert_allclose(scores, infer(client, other, ["AUDIO", "TEXT"])[0], atol=1e-5)


def _status(client, inputs, model="mmrt", **kwargs):
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, inputs, **kwargs)
    return info.value.status(), info.value.message()


def _raw_input(name, datatype, shape, array):
    x = tc.InferInput(name, shape, datatype)
    x.set_data_from_numpy(array)
    return x


BAD = {
    "unknown input": (lambda a: [_raw_input("DEPTH", "FP32", [2, 4], np.zeros((2, 4), np.float32))],
                      "unknown input 'DEPTH'"),
    "wrong datatype": (lambda a: [_raw_input("AUDIO", "FP64", [2, 8], np.zeros((2, 8)))],
                       "expected datatype FP32"),
    "wrong rank": (lambda a: [_raw_input("VIDEO", "UINT8", [2, 8, 8, 3], np.zeros((2, 8, 8, 3), np.uint8))],
                   "expected [B, T, H, W, 3]"),
    "batch sizes differ": (lambda a: triton_inputs({**a, "TEXT": a["TEXT"][:1]}, ["AUDIO", "TEXT"]),
                           "batch size 1, other inputs have 2"),
    "NaN": (lambda a: triton_inputs({"AUDIO": np.full((1, 100), np.nan, np.float32)}, ["AUDIO"]),
            "NaN or Inf"),
    "bad UTF-8": (lambda a: triton_inputs({"TEXT": np.array([b"\xff\xfe"], dtype=object)}, ["TEXT"]),
                  "not valid UTF-8"),
    "empty dims": (lambda a: [_raw_input("AUDIO", "FP32", [1, 0], np.zeros((1, 0), np.float32))], "is empty"),
    "no input": (lambda a: [], "no input"),
    "batch past --max-batch": (lambda a: [_raw_input("AUDIO", "FP32", [33, 8],
                                                     np.zeros((33, 8), np.float32))],
                               "batch size 33, this server takes at most 32 rows"),
    "a sliver of a frame": (lambda a: [_raw_input("VIDEO", "UINT8", [1, 1, 2, 64, 3],
                                                  np.zeros((1, 1, 2, 64, 3), np.uint8))],
                            "aspect ratio over 16"),
    "a long text": (lambda a: triton_inputs({"TEXT": np.array([b"x" * 5000], dtype=object)}, ["TEXT"]),
                    "5000 bytes, at most 4096"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_invalid_argument_and_the_server_keeps_serving(client, arrays, case):
    make, expected = BAD[case]
    status, message = _status(client, make(arrays))
    assert status == "StatusCode.INVALID_ARGUMENT" and expected in message, message
    assert infer(client, arrays, ["TEXT"])[0].shape == (2, 10)


def test_unknown_model_is_not_found_and_counted(server, client, arrays):
    status, message = _status(client, triton_inputs(arrays, ["TEXT"]), model="other")
    assert status == "StatusCode.NOT_FOUND" and "'other'" in message
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        assert 'mmrt_requests_total{modalities="invalid",outcome="error"}' in r.read().decode()


def test_metrics_count_requests_by_modality_set(server, client, arrays):
    infer(client, arrays, ["AUDIO", "TEXT"])
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        text = r.read().decode()
    assert 'mmrt_requests_total{modalities="audio+text",outcome="success"}' in text
    assert 'mmrt_encoder_seconds_count{encoder="audio"}' in text
    stats = client.get_inference_statistics("mmrt", as_json=True)["model_stats"][0]
    assert int(stats["inference_stats"]["success"]["count"]) > 0


def test_a_failing_encoder_degrades_the_answer_instead_of_failing(tiny_bundle, tiny_engine, arrays):
    s = Server(tiny_bundle, replace(OPTIONS, metrics_port=None, faults=("audio",))).start()
    try:
        client = tc.InferenceServerClient(s.address)
        scores, _, params = infer(client, arrays, ["AUDIO", "TEXT"])
        assert params["modalities_used"].string_param == "text"
        assert params["modalities_failed"].string_param == "audio"
        np.testing.assert_allclose(scores, tiny_engine.infer({"TEXT": arrays["TEXT"]}).scores, atol=1e-5)
        status, message = _status(client, triton_inputs(arrays, ["AUDIO"]))
        assert status == "StatusCode.INTERNAL"
        assert "every encoder the request needed failed (audio)" in message
        assert "injected fault" not in message  # the exception's text stays in the server's log
    finally:
        s.stop(0)


def test_sequence_cap_answers_resource_exhausted_then_recovers(tiny_bundle, arrays):
    one = SequenceLimits(max_sequences=1)
    s = Server(tiny_bundle, replace(OPTIONS, metrics_port=None, sequences=one)).start()
    try:
        client = tc.InferenceServerClient(s.address)
        infer(client, arrays, ["TEXT"], sequence_id=1, sequence_start=True)
        status, message = _status(client, triton_inputs(arrays, ["TEXT"]), sequence_id=2, sequence_start=True)
        assert status == "StatusCode.RESOURCE_EXHAUSTED" and "--max-sequences" in message
        infer(client, arrays, ["AUDIO"], sequence_id=1, sequence_end=True)  # frees the slot
        assert infer(client, arrays, ["TEXT"], sequence_id=2, sequence_start=True)[0].shape == (2, 10)
    finally:
        s.stop(0)


def test_requests_with_different_modality_sets_share_encoder_batches(tiny_bundle, tiny_engine, arrays):
    batching = BatchingOptions(enabled=True, max_batch=32, max_delay_s=0.25)
    s = Server(tiny_bundle, replace(OPTIONS, metrics_port=None, batching=batching)).start()
    try:
        client = tc.InferenceServerClient(s.address)
        sets = [["AUDIO", "TEXT"], ["AUDIO", "VIDEO"], ["AUDIO"], ["AUDIO", "VIDEO", "TEXT"]]
        barrier, results = threading.Barrier(len(sets)), {}

        def send(i, names):
            barrier.wait()
            results[i] = infer(client, arrays, names)[0]

        threads = [threading.Thread(target=send, args=(i, n)) for i, n in enumerate(sets)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        audio = s.engine.runners["audio"].stats
        assert max(audio.batch_sizes) > 2, audio.batch_sizes  # rows of several requests in one run
        for i, names in enumerate(sets):
            want = tiny_engine.infer({n: arrays[n] for n in names}).scores
            np.testing.assert_allclose(results[i], want, atol=1e-5)
    finally:
        s.stop(0)


def test_token_auth_refuses_missing_and_wrong_tokens(tiny_bundle, arrays):
    s = Server(tiny_bundle, replace(OPTIONS, metrics_port=None, token="s3cret")).start()
    try:
        client = tc.InferenceServerClient(s.address)
        for headers in (None, {"authorization": "Bearer nope"}):
            status, _ = _status(client, triton_inputs(arrays, ["TEXT"]), headers=headers)
            assert status == "StatusCode.UNAUTHENTICATED"
        ok = infer(client, arrays, ["TEXT"], headers={"authorization": "Bearer s3cret"})
        assert ok[0].shape == (2, 10)
    finally:
        s.stop(0)


def test_payload_over_the_message_limit_is_refused(tiny_bundle):
    s = Server(tiny_bundle, replace(OPTIONS, metrics_port=None, max_message_mb=1)).start()
    try:
        client = tc.InferenceServerClient(s.address)
        big = {"AUDIO": np.zeros((1, 400_000), np.float32)}  # 1.6 MB
        status, _ = _status(client, triton_inputs(big, ["AUDIO"]))
        assert status == "StatusCode.RESOURCE_EXHAUSTED"
        assert client.is_server_live()
    finally:
        s.stop(0)


def test_mmrt_serve_survives_sighup_drains_on_sigterm_and_exits_zero(tiny_bundle, arrays):
    mmrt = os.path.join(os.path.dirname(sys.executable), "mmrt")
    proc = subprocess.Popen([mmrt, "serve", str(tiny_bundle), "--port", "0", "--http-port", "0",
                             "--metrics-port", "-1", "--threads", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line, rest = proc.stdout.readline(), proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line and "REST listening on" in rest, proc.stderr.read()
        with urllib.request.urlopen(f"http://{rest.split()[-1]}/v2/health/ready", timeout=10) as r:
            assert r.status == 200
        client = tc.InferenceServerClient(line.split()[-1])
        assert infer(client, arrays, ["AUDIO", "VIDEO"])[0].shape == (2, 10)
        proc.send_signal(signal.SIGHUP)  # systemctl reload: nothing to re-read without TLS, and not fatal
        assert infer(client, arrays, ["TEXT"])[0].shape == (2, 10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()
        assert "SIGHUP: no TLS files to re-read" in err and "draining" in err
    finally:
        proc.kill()


def test_the_runtime_serves_with_torch_unimportable(tiny_bundle, tmp_path):
    r = run_blocked(f"""
        import sys
        import grpc
        import numpy as np
        from mmrt.runtime import Server, ServerOptions
        from mmrt.runtime.protocol import grpc_service_pb2 as pb, grpc_service_pb2_grpc as pb_grpc
        s = Server({str(tiny_bundle)!r}, ServerOptions(port=0, metrics_port=None, threads=1)).start()
        request = pb.ModelInferRequest(model_name="mmrt")
        request.inputs.add(name="AUDIO", datatype="FP32", shape=[1, 16000])
        request.raw_input_contents.append(np.zeros(16000, np.float32).tobytes())
        with grpc.insecure_channel(s.address) as channel:
            response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
        s.stop(0)
        assert response.parameters["modalities_used"].string_param == "audio"
        assert "torch" not in sys.modules
        print(list(response.outputs[0].shape))
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip()) == [1, 10]



def test_reflection_lists_the_inference_service(server):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(server.address) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "inference.GRPCInferenceService" in services
