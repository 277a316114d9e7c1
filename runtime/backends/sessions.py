"""Graph sessions for the runtime: ONNX Runtime with the best providers available, or a TensorRT
engine where the bundle has one and this machine can run it. No torch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrt.bundle import GraphSpec
from mmrt.errors import UserError
from mmrt.runtime.backends.graph import Graph

log = logging.getLogger(__name__)

# Fastest first; the CPU provider is always there.
PROVIDER_PRIORITY = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


@dataclass(frozen=True)
class SessionOptions:
    threads: int = 0  # intra-op threads per session; 0 lets ONNX Runtime choose (all cores)
    providers: tuple[str, ...] | None = None  # None: every available one in PROVIDER_PRIORITY order
    use_engines: bool = True  # run the bundle's TensorRT engines where TensorRT and a GPU are here
    # ONNX Runtime's worker threads spin after each run, waiting for the next. With one session
    # per graph they spin against each other (and burn an edge device's power): off by default.
    spin: bool = False
    # ONNX Runtime's CPU memory arena keeps every size it ever allocated: with batches of every
    # size the server's memory crept up for minutes (+6% from 30 s to 5 min of soak). Without it
    # memory stays flat (+0.1%), at the same throughput. Off by default.
    arena: bool = False


def choose_providers(requested: Sequence[str] | None = None) -> list[str]:
    """The providers to use, in priority order, keeping only those this onnxruntime build has."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    if requested is None:
        return [p for p in PROVIDER_PRIORITY if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        raise UserError(f"execution provider {missing[0]!r} is not available in this onnxruntime build "
                        f"(available: {sorted(available)})")
    return list(requested)


class OrtGraph:
    """One ONNX graph in an ONNX Runtime session: ``run({name: array}) -> {name: array}``."""

    kind = "onnxruntime"

    def __init__(self, path: Path, spec: GraphSpec, options: SessionOptions, model: bytes | None = None):
        """The graph in ``model`` (its verified bytes) if given, else read from ``path``."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.enable_cpu_mem_arena = options.arena
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spin else "0")
        self.spec = spec
        providers = choose_providers(options.providers)
        try:
            source = str(path) if model is None else model
            self.session = ort.InferenceSession(source, so, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise UserError(f"{path}: ONNX Runtime cannot load the graph", str(e)) from None
        self.providers = self.session.get_providers()
        self.output_names = [o.name for o in spec.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outputs, strict=True))


def open_graph(folder: Path, spec: GraphSpec, options: SessionOptions,
               blobs: dict[str, bytes] | None = None) -> Graph:
    """The TensorRT engine where there is one and it loads here, else the ONNX graph; from
    ``blobs`` (file name -> verified bytes) where given."""
    blobs = blobs or {}
    if spec.engine and options.use_engines:
        from mmrt.runtime.backends.tensorrt_engine import TensorrtGraph, tensorrt_runtime_available

        reason = tensorrt_runtime_available()
        if reason is None:
            try:
                return TensorrtGraph(folder / spec.engine, spec, blobs.get(spec.engine))
            except Exception as e:  # an engine built for another GPU or TensorRT version
                log.warning("%s: cannot run the TensorRT engine here (%s); using %s", spec.engine, e,
                            spec.file)
        else:
            log.info("%s: %s; using %s with ONNX Runtime", spec.engine, reason, spec.file)
    return OrtGraph(folder / spec.file, spec, options, blobs.get(spec.file))
