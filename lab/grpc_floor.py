"""The floor under any Python gRPC server of this kind: what grpc.aio itself costs an answer.

    python -m lab.grpc_floor [--bundle runs/quickstart/bundle] [--hop] [--out runs/grpc-floor]

A servicer that answers ModelInfer at once (it reads the raw inputs and returns a canned SCORES
tensor; no engine) runs on `mmrt serve`'s event loop (uvloop where installed) with its gRPC
channel options, in a subprocess; with ``--hop`` each answer is made on a worker thread, as
`mmrt serve` makes its own, which prices the hand-off. The same tritonclient requests as
`lab.serve_latency` (one example at the bundle's sizes: all modalities, video dropped,
text only) measure its p50 at one client and, at 16 clients, its throughput and the CPU each side
spends an answer. Whatever `mmrt serve` adds to the engine cannot go below this on the same machine.

Quoted in docs/results/serving.md."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from lab.floor_server import MODEL, FloorServer
from mmrt.benchmarks.client import triton_inputs
from mmrt.benchmarks.timing import machine
from mmrt.runtime.backends.loaded_bundle import open_bundle

from .serve_latency import WORKLOADS, clients_rps, inputs_for, write_report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("runs/quickstart/bundle"))
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--out", type=Path, default=Path("runs/grpc-floor"))
    p.add_argument("--hop", action="store_true",
                   help="answer on a worker thread, as mmrt serve does (the cost of the hand-off)")
    args = p.parse_args(argv)
    if not (args.bundle / "manifest.json").is_file():
        sys.exit(f"{args.bundle}: no bundle (run 'make quickstart' or 'mmrt export' first)")
    m = open_bundle(args.bundle).manifest
    arrays = inputs_for(m, np.random.default_rng(0))
    results = {}
    with FloorServer(args.hop) as floor:
        for label, carried in WORKLOADS.items():
            carried = [x for x in m.modalities if carried is None or x in carried]
            request = triton_inputs(arrays, carried)
            load = clients_rps(floor.url, MODEL, [request], args.clients, args.seconds, floor.proc.pid)
            results[label] = {"modalities": carried, "p50_ms": floor.p50_ms(request, args.repeats),
                              "rps": load.rps, "server_cpu_ms": load.server_cpu_ms,
                              "client_cpu_ms": load.client_cpu_ms, "cores_busy": load.cores_busy}
            print(label, json.dumps(results[label]), file=sys.stderr)
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "bundle": str(args.bundle),
              "clients": args.clients, "hop": args.hop, "workloads": results}
    write_report(args.out, report, render(report))


def render(r: dict) -> str:
    w = r["workloads"]
    rows = [("p50 at one client", "p50_ms", "{:.2f} ms"),
            (f"throughput, {r['clients']} clients", "rps", "{:.0f} req/s"),
            ("server CPU per answer", "server_cpu_ms", "{:.2f} ms"),
            ("clients' CPU per answer", "client_cpu_ms", "{:.2f} ms"),
            ("cores busy, server and clients", "cores_busy", "{:.2f}")]
    where = "on a worker thread" if r["hop"] else "on the event loop"
    lines = [f"# The grpc.aio floor: a server that answers at once, {where} ({r['date']}, {r['machine']})",
             "", f"Requests of `{r['bundle']}`'s sizes; `python -m lab.grpc_floor"
             f"{' --hop' if r['hop'] else ''}`.", "",
             "| measure | " + " | ".join(f"{k} ({'+'.join(v['modalities'])})" for k, v in w.items()) + " |",
             "|---|" + "---|" * len(w)]
    for label, key, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt.format(v[key]) for v in w.values()) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
