"""Hostile input for `mmrt serve`: hypothesis-generated malformed KServe v2 requests, gRPC and REST.

    python -m lab.fuzz --bundle runs/quickstart/bundle [--requests 10000]

Random input names, datatypes, ranks (up to 70) and dims (zero, negative, huge),
raw_input_contents counts that do not match the inputs, payloads of the wrong length, random
parameters, model names and versions, 100 KB strings in every field a message could echo, and
stream requests with broken sequence flags; then well-formed requests built to cost the most
(``fuzz_cost``) and stream and deadline abuse (``fuzz_streams``), all while idle and half-open
streams hold the stream slots they can, hostile REST bodies (``fuzz_rest``), and hostile
control-plane and shared-memory calls over both (``fuzz_control``).
Pass: the server never crashes, every request gets a
proper status (never UNKNOWN, never a dropped connection) with a short message, health stays
SERVING, and a valid request afterwards gets the right answer. The test suite runs the same
strategies with fewer examples (tests/test_fuzz.py).

Quoted in docs/reliability.md."""

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

from lab.fuzz_cost import Costs, costly
from lab.fuzz_inputs import DATATYPES, DIMS, LONG, MAX_DETAIL, NAMES
from lab.fuzz_streams import HeldStreams, shared_sequence, short_deadlines
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc

# Statuses a hostile request may get; UNKNOWN (an unhandled exception) or a broken connection fail.
EXPECTED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "UNAUTHENTICATED"}


@st.composite
def parameters(draw, target) -> None:
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["sequence_id", "sequence_start", "sequence_end", "priority", "timeout",
                                    "binary_data_output", "shared_memory_region", "shared_memory_byte_size",
                                    "shared_memory_offset", draw(st.text(max_size=8)), LONG]))
        kind = draw(st.sampled_from(["bool_param", "int64_param", "string_param", "double_param",
                                     "uint64_param"]))
        value = {"bool_param": st.booleans(), "int64_param": st.integers(-(1 << 63), (1 << 63) - 1),
                 "string_param": st.one_of(st.text(max_size=12), st.just(LONG)),
                 "double_param": st.floats(allow_nan=True),
                 "uint64_param": st.integers(0, (1 << 64) - 1)}[kind]
        setattr(target[key], kind, draw(value))


@st.composite
def infer_requests(draw) -> pb.ModelInferRequest:
    # mostly the right model, so that most requests reach the tensor checks behind it
    r = pb.ModelInferRequest(model_name=draw(st.sampled_from(["mmrt"] * 8 + ["", "other", LONG])),
                             model_version=draw(st.sampled_from([""] * 6 + ["1"] * 3 + ["2", LONG])),
                             id=draw(st.one_of(st.text(max_size=8), st.just(LONG))))
    draw(parameters(r.parameters))
    n = draw(st.integers(0, 4))
    raw_mode = draw(st.sampled_from(["raw", "contents", "mixed"]))
    for _ in range(n):
        t = r.inputs.add(name=draw(st.sampled_from(NAMES)), datatype=draw(st.sampled_from(DATATYPES)),
                         shape=draw(st.lists(DIMS, max_size=draw(st.sampled_from([6] * 9 + [70])))))
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
        r.outputs.add(name=draw(st.sampled_from(["SCORES", "EMBEDDING", "PROBS", "", LONG])))
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
                self._tally("STREAM_ERROR" if response.error_message else "STREAM_OK", response.error_message)
        except grpc.RpcError as e:  # the stream itself must not break
            self._tally(f"STREAM_{e.code().name}", e.details() or "")

    def _tally(self, code: str, detail: str, expected: set[str] = EXPECTED) -> None:
        self.codes[code] += 1
        if code.removeprefix("STREAM_") not in expected | {"ERROR"}:
            self.unexpected.append(f"{code}: {detail[:200]}")
        elif len(detail) > MAX_DETAIL:
            self.unexpected.append(f"{code} with a {len(detail)}-character message: {detail[:200]}")

    def healthy(self) -> bool:
        return self.stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live and \
            self.stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready

    def answer(self) -> np.ndarray:
        response = self.stub.ModelInfer(valid_request(), timeout=60)
        return np.frombuffer(response.raw_output_contents[0], dtype="<f4")


