"""Each encoder of a bundle in INT8 against FP32 under ONNX Runtime, in one run (the INT8 speed target).

    python -m lab.int8_latency BUNDLE [--threads 0] [--data DIR] [--out runs/int8-latency]

BUNDLE comes from ``mmrt export --int8``. For every encoder: median latency at batch 1 and 8 of
the FP32 and the INT8 graph, opened as the server opens them and timed in alternating blocks on
real examples of the eval split (the server's own preprocessing), the speed-up, and where the
time goes at batch 8 (ONNX Runtime's profiler, by operator type), so an encoder that does not
speed up shows which operators stay in floating point and what the added quantize/dequantize
steps cost. The score change per subset is the one export measured (the manifest's). Writes
``report.md`` and ``report.json`` under --out. No torch.

Quoted in docs/results/int8.md."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mmrt.benchmarks.timing import machine, paired_ms
from mmrt.benchmarks.workload import load_examples
from mmrt.bundle import input_name, verify_bundle
from mmrt.errors import UserError
from mmrt.runtime.backends.memory import tune_malloc
from mmrt.runtime.backends.precision import as_int8, has_int8
from mmrt.runtime.backends.sessions import OrtGraph, SessionOptions
from mmrt.runtime.engine.inputs import Preprocessor

TARGET_SPEEDUP = 1.5
BATCHES = (1, 8)


def operator_ms(path: Path, feeds: dict, threads: int, runs: int = 30, warm: int = 5) -> dict[str, float]:
    """Mean ms per run spent in each operator type (ONNX Runtime's profiler, after fusions), over
    the runs after the first ``warm``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.enable_cpu_mem_arena = threads, False
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="mmrt-prof-")) / "ort")
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for _ in range(warm + runs):
        session.run(None, feeds)
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    ends = sorted(e["ts"] + e["dur"] for e in events if e.get("name") == "model_run")
    spent: Counter = Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] > ends[warm - 1]:
            spent[e["args"]["op_name"]] += e["dur"] / 1000 / runs
    return dict(spent.most_common())


def inputs(bundle: Path, data: Path | None, manifest) -> dict[str, np.ndarray]:
    """Eight real eval examples per modality, preprocessed as the server does (zeros without data)."""
    prep = Preprocessor(bundle, manifest)
    out = {}
    examples = (load_examples(data, manifest.modalities, manifest.classes, limit=64, progress=False)
                if data else [])
    for m in manifest.modalities:
        rows = [ex.inputs[m] for ex in examples if m in ex.inputs][:max(BATCHES)]
        if rows:  # one at a time: clips and frame sizes may differ between examples
            out[m] = np.concatenate([prep(m, np.array([x], dtype=object) if m == "text" else x[None])
                                     for x in rows])
        else:
            spec = manifest.graphs[m].inputs[0]
            out[m] = np.zeros([max(BATCHES), *spec.shape[1:]], dtype=spec.dtype)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--data", type=Path, help="dataset whose eval examples are timed (default: zeros)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads per graph (0: all cores)")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path("runs/int8-latency"))
    args = p.parse_args(argv)
    manifest = verify_bundle(args.bundle)
    if not has_int8(manifest):
        raise UserError(f"{args.bundle}: no INT8 graphs (export it with 'mmrt export --int8')")
    tune_malloc()
    options = SessionOptions(threads=args.threads)
    feeds = inputs(args.bundle, args.data, manifest)
    rows, profile = {}, {}
    for m in manifest.modalities:
        spec = manifest.graphs[m]
        fp32 = OrtGraph(args.bundle / spec.file, spec, options)
        int8 = OrtGraph(args.bundle / spec.int8, as_int8(spec), options)
        for b in BATCHES:
            feed = {input_name(m): feeds[m][:b]}
            t32, t8 = paired_ms(lambda g=fp32, f=feed: g.run(f), lambda g=int8, f=feed: g.run(f),
                                args.repeats)
            rows[f"{m} b{b}"] = {"fp32_ms": t32, "int8_ms": t8, "speedup": t32 / t8}
            print(f"{m} batch {b}: FP32 {t32:.2f} ms, INT8 {t8:.2f} ms, {t32 / t8:.2f}x", flush=True)
        feed = {input_name(m): feeds[m][:max(BATCHES)]}
        threads = args.threads or os.cpu_count() or 1
        for _ in range(2):  # the second round: the first one's sessions also pay for fresh heap pages
            profile[m] = {"fp32": operator_ms(args.bundle / spec.file, feed, threads),
                          "int8": operator_ms(args.bundle / spec.int8, feed, threads)}
    report = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": machine(),
              "bundle": str(args.bundle), "threads": args.threads, "target_speedup": TARGET_SPEEDUP,
              "latency": rows, "operators_ms_b8": profile, "score": manifest.int8["score"],
              "int8": {m: {k: v for k, v in g.items() if k != "embedding"}
                       for m, g in manifest.int8["graphs"].items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "report.md").write_text(markdown(report))
    print(f"report: {args.out / 'report.md'}")
    return 0


def markdown(r: dict) -> str:
    lines = [f"# INT8 against FP32 per encoder ({r['date']}, {r['machine']}, threads {r['threads']})", "",
             "| encoder | FP32 ms | INT8 ms | speed-up | target |", "|---|---|---|---|---|"]
    for name, row in r["latency"].items():
        met = "met" if row["speedup"] >= r["target_speedup"] else "missed"
        lines.append(f"| {name} | {row['fp32_ms']:.2f} | {row['int8_ms']:.2f} | {row['speedup']:.2f}x | "
                     f"{met} |")
    lines += ["", "Score change per subset (export's check on the eval split):", "",
              "| subset | FP32 | INT8 | change |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['fp32']:.4f} | {v['int8']:.4f} | {v['change']:+.4f} |"
              for k, v in r["score"].items()]
    lines += ["", "Where the time goes at batch 8 (ms per run by operator type, top 8):", ""]
    for m, prof in r["operators_ms_b8"].items():
        for precision in ("fp32", "int8"):
            top = list(prof[precision].items())[:8]
            lines.append(f"- {m} {precision.upper()} ({sum(prof[precision].values()):.1f} ms): "
                         + ", ".join(f"{op} {ms:.2f}" for op, ms in top))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
