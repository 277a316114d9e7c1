"""INT8 copies of the encoder graphs: ONNX Runtime's static quantization in the QDQ form,
calibrated on real training examples.

Only the matrix products with weights are quantized (MatMul, Gemm with a constant operand); what
stays in floating point stays there, and the manifest says what and why:
- the log-mel front-end (everything that feeds the Log): a loud tone's power spectrum spans
  more than eight bits, and its DFT weights are fixed, not learned;
- products of two activations (attention's Q K^T and its weighted sum): quantizing them wraps
  the softmax in Q/DQ pairs that cost more than they save on a CPU;
- the convolution stems: ONNX Runtime's INT8 convolution (QLinearConv) took 1.5x the time of
  its FP32 one on these small stems (2-core Xeon with VNNI; docs/results/int8.md);
- normalisations, activations and the head (its own FP32 graph), which have no weights to
  shrink.
The same QDQ graphs are what TensorRT builds explicit INT8 engines from.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmrt.errors import UserError
from mmrt.export.fp16 import front_end_nodes

log = logging.getLogger(__name__)

QUANTIZED_OPS = ("MatMul", "Gemm")
FLOAT_OPS = ("Conv",)  # quantizable, kept in float on purpose (see above)


def _constants(model) -> set[str]:
    names = {i.name for i in model.graph.initializer}
    return names | {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}


def kept_float(model) -> dict[str, list[str]]:
    """Nodes of a type with weights that stay in floating point, by reason."""
    constants = _constants(model)
    front_end = set(front_end_nodes(model))
    kept: dict[str, list[str]] = {"log-mel front-end": [], "product of two activations": [],
                                  "convolution stem": []}
    for node in model.graph.node:
        if node.op_type in FLOAT_OPS and node.name not in front_end:
            kept["convolution stem"].append(node.name)
        if node.op_type not in QUANTIZED_OPS:
            continue
        if node.name in front_end:
            kept["log-mel front-end"].append(node.name)
        elif not any(i in constants for i in node.input):
            kept["product of two activations"].append(node.name)
    return kept


class _Reader:
    """The calibration batches, as onnxruntime.quantization's CalibrationDataReader protocol asks."""

    def __init__(self, batches: list[dict[str, np.ndarray]]):
        self.batches: Iterator[dict[str, np.ndarray]] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)

    def rewind(self) -> None:  # onnxruntime calls it on some versions; one pass is all it needs here
        pass


def quantize_graph(src: Path, dst: Path, batches: list[dict[str, np.ndarray]]) -> dict:
    """Write the INT8 QDQ copy of ``src`` to ``dst``, calibrated on ``batches`` (graph inputs);
    returns what it did: nodes quantized, nodes kept in float by reason, operator counts."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="mmrt-int8-") as tmp:
        named = Path(tmp) / src.name
        try:  # shape inference and graph optimisation first, as onnxruntime's quantizer asks
            quant_pre_process(str(src), str(named), skip_symbolic_shape=True)
        except Exception as e:  # noqa: BLE001 - the quantizer also works on the graph as exported
            log.warning("%s: quantization pre-processing failed (%s); quantizing the graph as exported",
                        src.name, e)
            named.write_bytes(src.read_bytes())
        model = onnx.load(str(named))
        for i, node in enumerate(model.graph.node):  # the quantizer excludes nodes by name
            node.name = node.name or f"node_{i}"
        onnx.save(model, str(named))
        kept = kept_float(model)
        excluded = {name for names in kept.values() for name in names}
        quantized = [n.name for n in model.graph.node
                     if n.op_type in QUANTIZED_OPS and n.name not in excluded]
        if not quantized:
            raise UserError(f"--int8: {src.name} has no layer with weights to quantize (its "
                            f"MatMul/Gemm nodes must all stay in float)")
        try:
            quantize_static(str(named), str(dst), _Reader(batches), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=True, op_types_to_quantize=list(QUANTIZED_OPS),
                            nodes_to_exclude=sorted(excluded), calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        except Exception as e:  # onnxruntime's quantizer raises plain exceptions of many kinds
            raise UserError(f"--int8: {src.name} cannot be quantized ({type(e).__name__}: {e})") from None
    ops = Counter(n.op_type for n in onnx.load(str(dst), load_external_data=False).graph.node)
    report = {"quantized": len(quantized),
              "kept_float": {reason: len(names) for reason, names in kept.items()},
              "operators": {op: ops[op] for op in ("QuantizeLinear", "DequantizeLinear")}}
    log.info("%s: %d layers quantized, %s kept in float", dst.name, report["quantized"],
             ", ".join(f"{n} {reason}" for reason, n in report["kept_float"].items() if n) or "none")
    return report
