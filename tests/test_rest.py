"""KServe v2 REST beside gRPC on a real server: tritonclient.http (a third-party client, JSON and
binary tensors) and plain HTTP requests, answered like gRPC and like the engine in-process, with
the same errors, token, admission and drain."""

import gzip
import json
import queue
import struct
import threading
import urllib.error
import urllib.request
from dataclasses import replace

import numpy as np
import pytest
import tritonclient.grpc as tc
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from mmrt.modalities import all_subsets, subset_key
from mmrt.runtime.frontends.admission import AdmissionOptions
from mmrt.runtime.frontends.server import Server, ServerOptions

pytestmark = pytest.mark.integration

NAMES = ("AUDIO", "VIDEO", "TEXT")
DATATYPES = {"AUDIO": "FP32", "VIDEO": "UINT8", "TEXT": "BYTES"}
OPTIONS = ServerOptions(port=0, http_port=0, metrics_port=None, threads=1)


@pytest.fixture(scope="module")
def server(tiny_bundle):
    s = Server(tiny_bundle, OPTIONS).start()
    yield s
    s.stop(0)


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(1)
    return {"AUDIO": (rng.standard_normal((2, 12_000)) * 0.1).astype(np.float32),
            "VIDEO": rng.integers(0, 256, (2, 4, 40, 36, 3), dtype=np.uint8),
            "TEXT": np.array([b"my son counting to seven", "l'été à huit".encode()], dtype=object)}


def http_inputs(arrays, names, binary=True):
    inputs = []
    for name in names:
        x = th.InferInput(name, list(arrays[name].shape), DATATYPES[name])
        x.set_data_from_numpy(arrays[name], binary_data=binary)
        inputs.append(x)
    return inputs


def post(server, path, body: bytes, headers=None):
    """(status, headers, body) of a plain HTTP POST."""
    request = urllib.request.Request(f"http://{server.http_address}{path}", data=body, method="POST",
                                     headers=headers or {})
    return _send(request)


def get(server, path, headers=None):
    return _send(urllib.request.Request(f"http://{server.http_address}{path}", headers=headers or {}))


def _send(request):
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def error_of(response) -> tuple[int, str]:
    status, _, body = response
    return status, json.loads(body)["error"]


@pytest.mark.parametrize("subset", all_subsets(("audio", "video", "text")),
                         ids=lambda s: subset_key(s, ("audio", "video", "text")))
def test_tritonclient_http_answers_every_subset_like_the_engine(server, tiny_engine, arrays, subset):
    names = [n for n in NAMES if n.lower() in subset]
    client = th.InferenceServerClient(server.http_address)
    outputs = [th.InferRequestedOutput("SCORES"), th.InferRequestedOutput("EMBEDDING", binary_data=False)]
    result = client.infer("mmrt", http_inputs(arrays, names), outputs=outputs)
    want = tiny_engine.infer({n: arrays[n] for n in names})
    np.testing.assert_allclose(result.as_numpy("SCORES"), want.scores, atol=1e-5)
    np.testing.assert_allclose(result.as_numpy("EMBEDDING"), want.embedding, atol=1e-5)
    assert result.get_response()["parameters"]["modalities_used"] == "+".join(want.used)


def test_json_tensors_answer_like_binary_ones_and_like_grpc(server, arrays):
    http = th.InferenceServerClient(server.http_address)
    as_json = http.infer("mmrt", http_inputs(arrays, ["AUDIO", "TEXT"], binary=False),
                         outputs=[th.InferRequestedOutput("SCORES", binary_data=False)])
    as_binary = http.infer("mmrt", http_inputs(arrays, ["AUDIO", "TEXT"]))
    grpc_client = tc.InferenceServerClient(server.address)
    inputs = []
    for name in ("AUDIO", "TEXT"):
        inputs.append(tc.InferInput(name, list(arrays[name].shape), DATATYPES[name]))
        inputs[-1].set_data_from_numpy(arrays[name])
    over_grpc = grpc_client.infer("mmrt", inputs).as_numpy("SCORES")
    np.testing.assert_allclose(as_json.as_numpy("SCORES"), over_grpc, atol=1e-6)
    np.testing.assert_allclose(as_binary.as_numpy("SCORES"), over_grpc, atol=1e-6)


