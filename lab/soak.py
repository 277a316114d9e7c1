"""Load and soak for `mmrt serve`: concurrent streams mixing modality subsets for a while, with the
server's resident memory sampled along the way.

    python -m lab.soak --bundle runs/quickstart/bundle [--streams 32] [--seconds 300]

Each stream sends sequences (modalities one by one, Triton's sequence flags) and unary requests
with random modality subsets, all the time. Pass: zero errors, and resident memory growth after
warm-up under 5%. Reports p50/p99 latency, throughput and the memory curve.

Quoted in docs/reliability.md."""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

from mmrt.benchmarks.client import ServerProcess, triton_inputs
from mmrt.bundle import verify_bundle
from mmrt.modalities import all_subsets


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident set size of a process (or its peak, ``VmHWM``), in KiB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def memory_windows(curve: list[tuple[float, int]], warmup_s: float) -> tuple[float | None, float | None]:
    """Median resident memory of the first and the last quarter after warm-up (at most 60 s each):
    single samples swing by a few percent as the allocator returns memory."""
    after = [(t, kib) for t, kib in curve if t >= warmup_s]
    if len(after) < 2:
        return None, None
    span = min(60.0, (after[-1][0] - after[0][0]) / 4)
    first = [kib for t, kib in after if t <= after[0][0] + span]
    last = [kib for t, kib in after if t >= after[-1][0] - span]
    return statistics.median(first), statistics.median(last)


def example_inputs(rng) -> dict:
    """A rig's reading: 1.5 s of PCM, 12 frames of 48x64, a title (not the model's own sizes)."""
    return {"audio": (rng.standard_normal(24_000) * 0.1).astype(np.float32),
            "video": rng.integers(0, 256, (12, 48, 64, 3), dtype=np.uint8),
            "text": b"my son counting to seven in the garden"}


def soak(url: str, modalities, model: str, streams: int, seconds: float, pid: int | None = None,
         warmup_s: float = 10.0) -> dict:
    import tritonclient.grpc as tc

    subsets = [[m for m in modalities if m in s] for s in all_subsets(modalities)]
    ids = itertools.count(1)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    memory: list[tuple[float, int]] = []

    def worker(i: int) -> None:
        rng = np.random.default_rng(i)
        inputs = example_inputs(rng)
        client = tc.InferenceServerClient(url)
        answers: queue.Queue = queue.Queue()
        client.start_stream(callback=lambda result, error: answers.put((result, error)))
        try:
            while time.perf_counter() < stop_at:
                subset = subsets[rng.integers(len(subsets))]
                sequence = next(ids)
                for k, m in enumerate(subset):
                    start = time.perf_counter()
                    client.async_stream_infer(model, triton_inputs(inputs, [m]), sequence_id=sequence,
                                              sequence_start=k == 0, sequence_end=k == len(subset) - 1)
                    try:
                        _, error = answers.get(timeout=60)
                    except queue.Empty:
                        error = "no answer within 60 s"
                    with lock:
                        latencies.append(1000 * (time.perf_counter() - start))
                        if error is not None:
                            errors.append(str(error))
        finally:
            client.stop_stream()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(streams)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if pid is not None:
            memory.append((time.perf_counter() - started, rss_kib(pid)))
        time.sleep(1.0)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    first, last = memory_windows(memory, warmup_s)
    growth = (last - first) / first if first and last else None
    return {"streams": streams, "seconds": elapsed, "requests": len(latencies), "errors": len(errors),
            "first_errors": errors[:5], "throughput_rps": len(latencies) / elapsed,
            "latency_ms": {"p50": statistics.median(latencies) if latencies else None,
                           "p99": float(np.percentile(latencies, 99)) if latencies else None},
            "rss_kib": {"after_warmup": first, "end": last, "growth": growth},
            "rss_curve": memory}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("runs/quickstart/bundle"))
    p.add_argument("--streams", type=int, default=32)
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--warmup", type=float, default=30.0, help="seconds before the memory baseline")
    p.add_argument("--out", type=Path, default=Path("runs/soak"))
    args = p.parse_args()
    manifest = verify_bundle(args.bundle)
    with ServerProcess(args.bundle, threads=1) as server:
        result = soak(server.url, manifest.modalities, manifest.name, args.streams, args.seconds,
                      server.proc.pid, args.warmup)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rss_curve"}, indent=2))
    growth = result["rss_kib"]["growth"]
    sys.exit(0 if result["errors"] == 0 and growth is not None and growth < 0.05 else 1)


if __name__ == "__main__":
    main()
