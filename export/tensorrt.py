"""TensorRT engines (``*.plan``) from the bundle's ONNX graphs, one per graph, with an optimisation
profile over the batch axis.

FP16 differs by major version: TensorRT 10 (JetPack 6) takes FP32 graphs and a builder flag,
with the log-mel front-end pinned to FP32; TensorRT 11 dropped the flag (networks are strongly
typed), so the graph itself is converted to FP16 first (``mmrt.export.fp16``).
Engines are specific to the GPU and TensorRT version that built them: build on the target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mmrt import atomic
from mmrt.errors import UserError
from mmrt.knobs import knob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOptions:
    fp16: bool = False
    int8: bool = False  # built from a QDQ graph: explicit INT8 (TensorRT 10 needs the builder flag)
    min_batch: int = knob(1, "--min-batch", 1, "TensorRT profile's smallest batch")
    opt_batch: int = knob(8, "--opt-batch", 1, "TensorRT profile's tuned batch")
    # serving caps its --max-batch to it (the manifest records the profile)
    max_batch: int = knob(32, "--max-batch", 1, "TensorRT profile's largest batch")
    workspace_mib: int = 1024

    def check(self) -> EngineOptions:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise UserError(f"--min-batch {self.min_batch} --opt-batch {self.opt_batch} --max-batch "
                            f"{self.max_batch}: expected 1 <= min <= opt <= max")
        return self


def require_tensorrt():
    """The tensorrt module, or a one-line error saying it is not here."""
    try:
        import tensorrt
    except ImportError:
        raise UserError("--tensorrt: TensorRT is not installed here (the gpu extra, pip install "
                        "\".[gpu]\", on a machine with an NVIDIA GPU, or JetPack's; the ONNX bundle works "
                        "without it)") from None
    return tensorrt


def major_version(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


def _pin_front_end_fp32(trt, network, front_end: set[str]) -> None:
    """TensorRT 10 with the FP16 flag: keep the log-mel layers in FP32 (see mmrt.export.fp16)."""
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name in front_end:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)


def build_engine(onnx_path: Path, plan_path: Path, options: EngineOptions) -> dict:
    """Build ``plan_path`` from ``onnx_path``; returns what was built (version, precision)."""
    import onnx

    from mmrt.export.fp16 import front_end_nodes, to_fp16

    trt = require_tensorrt()
    major = major_version(trt)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    model = onnx.load(str(onnx_path))
    flags = 0
    typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if major >= 11 and typed is not None:
        flags |= 1 << int(typed)
    if options.fp16 and major >= 11:
        model = to_fp16(model)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString(), str(onnx_path.parent)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"{onnx_path.name}: TensorRT cannot parse the graph ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if options.int8 and major < 11:
        config.set_flag(trt.BuilderFlag.INT8)
    if options.fp16 and major < 11:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        _pin_front_end_fp32(trt, network, set(front_end_nodes(model)))
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (options.min_batch, *rest), (options.opt_batch, *rest),
                          (options.max_batch, *rest))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise UserError(f"{onnx_path.name}: TensorRT failed to build an engine (see its log above)")
    atomic.write_bytes(plan_path, bytes(plan))
    precision = "int8" if options.int8 else "fp16" if options.fp16 else "fp32"
    log.info("%s: TensorRT %s engine, %s, batch %d..%d (opt %d)", plan_path.name, trt.__version__,
             precision, options.min_batch, options.max_batch, options.opt_batch)
    return {"version": str(trt.__version__), "precision": precision,
            "strongly_typed": bool(flags), "profile": {"min": options.min_batch, "opt": options.opt_batch,
                                                       "max": options.max_batch}}
