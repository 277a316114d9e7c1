"""One command for a machine with an NVIDIA GPU: train on CUDA, export with TensorRT engines, check
parity, serve with the GPU providers, and measure batch 1 against batch 32 per encoder.

    python -m lab.gpu_check --out DIR [--preset base] [--install] [--allow-cpu]

Steps, each recorded in DIR/report.md and DIR/report.json as ok, skipped (with why) or failed
(with the error), so that one missing piece never hides the others:
1. environment: the GPU (nvidia-smi), torch's CUDA, ONNX Runtime's providers, TensorRT;
   ``--install`` first pip-installs the ``gpu`` extra (onnxruntime-gpu, tensorrt) where pip can;
2. data (``mmrt data make --size tiny`` unless ``--data``), a pretraining epoch and a fine-tuning
   epoch of ``--preset`` on CUDA; then the training speed levers as a same-run A/B on CUDA
   (``lab.train_speed``: channels-last, fused AdamW, torch.compile, bf16 autocast against
   fp32);
3. export, with INT8 copies of the encoders and FP16 (and INT8) TensorRT engines where TensorRT
   is importable (export checks every graph's parity against PyTorch and fails past its
   tolerance; the INT8 score changes are recorded, not enforced, on the tiny data);
4. per encoder, rows per second at batch 1 and batch 32 under every execution path present:
   ONNX Runtime CPU, ONNX Runtime CUDA, the TensorRT engines (FP16 and INT8), and torch eager on
   CUDA;
5. `mmrt serve` on the GPU providers answering every modality subset through tritonclient, each
   answer against the bundle run in-process on the CPU.
Without a GPU it stops at step 1 unless ``--allow-cpu`` (the same steps on the CPU: how the
script itself is tested).

Quoted in docs/results/serving.md, docs/support.md, README.md."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from mmrt.benchmarks.timing import machine, timed
from mmrt.preprocess import Preprocessing

BATCHES = (1, 32)


class Report:
    def __init__(self, out: Path):
        self.out, self.steps = out, {}

    def step(self, name: str, fn, *args):
        """Run one step; its outcome is recorded whatever happens."""
        print(f"[gpu_check] {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            value = fn(*args)
            self.steps[name] = {"status": "ok", "result": value}
        except Skipped as e:
            value, self.steps[name] = None, {"status": "skipped", "why": str(e)}
        except Exception as e:  # noqa: BLE001 - a failed step is reported, the rest still run
            value = None
            self.steps[name] = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                                "trace": traceback.format_exc(limit=4)}
        self.steps[name]["seconds"] = round(time.perf_counter() - start, 1)
        self.write()
        return value

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        doc = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "steps": self.steps}
        (self.out / "report.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
        lines = [f"# mmrt GPU check ({doc['date']}, {doc['machine']})", ""]
        for name, s in self.steps.items():
            detail = s.get("why") or s.get("error") or ""
            lines.append(f"## {name}: {s['status']} ({s['seconds']} s) {detail}".rstrip())
            if isinstance(s.get("result"), dict):
                lines += [f"- {k}: {v}" for k, v in s["result"].items()]
            lines.append("")
        (self.out / "report.md").write_text("\n".join(lines))


class Skipped(Exception):
    """A step that cannot run here, and why."""


def mmrt(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mmrt", *args], check=True)


def environment(install: bool, allow_cpu: bool) -> dict:
    if install:
        subprocess.run([sys.executable, "-m", "pip", "install", "onnxruntime-gpu>=1.17", "tensorrt>=10"])
    import onnxruntime as ort
    import torch

    smi = shutil.which("nvidia-smi")
    gpu = subprocess.run([smi, "-L"], capture_output=True, text=True).stdout.strip() if smi else ""
    try:
        import tensorrt
        trt = tensorrt.__version__
    except ImportError:
        trt = None
    env = {"gpu": gpu or None, "torch": torch.__version__, "torch_cuda": torch.cuda.is_available(),
           "onnxruntime": ort.__version__, "providers": ort.get_available_providers(), "tensorrt": trt}
    if not env["torch_cuda"] and not allow_cpu:
        raise RuntimeError(f"no CUDA device for torch ({gpu or 'nvidia-smi found none'}); --allow-cpu "
                           f"runs the same steps on the CPU")
    return env


def train(out: Path, data: Path | None, preset: str, device: str) -> dict:
    if data is None:
        data = out / "data"
        mmrt("data", "make", "--size", "tiny", "--out", str(data), "--overwrite", "--no-progress")
    common = ("--epochs", "1", "--device", device, "--quiet", "--overwrite")
    mmrt("pretrain", "--data", str(data), "--out", str(out / "pretrained"), "--preset", preset, *common)
    mmrt("train", "--data", str(data), "--pretrained", str(out / "pretrained"), "--method", "ft",
         "--modalities", "audio+video+text", "--out", str(out / "model"), *common)
    return {"data": str(data), "preset": preset, "device": device}


def training_speed(out: Path, data: str, preset: str, device: str) -> dict:
    """The training speed levers' A/B on ``device`` (short on the CPU, where it is only tested)."""
    from lab import train_speed

    length = ["--rounds", "3", "--steps", "4"] if device == "cuda" else ["--rounds", "1", "--steps", "1",
                                                                        "--no-compile"]
    results = train_speed.main(["--data", data, "--preset", preset, "--device", device,
                                "--out", str(out / "train_speed.json"), *length])
    return {f"{r['stage']}: {row['variant']}": f"{row['median_ms']:.1f} ms a step, "
            f"{row['speedup_median']:.2f}x every lever off, weights "
            f"{row['max_weight_difference_vs_off']:.1e} from its" for r in results for row in r["rows"]}