def test_plain_json_with_nested_data_and_the_binary_extension_by_hand(server, arrays):
    audio = arrays["AUDIO"][:1, :4000]
    body = {"id": "r1", "inputs": [{"name": "AUDIO", "shape": [1, 4000], "datatype": "FP32",
                                    "data": audio.tolist()},  # nested by shape
                                   {"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": ["seven"]}]}
    status, _, raw = post(server, "/v2/models/mmrt/infer", json.dumps(body).encode())
    answer = json.loads(raw)
    assert status == 200 and answer["id"] == "r1" and answer["model_version"] == "1"
    assert answer["parameters"]["modalities_used"] == "audio+text"
    scores = np.array(answer["outputs"][0]["data"], np.float32)
    header = json.dumps({"inputs": [
        {"name": "AUDIO", "shape": [1, 4000], "datatype": "FP32", "parameters": {"binary_data_size": 16000}},
        {"name": "TEXT", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 9}}],
        "outputs": [{"name": "SCORES", "parameters": {"binary_data": True}}]}).encode()
    binary = audio.astype("<f4").tobytes() + struct.pack("<I", 5) + b"seven"
    status, headers, raw = post(server, "/v2/models/mmrt/versions/1/infer", header + binary,
                                {"Inference-Header-Content-Length": str(len(header))})
    n = int(headers["Inference-Header-Content-Length"])
    meta = json.loads(raw[:n])
    assert status == 200 and meta["outputs"][0]["parameters"]["binary_data_size"] == 40
    np.testing.assert_allclose(np.frombuffer(raw[n:], "<f4"), scores, atol=1e-6)


def test_metadata_config_and_statistics_agree_across_protocols(server):
    http = th.InferenceServerClient(server.http_address)
    grpc_client = tc.InferenceServerClient(server.address)
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready("mmrt")
    assert not http.is_model_ready("other") and not http.is_model_ready("mmrt", "2")
    meta, config = http.get_model_metadata("mmrt"), http.get_model_config("mmrt")
    over_grpc = grpc_client.get_model_metadata("mmrt", as_json=True)  # protobuf's JSON quotes int64s
    for key in ("inputs", "outputs"):
        assert [{**t, "shape": [int(d) for d in t["shape"]]} for t in over_grpc[key]] == meta[key]
    assert meta["versions"] == over_grpc["versions"] == ["1"]
    shapes = {i["name"]: i["shape"] for i in meta["inputs"]}
    assert config["max_batch_size"] == 32
    for tensor in config["input"]:  # Triton's rule: metadata = [-1] + config dims when batching
        assert shapes[tensor["name"]] == [-1] + tensor["dims"], tensor
    assert http.get_server_metadata()["name"] == "mmrt"
    before = http.get_inference_statistics("mmrt")["model_stats"][0]["inference_stats"]["success"]["count"]
    http.infer("mmrt", http_inputs({"TEXT": np.array([b"two"], dtype=object)}, ["TEXT"]))
    after = http.get_inference_statistics("mmrt")["model_stats"][0]
    assert after["inference_stats"]["success"]["count"] == before + 1
    assert after["inference_stats"]["fail"]["count"] >= 0  # zero counts are written out, as Triton does


BINARY_HEADER = (b'{"inputs": [{"name": "AUDIO", "shape": [1, 4], "datatype": "FP32", '
                 b'"parameters": {"binary_data_size": 16}}]}')
