"""FP16 copies of ONNX graphs, for TensorRT 11's strongly typed networks (no FP16 builder flag:
the graph's own types decide the precision).

Inputs and outputs stay as they were (FP32 PCM in, FP32 embeddings out), and the log-mel
front-end stays FP32: a loud tone's power spectrum comes near FP16's largest value (65504).
"""

from __future__ import annotations


def front_end_nodes(model) -> list[str]:
    """Names of the nodes that feed a Log (the log-mel front-end), the Log included."""
    producers = {out: node for node in model.graph.node for out in node.output}
    keep: set[str] = set()
    stack = [n for n in model.graph.node if n.op_type == "Log"]
    while stack:
        node = stack.pop()
        if node.name in keep:
            continue
        keep.add(node.name)
        stack += [producers[i] for i in node.input if i in producers]
    return sorted(keep)


def to_fp16(model):
    """An FP16 copy of an FP32 onnx.ModelProto, with FP32 inputs, outputs and front-end."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    for i, node in enumerate(model.graph.node):
        if not node.name:  # the converter blocks nodes by name
            node.name = f"node_{i}"
    return convert_float_to_float16(model, keep_io_types=True, node_block_list=front_end_nodes(model),
                                    disable_shape_infer=False)
