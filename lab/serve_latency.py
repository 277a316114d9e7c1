"""Where a served request's time goes, and how close the server comes to the compute bound.

    python -m lab.serve_latency [--bundle runs/quickstart/bundle] [--threads 2] [--http]

Per workload (all modalities, video dropped, text only), one `mmrt serve` subprocess on loopback:
1. Latency at batch 1, timed in alternating blocks against the same request answered in this
   process by the same engine (preprocessing and graphs, no protocol): the *added time* is the
   served p50 minus the in-process p50. Beside it, the *floor*: the p50 of the same request
   answered at once by a grpc.aio server with `mmrt serve`'s loop, options and hand-off but no
   engine (lab/floor_server.py), and the added time *above the floor* (added minus floor: what
   mmrt's own work costs beyond what any server of its kind pays); an empty call (ModelMetadata)
   through the same client, and the engine time the server reports (``server_time_ns``).
2. Throughput of 16 tritonclient clients against the *compute bound*: the requests per second the
   same graphs reach in this process at their best batch size (1-32 rows), all cores. Beside it,
   where the cores went: the server's CPU time per answer, the clients', and the same engine's
   when 16 threads of this process call it with no protocol at all.
3. Mixed modality sets from 16 clients with per-encoder batching on and off.
``--http`` times the same requests through tritonclient.http too. Writes report.md / report.json.

Quoted in docs/reliability.md, docs/results/serving.md, docs/serving.md and (through
docs/results/data/serving.json) docs/results/figures.md."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab.floor_server import MODEL as FLOOR_MODEL
from lab.floor_server import FloorServer
from lab.provenance import command, commit
from mmrt.benchmarks.client import ServerProcess, batch_of_one, triton_inputs
from mmrt.benchmarks.timing import interleaved_ms, machine, paired_ms, timed
from mmrt.bundle import input_name
from mmrt.modalities import all_subsets
from mmrt.runtime.backends.loaded_bundle import open_bundle
from mmrt.runtime.backends.memory import tune_malloc
from mmrt.runtime.backends.sessions import SessionOptions
from mmrt.runtime.engine.batcher import BatchingOptions
from mmrt.runtime.engine.engine import Engine

WORKLOADS = {"all": None, "video dropped": ("audio", "text"), "text only": ("text",)}
BATCHES = (1, 2, 4, 8, 16, 32)


def inputs_for(manifest, rng) -> dict:
    """One example already at the model's sizes (so the server's preprocessing is light)."""
    p = manifest.inputs
    return {"audio": (rng.standard_normal(p.clip_samples) * 0.1).astype(np.float32),
            "video": rng.integers(0, 256, (p.frames, p.frame_size, p.frame_size, 3), dtype=np.uint8),
            "text": b"my son counting to seven in the garden"}


def tensors_for(arrays: dict, carried, rows: int = 1) -> dict:
    return {input_name(m): np.repeat(batch_of_one(m, arrays[m]), rows, axis=0) for m in carried}


def compute_bound(engine: Engine, arrays: dict, carried, repeats: int = 20) -> tuple[float, int]:
    """Requests per second of the engine in this process at its best batch size, and that size."""
    best = (0.0, 1)
    for rows in BATCHES:
        tensors = tensors_for(arrays, carried, rows)
        engine.infer(tensors)
        seconds = statistics.median(timed(lambda t=tensors: engine.infer(t)) for _ in range(repeats))
        best = max(best, (rows / seconds, rows))
    return best


def engine_cpu_ms(engine: Engine, arrays: dict, carried, callers: int, requests: int = 320) -> float:
    """CPU time per request of the same engine in this process, called from ``callers`` threads at
    once (batches form as in the server): what the server would spend with no protocol at all."""
    tensors = tensors_for(arrays, carried)
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(lambda _: engine.infer(tensors), range(2 * callers)))
        start = time.process_time()
        list(pool.map(lambda _: engine.infer(tensors), range(requests)))
        return 1000 * (time.process_time() - start) / requests


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Load:
    rps: float  # answers per second from all clients together
    server_cpu_ms: float | None = None  # the server's CPU time per answer (with ``server_pid``)
    client_cpu_ms: float = 0.0  # this process's (the clients') CPU time per answer
    cores_busy: float = 0.0  # server and clients together, out of the machine's cores


def clients_rps(url: str, model: str, requests: list, clients: int, seconds: float,
                server_pid: int | None = None) -> Load:
    """Answers per second from ``clients`` tritonclient.grpc clients, each cycling through ``requests``,
    over ``seconds`` after a second of warm-up; with ``server_pid``, the CPU each side spent an answer."""
    import tritonclient.grpc as tc

    done = [0] * clients
    measure_from = time.perf_counter() + 1.0
    stop_at = measure_from + seconds

    def client_loop(i: int) -> None:
        client, rng = tc.InferenceServerClient(url), np.random.default_rng(i)
        while time.perf_counter() < stop_at:
            client.infer(model, requests[rng.integers(len(requests))])
            done[i] += time.perf_counter() > measure_from

    def cpu() -> tuple[float, float]:
        return (process_cpu_s(server_pid) if server_pid else 0.0), time.process_time()

    workers = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for w in workers:
        w.start()
    time.sleep(max(measure_from - time.perf_counter(), 0))
    server0, client0 = cpu()
    time.sleep(max(stop_at - time.perf_counter(), 0))
    server1, client1 = cpu()
    for w in workers:
        w.join()
    answers = max(sum(done), 1)
    return Load(sum(done) / seconds, 1000 * (server1 - server0) / answers if server_pid else None,
                1000 * (client1 - client0) / answers, (server1 - server0 + client1 - client0) / seconds)


def server_ms(result) -> float:
    return result.get_response().parameters["server_time_ns"].int64_param / 1e6


ONE_CLIENT = ("in_process_ms", "served_ms", "added_ms", "floor_ms", "above_floor_ms")


def one_client(client, name: str, floor_client, engine: Engine, request: list, tensors: dict,
               reported: list, repeats: int) -> dict:
    """One round of the one-client timings: the engine in-process, served, and the floor's answer
    to the same request, in blocks taken in turn."""
    in_process, served, floor_ms = interleaved_ms(
        (lambda: engine.infer(tensors), lambda: reported.append(server_ms(client.infer(name, request))),
         lambda: floor_client.infer(FLOOR_MODEL, request)), repeats)
    return {"in_process_ms": in_process, "served_ms": served, "added_ms": served - in_process,
            "floor_ms": floor_ms, "above_floor_ms": served - in_process - floor_ms}


def workload(server: ServerProcess, floor: FloorServer, engine: Engine, arrays: dict, carried, args) -> dict:
    """One workload's figures. The one-client timings are the round whose added time above the
    floor is the median of the rounds (so that they add up), with every round's in ``each_round``."""
    import tritonclient.grpc as tc

    name = engine.manifest.name
    client, floor_client = tc.InferenceServerClient(server.url), tc.InferenceServerClient(floor.url)
    request, tensors = triton_inputs(arrays, carried), tensors_for(arrays, carried)
    reported: list[float] = []
    rounds = [one_client(client, name, floor_client, engine, request, tensors, reported, args.repeats)
              for _ in range(args.latency_rounds)]
    each = {key: [r[key] for r in rounds] for key in ONE_CLIENT}
    middle = sorted(rounds, key=lambda r: r["above_floor_ms"])[len(rounds) // 2]
    out = {**middle, "each_round": each}
    empty = statistics.median(timed(lambda: client.get_model_metadata(name)) for _ in range(args.repeats))
    out.update(empty_call_ms=1000 * empty, server_reported_ms=statistics.median(reported))
    if args.http:
        import tritonclient.http as th

        http = th.InferenceServerClient(server.http_url)
        http_request = triton_inputs(arrays, carried, th)
        _, out["http_ms"] = paired_ms(lambda: client.infer(name, request),
                                      lambda: http.infer(name, http_request), args.repeats)
    load = clients_rps(server.url, name, [request], args.clients, args.seconds, server.proc.pid)
    bound, rows = compute_bound(engine, arrays, carried)
    engine_cpu = engine_cpu_ms(engine, arrays, carried, args.clients)
    return {**out, "rps": load.rps, "server_cpu_ms": load.server_cpu_ms, "client_cpu_ms": load.client_cpu_ms,
            "cores_busy": load.cores_busy, "engine_cpu_ms": engine_cpu,
            "compute_bound_rps": bound, "best_batch": rows, "share_of_bound": load.rps / bound}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("runs/quickstart/bundle"))
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads, in and out of the server")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--latency-rounds", type=int, default=3,
                   help="rounds of the one-client timings (each figure reported as its median and range)")
    p.add_argument("--rounds", type=int, default=2, help="mixed-set rounds per setting (alternating)")
    p.add_argument("--http", action="store_true", help="also time tritonclient.http against gRPC")
    p.add_argument("--server-path", help="PYTHONPATH of another mmrt build to serve with (compare builds)")
    p.add_argument("--out", type=Path, default=Path("runs/serve-latency"))
    args = p.parse_args()
    if not (args.bundle / "manifest.json").is_file():
        sys.exit(f"{args.bundle}: no bundle (run 'make quickstart' or 'mmrt export' first)")
    made_at = commit()
    tune_malloc()  # the server's process settings, for the in-process engine too
    bundle = open_bundle(args.bundle, SessionOptions(threads=args.threads))
    m = bundle.manifest
    arrays = inputs_for(m, np.random.default_rng(0))
    engine = Engine(bundle, BatchingOptions())
    results = {}
    try:
        serving = ServerProcess(args.bundle, args.threads, http=args.http, pythonpath=args.server_path)
        with serving as server, FloorServer(hop=True) as floor:
            for label, carried in WORKLOADS.items():
                carried = [x for x in m.modalities if carried is None or x in carried]
                if carried:
                    print(f"{label}: {'+'.join(carried)}", file=sys.stderr)
                    measured = workload(server, floor, engine, arrays, carried, args)
                    results[label] = {"modalities": carried, **measured}
    finally:
        engine.close()
    median = statistics.median
    subsets = [[x for x in m.modalities if x in s] for s in all_subsets(m.modalities)]
    mixed: dict = {"on": [], "off": []}
    for _ in range(args.rounds):
        for setting in ("on", "off"):
            with ServerProcess(args.bundle, args.threads, batching=setting == "on",
                               pythonpath=args.server_path) as server:
                requests = [triton_inputs(arrays, s) for s in subsets]
                load = clients_rps(server.url, m.name, requests, args.clients, args.seconds)
                mixed[setting].append(load.rps)
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "bundle": str(args.bundle),
              "command": command("lab.serve_latency"), "commit": made_at,
              "threads": args.threads, "clients": args.clients, "latency_rounds": args.latency_rounds,
              "workloads": results,
              "mixed_rps": {**mixed, "ratio": median(mixed["on"]) / median(mixed["off"])}}
    write_report(args.out, report, render(report))


