"""``mmrt export``: a model directory -> a verified, versioned bundle (DESIGN.md section 5).

Every graph is exported, checked for TensorRT-compatible operators, and compared with
the PyTorch model on real examples before the bundle appears; it is built in a staging
folder and renamed at the end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

import mmrt
from mmrt import atomic
from mmrt.bundle import TOKENIZER, GraphSpec, Manifest, write_manifest
from mmrt.errors import UserError
from mmrt.export.graphs import bundle_graphs
from mmrt.export.onnx_graph import check_opset, export_graph
from mmrt.export.operators import tensorrt_problems
from mmrt.export.parity import FP16_TOLERANCE, FP32_TOLERANCE, check_parity, graph_inputs
from mmrt.export.samples import parity_samples
from mmrt.export.tensorrt import EngineOptions, build_engine, require_tensorrt
from mmrt.runtime.sessions import OrtGraph, SessionOptions
from mmrt.signing import sign_manifest
from mmrt.training.checkpoint import load_model, tokenizer_path
from mmrt.training.model import MultimodalModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportOptions:
    model: Path
    out: Path
    opset: int = 18
    baseline: bool = False
    tensorrt: bool = False
    engine: EngineOptions = field(default_factory=EngineOptions)
    data: Path | None = None  # real examples for parity; default: the model's training data
    name: str = "mmrt"
    tolerance: float = FP32_TOLERANCE
    parity_batch: int = 8
    overwrite: bool = False
    sign: object | None = None  # an Ed25519 private key (mmrt.signing.load_private_key): writes manifest.sig


def _check(opts: ExportOptions) -> tuple[MultimodalModel, Path | None]:
    check_opset(opts.opset)
    if opts.parity_batch < 2:
        raise UserError(f"--parity-batch {opts.parity_batch}: expected 2 or more (batch 1 is always checked)")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", opts.name):
        raise UserError(f"--name {opts.name!r}: expected letters, digits, '.', '_' or '-' (clients put it "
                        f"in request paths)")
    if opts.tensorrt:
        require_tensorrt()
        opts.engine.check()
    model = load_model(opts.model).eval()
    if model.head is None:
        raise UserError(f"{opts.model}: a pretrained model without a classifier head; export a model "
                        f"from 'mmrt train'")
    tokenizer = tokenizer_path(opts.model)
    if "text" in model.modalities and tokenizer is None:
        raise UserError(f"{opts.model / TOKENIZER}: missing (the model reads text, so the bundle needs "
                        f"its sentencepiece model)")
    return model, tokenizer


def _preprocessing(model: MultimodalModel, tokenizer: Path | None) -> dict:
    doc = model.config.arch.preprocessing.to_dict()
    if "audio" in model.modalities:
        doc["mel"] = model.encoders["audio"].mel.params.to_dict()
    doc["tokenizer"] = TOKENIZER if tokenizer is not None else None
    return doc


def _producers() -> dict:
    import onnx
    import onnxruntime
    import onnxscript

    return {"mmrt": mmrt.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxscript": onnxscript.__version__, "onnxruntime": onnxruntime.__version__}


def _operators_ok(path: Path, required: bool) -> None:
    import onnx

    problems = tensorrt_problems(onnx.load(str(path), load_external_data=False))
    if problems and required:
        raise UserError(f"{path.name}: TensorRT cannot run {', '.join(problems)}")
    if problems:
        log.warning("%s: not TensorRT-compatible (%s); ONNX Runtime still runs it", path.name,
                    ", ".join(problems))


def export_bundle(opts: ExportOptions) -> Manifest:
    model, tokenizer = _check(opts)
    samples = parity_samples(model, opts.data, tokenizer, opts.parity_batch)
    graphs = bundle_graphs(model, opts.baseline)
    specs: dict[str, GraphSpec] = {}
    errors: dict[str, float] = {}
    engines: dict | None = None
    with atomic.staged_dir(opts.out, overwrite=opts.overwrite) as stage:
        for step, (name, module) in enumerate(graphs.items(), start=1):
            inputs, outputs = module.specs
            in_names, out_names = [t.name for t in inputs], [t.name for t in outputs]
            path = stage / f"{name}.onnx"
            log.info("[%d/%d] %s: exporting (opset %d)", step, len(graphs), path.name, opts.opset)
            export_graph(module, graph_inputs(name, model, samples, 2), in_names, out_names, opts.opset, path)
            _operators_ok(path, required=opts.tensorrt)
            spec = GraphSpec(path.name, inputs, outputs)
            batches = {b: graph_inputs(name, model, samples, b) for b in (1, opts.parity_batch)}
            session = OrtGraph(path, spec, SessionOptions(providers=("CPUExecutionProvider",)))
            errors[name] = check_parity(path.name, module, session.run, in_names, batches, opts.tolerance)
            log.info("[%d/%d] %s: parity max error %.2g at batch 1 and %d (tolerance %.0g)", step,
                     len(graphs), path.name, errors[name], opts.parity_batch, opts.tolerance)
            if opts.tensorrt:
                spec = GraphSpec(spec.file, spec.inputs, spec.outputs, engine=f"{name}.plan")
                built = _engine(stage, module, spec, in_names, batches, opts)
                engines = {**built, "max_error": {**(engines or {}).get("max_error", {}),
                                                  name: built["max_error"]}}
            specs[name] = spec
        if tokenizer is not None:
            shutil.copyfile(tokenizer, stage / TOKENIZER)
        config = model.config
        manifest = Manifest(
            name=opts.name, modalities=model.modalities, embedding_dim=config.arch.embed_dim,
            classes=config.classes, task=config.task, preprocessing=_preprocessing(model, tokenizer),
            graphs=specs, opset=opts.opset, producer=_producers(), tensorrt=engines,
            parity={"tolerance": opts.tolerance, "batches": [1, opts.parity_batch],
                    "data": samples["source"], "max_error": errors},
            model={"preset": config.preset, "arch": config.arch.to_dict(), "history": list(config.history)})
        manifest = write_manifest(stage, manifest)
        if opts.sign is not None:
            sign_manifest(stage, opts.sign)
    log.info("bundle %s: %s", opts.out, ", ".join(manifest.files))
    return manifest


def _engine(stage: Path, module: torch.nn.Module, spec: GraphSpec, in_names: list[str], batches: dict,
            opts: ExportOptions) -> dict:
    """Build the graph's engine and check it against torch like the ONNX graph (FP16: looser)."""
    from mmrt.runtime.tensorrt_engine import TensorrtGraph

    built = build_engine(stage / spec.file, stage / spec.engine, opts.engine)
    tolerance = FP16_TOLERANCE if opts.engine.fp16 else opts.tolerance
    usable = {b: x for b, x in batches.items() if opts.engine.min_batch <= b <= opts.engine.max_batch}
    run = TensorrtGraph(stage / spec.engine, spec).run
    built["max_error"] = check_parity(spec.engine, module, run, in_names, usable, tolerance)
    return built
