"""Health and inference latency with the stream cap's worth of idle streams open.

    python -m lab.idle_streams --bundle runs/quickstart/bundle [--requests 300]

Starts `mmrt serve` (default limits: 64 streams), measures health checks and audio+text
inferences one after another with no stream open, then again with 64 streams open that send
nothing, in the same run. Target: p99 under 100 ms for both, with the streams held; a 65th
stream is refused at once (RESOURCE_EXHAUSTED).

Quoted in docs/reliability.md."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lab.fuzz_streams import HeldStreams
from mmrt.benchmarks.client import ServerProcess
from mmrt.benchmarks.timing import machine
from mmrt.runtime.frontends.admission import AdmissionOptions
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc


def audio_text() -> pb.ModelInferRequest:
    r = pb.ModelInferRequest(model_name="mmrt")
    r.inputs.add(name="AUDIO", datatype="FP32", shape=[1, 32_000])
    r.raw_input_contents.append((np.sin(np.arange(32_000) / 7.0) * 0.2).astype("<f4").tobytes())
    r.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    r.raw_input_contents.append((17).to_bytes(4, "little") + b"counting to seven")
    return r


def latencies(channel, n: int) -> dict:
    health = health_pb2_grpc.HealthStub(channel)
    infer = pb_grpc.GRPCInferenceServiceStub(channel)
    out = {}
    for name, call in (("health", lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=10)),
                       ("infer", lambda: infer.ModelInfer(audio_text(), timeout=10))):
        call()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1e3)
        out[name] = {"p50_ms": round(float(np.percentile(times, 50)), 2),
                     "p99_ms": round(float(np.percentile(times, 99)), 2)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("runs/quickstart/bundle"))
    p.add_argument("--requests", type=int, default=300)
    args = p.parse_args()
    cap = AdmissionOptions().max_streams
    with ServerProcess(args.bundle, threads=1) as server, grpc.insecure_channel(server.url) as channel:
        quiet = latencies(channel, args.requests)
        held = HeldStreams(server.url, idle=cap, half_open=0)
        time.sleep(1.0)
        loaded = latencies(channel, args.requests)
        try:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            next(stub.ModelStreamInfer(iter([audio_text()]), timeout=10))
            extra = "OK"
        except grpc.RpcError as e:
            extra = e.code().name
        held.close()
    print(json.dumps({"machine": machine(), "date": time.strftime("%Y-%m-%d"), "idle_streams": cap,
                      "no_streams": quiet, "with_idle_streams": loaded, "one_stream_more": extra}, indent=1))


if __name__ == "__main__":
    main()
