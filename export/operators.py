"""The ONNX operators a bundle may use: those TensorRT 10's ONNX parser runs (onnx-tensorrt's
operator matrix), so the same graphs serve on ONNX Runtime and TensorRT alike. Spectral
operators (STFT, DFT, window functions) and complex tensors are out: the log-mel front-end
is a fixed-weight convolution for that reason.
"""

from __future__ import annotations

TENSORRT_OPERATORS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast
CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum
DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor
Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater
GreaterOrEqual GroupNormalization HardSigmoid HardSwish Identity If InstanceNormalization
IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax LpNormalization LpPool LRN
MatMul Max MaxPool Mean Min Mish Mul Neg Not Or Pad Pow PRelu QuantizeLinear Range
ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize Round Selu Shape Sigmoid Sign Sin Sinh Size Slice
Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile
TopK Transpose Trilu Unsqueeze Where Xor
""".split())

# onnx.TensorProto element types TensorRT has no counterpart for.
UNSUPPORTED_TYPES = {"COMPLEX64", "COMPLEX128", "STRING"}


def _types(model) -> set[str]:
    import onnx

    graph = model.graph
    values = list(graph.input) + list(graph.output) + list(graph.value_info)
    found = {onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type) for v in values
             if v.type.HasField("tensor_type")}
    found |= {onnx.TensorProto.DataType.Name(t.data_type) for t in graph.initializer}
    return found


def tensorrt_problems(model) -> list[str]:
    """What in ``model`` (an onnx.ModelProto) TensorRT cannot run; empty when it all can."""
    problems = []
    ops = {n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")}
    custom = {f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")}
    problems += [f"operator {op}" for op in sorted(ops - TENSORRT_OPERATORS)]
    problems += [f"custom operator {op}" for op in sorted(custom)]
    problems += [f"tensor type {t}" for t in sorted(_types(model) & UNSUPPORTED_TYPES)]
    problems += [f"local function {f.name}" for f in model.functions]
    return problems