BAD = {
    "not JSON": (b"{nope", {}, 400, "not JSON"),
    "deeply nested": (b"[" * 100_000, {}, 400, "nests too deeply"),
    "no inputs": (b'{"inputs": []}', {}, 400, "'inputs'"),
    "unknown input": (b'{"inputs": [{"name": "DEPTH", "shape": [1, 2], "datatype": "FP32", '
                      b'"data": [1, 2]}]}', {}, 400, "unknown input 'DEPTH'"),
    "wrong count": (b'{"inputs": [{"name": "AUDIO", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]}',
                    {}, 400, "input 'AUDIO'"),
    "string as a number": (b'{"inputs": [{"name": "AUDIO", "shape": [1, 1], "datatype": "FP32", '
                           b'"data": ["x"]}]}', {}, 400, "must be JSON numbers"),
    "out of range": (b'{"inputs": [{"name": "VIDEO", "shape": [1, 1, 1, 1, 3], "datatype": "UINT8", '
                     b'"data": [1, 2, 300]}]}', {}, 400, "out of range for UINT8"),
    "binary past the body": (BINARY_HEADER + b"\0" * 8,
                             {"Inference-Header-Content-Length": str(len(BINARY_HEADER))}, 400,
                             "8 bytes of binary data remain"),
    "bad header length": (b"{}", {"Inference-Header-Content-Length": "lots"}, 400, "expected a byte count"),
    "batch past --max-batch": (json.dumps({"inputs": [{"name": "TEXT", "shape": [33], "datatype": "BYTES",
                                                       "data": ["a"] * 33}]}).encode(), {}, 400,
                               "at most 32 rows"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_requests_get_a_json_error_naming_what_is_wrong(server, case):
    body, headers, code, expected = BAD[case]
    status, message = error_of(post(server, "/v2/models/mmrt/infer", body, headers))
    assert status == code and expected in message, message
    assert get(server, "/v2/health/ready")[0] == 200


def test_unknown_model_path_and_oversize_bodies_are_refused(server):
    text = json.dumps({"inputs": [{"name": "TEXT", "shape": [1], "datatype": "BYTES", "data": ["x"]}]})
    status, message = error_of(post(server, "/v2/models/other/infer", text.encode()))
    assert status == 404 and "'other'" in message
    assert error_of(get(server, "/v2/models/mmrt/versions/7"))[0] == 404
    assert error_of(get(server, "/v2/repository/nothing"))[0] == 404
    status, message = error_of(post(server, "/v2/models/mmrt/infer", b" " * (5 << 20)))  # past 4 MB
    assert status == 413
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 KB that inflate to 64 MB: the limit is on the inflated size
    assert error_of(post(server, "/v2/models/mmrt/infer", bomb, {"Content-Encoding": "gzip"}))[0] == 413
    big_json = json.dumps({"inputs": [{"name": "AUDIO", "shape": [1, 300_000], "datatype": "FP32",
                                       "data": [0.25] * 300_000}]}).encode()  # 1.8 MB of JSON
    status, message = error_of(post(server, "/v2/models/mmrt/infer", big_json))
    assert status == 400 and "binary tensor data" in message


def test_a_rest_sequence_accumulates_modalities(server, arrays):
    client = th.InferenceServerClient(server.http_address)
    first = client.infer("mmrt", http_inputs({"TEXT": arrays["TEXT"][:1]}, ["TEXT"]), sequence_id=41,
                         sequence_start=True)
    then = client.infer("mmrt", http_inputs({"AUDIO": arrays["AUDIO"][:1]}, ["AUDIO"]), sequence_id=41,
                        sequence_end=True)
    assert first.get_response()["parameters"]["modalities_used"] == "text"
    assert then.get_response()["parameters"]["modalities_used"] == "audio+text"


def test_the_token_guards_rest_but_not_health(tiny_bundle, arrays):
    s = Server(tiny_bundle, replace(OPTIONS, token="s3cret")).start()
    try:
        client = th.InferenceServerClient(s.http_address)
        assert client.is_server_ready()  # health answers without a token, as on gRPC
        for headers in (None, {"Authorization": "Bearer nope"}):
            with pytest.raises(InferenceServerException) as info:
                client.infer("mmrt", http_inputs(arrays, ["TEXT"]), headers=headers)
            assert "bearer token" in info.value.message()
        assert error_of(get(s, "/v2/models/mmrt"))[0] == 401
        ok = client.infer("mmrt", http_inputs(arrays, ["TEXT"]), headers={"Authorization": "Bearer s3cret"})
        assert ok.as_numpy("SCORES").shape == (2, 10)
    finally:
        s.stop(0)


def test_one_call_cap_for_both_protocols_and_the_drain_refuses_rest(tiny_bundle, arrays):
    s = Server(tiny_bundle, replace(OPTIONS, admission=AdmissionOptions(max_calls=1), delay_s=1.0,
                                    drain_delay_s=1.0)).start()
    try:
        slow = tc.InferenceServerClient(s.address)
        inputs = [tc.InferInput("TEXT", [1], "BYTES")]
        inputs[0].set_data_from_numpy(np.array([b"seven"], dtype=object))
        held = threading.Thread(target=slow.infer, args=("mmrt", inputs))
        held.start()
        while s.servicer.admission.open["calls"] == 0:
            threading.Event().wait(0.01)
        client = th.InferenceServerClient(s.http_address)
        with pytest.raises(InferenceServerException) as info:
            client.infer("mmrt", http_inputs(arrays, ["TEXT"]))
        assert "--max-calls" in info.value.message()
        held.join(30)
        errors: queue.Queue = queue.Queue()
        slow.start_stream(lambda result, error: errors.put(error))  # an open stream: the drain waits for it
        slow.async_stream_infer("mmrt", inputs)
        assert errors.get(timeout=30) is None
        stopping = threading.Thread(target=s.stop)
        stopping.start()
        while not s.model.draining:
            threading.Event().wait(0.01)
        assert not client.is_server_ready() and client.is_server_live()  # the lame duck: still served
        assert client.infer("mmrt", http_inputs(arrays, ["TEXT"])).as_numpy("SCORES").shape[1] == 10
        while not s.rest.refusing:
            threading.Event().wait(0.01)
        assert not client.is_server_ready() and client.is_server_live()
        status, message = error_of(post(s, "/v2/models/mmrt/infer", b"{}"))
        assert status == 503 and "shutting down" in message
        slow.stop_stream()
        stopping.join(30)
        assert not stopping.is_alive()
    finally:
        s.stop(0)
