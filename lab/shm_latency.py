"""Shared memory against sending the bytes, for a rig's large inputs.

    python -m lab.shm_latency [--bundle runs/quickstart/bundle] [--repeats 40]

One `mmrt serve` subprocess (``--max-message-mb 64``, so that a 15 MB clip may travel as bytes at
all). For a 16-frame 640x480 clip and a 10-second audio clip, the p50 of a request that carries
the tensor (tritonclient.grpc raw bytes; tritonclient.http binary data) against one that names
a shared-memory region (Triton's system shared-memory extension), timed in alternating blocks.
The shared-memory side includes the client's copy of the clip into the region, as a capture
process that decodes elsewhere would pay. Writes report.md / report.json.

Quoted in docs/results/serving.md."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mmrt.benchmarks.client import ServerProcess
from mmrt.benchmarks.timing import machine, paired_ms
from mmrt.bundle import WIRE

CLIPS = {"video 16x640x480": ("VIDEO", lambda rng: rng.integers(0, 256, (1, 16, 480, 640, 3), np.uint8)),
         "audio 10 s": ("AUDIO", lambda rng: (rng.standard_normal((1, 160_000)) * 0.1).astype(np.float32))}


def timings(server: ServerProcess, name: str, x: np.ndarray, protocol, repeats: int) -> dict:
    """p50 ms sending ``x`` as bytes and through a shared-memory region, over one protocol."""
    import tritonclient.utils.shared_memory as shm

    url = server.url if protocol.__name__.endswith("grpc") else server.http_url
    client, datatype = protocol.InferenceServerClient(url), WIRE[name.lower()][1]
    sent = protocol.InferInput(name, list(x.shape), datatype)
    key = f"/mmrt-bench-{name.lower()}-{protocol.__name__.rsplit('.', 1)[-1]}"
    region = shm.create_shared_memory_region("clip", key, x.nbytes)
    try:
        client.unregister_system_shared_memory()
        client.register_system_shared_memory("clip", key, x.nbytes)
        named = protocol.InferInput(name, list(x.shape), datatype)
        named.set_shared_memory("clip", x.nbytes)

        def as_bytes():
            sent.set_data_from_numpy(x)  # what a client does per request
            client.infer("mmrt", [sent])

        def by_region():
            shm.set_shared_memory_region(region, [x])
            client.infer("mmrt", [named])

        bytes_ms, shm_ms = paired_ms(as_bytes, by_region, repeats, rounds=4)
        client.unregister_system_shared_memory()
    finally:
        shm.destroy_shared_memory_region(region)
    return {"bytes_ms": bytes_ms, "shm_ms": shm_ms, "ratio": bytes_ms / shm_ms}


def main() -> None:
    import tritonclient.grpc as tc
    import tritonclient.http as th

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("runs/quickstart/bundle"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--out", type=Path, default=Path("runs/shm-latency"))
    args = p.parse_args()
    if not (args.bundle / "manifest.json").is_file():
        sys.exit(f"{args.bundle}: no bundle (run 'make quickstart' or 'mmrt export' first)")
    rng = np.random.default_rng(0)
    results = {}
    with ServerProcess(args.bundle, args.threads, http=True, flags=("--max-message-mb", "64")) as server:
        for clip, (name, make) in CLIPS.items():
            x = make(rng)
            for label, protocol in (("gRPC", tc), ("REST", th)):
                print(f"{clip}, {label}", file=sys.stderr)
                results[f"{clip}, {label}"] = {"mb": x.nbytes / 1e6, **timings(server, name, x, protocol,
                                                                                 args.repeats)}
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "bundle": str(args.bundle),
              "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Shared memory against sending the bytes ({report['date']}, {report['machine']})", "",
             f"Bundle `{args.bundle}`; `python -m lab.shm_latency`; p50 of {args.repeats} "
             f"requests each, alternating blocks.", "",
             "| clip, protocol | MB | bytes in the request | shared memory | ratio (target >= 2, video) |",
             "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['mb']:.1f} | {v['bytes_ms']:.1f} ms | {v['shm_ms']:.1f} ms | {v['ratio']:.2f}x |"
              for k, v in results.items()]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