def export(out: Path, tensorrt: bool) -> dict:
    flags = ("--tensorrt", "--fp16") if tensorrt else ()
    mmrt("export", str(out / "model"), "--out", str(out / "bundle"), "--overwrite", "--int8",
         "--max-score-drop", "1", *flags)
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    engines = sorted(f for g in manifest["graphs"].values()
                     for f in (g.get("engine"), g.get("int8_engine")) if f)
    return {"tensorrt_engines": engines or "none", "tensorrt": manifest.get("tensorrt"),
            "parity_max_error": manifest["parity"]["max_error"],
            "int8_score_change": {k: v["change"] for k, v in manifest["int8"]["score"].items()}}


def rows_per_second(run, x: np.ndarray, repeats: int = 20) -> float:
    run(x)
    return len(x) / float(np.median([timed(lambda: run(x)) for _ in range(repeats)]))


def batching(out: Path, env: dict) -> dict:
    from mmrt.bundle import input_name
    from mmrt.runtime.backends.loaded_bundle import open_bundle
    from mmrt.runtime.backends.sessions import SessionOptions

    cpu = SessionOptions(providers=("CPUExecutionProvider",), use_engines=False)
    paths = {"ort-cpu": (cpu, "fp32"), "ort-cpu-int8": (cpu, "int8")}
    if "CUDAExecutionProvider" in env["providers"]:
        paths["ort-cuda"] = (SessionOptions(providers=("CUDAExecutionProvider", "CPUExecutionProvider"),
                                            use_engines=False), "fp32")
    if env["tensorrt"]:
        paths["tensorrt-engine"] = (SessionOptions(use_engines=True), "fp32")
        paths["tensorrt-int8-engine"] = (SessionOptions(use_engines=True), "int8")
    results = {}
    for label, (options, precision) in paths.items():
        bundle = open_bundle(out / "bundle", options, precision=precision)
        for m, graph in bundle.encoders.items():
            name = input_name(m)

            def run(x, graph=graph, name=name):
                return graph.run({name: x})

            rate = {b: rows_per_second(run, example(bundle.manifest.inputs, m, b)) for b in BATCHES}
            results[f"{m} {label} ({graph.kind}, {graph.providers[0]})"] = rates(rate)
    results.update(torch_eager(out, env))
    return results


