"""Well-formed requests built to cost the server the most: batches past the limit, the longest
audio rows and texts, extreme frame sizes and aspect ratios, many frames, deep ranks, each under
the message limit. Each one's server time is compared with a normal request's of the same
modality and, where the server is a process of ours, the peak resident memory it adds.

Targets (reported by ``lab.fuzz``, never asserted on time in tests): no request
takes more than 10x a normal request's time (per row, for an answered batch) or adds more than
64 MB to the peak.

Quoted in docs/reliability.md."""

from __future__ import annotations

import statistics
import struct
import time
from pathlib import Path

import grpc
import numpy as np
from hypothesis import strategies as st

from lab.soak import rss_kib
from mmrt.runtime.protocol import grpc_service_pb2 as pb

AUDIO_ROWS = [1, 100, 16_000, 32_000, 960_000, 960_001, 4_000_000]
SIDES = [1, 2, 32, 64, 4096, 4097, 60_000]
TEXT_BYTES = [0, 10, 4096, 4097, 100_000]
BATCHES = [1, 2, 32, 33, 1000, 20_000]


def _input(r, name: str, datatype: str, shape: list[int], raw: bytes) -> None:
    r.inputs.add(name=name, datatype=datatype, shape=shape)
    r.raw_input_contents.append(raw)


def normal(modality: str) -> pb.ModelInferRequest:
    r = pb.ModelInferRequest(model_name="mmrt")
    if modality == "audio":
        _input(r, "AUDIO", "FP32", [1, 32_000], np.zeros(32_000, "<f4").tobytes())
    elif modality == "video":
        _input(r, "VIDEO", "UINT8", [1, 8, 64, 64, 3], bytes(8 * 64 * 64 * 3))
    else:
        _input(r, "TEXT", "BYTES", [1], struct.pack("<I", 17) + b"counting to seven")
    return r


@st.composite
def costly(draw, max_bytes: int) -> tuple[str, str, pb.ModelInferRequest]:
    """(modality, description, request) with every payload under ``max_bytes``."""
    modality = draw(st.sampled_from(["audio", "video", "text", "rank"]))
    batch = draw(st.sampled_from(BATCHES))
    r = pb.ModelInferRequest(model_name="mmrt")
    if modality == "audio":
        samples = draw(st.sampled_from([n for n in AUDIO_ROWS if 4 * n <= max_bytes]))
        batch = max(1, min(batch, max_bytes // (4 * samples)))
        _input(r, "AUDIO", "FP32", [batch, samples], bytes(4 * batch * samples))
        return "audio", f"AUDIO [{batch}, {samples}]", r
    if modality == "video":
        t = draw(st.sampled_from([1, 8, 1024, 1025]))
        h, w = draw(st.sampled_from(SIDES)), draw(st.sampled_from(SIDES))
        batch = max(1, min(batch, max_bytes // (3 * t * h * w)))
        t = max(1, min(t, max_bytes // (3 * batch * h * w)))
        if 3 * batch * t * h * w > max_bytes:
            h = w = 32
        _input(r, "VIDEO", "UINT8", [batch, t, h, w, 3], bytes(3 * batch * t * h * w))
        return "video", f"VIDEO [{batch}, {t}, {h}, {w}, 3]", r
    if modality == "text":
        size = draw(st.sampled_from([n for n in TEXT_BYTES if n + 4 <= max_bytes]))
        batch = max(1, min(batch, max_bytes // (4 + size)))
        _input(r, "TEXT", "BYTES", [batch], (struct.pack("<I", size) + b"x" * size) * batch)
        return "text", f"TEXT [{batch}] of {size} bytes each", r
    rank = draw(st.integers(6, 70))
    _input(r, "AUDIO", "FP32", [1] * rank, bytes(4))
    return "audio", f"AUDIO of rank {rank}", r


class Costs:
    """Times requests (and peak memory when the server is a process we can read) against normal ones."""

    def __init__(self, stub, pid: int | None = None):
        self.stub, self.pid = stub, pid
        self.normal_mb: dict[str, float] = {}
        self.normal = {m: self._median(m) for m in ("audio", "video", "text")}
        self.worst_time: tuple[float, str] = (0.0, "")
        self.worst_memory: tuple[float, str] = (0.0, "")

    def _median(self, modality: str) -> float:
        request = normal(modality)
        self.send(request)  # warm-up
        runs = [self.send(request) for _ in range(15)]
        self.normal_mb[modality] = max(mb for _, _, mb in runs)
        return statistics.median(seconds for seconds, _, _ in runs)

    def send(self, request) -> tuple[float, str, float]:
        """(seconds, status, peak MB added) of one request."""
        before = self._reset_peak()
        start = time.perf_counter()
        try:
            self.stub.ModelInfer(request, timeout=120)
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        seconds = time.perf_counter() - start
        return seconds, code, (self._peak() - before) / 1024 if before is not None else 0.0

    def record(self, modality: str, what: str, request) -> str:
        """Time one request against a normal one: an answered request against as many normal rows
        as it carries (a full batch is normal use), a refused one against a single normal request."""
        seconds, code, added_mb = self.send(request)
        rows = max(1, request.inputs[0].shape[0]) if code == "OK" else 1
        ratio = seconds / (self.normal[modality] * rows)
        self.worst_time = max(self.worst_time, (ratio, f"{what}: {code}, {seconds * 1e3:.1f} ms"))
        self.worst_memory = max(self.worst_memory, (added_mb - self.normal_mb[modality], f"{what}: {code}"))
        return code

    def _reset_peak(self) -> int | None:
        """Reset the server's peak resident memory (Linux: clear_refs 5); its resident KiB now."""
        if self.pid is None:
            return None
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return rss_kib(self.pid)

    def _peak(self) -> int:
        return rss_kib(self.pid, "VmHWM")

    def report(self) -> dict:
        out = {"normal_ms": {m: round(s * 1e3, 2) for m, s in self.normal.items()},
               "worst_time_ratio": round(self.worst_time[0], 2), "worst_time": self.worst_time[1]}
        if self.pid is not None:
            out.update(normal_added_peak_mb={m: round(v, 1) for m, v in self.normal_mb.items()},
                       worst_added_peak_mb_over_normal=round(self.worst_memory[0], 1),
                       worst_memory=self.worst_memory[1])
        return out
