"""The control plane tried as an outside client would: names that are paths, calls the control
mode refuses, admin calls with the inference token, shared memory from another machine, two loads
at once, slow uploads, an unload racing a load, a retiring version under explicit traffic, and
messages that never carry a server path or an exception's text."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import tritonclient.grpc as tc
import tritonclient.http as th
from test_repository import add_version, answered_by, audio_input, wait_for
from tritonclient.utils import InferenceServerException

import mmrt.runtime.frontends.rest as rest_module
import mmrt.runtime.frontends.servicer as servicer_module
from mmrt.bundle import sha256_file
from mmrt.runtime.engine.status import InferError, Status
from mmrt.runtime.frontends.access import Access, Caller, is_local_grpc_peer, is_loopback
from mmrt.runtime.frontends.admission import AdmissionOptions
from mmrt.runtime.frontends.server import Server, ServerOptions
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

EXPLICIT = ServerOptions(port=0, http_port=0, metrics_port=None, threads=1, model_control="explicit")
ADMIN = {"authorization": "Bearer admin-s3cret"}
INFER = {"authorization": "Bearer s3cret"}


@contextmanager
def serving(path: Path, options: ServerOptions = EXPLICIT):
    server = Server(path, options).start()
    try:
        yield server
    finally:
        server.stop(0)


@pytest.fixture()
def repo(tmp_path, tiny_bundle) -> Path:
    root = tmp_path / "repo"
    add_version(root, "mmrt", 1, tiny_bundle)
    return root


def http(server, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://{server.http_address}{path}", data=body or None, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def refusal(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


@pytest.mark.parametrize("name", ["%2Fetc", "..%2F..%2Fetc", "%2E%2E", "a%00b", "x" * 200])
def test_a_model_name_is_a_name_in_the_repository_never_a_path(repo, name):
    with serving(repo) as server:
        status, body = http(server, "POST", f"/v2/repository/models/{name}/load")
        assert status in (400, 404), (status, body)
        assert str(repo.parent) not in body, body
        assert answered_by(tc.InferenceServerClient(server.address)) == "1"


def test_traversal_over_grpc_and_a_link_out_of_the_repository_are_refused(repo, tmp_path, tiny_bundle):
    add_version(tmp_path / "elsewhere", "evil", 1, tiny_bundle)
    (repo / "evil").symlink_to(tmp_path / "elsewhere" / "evil")  # resolves outside the repository
    with serving(repo, replace(EXPLICIT, model_control="explicit")) as server:
        client = tc.InferenceServerClient(server.address)
        for name in ("../../etc", "/etc", ".."):
            e = refusal(lambda name=name: client.load_model(name))
            assert e.status() == "StatusCode.INVALID_ARGUMENT"
            assert "expected at most 128 letters, digits" in e.message()
            assert str(repo) not in e.message()
        e = refusal(lambda: client.load_model("evil"))
        assert e.status() == "StatusCode.NOT_FOUND" and "not a model folder of the repository" in e.message()
        assert str(tmp_path) not in e.message()


def test_load_and_unload_are_refused_unless_the_control_mode_is_explicit(repo, tiny_bundle):
    with serving(repo, replace(EXPLICIT, model_control=None)) as server:  # a repository: poll
        assert server.repository.control == "poll"
        http_client = th.InferenceServerClient(server.http_address)
        e = refusal(lambda: http_client.unload_model("mmrt"))  # anonymous, as the report found it
        assert "--model-control poll: load and unload calls are refused" in e.message()
        e = refusal(lambda: tc.InferenceServerClient(server.address).load_model("mmrt"))
        assert e.status() == "StatusCode.FAILED_PRECONDITION"
        assert answered_by(tc.InferenceServerClient(server.address)) == "1"
    with serving(repo, replace(EXPLICIT, model_control="none")) as server:
        e = refusal(lambda: tc.InferenceServerClient(server.address).unload_model("mmrt"))
        assert "--model-control none" in e.message()


def test_admin_calls_need_the_admin_token_and_the_inference_token_does_not_do(repo):
    options = replace(EXPLICIT, token="s3cret", admin_token="admin-s3cret")
    with serving(repo, options) as server:
        client = tc.InferenceServerClient(server.address)
        http_client = th.InferenceServerClient(server.http_address)
        assert answered_by_with(client, INFER) == "1"  # inference with the inference token
        for call in (lambda: client.unload_model("mmrt", headers=INFER),
                     lambda: client.get_model_repository_index(headers=INFER),
                     lambda: client.unregister_system_shared_memory(headers=INFER),
                     lambda: http_client.load_model("mmrt", headers=INFER),
                     lambda: http_client.get_system_shared_memory_status(headers=INFER)):
            e = refusal(call)
            assert "needs the admin token" in e.message(), e.message()
        assert refusal(lambda: client.unload_model("mmrt")).status() == "StatusCode.UNAUTHENTICATED"
        status, body = http(server, "GET", "/v2/models/mmrt/ready",
                            headers={"Authorization": "Bearer caf\xe9"})
        assert status == 401 and "wrong bearer token" in body  # not ASCII: refused, not a crash
        assert len(client.get_model_repository_index(headers=ADMIN).models) == 1
        client.load_model("mmrt", headers=ADMIN)
        assert answered_by_with(client, ADMIN) == "1"  # the admin token is an inference token too


def answered_by_with(client, headers: dict) -> str:
    return client.infer("mmrt", audio_input(), headers=headers).get_response().model_version


def test_without_an_admin_token_admin_calls_come_only_from_this_machine(repo, monkeypatch):
    with serving(repo) as server:
        client = tc.InferenceServerClient(server.address)
        http_client = th.InferenceServerClient(server.http_address)
        assert len(client.get_model_repository_index().models) == 1  # loopback: taken
        monkeypatch.setattr(servicer_module, "is_local_grpc_peer", lambda peer: False)  # as if remote
        monkeypatch.setattr(rest_module, "is_loopback", lambda host: False)
        for call in (lambda: client.unload_model("mmrt"), lambda: http_client.unload_model("mmrt"),
                     lambda: client.register_system_shared_memory("r", "/mmrt-x", 64)):
            e = refusal(call)
            assert "taken only from this machine" in e.message(), e.message()
        assert answered_by(client) == "1"  # inference is for everyone


def test_shared_memory_is_for_this_machine_and_never_unregistered_wholesale_from_another(tiny_bundle,
                                                                                         monkeypatch):
    options = ServerOptions(port=0, http_port=0, metrics_port=None, threads=1, admin_token="admin-s3cret",
                            remote_shm=True)
    with serving(tiny_bundle, options) as server:
        client = tc.InferenceServerClient(server.address)
        monkeypatch.setattr(servicer_module, "is_local_grpc_peer", lambda peer: False)
        e = refusal(lambda: client.unregister_system_shared_memory(headers=ADMIN))  # every region
        assert "taken only from this machine" in e.message()
        client.unregister_system_shared_memory("one", headers=ADMIN)  # one region: opted in
    with serving(tiny_bundle, replace(options, remote_shm=False)) as server:
        monkeypatch.setattr(servicer_module, "is_local_grpc_peer", lambda peer: False)
        stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.address))
        request = pb.ModelInferRequest(model_name="mmrt")
        tensor = request.inputs.add(name="AUDIO", datatype="FP32", shape=[1, 16000])
        tensor.parameters["shared_memory_region"].string_param = "anything"
        tensor.parameters["shared_memory_byte_size"].int64_param = 64000
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "--allow-remote-shm" in info.value.details()


def test_the_access_rules_and_who_counts_as_this_machine():
    access = Access("s3cret", "admin-s3cret")
    with pytest.raises(InferError) as e:
        access.authenticate("Bearer caf\u00e9")  # non-ASCII: a refusal, not a crash
    assert e.value.status is Status.UNAUTHENTICATED
    access.authenticate("Bearer admin-s3cret")
    local_admin, remote_admin = Caller("Bearer admin-s3cret", True), Caller("Bearer admin-s3cret", False)
    access.admin(remote_admin, "loading")
    with pytest.raises(InferError, match="needs the admin token"):
        access.admin(Caller("Bearer s3cret", True), "loading")
    access.shared_memory(local_admin, "registering", every_region=True)
    with pytest.raises(InferError, match="--allow-remote-shm"):
        access.shared_memory(remote_admin, "registering")
    assert access.shm_tensors(local_admin) and not access.shm_tensors(remote_admin)
    peers = ("ipv4:127.0.0.1:5000", "ipv6:%5B::1%5D:5000", "ipv6:[::ffff:127.0.0.1]:5000", "unix:/run/x.sock",
             "ipv4:10.0.0.7:5000", "ipv6:%5B2001:db8::1%5D:80", "ipv6:%5B::ffff:10.0.0.7%5D:80")
    assert [is_local_grpc_peer(p) for p in peers] == [True, True, True, True, False, False, False]
    assert is_loopback("127.0.0.2") and is_loopback("::ffff:127.0.0.1") and is_loopback("localhost")
    assert not any(is_loopback(a) for a in ("", None, "0.0.0.0", "::", "192.168.1.4"))  # every interface


def slow_opener(server, seconds: float):
    """Make every load of ``server`` take ``seconds`` longer (verifying and warming a big model)."""
    real = server.repository.opener

    def opener(folder, name, number):
        time.sleep(seconds)
        return real(folder, name, number)

    server.repository.opener = opener


def test_a_second_load_is_refused_at_once_and_inference_answers_meanwhile(repo, tiny_bundle):
    options = replace(EXPLICIT, admission=AdmissionOptions(max_calls=1, max_streams=1))  # two workers
    with serving(repo, options) as server:
        slow_opener(server, 2.0)
        add_version(repo, "mmrt", 2, tiny_bundle)
        client = tc.InferenceServerClient(server.address)
        first = threading.Thread(target=client.load_model, args=("mmrt",))
        first.start()
        wait_for(server.repository.loading.locked)
        for _ in range(3):
            e = refusal(lambda: client.load_model("mmrt"))
            assert e.status() == "StatusCode.UNAVAILABLE" and "a load is in progress" in e.message()
        assert answered_by(client) == "1"  # the load holds no inference worker
        first.join(30)
        assert answered_by(client) == "2"


def test_an_unload_is_not_undone_by_a_load_that_finishes_after_it(repo, tiny_bundle):
    with serving(repo) as server:
        slow_opener(server, 1.5)
        add_version(repo, "mmrt", 2, tiny_bundle)
        client = tc.InferenceServerClient(server.address)
        outcome: list = []
        loading = threading.Thread(target=lambda: outcome.append(refusal(lambda: client.load_model("mmrt"))))
        loading.start()
        wait_for(server.repository.loading.locked)
        client.unload_model("mmrt")
        loading.join(30)
        assert outcome and "was unloaded while version 2 was loading" in outcome[0].message()
        assert not client.is_model_ready("mmrt")
        wait_for(lambda: not server.repository.models["mmrt"].loaded)  # nothing left to serve it


def test_a_retiring_version_takes_only_its_own_sequences(repo, tiny_bundle):
    with serving(repo) as server:
        client = tc.InferenceServerClient(server.address)

        def step(sequence: int, start: bool = False, end: bool = False, version: str = "") -> str:
            result = client.infer("mmrt", audio_input(), sequence_id=sequence, sequence_start=start,
                                  sequence_end=end, model_version=version)
            return result.get_response().model_version

        assert step(7, start=True) == "1"
        add_version(repo, "mmrt", 2, tiny_bundle)
        client.load_model("mmrt")
        for _ in range(5):  # steady explicit traffic for the retiring version finds it gone
            e = refusal(lambda: answered_by(client, version="1"))
            assert "version '1': not served (serving version 2)" in e.message()
        assert not client.is_model_ready("mmrt", "1") and client.is_model_ready("mmrt", "2")
        assert step(7) == "1"  # its own open sequence still goes to it
        assert step(7, start=True) == "2"  # the id restarted: it now belongs to the new version
        assert step(7, end=True) == "2"
        wait_for(lambda: len(server.repository.models["mmrt"].loaded) == 1)  # version 1 freed


def test_slow_uploads_hold_no_inference_slot(tiny_bundle):
    options = ServerOptions(port=0, http_port=0, metrics_port=None, threads=1,
                            admission=AdmissionOptions(max_calls=2, max_uploads=3))
    with serving(tiny_bundle, options) as server:
        host, port = server.http_address.rsplit(":", 1)
        slow = []
        for _ in range(3):  # headers, then a body that never comes
            s = socket.create_connection((host, int(port)), timeout=30)
            s.sendall(b"POST /v2/models/mmrt/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
            slow.append(s)
        wait_for(lambda: server.servicer.admission.open["uploads"] == 3)
        assert server.servicer.admission.open["calls"] == 0
        assert answered_by(tc.InferenceServerClient(server.address)) == "1"  # gRPC unaffected
        status, body = http(server, "POST", "/v2/models/mmrt/infer", b"{}")
        assert status == 429 and "--max-uploads" in body
        for s in slow:
            s.close()


def test_health_has_the_body_kserve_reads_and_bad_control_input_is_a_clear_refusal(repo):
    with serving(repo) as server:
        assert http(server, "GET", "/v2/health/live") == (200, '{"live": true}')
        assert http(server, "GET", "/v2/health/ready") == (200, '{"ready": true}')
        status, body = http(server, "POST", "/v2/repository/models/mmrt/load",
                            json.dumps({"parameters": {"config": "{}",
                                                       "file:1/model.onnx": "AAAA"}}).encode())
        assert status == 400 and "load parameters ('config', 'file:1/model.onnx'): not taken" in body
        for registration in ({"key": "/x", "offset": -1, "byte_size": 8},
                             {"key": "/x", "byte_size": 1 << 64}):
            status, body = http(server, "POST", "/v2/systemsharedmemory/region/r/register",
                                json.dumps(registration).encode())
            assert status == 400 and "the integers 0 to 2^63-1" in body, body
        big_shape = {"inputs": [{"name": "AUDIO", "datatype": "FP32", "shape": [1 << 70], "data": [0]}]}
        status, body = http(server, "POST", "/v2/models/mmrt/infer", json.dumps(big_shape).encode())
        assert status == 400 and "64-bit integers" in body
        floats = {"inputs": [{"name": "VIDEO", "datatype": "UINT8", "shape": [1], "data": [1.5]}]}
        status, body = http(server, "POST", "/v2/models/mmrt/infer", json.dumps(floats).encode())
        assert status == 400 and "UINT8 data must be JSON integers" in body
        client = tc.InferenceServerClient(server.address)
        e = refusal(lambda: client.register_system_shared_memory("r", "mmrt\0x", 8))
        assert e.status() == "StatusCode.INVALID_ARGUMENT" and "no path" in e.message()
        e = refusal(lambda: client.register_system_shared_memory("r", "/no-such-object-here", 8))
        assert "cannot be opened" in e.message() and "No such file" not in e.message()
        config = client.get_model_config("mmrt", as_json=True)["config"]
        assert int(config["sequence_batching"]["max_sequence_idle_microseconds"]) == 60_000_000


def test_a_load_failure_and_the_index_carry_no_server_path_or_exception_text(repo, tiny_bundle):
    with serving(repo) as server:
        bad = add_version(repo, "mmrt", 2, tiny_bundle)
        (bad / "audio.onnx").write_bytes(b"not a graph")
        manifest = json.loads((bad / "manifest.json").read_text())
        manifest["files"]["audio.onnx"] = sha256_file(bad / "audio.onnx")  # passes the checksums
        (bad / "manifest.json").write_text(json.dumps(manifest))
        client = tc.InferenceServerClient(server.address)
        e = refusal(lambda: client.load_model("mmrt"))
        assert "version 2 failed to load (mmrt/2/audio.onnx: ONNX Runtime cannot load the graph); " \
               "version 1 keeps serving" in e.message()  # what failed, not what ONNX Runtime said of it
        assert "ONNXRuntimeError" not in e.message() and "protobuf" not in e.message()
        (bad / "head.onnx").write_bytes(b"tampered")
        e = refusal(lambda: client.load_model("mmrt"))
        assert "mmrt/2/head.onnx: checksum mismatch" in e.message() and str(repo) not in e.message()
        def broken(folder, name, number):  # a bug, or a library failing its own way
            raise RuntimeError(f"internal state of {folder}")

        server.repository.opener = broken
        (bad / "head.onnx").write_bytes((tiny_bundle / "head.onnx").read_bytes())
        e = refusal(lambda: client.load_model("mmrt"))
        assert "(the runtime could not load it; the server's log has the details)" in e.message()
        assert "internal state" not in e.message()
        rows = client.get_model_repository_index(as_json=True)["models"]
        assert all(str(repo) not in row.get("reason", "") for row in rows)
        assert all("ONNXRuntimeError" not in row.get("reason", "") for row in rows)


def test_a_load_whose_caller_left_before_it_started_gives_the_lock_back(repo, tiny_bundle):
    with serving(repo) as server:
        client = tc.InferenceServerClient(server.address)
        held = threading.Event()
        server.model.control.submit(held.wait, 30)  # the control thread busy: the load waits for it
        e = refusal(lambda: client.load_model("mmrt", client_timeout=0.5))
        assert e.status() == "StatusCode.DEADLINE_EXCEEDED"
        wait_for(lambda: not server.repository.loading.locked())  # cancelled unstarted: lock back
        held.set()
        add_version(repo, "mmrt", 2, tiny_bundle)
        client.load_model("mmrt")  # not "a load is in progress" forever
        assert answered_by(client) == "2"
