"""Hostile control-plane calls for `mmrt serve`: hypothesis-generated repository loads, unloads and
index calls (names that are paths, encoded paths, NUL bytes, links, 100 KB strings, repository
names, load parameters) and shared-memory registrations (keys that are paths or NUL-laden,
offsets and sizes past 2^63, negative or outside the object), over gRPC and REST. Pass: every
answer is a proper status with a short message that names no server path (``forbidden``); the
model still serves afterwards. Used by ``lab/fuzz.py`` and ``tests/test_fuzz.py``.

Quoted in docs/reliability.md."""

from __future__ import annotations

import collections
import http.client
import json
import os
import urllib.parse

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.fuzz_inputs import LONG, MAX_DETAIL
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc

GRPC_EXPECTED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "PERMISSION_DENIED",
                 "UNAVAILABLE", "ALREADY_EXISTS", "RESOURCE_EXHAUSTED", "UNAUTHENTICATED"}
REST_EXPECTED = {200, 400, 401, 403, 404, 409, 429, 503}
REGION = "mmrt-fuzz-region"  # a real object the fuzzer makes, so some registrations succeed
NAMES = ["../../etc", "/etc", "..", ".", "%2Fetc", "..%2F..%2Fetc", "a/b", "a\x00b", "mmrt/../mmrt", "évé",
         "ghost", "-x", "x" * 129, LONG, ""]
KEYS = [REGION, "/" + REGION, "../etc/passwd", "/etc/passwd", "/dev/shm/../etc", "a\x00b", "", "/", ".",
        "..", "no-such-object", "x" * 300, LONG]
NUMBERS = st.one_of(st.integers(-8, 4096), st.sampled_from([-(1 << 63), (1 << 63) - 1, 1 << 63, 1 << 64]))


@st.composite
def control_calls(draw) -> tuple[str, dict]:
    """(kind, arguments) of one control call."""
    kind = draw(st.sampled_from(["load", "unload", "index", "register", "unregister", "status"]))
    if kind in ("load", "unload"):
        names = NAMES + (["mmrt"] if kind == "load" else [])  # never unload what the check serves
        args = {"name": draw(st.sampled_from(names)),
                "repository": draw(st.sampled_from([""] * 6 + ["/", LONG, "models"])),
                "parameters": draw(st.sampled_from([{}] * 4 + [{"config": "{}"}, {"file:1/x.onnx": "AA"}]))}
    elif kind == "register":
        args = {"name": draw(st.sampled_from(["r", "", LONG[:300], "r\x00"])),
                "key": draw(st.sampled_from(KEYS)), "offset": draw(NUMBERS), "size": draw(NUMBERS)}
    else:
        args = {"name": draw(st.sampled_from(["", "r", "ghost", LONG]))}
    return kind, {**args, "rest": draw(st.booleans())}


class ControlFuzzer:
    def __init__(self, grpc_address: str, rest_address: str | None, forbidden: list[str]):
        self.channel = grpc.insecure_channel(grpc_address)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.rest = rest_address
        self.forbidden = [f for f in forbidden if f]
        self.codes: collections.Counter = collections.Counter()
        self.unexpected: list[str] = []

    def call(self, kind: str, a: dict) -> None:
        if a["rest"] and self.rest is not None:
            status, text = self._rest(kind, a)
            self._tally(f"REST_{status}", text, status in REST_EXPECTED)
            return
        try:
            self._grpc(kind, a)
            code, detail = "OK", ""
        except grpc.RpcError as e:
            code, detail = e.code().name, e.details() or ""
        except ValueError as e:  # the client itself refuses a value (an integer past its field)
            code, detail = "CLIENT_REFUSED", str(e)
        self._tally(code, detail, code in GRPC_EXPECTED | {"CLIENT_REFUSED"})

    def _grpc(self, kind: str, a: dict) -> None:
        s = self.stub
        if kind == "load":
            r = pb.RepositoryModelLoadRequest(repository_name=a["repository"], model_name=a["name"])
            for k, v in a["parameters"].items():
                r.parameters[k].string_param = v
            s.RepositoryModelLoad(r, timeout=60)
        elif kind == "unload":
            s.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(repository_name=a["repository"],
                                                                    model_name=a["name"]), timeout=60)
        elif kind == "index":
            s.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=60)
        elif kind == "register":
            s.SystemSharedMemoryRegister(pb.SystemSharedMemoryRegisterRequest(
                name=a["name"], key=a["key"], offset=a["offset"], byte_size=a["size"]), timeout=60)
        elif kind == "unregister":
            s.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name=a["name"]), timeout=60)
        else:
            s.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(name=a["name"]), timeout=60)

    def _rest(self, kind: str, a: dict) -> tuple[int, str]:
        name = urllib.parse.quote(a.get("name", ""), safe="")[:2000]
        method, path, body = "POST", "", b""
        if kind in ("load", "unload"):
            path = f"/v2/repository/models/{name}/{kind}"
            body = json.dumps({"parameters": a["parameters"]}).encode() if a["parameters"] else b""
        elif kind == "index":
            path = "/v2/repository/index"
        elif kind == "register":
            path = f"/v2/systemsharedmemory/region/{name}/register"
            body = json.dumps({"key": a["key"], "offset": a["offset"], "byte_size": a["size"]}).encode()
        elif kind == "unregister":
            path = f"/v2/systemsharedmemory/region/{name}/unregister" if name else \
                "/v2/systemsharedmemory/unregister"
        else:
            method = "GET"
            path = f"/v2/systemsharedmemory/region/{name}/status" if name else "/v2/systemsharedmemory/status"
        host, port = self.rest.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            connection.request(method, path or "/", body=body or None)
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            return 0, f"connection dropped: {type(e).__name__}: {e}"
        finally:
            connection.close()

    def _tally(self, code: str, detail: str, expected: bool) -> None:
        self.codes[code] += 1
        leaked = [f for f in self.forbidden if f in detail]
        if not expected:
            self.unexpected.append(f"{code}: {detail[:200]}")
        elif len(detail) > MAX_DETAIL:
            self.unexpected.append(f"{code} with a {len(detail)}-character message: {detail[:200]}")
        elif leaked:
            self.unexpected.append(f"{code} names a server path ({leaked[0]}): {detail[:200]}")

    def close(self) -> None:
        self.stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(), timeout=60)
        self.channel.close()


def fuzz_control(grpc_address: str, count: int, rest_address: str | None = None,
                 forbidden: tuple[str, ...] = ()) -> tuple[collections.Counter, list[str]]:
    """Send ``count`` hostile control calls (a shared-memory object of 4 KB exists meanwhile); the
    status tally and what was unexpected, including any message naming a ``forbidden`` string."""
    fd = os.open(f"/dev/shm/{REGION}", os.O_CREAT | os.O_RDWR, 0o600)
    os.ftruncate(fd, 4096)
    fuzzer = ControlFuzzer(grpc_address, rest_address, list(forbidden))

    @settings(max_examples=count, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(control_calls())
    def run(case):
        fuzzer.call(*case)

    try:
        run()
    finally:
        fuzzer.close()
        os.close(fd)
        os.unlink(f"/dev/shm/{REGION}")
    return fuzzer.codes, fuzzer.unexpected
