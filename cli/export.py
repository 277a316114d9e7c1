"""`mmrt export MODEL --out BUNDLE`: per-modality ONNX graphs (and TensorRT engines) in a verified bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrt.bundle import DEFAULT_OPSET
from mmrt.export.tensorrt import EngineOptions
from mmrt.knobs import add_flags, from_flags


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a trained model to a verified serving bundle",
                       description="Write BUNDLE: one ONNX graph per modality encoder (audio takes raw "
                       "16 kHz PCM: the log-mel front-end is inside the graph), head.onnx, the "
                       "tokenizer and manifest.json with every file's sha256. Each graph is compared "
                       "with the PyTorch model on real examples at batch 1 and a larger batch; export "
                       "fails past the tolerance, leaving no bundle behind.")
    p.add_argument("model", type=Path, help="model directory from 'mmrt train'")
    p.add_argument("--out", required=True, type=Path, help="bundle folder to create")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET}: GELU is one operator from 20 on, "
                        "attention from 23 on, for ONNX Runtime 1.22+ and TensorRT 10.14+)")
    p.add_argument("--baseline", action="store_true",
                   help="also write fused.onnx, the monolithic graph (every encoder always runs) the "
                   "bench compares against")
    p.add_argument("--tensorrt", action="store_true",
                   help="also build a TensorRT engine (*.plan) per graph; needs TensorRT and a GPU, and "
                   "the engines only run on the GPU and TensorRT version that built them")
    p.add_argument("--fp16", action="store_true", help="FP16 TensorRT engines (with --tensorrt)")
    add_flags(p, EngineOptions)
    p.add_argument("--int8", action="store_true",
                   help="also an INT8 copy of each encoder (ONNX Runtime static quantization, QDQ form; "
                   "with --tensorrt, INT8 engines too), calibrated on the training split and checked "
                   "by its score on the eval split, every modality subset")
    p.add_argument("--calibration-examples", type=int, default=256,
                   help="training examples per modality for INT8 calibration (default 256)")
    p.add_argument("--max-score-drop", type=float, default=0.01,
                   help="with --int8, fail if any subset's INT8 score is this much below FP32's "
                   "(absolute; default 0.01)")
    p.add_argument("--data", type=Path,
                   help="dataset folder whose examples the parity check (and --int8's calibration and "
                   "score check) use (default: the model's training data, as recorded in its config.json)")
    p.add_argument("--name", default="mmrt", help="model name clients ask for (default mmrt)")
    p.add_argument("--model-version", type=int, default=1,
                   help="the version it is served as, REPO/<name>/<version>/ (default 1); with --sign the "
                   "signature covers name and version, so a signed bundle serves only as what it was "
                   "signed as")
    p.add_argument("--tolerance", type=float, default=None,
                   help="max |ONNX - PyTorch| on embeddings and scores (default 1e-4)")
    p.add_argument("--parity-batch", type=int, default=8, help="the larger parity batch (default 8)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out bundle")
    p.add_argument("--sign", type=Path, metavar="KEY", help="Ed25519 private key (PEM): sign the manifest "
                   "(manifest.sig), for 'mmrt serve --verify-key'")
    p.set_defaults(run=run, prog=p.prog)


def run(args: argparse.Namespace) -> int:
    from mmrt.errors import UserError
    from mmrt.export.exporter import ExportOptions, export_bundle
    from mmrt.export.parity import FP32_TOLERANCE
    from mmrt.signing import load_private_key

    if args.fp16 and not args.tensorrt:
        raise UserError("--fp16: applies to TensorRT engines; add --tensorrt")
    tolerance = FP32_TOLERANCE if args.tolerance is None else args.tolerance
    if not tolerance > 0:
        raise UserError(f"--tolerance {args.tolerance}: expected a positive number")
    engine = from_flags(EngineOptions, args, fp16=args.fp16) if args.tensorrt else EngineOptions()
    sign = None if args.sign is None else load_private_key(args.sign)  # a bad key fails before any work
    manifest = export_bundle(ExportOptions(
        model=args.model, out=args.out, opset=args.opset, baseline=args.baseline, tensorrt=args.tensorrt,
        engine=engine, data=args.data, name=args.name, version=args.model_version, tolerance=tolerance,
        parity_batch=args.parity_batch, overwrite=args.overwrite, sign=sign, int8=args.int8,
        calibration_examples=args.calibration_examples, max_score_drop=args.max_score_drop))
    worst = max(manifest.parity["max_error"].values())
    print(f"bundle {args.out}: {manifest.name} ({'+'.join(manifest.modalities)}, {len(manifest.classes)} "
          f"classes, {manifest.metric}), graphs {', '.join(manifest.graphs)}; parity max error {worst:.2g}"
          + _int8_line(manifest) + ("; signed" if sign is not None else ""))
    return 0


def _int8_line(manifest) -> str:
    if not manifest.int8:
        return ""
    worst = min(manifest.int8["score"].items(), key=lambda kv: kv[1]["change"])
    return f"; INT8 worst subset {worst[0]} {worst[1]['change']:+.4f} {manifest.metric}"
