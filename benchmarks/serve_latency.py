"""`mmrt serve` against in-process ONNX Runtime, and dynamic batching on against off (serving targets).

    python -m mmrt.benchmarks.serve_latency [--bundle runs/quickstart/bundle] [--threads 2]

1. Latency at batch 1, all modalities: the p50 of tritonclient -> `mmrt serve` (a subprocess on
   loopback) against the same encoder and head graphs run in this process with ONNX Runtime on
   the same (already model-sized) inputs, timed in alternating blocks.
2. Throughput: 16 concurrent tritonclient clients, each sending a random non-empty modality set,
   against the server with per-encoder batching on and off (alternating rounds, median).
Writes ``report.md`` and ``report.json`` under --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

from mmrt.benchmarks.client import ServerProcess, batch_of_one, triton_inputs
from mmrt.benchmarks.timing import machine, paired_ms
from mmrt.bundle import input_name
from mmrt.modalities import all_subsets
from mmrt.runtime.bundle import open_bundle
from mmrt.runtime.preprocess import Preprocessor
from mmrt.runtime.sessions import SessionOptions


def inputs_for(manifest, rng) -> dict:
    """One example already at the model's sizes (so the server's preprocessing is trivial)."""
    p = manifest.preprocessing
    return {"audio": (rng.standard_normal(p["clip_samples"]) * 0.1).astype(np.float32),
            "video": rng.integers(0, 256, (p["frames"], p["frame_size"], p["frame_size"], 3), dtype=np.uint8),
            "text": b"my son counting to seven in the garden"}


def latency(bundle: Path, threads: int, repeats: int, rounds: int = 5) -> dict:
    import tritonclient.grpc as tc

    loaded = open_bundle(bundle, SessionOptions(threads=threads))
    m = loaded.manifest
    arrays = inputs_for(m, np.random.default_rng(0))
    ready = {x: Preprocessor(bundle, m)(x, batch_of_one(x, arrays[x])) for x in m.modalities}

    def in_process():
        z = [loaded.encoders[x].run({input_name(x): ready[x]})["EMBEDDING"] for x in m.modalities]
        loaded.head.run({"EMBEDDING": np.mean(z, axis=0).astype(np.float32)})

    with ServerProcess(bundle, threads) as server:
        client = tc.InferenceServerClient(server.url)
        request = triton_inputs(arrays, m.modalities)

        def served():
            client.infer(m.name, request)

        in_process_ms, served_ms = paired_ms(in_process, served, repeats, rounds)
    p50 = {"in_process": in_process_ms, "served": served_ms}
    return {"p50_ms": p50, "ratio": p50["served"] / p50["in_process"], "modalities": list(m.modalities)}


def throughput(bundle: Path, threads: int, clients: int, seconds: float, batching: bool) -> float:
    import tritonclient.grpc as tc

    manifest = open_bundle(bundle, SessionOptions(threads=1)).manifest
    arrays = inputs_for(manifest, np.random.default_rng(1))
    subsets = [[m for m in manifest.modalities if m in s] for s in all_subsets(manifest.modalities)]
    done = [0] * clients
    with ServerProcess(bundle, threads, batching=batching) as server:
        stop_at = time.perf_counter() + seconds + 1.0

        def client_loop(i: int) -> None:
            client = tc.InferenceServerClient(server.url)
            rng = np.random.default_rng(i)
            requests = [triton_inputs(arrays, s) for s in subsets]
            warm_until = time.perf_counter() + 1.0
            while time.perf_counter() < stop_at:
                client.infer(manifest.name, requests[rng.integers(len(requests))])
                if time.perf_counter() > warm_until:
                    done[i] += 1

        workers = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    return sum(done) / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("runs/quickstart/bundle"))
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads, in and out of the server")
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=2, help="throughput rounds per setting (alternating)")
    p.add_argument("--out", type=Path, default=Path("runs/serve-latency"))
    args = p.parse_args()
    if not (args.bundle / "manifest.json").is_file():
        sys.exit(f"{args.bundle}: no bundle (run 'make quickstart' or 'mmrt export' first)")
    lat = latency(args.bundle, args.threads, args.repeats)
    rps: dict = {"on": [], "off": []}
    for _ in range(args.rounds):
        for setting in ("on", "off"):
            rps[setting].append(throughput(args.bundle, args.threads, args.clients, args.seconds,
                                           batching=setting == "on"))
    on, off = statistics.median(rps["on"]), statistics.median(rps["off"])
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "bundle": str(args.bundle),
              "threads": args.threads, "latency": lat,
              "throughput_rps": {"batching_on": rps["on"], "batching_off": rps["off"], "ratio": on / off},
              "clients": args.clients}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    text = (f"# mmrt serve: latency and batching ({report['date']}, {report['machine']}, "
            f"{args.threads} ORT threads)\n\n"
            f"| measure | value |\n|---|---|\n"
            f"| p50 batch 1, {'+'.join(lat['modalities'])}, in-process ONNX Runtime | "
            f"{lat['p50_ms']['in_process']:.2f} ms |\n"
            f"| p50 batch 1, tritonclient -> mmrt serve | {lat['p50_ms']['served']:.2f} ms |\n"
            f"| ratio (target <= 1.15) | {lat['ratio']:.2f}x |\n"
            f"| throughput, {args.clients} clients, mixed modality sets, batching on | {on:.1f} req/s |\n"
            f"| same, batching off | {off:.1f} req/s |\n"
            f"| ratio (target >= 2) | {on / off:.2f}x |\n")
    (args.out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
