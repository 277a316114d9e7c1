"""Faults the rig meets unattended: a client cancelling mid-stream, a deadline passing, SIGTERM under
load, a tampered bundle, a short soak; and the server binds loopback only by default."""

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from lab.soak import soak
from mmrt.benchmarks.client import triton_inputs
from mmrt.runtime.frontends.server import Server, ServerOptions
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

INPUTS = {"audio": np.zeros(16_000, np.float32), "video": np.zeros((4, 32, 32, 3), np.uint8),
          "text": b"counting to seven"}


@pytest.fixture
def server(tiny_bundle):
    s = Server(tiny_bundle, ServerOptions(port=0, metrics_port=None, threads=1)).start()
    yield s
    s.stop(0)


def answers(address: str) -> bool:
    result = tc.InferenceServerClient(address).infer("mmrt", triton_inputs(INPUTS, ["audio", "text"]))
    return result.as_numpy("SCORES").shape == (1, 10)


def test_a_client_cancelling_mid_stream_leaves_the_server_serving(server):
    gate = threading.Event()

    def requests():
        r = pb.ModelInferRequest(model_name="mmrt")
        r.parameters["sequence_id"].int64_param = 5
        r.parameters["sequence_start"].bool_param = True
        r.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"seven")
        yield r
        gate.wait(10)  # the client goes quiet, then cancels

    with grpc.insecure_channel(server.address) as channel:
        call = pb_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(requests())
        first = next(call)
        used = first.infer_response.parameters["modalities_used"].string_param
        assert first.error_message == "" and used == "text"
        call.cancel()
        gate.set()
        with pytest.raises(grpc.RpcError) as info:
            next(call)
        assert info.value.code() == grpc.StatusCode.CANCELLED
    assert answers(server.address)


def test_a_passed_deadline_is_deadline_exceeded_and_harmless(server):
    client = tc.InferenceServerClient(server.address)
    with pytest.raises(InferenceServerException) as info:
        client.infer("mmrt", triton_inputs(INPUTS, ["audio", "video", "text"]), client_timeout=1e-4)
    assert info.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert answers(server.address)


def test_sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_zero(tiny_bundle):
    mmrt = os.path.join(os.path.dirname(sys.executable), "mmrt")
    env = {**os.environ, "MMRT_INJECT_DELAY_MS": "1500"}  # every encoder run takes 1.5 s longer
    proc = subprocess.Popen([mmrt, "serve", str(tiny_bundle), "--port", "0", "--http-port", "0",
                             "--metrics-port", "-1", "--threads", "1", "--drain-delay-s", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    address = proc.stdout.readline().split()[-1]
    outcomes: queue.Queue = queue.Queue()

    def request(names):
        try:
            tc.InferenceServerClient(address).infer("mmrt", triton_inputs(INPUTS, names))
            outcomes.put("OK")
        except InferenceServerException as e:
            outcomes.put(e.status())

    in_flight = [threading.Thread(target=request, args=(names,))
                 for names in (["audio"], ["text"], ["audio", "video"], ["audio", "video", "text"])]
    for t in in_flight:
        t.start()
    time.sleep(0.8)  # all four are inside the server (even on a busy machine), waiting on their encoders
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    request(["text"])  # arrives while the server drains (no lame duck: refused at once)
    late = outcomes.get(timeout=30)
    for t in in_flight:
        t.join()
    finished = [outcomes.get() for _ in range(4)]
    assert late == "StatusCode.UNAVAILABLE"
    assert finished == ["OK"] * 4
    assert proc.wait(timeout=60) == 0
    assert "draining" in proc.stderr.read()


def test_a_tampered_bundle_is_refused_at_start(tiny_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    data = bytearray((copy / "text.onnx").read_bytes())
    data[100] ^= 0xFF
    (copy / "text.onnx").write_bytes(bytes(data))
    r = subprocess.run([sys.executable, "-m", "mmrt", "serve", str(copy), "--port", "0"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "text.onnx: checksum mismatch" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_default_bind_is_loopback_only(server):
    assert ServerOptions().host == "127.0.0.1" and server.address.startswith("127.0.0.1:")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # picks the outward interface; sends nothing
            outside = probe.getsockname()[0]
        except OSError:
            outside = "127.0.0.1"
    if outside.startswith("127."):
        pytest.skip("this machine has no address but loopback")
    port = int(server.address.rsplit(":", 1)[1])
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((outside, port)) != 0  # nothing listens there


def test_a_short_soak_of_concurrent_streams_has_no_errors(tiny_bundle):
    s = Server(tiny_bundle, ServerOptions(port=0, metrics_port=None, threads=1)).start()
    try:
        result = soak(s.address, ("audio", "video", "text"), "mmrt", streams=8, seconds=4, pid=os.getpid(),
                      warmup_s=1.0)
    finally:
        s.stop(0)
    assert result["errors"] == 0, result["first_errors"]
    assert result["requests"] > 8 and result["rss_kib"]["end"] > 0
    json.dumps(result)  # the report is plain JSON