def fuzz(address: str, count: int, stream_share: float = 0.1, cost_share: float = 0.1, held: int = 8,
         pid: int | None = None, max_bytes: int = (4 << 20) - (64 << 10), rest: str | None = None,
         rest_share: float = 0.2, control_share: float = 0.1, forbidden: tuple[str, ...] = ()) -> dict:
    """Send at least ``count`` hostile requests: about ``stream_share`` inside streams of 1-6
    requests and ``cost_share`` built to cost the most (under ``max_bytes``), then shared-sequence
    and short-deadline abuse, all while ``held`` idle and ``held`` half-open streams hang on;
    with the server's ``rest`` address, ``rest_share`` more as REST bodies; ``control_share`` more
    as control-plane and shared-memory calls, whose answers must not name a ``forbidden`` path.
    The status tallies, the costs against normal requests (memory too, given the server's
    ``pid``) and the checks after."""
    fuzzer = Fuzzer(address)
    before = fuzzer.answer()
    hanging = HeldStreams(address, idle=held, half_open=held)
    quiet = dict(database=None, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

    @settings(max_examples=max(int(count * stream_share / 3.5), 1), **quiet)
    @given(st.lists(infer_requests(), min_size=1, max_size=6))
    def stream(requests):
        fuzzer.stream(requests)

    start = time.perf_counter()
    stream()
    in_streams = sum(fuzzer.codes.values())
    costs = Costs(fuzzer.stub, pid)

    @settings(max_examples=max(int(count * cost_share), 1), **quiet)
    @given(costly(max_bytes))
    def expensive(case):
        fuzzer._tally(costs.record(*case), "")

    expensive()

    @settings(max_examples=max(count - sum(fuzzer.codes.values()), 1), **quiet)
    @given(infer_requests())
    def unary(request):
        fuzzer.unary(request)

    unary()
    for code, n in shared_sequence(address, rounds=100).items():
        fuzzer.codes[f"SHARED_{code}"] += n
        if code not in EXPECTED:
            fuzzer.unexpected.append(f"shared sequence: {n} x {code}")
    for code, n in short_deadlines(address, count=50).items():
        fuzzer.codes[f"DEADLINE_{code}"] += n
        if code not in EXPECTED | {"DEADLINE_EXCEEDED"}:
            fuzzer.unexpected.append(f"short deadline: {n} x {code}")
    if rest is not None:
        from lab.fuzz_rest import fuzz_rest

        rest_codes, rest_unexpected = fuzz_rest(rest, max(int(count * rest_share), 1))
        fuzzer.codes.update({f"REST_{code}": n for code, n in rest_codes.items()})
        fuzzer.unexpected += [f"REST {u}" for u in rest_unexpected]
    if control_share > 0:
        from lab.fuzz_control import fuzz_control

        control_codes, control_unexpected = fuzz_control(address, max(int(count * control_share), 1), rest,
                                                         forbidden)
        fuzzer.codes.update({f"CONTROL_{code}": n for code, n in control_codes.items()})
        fuzzer.unexpected += [f"control {u}" for u in control_unexpected]
    healthy_while_held = fuzzer.healthy()
    held_codes = hanging.close()
    seconds = time.perf_counter() - start
    result = {"requests": sum(fuzzer.codes.values()), "in_streams": in_streams, "seconds": seconds,
              "codes": dict(fuzzer.codes), "unexpected": fuzzer.unexpected[:20],
              "held_streams": held_codes, "healthy_with_streams_held": healthy_while_held,
              "costs": costs.report(), "healthy_after": fuzzer.healthy(),
              "same_answer_after": bool(np.allclose(fuzzer.answer(), before, atol=1e-6))}
    fuzzer.close()
    return result


def main() -> None:
    from mmrt.benchmarks.client import ServerProcess
    from mmrt.runtime.frontends.server import ServerOptions

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("runs/quickstart/bundle"))
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--out", type=Path, default=Path("runs/fuzz"))
    args = p.parse_args()
    defaults = ServerOptions()  # the server runs with its default limits
    held = defaults.admission.max_streams // 2 - 1  # idle and as many half-open: all but 2 slots
    max_bytes = (defaults.max_message_mb << 20) - (64 << 10)  # room for the message's framing
    with ServerProcess(args.bundle, threads=1, http=True) as server:
        result = fuzz(server.url, args.requests, held=held, pid=server.proc.pid, max_bytes=max_bytes,
                      rest=server.http_url, forbidden=(str(args.bundle.resolve()),))
    result["server_exit_code"] = server.proc.returncode  # 0: it drained and stopped cleanly
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = not result["unexpected"] and result["healthy_after"] and result["same_answer_after"] \
        and result["healthy_with_streams_held"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
