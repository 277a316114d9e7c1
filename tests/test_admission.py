"""Admission control and the drain, on a real server: caps refuse at once instead of queueing,
idle streams hold no thread (health and inference still answer past them), an idle stream is
closed, and SIGTERM's lame-duck period refuses new work while open streams finish theirs."""

import asyncio
import logging
import queue
import threading
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lab.fuzz_streams import text_request
from mmrt.cli.serve import read_token
from mmrt.errors import UserError
from mmrt.runtime.frontends.admission import Admission, AdmissionOptions
from mmrt.runtime.frontends.options import check_exposure
from mmrt.runtime.frontends.server import Server, ServerOptions
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

OPTIONS = ServerOptions(port=0, metrics_port=None, threads=1)


def request(text: bytes = b"seven", sequence: int | None = None, start: bool = False, end: bool = False):
    return text_request(sequence, start, end, text=text)


class Stream:
    """A ModelStreamInfer call whose requests the test sends one at a time."""

    def __init__(self, stub):
        self.outbox = queue.Queue()
        self.call = stub.ModelStreamInfer(iter(self.outbox.get, None))

    def send(self, r):
        self.outbox.put(r)
        return next(self.call)

    def close(self):
        self.outbox.put(None)


@pytest.fixture
def serve(tiny_bundle):
    servers = []

    def start(**changes):
        servers.append(Server(tiny_bundle, replace(OPTIONS, **changes)).start())
        return servers[-1]

    yield start
    for s in servers:
        s.stop(0)


def health(channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def test_idle_streams_at_the_cap_leave_health_and_inference_answering(serve):
    s = serve(admission=AdmissionOptions(max_calls=2, max_streams=4))
    with grpc.insecure_channel(s.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        idle = [Stream(stub) for _ in range(4)]
        assert idle[0].send(request()).error_message == ""  # they are open, then go quiet
        for stream in idle[1:]:
            stream.send(request())
        with pytest.raises(grpc.RpcError) as info:
            Stream(stub).send(request())
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-streams" in info.value.details()
        assert health(channel) == health_pb2.HealthCheckResponse.SERVING
        answer = stub.ModelInfer(request(), timeout=5)
        assert answer.parameters["modalities_used"].string_param == "text"
        for stream in idle:
            stream.close()


def test_calls_past_the_cap_are_refused_at_once(serve):
    s = serve(admission=AdmissionOptions(max_calls=1), delay_s=1.0)
    with grpc.insecure_channel(s.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        slow = stub.ModelInfer.future(request(), timeout=10)
        while s.servicer.admission.open["calls"] == 0:
            threading.Event().wait(0.01)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request(), timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-calls" in info.value.details()
        assert slow.result().parameters["modalities_used"].string_param == "text"


def test_a_stream_idle_past_its_limit_is_closed(serve):
    s = serve(admission=AdmissionOptions(stream_idle_s=0.3))
    with grpc.insecure_channel(s.address) as channel:
        stream = Stream(pb_grpc.GRPCInferenceServiceStub(channel))
        stream.send(request())
        with pytest.raises(grpc.RpcError) as info:
            next(stream.call)  # sends nothing more
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "--stream-idle-s" in info.value.details()
    for _ in range(200):  # the slot is given back as the handler unwinds, just after the status is sent
        if s.servicer.admission.open["streams"] == 0:
            break
        threading.Event().wait(0.01)
    assert s.servicer.admission.open["streams"] == 0


def test_the_lame_duck_serves_then_new_calls_get_unavailable_while_open_streams_finish(serve):
    s = serve(drain_delay_s=1.0, grace_s=20)
    with grpc.insecure_channel(s.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        stream = Stream(stub)
        assert stream.send(request(sequence=4, start=True)).error_message == ""
        stopping = threading.Thread(target=s.stop)
        stopping.start()
        while not s.model.draining:
            threading.Event().wait(0.01)
        # the lame duck: not ready, still live, and every call still served but a new sequence
        assert health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live
        assert not stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
        assert stub.ModelInfer(request(), timeout=5).parameters["modalities_used"].string_param == "text"
        assert "shutting down" in stream.send(request(sequence=5, start=True)).error_message
        while not s.gate.refusing:
            threading.Event().wait(0.01)
        # past it: new calls refused with UNAVAILABLE only; liveness answers; the open stream is served
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live
        last = stream.send(request(b"eight", sequence=4, end=True))
        assert last.error_message == "" and stopping.is_alive()  # the drain waits for the stream
        stream.close()
        stopping.join(10)
        assert not stopping.is_alive()


def test_risky_settings_are_warned_about(tmp_path, caplog):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert read_token(token) == "s3cret"
        check_exposure(ServerOptions(host="0.0.0.0"))
        token.chmod(0o600)
        read_token(token)
        check_exposure(ServerOptions(host="127.0.0.1", token="t", admin_token="a"))
        check_exposure(ServerOptions(host="0.0.0.0", token="t"))
        tls = {"tls_cert": token, "tls_key": token}
        check_exposure(ServerOptions(host="0.0.0.0", token="t", admin_token="a", **tls))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "other users may read it (mode 644)" in messages[0] and "without TLS or a token" in messages[1]
    assert "the bearer token crosses the network in clear" in messages[2]
    for host in ("0.0.0.0", "", "::"):  # every interface, however written
        with pytest.raises(UserError, match="the admin token would cross the network in clear"):
            check_exposure(ServerOptions(host=host, token="t", admin_token="a"))
    assert ServerOptions().metrics_host == "127.0.0.1"


def test_the_drain_waits_for_a_call_that_takes_its_slot_as_its_upload_frees_one():
    async def scenario() -> list[str]:
        admission, seen = Admission(AdmissionOptions()), []
        upload = admission.slot("uploads")
        await upload.__aenter__()
        waiting = asyncio.ensure_future(admission.wait_idle(5))
        await asyncio.sleep(0)
        await upload.__aexit__(None, None, None)  # the body is in ...
        async with admission.slot("calls"):  # ... and its call admitted, before the waiter runs
            await asyncio.sleep(0.05)
            seen.append("idle" if waiting.done() else "waiting")
        seen.append("idle" if await waiting else "timed out")
        return seen

    assert asyncio.run(scenario()) == ["waiting", "idle"]
