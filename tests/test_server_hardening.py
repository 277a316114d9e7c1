"""A real server against requests built to hurt it: ranks numpy cannot hold, names of hundreds of
kilobytes, deadlines shorter than the work. Each gets a clear refusal, never an exception's
text, and work nobody waits for is neither run to the end nor counted as a success."""

import threading
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from mmrt.benchmarks.client import triton_inputs
from mmrt.runtime.frontends.server import Server, ServerOptions
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

INPUTS = {"audio": np.zeros(16_000, np.float32), "text": b"counting to seven"}


@pytest.fixture(scope="module")
def server(tiny_bundle):
    s = Server(tiny_bundle, ServerOptions(port=0, metrics_port=None, threads=1)).start()
    yield s
    s.stop(0)


def raw_call(address: str, request: pb.ModelInferRequest):
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        try:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
        except grpc.RpcError as e:
            return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def test_a_rank_numpy_cannot_hold_is_invalid_argument(server):
    r = pb.ModelInferRequest(model_name="mmrt")
    r.inputs.add(name="AUDIO", datatype="FP32", shape=[1] * 65)
    r.raw_input_contents.append(b"\0" * 4)
    code, details = raw_call(server.address, r)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "65 dimensions, at most 8" in details


def test_a_huge_model_name_is_not_found_with_a_short_message(server):
    r = pb.ModelInferRequest(model_name="m" * 200_000)
    code, details = raw_call(server.address, r)
    assert code == grpc.StatusCode.NOT_FOUND and len(details) < 300, details[:300]


def test_requests_past_their_deadline_are_dropped_and_counted_as_failures(tiny_bundle):
    s = Server(tiny_bundle, ServerOptions(port=0, metrics_port=None, threads=1, delay_s=0.3)).start()
    try:
        client = tc.InferenceServerClient(s.address)
        codes = []

        def call():
            try:
                client.infer("mmrt", triton_inputs(INPUTS, ["audio"]), client_timeout=0.05)
            except InferenceServerException as e:
                codes.append(e.status())

        threads = [threading.Thread(target=call) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == ["StatusCode.DEADLINE_EXCEEDED"] * 5

        def inference_stats():
            return client.get_inference_statistics("mmrt", as_json=True)["model_stats"][0]["inference_stats"]

        for _ in range(100):  # the server notices each at its next step; wait for all five
            stats = inference_stats()
            if int(stats.get("fail", {}).get("count", 0)) == 5:
                break
            time.sleep(0.05)
        assert int(stats["fail"]["count"]) == 5 and int(stats.get("success", {}).get("count", 0)) == 0
        audio = s.engine.runners["audio"].stats
        assert audio.rows < 5 and audio.dropped > 0, (audio.rows, audio.dropped)  # queued ones never ran
        result = client.infer("mmrt", triton_inputs(INPUTS, ["audio", "text"]))  # and it still serves
        assert result.as_numpy("SCORES").shape == (1, 10)
    finally:
        s.stop(0)
