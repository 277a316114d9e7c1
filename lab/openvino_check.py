"""ONNX Runtime's OpenVINO execution provider against its CPU provider, per encoder of a bundle
(for Intel edge boxes). Self-contained: numpy and an onnxruntime build with OpenVINO, no mmrt, so
it runs in a throwaway environment (onnxruntime-openvino replaces the onnxruntime module):

    python -m venv /tmp/ov && /tmp/ov/bin/pip install onnxruntime-openvino numpy
    /tmp/ov/bin/python lab/openvino_check.py BUNDLE [--threads 0] [--out runs/openvino]

For every encoder: median latency at batch 1 and 8 under both providers of the same onnxruntime
build (sessions as the server opens them: no spinning, no CPU arena), timed in alternating
blocks on the same seeded inputs, the speed-up, and how far OpenVINO's embeddings are from the
CPU provider's (OpenVINO may compute in BF16 on CPUs that have it: its default "inference
precision"; ``--precision f32`` asks for FP32). Writes report.json and report.md under --out.

Quoted in docs/results/serving.md."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mmrt.benchmarks.timing import machine

BATCHES = (1, 8)


def session(path: Path, threads: int, openvino: dict | None):
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.enable_cpu_mem_arena = False
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = [("OpenVINOExecutionProvider", openvino)] if openvino is not None else []
    return ort.InferenceSession(str(path), so, providers=providers + ["CPUExecutionProvider"])


def example(spec: dict, batch: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = [batch if d < 0 else d for d in spec["shape"]]
    if spec["dtype"] == "float32":
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)
    if spec["dtype"] == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.integers(4, 64, shape, dtype=np.int64)


def paired_ms(a, b, repeats: int, rounds: int = 5) -> tuple[float, float]:
    times: tuple[list, list] = ([], [])
    for _ in range(rounds):
        for fn, out in zip((a, b), times, strict=True):
            fn()
            for _ in range(max(1, repeats // rounds)):
                start = time.perf_counter()
                fn()
                out.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[0]), 1000 * statistics.median(times[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--precision", default=None,
                   help="OpenVINO's inference precision (FP32 or ACCURACY on a CPU; default: its own)")
    p.add_argument("--out", type=Path, default=Path("runs/openvino"))
    args = p.parse_args(argv)
    if "OpenVINOExecutionProvider" not in ort.get_available_providers():
        raise SystemExit(f"this onnxruntime ({ort.__version__}) has no OpenVINOExecutionProvider: run it "
                         f"with onnxruntime-openvino installed")
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    options = {"device_type": "CPU", **({"precision": args.precision} if args.precision else {})}
    rows = {}
    for m in manifest["modalities"]:
        graph = manifest["graphs"][m]
        cpu = session(args.bundle / graph["file"], args.threads, None)
        ov = session(args.bundle / graph["file"], args.threads, options)
        if ov.get_providers()[0] != "OpenVINOExecutionProvider":  # onnxruntime falls back silently
            raise SystemExit(f"OpenVINO refused {graph['file']} with options {options} (see its log above)")
        spec = graph["inputs"][0]
        for b in BATCHES:
            feed = {spec["name"]: example(spec, b)}
            ref, got = cpu.run(None, feed)[0], ov.run(None, feed)[0]
            t_cpu, t_ov = paired_ms(lambda s=cpu, f=feed: s.run(None, f), lambda s=ov, f=feed: s.run(None, f),
                                    args.repeats)
            rows[f"{m} b{b}"] = {"cpu_ms": t_cpu, "openvino_ms": t_ov, "speedup": t_cpu / t_ov,
                                 "max_abs_diff": float(np.abs(ref - got).max())}
            print(f"{m} batch {b}: CPU {t_cpu:.2f} ms, OpenVINO {t_ov:.2f} ms ({t_cpu / t_ov:.2f}x), "
                  f"max |diff| {rows[f'{m} b{b}']['max_abs_diff']:.2g}", flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "onnxruntime": ort.__version__,
              "openvino_options": options, "threads": args.threads, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# OpenVINO EP against the CPU EP ({report['date']}, onnxruntime {ort.__version__}, "
             f"options {options}, threads {args.threads})", "",
             "| encoder | CPU EP ms | OpenVINO EP ms | speed-up | max abs diff |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {r['cpu_ms']:.2f} | {r['openvino_ms']:.2f} | {r['speedup']:.2f}x | "
              f"{r['max_abs_diff']:.2g} |" for k, r in rows.items()]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
