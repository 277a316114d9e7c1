"""Hostile input for `mmrt serve`: hypothesis-generated malformed KServe v2 requests over gRPC.

    python -m mmrt.benchmarks.fuzz --bundle runs/quickstart/bundle [--requests 10000]

Random input names, datatypes, ranks and dims (zero, negative, huge), raw_input_contents
counts that do not match the inputs, payloads of the wrong length, random parameters, model
names and versions, and stream requests with broken sequence flags. Pass: the server never
crashes, every request gets a proper status (never UNKNOWN, never a dropped connection),
health stays SERVING, and a valid request afterwards gets the right answer. The test suite
runs the same strategies with fewer examples (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import grpc
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc

NAMES = ["AUDIO", "VIDEO", "TEXT", "audio", "", "EMBEDDING", "X" * 300, "TEXT\x00"]
DATATYPES = ["FP32", "UINT8", "BYTES", "INT64", "FP16", "FP64", "BOOL", "INT8", "", "fp32", "COMPLEX64"]
DIMS = st.one_of(st.integers(0, 4), st.integers(-3, -1),
                 st.sampled_from([1 << 31, 1 << 40, 1 << 62, 17, 400]))
# Statuses a hostile request may get; UNKNOWN (an unhandled exception) or a broken connection fail.
EXPECTED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "UNAUTHENTICATED"}


@st.composite
def parameters(draw, target) -> None:
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["sequence_id", "sequence_start", "sequence_end", "priority", "timeout",
                                    "binary_data_output", draw(st.text(max_size=8))]))
        kind = draw(st.sampled_from(["bool_param", "int64_param", "string_param", "double_param",
                                     "uint64_param"]))
        value = {"bool_param": st.booleans(), "int64_param": st.integers(-(1 << 63), (1 << 63) - 1),
                 "string_param": st.text(max_size=12), "double_param": st.floats(allow_nan=True),
                 "uint64_param": st.integers(0, (1 << 64) - 1)}[kind]
        setattr(target[key], kind, draw(value))


@st.composite
def infer_requests(draw) -> pb.ModelInferRequest:
    # mostly the right model, so that most requests reach the tensor checks behind it
    r = pb.ModelInferRequest(model_name=draw(st.sampled_from(["mmrt"] * 8 + ["", "other"])),
                             model_version=draw(st.sampled_from([""] * 6 + ["1"] * 3 + ["2"])),
                             id=draw(st.text(max_size=8)))
    draw(parameters(r.parameters))
    n = draw(st.integers(0, 4))
    raw_mode = draw(st.sampled_from(["raw", "contents", "mixed"]))
    for _ in range(n):
        t = r.inputs.add(name=draw(st.sampled_from(NAMES)), datatype=draw(st.sampled_from(DATATYPES)),
                         shape=draw(st.lists(DIMS, max_size=6)))
        draw(parameters(t.parameters))
        if raw_mode == "contents" or (raw_mode == "mixed" and draw(st.booleans())):
            t.contents.fp32_contents.extend(draw(st.lists(st.floats(width=32), max_size=64)))
            t.contents.bytes_contents.extend(draw(st.lists(st.binary(max_size=16), max_size=4)))
            t.contents.uint_contents.extend(draw(st.lists(st.integers(0, (1 << 32) - 1), max_size=64)))
    if raw_mode != "contents":
        count = draw(st.sampled_from([n, n, max(n - 1, 0), n + 1]))
        for _ in range(count):
            r.raw_input_contents.append(draw(st.binary(max_size=2048)))
    for _ in range(draw(st.integers(0, 2))):
        r.outputs.add(name=draw(st.sampled_from(["SCORES", "EMBEDDING", "PROBS", ""])))
    return r


def valid_request(samples: int = 16_000) -> pb.ModelInferRequest:
    """An audio+text request whose answer the check compares before and after the fuzz."""
    r = pb.ModelInferRequest(model_name="mmrt")
    r.inputs.add(name="AUDIO", datatype="FP32", shape=[1, samples])
    r.raw_input_contents.append((np.sin(np.arange(samples) / 7.0) * 0.2).astype("<f4").tobytes())
    r.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    text = b"counting to seven"
    r.raw_input_contents.append(len(text).to_bytes(4, "little") + text)
    return r


class Fuzzer:
    """Sends requests to a server and tallies the status codes it gets."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.codes: collections.Counter = collections.Counter()
        self.unexpected: list[str] = []

    def close(self) -> None:
        self.channel.close()

    def unary(self, request: pb.ModelInferRequest) -> None:
        try:
            self.stub.ModelInfer(request, timeout=60)
            code, detail = "OK", ""
        except grpc.RpcError as e:
            code, detail = e.code().name, e.details() or ""
        self._tally(code, detail)

    def stream(self, requests: list[pb.ModelInferRequest]) -> None:
        try:
            for response in self.stub.ModelStreamInfer(iter(requests), timeout=60):
                self._tally("STREAM_ERROR" if response.error_message else "STREAM_OK", "")
        except grpc.RpcError as e:  # the stream itself must not break
            self._tally(f"STREAM_{e.code().name}", e.details() or "")

    def _tally(self, code: str, detail: str) -> None:
        self.codes[code] += 1
        if code.removeprefix("STREAM_") not in EXPECTED | {"ERROR"}:
            self.unexpected.append(f"{code}: {detail}")

    def healthy(self) -> bool:
        return self.stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live and \
            self.stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready

    def answer(self) -> np.ndarray:
        response = self.stub.ModelInfer(valid_request(), timeout=60)
        return np.frombuffer(response.raw_output_contents[0], dtype="<f4")


def fuzz(address: str, count: int, stream_share: float = 0.1) -> dict:
    """Send at least ``count`` hostile requests, about ``stream_share`` of them inside streams of
    1-6 requests; the status tallies and the checks after."""
    fuzzer = Fuzzer(address)
    before = fuzzer.answer()
    quiet = dict(database=None, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

    @settings(max_examples=max(int(count * stream_share / 3.5), 1), **quiet)
    @given(st.lists(infer_requests(), min_size=1, max_size=6))
    def stream(requests):
        fuzzer.stream(requests)

    start = time.perf_counter()
    stream()
    in_streams = sum(fuzzer.codes.values())

    @settings(max_examples=max(count - in_streams, 1), **quiet)
    @given(infer_requests())
    def unary(request):
        fuzzer.unary(request)

    unary()
    seconds = time.perf_counter() - start
    result = {"requests": sum(fuzzer.codes.values()), "in_streams": in_streams, "seconds": seconds,
              "codes": dict(fuzzer.codes), "unexpected": fuzzer.unexpected[:20],
              "healthy_after": fuzzer.healthy(),
              "same_answer_after": bool(np.allclose(fuzzer.answer(), before, atol=1e-6))}
    fuzzer.close()
    return result


def main() -> None:
    from mmrt.benchmarks.client import ServerProcess

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("runs/quickstart/bundle"))
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--out", type=Path, default=Path("runs/fuzz"))
    args = p.parse_args()
    with ServerProcess(args.bundle, threads=1) as server:
        result = fuzz(server.url, args.requests)
    result["server_exit_code"] = server.proc.returncode  # 0: it drained and stopped cleanly
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = not result["unexpected"] and result["healthy_after"] and result["same_answer_after"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