def write_report(out: Path, report: dict, text: str) -> None:
    """``out``/report.json and report.md (``text``, also printed)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(text)
    print(text)


def cell(measured: dict, key: str, fmt: str) -> str:
    """A figure, with its range over rounds where it was timed in rounds."""
    each = measured.get("each_round", {}).get(key)
    spread = f" ({min(each):.2f}-{max(each):.2f})" if each and len(each) > 1 else ""
    return fmt.format(measured[key]) + spread


def render(r: dict) -> str:
    rows = [("in-process p50 (engine: preprocessing + graphs)", "in_process_ms", "{:.2f} ms"),
            ("served p50 (tritonclient.grpc -> mmrt serve)", "served_ms", "{:.2f} ms"),
            ("**added time** (served - in-process; target <= 0.5 ms)", "added_ms", "**{:.2f} ms**"),
            ("the floor: p50 of a server that answers at once (same loop, options, hand-off)", "floor_ms",
             "{:.2f} ms"),
            ("**added above the floor** (added - floor: mmrt's own work)", "above_floor_ms",
             "**{:.2f} ms**"),
            ("an empty call (ModelMetadata, same client)", "empty_call_ms", "{:.2f} ms"),
            ("engine time the server reports", "server_reported_ms", "{:.2f} ms"),
            ("served p50 through tritonclient.http", "http_ms", "{:.2f} ms"),
            (f"throughput, {r['clients']} clients", "rps", "{:.0f} req/s"),
            ("server CPU per answer at that load", "server_cpu_ms", "{:.2f} ms"),
            (f"the same engine in-process from {r['clients']} threads, CPU per answer", "engine_cpu_ms",
             "{:.2f} ms"),
            ("clients' CPU per answer (this process)", "client_cpu_ms", "{:.2f} ms"),
            ("cores busy, server and clients (of the machine's)", "cores_busy", "{:.2f}"),
            ("compute bound (in-process, best batch, all cores)", "compute_bound_rps", "{:.0f} req/s"),
            ("best batch in-process", "best_batch", "{}"),
            ("throughput / compute bound (target >= 0.7)", "share_of_bound", "{:.2f}")]
    w = r["workloads"]
    lines = [f"# mmrt serve: where the time goes ({r['date']}, {r['machine']}, {r['threads']} ORT threads)",
             "",
             f"Bundle `{r['bundle']}`; `{r['command']}`; commit {r['commit']}. The one-client "
             f"timings are the round of {r['latency_rounds']} whose added time above the floor is the "
             "median (every round's range in brackets).", "",
             "| measure | " + " | ".join(f"{k} ({'+'.join(v['modalities'])})" for k, v in w.items()) + " |",
             "|---|" + "---|" * len(w)]
    for label, key, fmt in rows:
        if any(key in v for v in w.values()):
            cells = (cell(v, key, fmt) if key in v else "" for v in w.values())
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    x = r["mixed_rps"]
    lines += ["", f"Mixed modality sets, {r['clients']} clients: per-encoder batching on "
              f"{statistics.median(x['on']):.0f} req/s, off {statistics.median(x['off']):.0f} req/s "
              f"({x['ratio']:.2f}x).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
