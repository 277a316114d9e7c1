"""Each modality encoder in ONNX Runtime (CPU) against PyTorch eager, in one run (the export speed targets).

    python -m lab.export_latency [--preset small] [--threads 2] [--out runs/export-latency]

For every encoder of the preset (random weights: latency does not depend on their values):
median latency at batch 1 and 32 in both (timed in alternating blocks), the speed-up, and the
GFLOP/s ONNX Runtime reaches at batch 32 against this machine's FP32 matrix-multiply peak,
measured in the same process (a large torch matmul on the same threads). FLOPs are counted
by torch's FlopCounterMode. Writes ``report.md`` and ``report.json`` under --out.

Quoted in docs/results/export-latency.md, docs/results/serving.md."""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from mmrt.benchmarks.timing import machine, paired_ms, timed
from mmrt.bundle import DEFAULT_OPSET, GraphSpec
from mmrt.export.graphs import EncoderGraph
from mmrt.export.onnx_graph import export_graph
from mmrt.runtime.backends.memory import tune_malloc
from mmrt.runtime.backends.sessions import OrtGraph, SessionOptions
from mmrt.training.model.config import ModelConfig, load_preset
from mmrt.training.model.model import MultimodalModel

TARGET_SPEEDUP, TARGET_PEAK_SHARE = 1.5, 0.5


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    """FP32 GEMM throughput of this machine on the current threads: the best of ``repeats``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        torch.mm(a, b)
    best = min(timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def example(model: MultimodalModel, modality: str, batch: int) -> torch.Tensor:
    prep = model.config.arch.preprocessing
    g = torch.Generator().manual_seed(0)
    if modality == "audio":
        return torch.randn(batch, prep.clip_samples, generator=g) * 0.1
    if modality == "video":
        shape = (batch, prep.frames, prep.frame_size, prep.frame_size, 3)
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    return torch.randint(4, model.config.text_vocab, (batch, prep.max_tokens), generator=g)


def flops(module: torch.nn.Module, x: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(x)
    return float(counter.get_total_flops())


def bench_encoder(model: MultimodalModel, modality: str, folder: Path, threads: int, repeats: int) -> dict:
    graph = EncoderGraph(model, modality).eval()
    (spec_in,), (spec_out,) = graph.specs
    path = export_graph(graph, (example(model, modality, 2),), [spec_in.name], [spec_out.name], DEFAULT_OPSET,
                        folder / f"{modality}.onnx")
    session = OrtGraph(path, GraphSpec(path.name, (spec_in,), (spec_out,)),
                       SessionOptions(threads=threads, providers=("CPUExecutionProvider",)))
    row: dict = {}
    for batch in (1, 32):
        x = example(model, modality, batch)
        feeds = {spec_in.name: x.numpy()}
        runs = repeats if batch == 1 else max(3, repeats // 8)
        with torch.inference_mode():
            eager, ort_ms = paired_ms(lambda: graph(x), lambda: session.run(feeds), runs)  # noqa: B023
        row[batch] = {"torch_ms": eager, "onnxruntime_ms": ort_ms, "speedup": eager / ort_ms}
    row["gflop_batch32"] = flops(graph, example(model, modality, 32)) / 1e9
    row["onnxruntime_gflops"] = row["gflop_batch32"] / (row[32]["onnxruntime_ms"] / 1000)
    return row


def report(rows: dict, peak: float, meta: dict) -> str:
    lines = [f"# Encoder latency: ONNX Runtime vs PyTorch eager ({meta['preset']} preset)", "",
             f"{meta['machine']}, {meta['threads']} threads, {meta['date']}; torch {meta['torch']}, "
             f"onnxruntime {meta['onnxruntime']}. FP32 matmul peak measured in this run: {peak:.1f} GFLOP/s.",
             "", "| encoder | torch b1 ms | ORT b1 ms | speed-up b1 | torch b32 ms | ORT b32 ms "
             "| speed-up b32 | GFLOP b32 | ORT GFLOP/s | % of peak |", "|---" * 10 + "|"]
    for m, r in rows.items():
        one, many = r[1], r[32]
        lines.append(f"| {m} | {one['torch_ms']:.2f} | {one['onnxruntime_ms']:.2f} | {one['speedup']:.2f}x "
                     f"| {many['torch_ms']:.1f} | {many['onnxruntime_ms']:.1f} | {many['speedup']:.2f}x "
                     f"| {r['gflop_batch32']:.2f} | {r['onnxruntime_gflops']:.1f} "
                     f"| {100 * r['onnxruntime_gflops'] / peak:.0f}% |")
    lines += ["", f"Targets: speed-up at batch 1 >= {TARGET_SPEEDUP}x; batch-32 GFLOP/s >= "
              f"{100 * TARGET_PEAK_SHARE:.0f}% of the matmul peak."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=50, help="timed runs at batch 1 (batch 32: 1/8 of it)")
    p.add_argument("--out", type=Path, default=Path("runs/export-latency"))
    args = p.parse_args()
    tune_malloc()  # the server's process settings, under which its sessions run
    torch.set_num_threads(args.threads)
    preset = load_preset(args.preset)
    torch.manual_seed(0)
    model = MultimodalModel(ModelConfig(preset=preset.name, arch=preset.arch,
                                        modalities=("audio", "video", "text"), text_vocab=1000,
                                        classes=tuple(str(i) for i in range(10)), task="multi-label")).eval()
    peak = matmul_peak_gflops()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {m: bench_encoder(model, m, Path(tmp), args.threads, args.repeats) for m in model.modalities}
    import onnxruntime

    meta = {"preset": args.preset, "threads": args.threads, "machine": machine(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps({"meta": meta, "matmul_peak_gflops": peak,
                                                      "encoders": rows}, indent=2) + "\n")
    text = report(rows, peak, meta)
    (args.out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