def torch_eager(out: Path, env: dict) -> dict:
    import torch

    from mmrt.training.model.checkpoint import load_model

    if not env["torch_cuda"]:
        return {}
    model = load_model(out / "model").to("cuda").eval()
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    inputs, results = Preprocessing.from_dict(manifest["preprocessing"]), {}
    for m in manifest["modalities"]:
        encode = getattr(model, f"encode_{m}")

        def run(x, encode=encode):
            with torch.no_grad():
                encode(torch.from_numpy(x).to("cuda"))
            torch.cuda.synchronize()

        rate = {b: rows_per_second(run, example(inputs, m, b)) for b in BATCHES}
        results[f"{m} torch eager cuda"] = rates(rate)
    return results


def rates(rate: dict) -> str:
    return f"{rate[1]:.0f} rows/s at batch 1, {rate[32]:.0f} at 32 ({rate[32] / rate[1]:.1f}x)"


def example(p: Preprocessing, modality: str, batch: int) -> np.ndarray:
    """A model-sized batch as the encoder graphs take it (random values: speed does not depend on them)."""
    rng = np.random.default_rng(0)
    if modality == "audio":
        return (rng.standard_normal((batch, p.clip_samples)) * 0.1).astype(np.float32)
    if modality == "video":
        return rng.integers(0, 256, (batch, p.frames, p.frame_size, p.frame_size, 3), dtype=np.uint8)
    return rng.integers(4, 64, (batch, p.max_tokens), dtype=np.int64)


def serve(out: Path, env: dict) -> dict:
    """Every modality subset through `mmrt serve` (GPU providers first), against the CPU in-process."""
    import tritonclient.grpc as tc

    from mmrt.benchmarks.client import ServerProcess, triton_inputs
    from mmrt.modalities import all_subsets
    from mmrt.runtime.backends.loaded_bundle import open_bundle
    from mmrt.runtime.backends.sessions import SessionOptions
    from mmrt.runtime.engine.engine import Engine

    reference = Engine(open_bundle(out / "bundle", SessionOptions(providers=("CPUExecutionProvider",),
                                                                  use_engines=False)))
    rng, m = np.random.default_rng(1), reference.manifest
    arrays = {"audio": (rng.standard_normal(24_000) * 0.1).astype(np.float32),
              "video": rng.integers(0, 256, (12, 96, 128, 3), dtype=np.uint8), "text": b"counting to seven"}
    worst, served = 0.0, {}
    try:
        # FP32 as the reference: "auto" may pick the bundle's INT8 encoders when it times them faster
        with ServerProcess(out / "bundle", threads=0, flags=("--precision", "fp32")) as server:
            client = tc.InferenceServerClient(server.url)
            for subset in all_subsets(m.modalities):
                carried = [x for x in m.modalities if x in subset]
                got = client.infer(m.name, triton_inputs(arrays, carried)).as_numpy("SCORES")
                tensors = {x.upper(): np.asarray([arrays[x]], dtype=object if x == "text" else None)
                           for x in carried}
                worst = max(worst, float(np.abs(got - reference.infer(tensors).scores).max()))
                served["+".join(carried)] = "ok"
    finally:
        reference.close()
    return {"subsets": len(served), "max_abs_difference_vs_cpu": f"{worst:.2e}",
            "providers": env["providers"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--preset", default="base", help="architecture to train (default base)")
    p.add_argument("--data", type=Path, help="a dataset to use (default: make a tiny one)")
    p.add_argument("--install", action="store_true", help="pip-install onnxruntime-gpu and tensorrt first")
    p.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no GPU (tests)")
    args = p.parse_args()
    report = Report(args.out)
    env = report.step("environment", environment, args.install, args.allow_cpu)
    if env is None:
        return 1
    device = "cuda" if env["torch_cuda"] else "cpu"
    trained = report.step("train", train, args.out, args.data, args.preset, device)
    if trained is None:
        return 1
    report.step("training speed", training_speed, args.out, trained["data"], args.preset, device)
    if report.step("export", export, args.out, bool(env["tensorrt"])) is None:
        return 1
    report.step("batch 1 against batch 32", batching, args.out, env)
    report.step("serve", serve, args.out, env)
    print((args.out / "report.md").read_text())
    return 0 if all(s["status"] != "failed" for s in report.steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
