"""What every graph backend the runtime runs implements: ONNX Runtime sessions
(``sessions.OrtGraph``), TensorRT engines (``tensorrt_engine.TensorrtGraph``), and the fault
injection graphs of drills and tests (``faults``)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Graph(Protocol):
    kind: str  # "onnxruntime", "tensorrt", "fault"
    providers: list[str]  # what runs it, best first (ONNX Runtime's providers, "TensorRT", ...)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs by tensor name -> outputs by tensor name; raises on failure."""
        ...
