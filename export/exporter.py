"""``mmrt export``: a model directory -> a verified, versioned bundle (DESIGN.md section 5).

Every graph is exported, checked for TensorRT-compatible operators, and compared with
the PyTorch model on real examples before the bundle appears; with ``int8``, each encoder also
gets a QDQ copy calibrated on training examples and checked by the score it keeps on the eval
split (``export.score_check``). The bundle is built in a staging folder and renamed at the end,
so a failed export leaves nothing behind.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

import mmrt
from mmrt import atomic
from mmrt.bundle import (
    DEFAULT_OPSET,
    MANIFEST,
    MODEL_NAME,
    MODEL_NAME_RULE,
    TOKENIZER,
    GraphSpec,
    Manifest,
    write_manifest,
)
from mmrt.errors import UserError
from mmrt.export.graphs import bundle_graphs
from mmrt.export.int8 import quantize_graph
from mmrt.export.onnx_graph import check_opset, export_graph
from mmrt.export.operators import tensorrt_problems
from mmrt.export.parity import (
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    INT8_TOLERANCE,
    check_parity,
    embedding_agreement,
    graph_inputs,
)
from mmrt.export.samples import calibration_batches, data_root, parity_samples
from mmrt.export.score_check import check_drop, eval_split, score_change
from mmrt.export.tensorrt import EngineOptions, build_engine, require_tensorrt
from mmrt.runtime.backends.sessions import OrtGraph, SessionOptions
from mmrt.signing import sign_manifest
from mmrt.training.model.checkpoint import load_model, tokenizer_path
from mmrt.training.model.model import MultimodalModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportOptions:
    model: Path
    out: Path
    opset: int = DEFAULT_OPSET
    baseline: bool = False
    tensorrt: bool = False
    engine: EngineOptions = field(default_factory=EngineOptions)
    data: Path | None = None  # real examples for parity; default: the model's training data
    name: str = "mmrt"
    version: int = 1  # the model version clients will see (the repository folder it goes in)
    tolerance: float = FP32_TOLERANCE
    parity_batch: int = 8
    overwrite: bool = False
    sign: object | None = None  # an Ed25519 private key (mmrt.signing.load_private_key): writes manifest.sig
    int8: bool = False  # also an INT8 (QDQ) copy of each encoder, checked by its score
    calibration_examples: int = 256  # training examples per modality for INT8 calibration
    max_score_drop: float = 0.01  # the most an INT8 subset score may fall below FP32's (absolute)


def _check(opts: ExportOptions) -> tuple[MultimodalModel, Path | None]:
    check_opset(opts.opset)
    if opts.parity_batch < 2:
        raise UserError(f"--parity-batch {opts.parity_batch}: expected 2 or more (batch 1 is always checked)")
    if not MODEL_NAME.fullmatch(opts.name):
        raise UserError(f"--name {opts.name!r}: expected {MODEL_NAME_RULE} (clients put it in request paths)")
    if opts.version < 1:
        raise UserError(f"--model-version {opts.version}: expected 1 or more (the version folder it is "
                        f"served from)")
    if opts.calibration_examples < 1:
        raise UserError(f"--calibration-examples {opts.calibration_examples}: expected 1 or more")
    if not opts.max_score_drop >= 0:
        raise UserError(f"--max-score-drop {opts.max_score_drop}: expected 0 or more")
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
    root = data_root(model, opts.data)
    samples = parity_samples(model, root, tokenizer, opts.parity_batch)
    graphs = bundle_graphs(model, opts.baseline)
    specs: dict[str, GraphSpec] = {}
    errors: dict[str, float] = {}
    engines: dict | None = None
    int8: dict = {}
    runs: dict[str, tuple] = {}  # modality -> (FP32 run, INT8 run), for the score check
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
                spec = replace(spec, engine=f"{name}.plan")
                built = _engine(stage, module, spec, spec.engine, in_names, batches, opts, opts.engine)
                engines = {**built, "max_error": {**(engines or {}).get("max_error", {}),
                                                  name: built["max_error"]}}
            if opts.int8 and name in model.modalities:
                spec = replace(spec, int8=f"{name}.int8.onnx")
                int8[name], quantized = _int8(stage, model, name, spec, session, batches, root, tokenizer,
                                              opts)
                runs[name] = (session.run, quantized.run)
                if opts.tensorrt:
                    spec = replace(spec, int8_engine=f"{name}.int8.plan")
                    int8[name]["engine"] = _engine(stage, module, spec, spec.int8_engine, in_names, batches,
                                                   opts, replace(opts.engine, fp16=False, int8=True))
            specs[name] = spec
        if tokenizer is not None:
            shutil.copyfile(tokenizer, stage / TOKENIZER)
        if opts.int8:
            int8 = _int8_scores(model, runs, root, tokenizer, int8, opts)
        config = model.config
        manifest = Manifest(
            name=opts.name, version=opts.version,
            modalities=model.modalities, embedding_dim=config.arch.embed_dim,
            classes=config.classes, task=config.task, preprocessing=_preprocessing(model, tokenizer),
            graphs=specs, opset=opts.opset, producer=_producers(), tensorrt=engines, int8=int8 or None,
            parity={"tolerance": opts.tolerance, "batches": [1, opts.parity_batch],
                    "data": samples["source"], "max_error": errors},
            model={"preset": config.preset, "arch": config.arch.to_dict(), "history": list(config.history)})
        manifest = write_manifest(stage, manifest)
        if opts.sign is not None:
            sign_manifest(stage / MANIFEST, opts.sign)
    log.info("bundle %s: %s", opts.out, ", ".join(manifest.files))
    return manifest


def _engine(stage: Path, module: torch.nn.Module, spec: GraphSpec, plan: str, in_names: list[str],
            batches: dict, opts: ExportOptions, engine: EngineOptions) -> dict:
    """Build ``plan`` from the graph it is made from (``spec.int8`` for an INT8 engine) and check
    it against torch like the ONNX graph (FP16 and INT8: looser)."""
    from mmrt.runtime.backends.tensorrt_engine import TensorrtGraph

    built = build_engine(stage / (spec.int8 if engine.int8 else spec.file), stage / plan, engine)
    tolerance = INT8_TOLERANCE if engine.int8 else FP16_TOLERANCE if engine.fp16 else opts.tolerance
    usable = {b: x for b, x in batches.items() if engine.min_batch <= b <= engine.max_batch}
    run = TensorrtGraph(stage / plan, spec).run
    built["max_error"] = check_parity(plan, module, run, in_names, usable, tolerance)
    return built


def _int8(stage: Path, model: MultimodalModel, modality: str, spec: GraphSpec, fp32: OrtGraph, batches: dict,
          root: Path, tokenizer: Path | None, opts: ExportOptions) -> tuple[dict, OrtGraph]:
    """Quantize one encoder graph, calibrated on training examples: what was done and how far its
    embeddings moved, and the quantized graph's session."""
    calibration = calibration_batches(model, root, tokenizer, modality, opts.calibration_examples)
    examples = sum(len(next(iter(b.values()))) for b in calibration)
    log.info("%s: quantizing, calibrated on %d training examples", spec.int8, examples)
    report = quantize_graph(stage / spec.file, stage / spec.int8, calibration)
    _operators_ok(stage / spec.int8, required=opts.tensorrt)
    quantized = OrtGraph(stage / spec.int8, spec, SessionOptions(providers=("CPUExecutionProvider",)))
    feeds = [{n: x.numpy() for n, x in zip([t.name for t in spec.inputs], inputs, strict=True)}
             for inputs in batches.values()]
    return {**report, "calibration_examples": examples,
            "embedding": embedding_agreement(fp32.run, quantized.run, feeds)}, quantized


def _int8_scores(model: MultimodalModel, runs: dict[str, tuple], root: Path, tokenizer: Path | None,
                 per_graph: dict, opts: ExportOptions) -> dict:
    """Score the FP32 and the INT8 encoders on the eval split, every subset; refuse past the drop."""
    split = eval_split(model, root, tokenizer)
    fp32, int8 = ({m: pair[i] for m, pair in runs.items()} for i in (0, 1))
    log.info("INT8: scoring FP32 and INT8 encoders on %d eval examples, every modality subset", len(split))
    change = score_change(model, split, fp32, int8)
    for subset, c in change.items():
        log.info("INT8 %s: %s %.4f (FP32 %.4f, %+.4f)", subset, model.config.metric, c["int8"], c["fp32"],
                 c["change"])
    check_drop(change, opts.max_score_drop, model.config.metric)
    return {"format": "QDQ", "activations": "uint8, per tensor", "weights": "int8, per channel, symmetric",
            "calibration": {"data": f"{root}/train.jsonl", "method": "min-max"},
            "eval": f"{root}/eval.jsonl", "max_score_drop": opts.max_score_drop, "score": change,
            "graphs": per_graph}
