"""Running a bundle's TensorRT engine (``*.plan``) with the TensorRT 10/11 tensor API and
cuda-python for device memory. No torch. Used only where ``tensorrt`` and a GPU are present
(the ``gpu`` extra); elsewhere the runtime uses the ONNX graph.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from mmrt.bundle import GraphSpec


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python 12.6+
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def tensorrt_runtime_available() -> str | None:
    """None when engines can run here, else why not (one line)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed"
    try:
        cudart = _cudart()
    except ImportError:
        return "cuda-python is not installed"
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        return "no CUDA device"
    return None


def _check(result):
    err, *rest = result
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


class TensorrtGraph:
    """A deserialised engine: ``run({name: array}) -> {name: array}``, one call at a time."""

    kind = "tensorrt"

    def __init__(self, path: Path, spec: GraphSpec, plan: bytes | None = None):
        """The engine in ``plan`` (its verified bytes) if given, else read from ``path``."""
        import tensorrt as trt

        self.trt, self.cudart, self.spec = trt, _cudart(), spec
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(Path(path).read_bytes() if plan is None else plan)
        if self.engine is None:
            raise RuntimeError(f"{path.name}: TensorRT could not deserialise the engine (built for "
                               f"another GPU or TensorRT version?)")
        self.context = self.engine.create_execution_context()
        self.stream = _check(self.cudart.cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.providers = ["TensorRT"]
        self.buffers: dict[str, tuple[int, int]] = {}  # tensor name -> (device pointer, bytes)
        self.lock = threading.Lock()

    def _dtype(self, name: str) -> np.dtype:
        return np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))

    def _device(self, name: str, nbytes: int) -> int:
        """A device buffer of at least ``nbytes`` for tensor ``name``, kept between calls."""
        pointer, capacity = self.buffers.get(name, (0, 0))
        if capacity < nbytes:
            if pointer:
                self.cudart.cudaFree(pointer)
            pointer = int(_check(self.cudart.cudaMalloc(nbytes)))
            self.buffers[name] = (pointer, nbytes)
        return pointer

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = self.cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self.lock:
            hosts = {}
            for name in self.inputs:
                host = np.ascontiguousarray(feeds[name], dtype=self._dtype(name))
                self.context.set_input_shape(name, host.shape)
                hosts[name] = host
            for name in self.outputs:
                hosts[name] = np.empty(tuple(self.context.get_tensor_shape(name)), self._dtype(name))
            for name, host in hosts.items():
                device = self._device(name, max(host.nbytes, 1))
                self.context.set_tensor_address(name, device)
                if name in self.inputs:
                    _check(cudart.cudaMemcpyAsync(device, host.ctypes.data, host.nbytes, h2d, self.stream))
            if not self.context.execute_async_v3(int(self.stream)):
                raise RuntimeError(f"{self.spec.engine}: TensorRT execution failed")
            for name in self.outputs:
                host, device = hosts[name], self.buffers[name][0]
                _check(cudart.cudaMemcpyAsync(host.ctypes.data, device, host.nbytes, d2h, self.stream))
            _check(cudart.cudaStreamSynchronize(self.stream))
        return {name: hosts[name].astype(np.float32, copy=False) for name in self.outputs}

    def close(self) -> None:
        for pointer, _ in self.buffers.values():
            self.cudart.cudaFree(pointer)
        self.buffers.clear()

    def __del__(self):
        if getattr(self, "buffers", None):
            self.close()
