"""One torch module -> one ONNX file with the dynamo exporter and a dynamic batch axis."""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from pathlib import Path

import torch

from mmrt.errors import UserError

MIN_OPSET = 18  # the dynamo exporter's lowest
PROTOBUF_LIMIT = 2 << 30  # a single-file ONNX graph cannot pass 2 GB
MAX_BATCH = 1 << 16


def check_opset(opset: int) -> int:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise UserError(f"--opset {opset}: the dynamo exporter writes opset {MIN_OPSET} to {newest} "
                        f"(onnx {onnx.__version__})")
    return opset


def _weight_bytes(module: torch.nn.Module) -> int:
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter prints its steps, logs each rewrite and warns about optional torchvision ops;
    keep the CLI to mmrt's own progress lines (errors still raise)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _dynamic_batch(module: torch.nn.Module, count: int) -> tuple:
    """Axis 0 of every input is the batch; a ``forward(*xs)`` takes them as one nested tuple."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    axes = tuple({0: batch} for _ in range(count))
    kinds = [p.kind for p in inspect.signature(module.forward).parameters.values()]
    return (axes,) if kinds == [inspect.Parameter.VAR_POSITIONAL] else axes


def _summary(error: Exception) -> str:
    """The most telling line of an exporter error (they run to pages)."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("For more information", "The error above"))]
    return (useful[0] if useful else type(error).__name__)[:300]


def export_graph(module: torch.nn.Module, example: tuple[torch.Tensor, ...], input_names: list[str],
                 output_names: list[str], opset: int, path: Path) -> Path:
    """Export ``module`` (in eval mode) to ``path``; the first axis of every input is dynamic.

    ``example`` must have a batch of at least 2, or the exporter specialises the batch to 1.
    Weights go into the same file unless they pass protobuf's 2 GB limit.
    """
    dynamic = _dynamic_batch(module, len(example))
    external = _weight_bytes(module) > PROTOBUF_LIMIT * 0.9
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(module, example, dynamo=True, opset_version=opset,
                                        input_names=input_names, output_names=output_names,
                                        dynamic_shapes=dynamic, optimize=True, verbose=False,
                                        external_data=external)
            program.save(str(path), external_data=external)
    except Exception as e:  # the exporter raises many types; name the graph and keep the cause
        raise UserError(f"{path.name}: ONNX export failed ({type(e).__name__}: {_summary(e)})") from e
    return path
