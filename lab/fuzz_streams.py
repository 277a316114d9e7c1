"""Stream and timing abuse for the fuzzer: idle and half-open streams that sit on their slots,
two connections driving one sequence at once, and deadlines shorter than the work.
Every status must be a proper one, and the sequence store must never answer INTERNAL.

Quoted in docs/reliability.md."""

from __future__ import annotations

import queue
import random
import threading

import grpc
import numpy as np

from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc


def in_sequence(r: pb.ModelInferRequest, sequence: int | None, start: bool = False,
                end: bool = False) -> pb.ModelInferRequest:
    """``r`` with Triton's sequence parameters set (none for ``sequence`` None)."""
    if sequence is not None:
        r.parameters["sequence_id"].int64_param = sequence
        r.parameters["sequence_start"].bool_param = start
        r.parameters["sequence_end"].bool_param = end
    return r


def text_request(sequence=None, start=False, end=False, batch: int = 1, text: bytes = b"seven"):
    r = pb.ModelInferRequest(model_name="mmrt")
    r.inputs.add(name="TEXT", datatype="BYTES", shape=[batch]).contents.bytes_contents.extend([text] * batch)
    return in_sequence(r, sequence, start, end)


class HeldStreams:
    """Streams opened and left hanging: ``idle`` send nothing, ``half_open`` send one request and
    then neither send nor close. ``close()`` lets them go."""

    def __init__(self, address: str, idle: int, half_open: int):
        self.channel = grpc.insecure_channel(address)
        stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.release = threading.Event()
        self.calls = []
        for i in range(idle + half_open):
            first = [text_request()] if i >= idle else []
            self.calls.append(stub.ModelStreamInfer(self._requests(first), timeout=600))

    def _requests(self, first):
        yield from first
        self.release.wait()

    def close(self) -> dict:
        self.release.set()
        codes = {}
        for call in self.calls:
            try:
                for _ in call:
                    pass
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            codes[code] = codes.get(code, 0) + 1
        self.channel.close()
        return codes


def shared_sequence(address: str, rounds: int, seed: int = 0) -> dict:
    """Two connections send start/middle/end requests of the same sequences in random order."""
    codes: queue.Queue = queue.Queue()

    def drive(k: int) -> None:
        rng = random.Random(seed + k)
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for i in range(rounds):
                flag = rng.choice(["start", "middle", "end"])
                batch = rng.choice([1, 1, 1, 2])  # sometimes another batch size than the sequence's
                r = text_request(sequence=1 + i // 4, start=flag == "start", end=flag == "end", batch=batch)
                try:
                    stub.ModelInfer(r, timeout=30)
                    codes.put("OK")
                except grpc.RpcError as e:
                    codes.put(e.code().name)

    threads = [threading.Thread(target=drive, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out: dict = {}
    while not codes.empty():
        code = codes.get()
        out[code] = out.get(code, 0) + 1
    return out


def short_deadlines(address: str, count: int, seed: int = 0) -> dict:
    """Requests whose deadline (0.1-20 ms) is shorter than their work: DEADLINE_EXCEEDED or OK."""
    rng = np.random.default_rng(seed)
    r = pb.ModelInferRequest(model_name="mmrt")
    r.inputs.add(name="VIDEO", datatype="UINT8", shape=[4, 8, 64, 64, 3])
    r.raw_input_contents.append(bytes(4 * 8 * 64 * 64 * 3))
    out: dict = {}
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(count):
            try:
                stub.ModelInfer(r, timeout=float(rng.uniform(1e-4, 0.02)))
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            out[code] = out.get(code, 0) + 1
    return out
