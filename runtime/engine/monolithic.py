"""The baseline a user would otherwise deploy: one monolithic graph (the bundle's ``fused.onnx``)
that runs every encoder for every request, a missing modality fed as zeros. ``PRESENT`` keeps
the zeros out of the mean, so its answers equal per-modality serving and only the cost differs.
Served by ``mmrt serve --monolithic`` through the same protocol path, for ``mmrt bench --baseline``.
"""

from __future__ import annotations

import time

import numpy as np

from mmrt.bundle import EMBEDDING, FUSED, PRESENT, SCORES, input_name
from mmrt.runtime.backends.loaded_bundle import Bundle
from mmrt.runtime.engine.batcher import BatchingOptions, always
from mmrt.runtime.engine.engine import Engine, Result, SequenceFlags, gone
from mmrt.runtime.engine.limits import Limits
from mmrt.runtime.engine.status import invalid


class MonolithicEngine(Engine):
    def __init__(self, bundle: Bundle, limits: Limits | None = None):
        if bundle.fused is None:
            raise ValueError(f"{bundle.folder}: opened without its {FUSED}.onnx baseline")
        super().__init__(bundle, BatchingOptions(enabled=False), limits)
        specs = bundle.manifest.graphs[FUSED].inputs
        self.zeros = {t.name: (tuple(t.shape[1:]), np.dtype(t.dtype)) for t in specs if t.name != PRESENT}

    def infer(self, tensors: dict[str, np.ndarray], sequence: SequenceFlags | None = None,
              alive=always) -> Result:
        if sequence is not None:
            raise invalid("the monolithic baseline does not keep sequences (send every modality at once)")
        start = time.perf_counter_ns()
        raw = self.parse(tensors)
        gone(alive)
        batch = len(next(iter(raw.values())))
        feeds = {}
        for m in self.modalities:
            name = input_name(m)
            shape, dtype = self.zeros[name]
            feeds[name] = self.preprocess(m, raw[m]) if m in raw else np.zeros((batch, *shape), dtype)
        present = np.array([[m in raw for m in self.modalities]] * batch, dtype=np.float32)
        fused = self.bundle.fused
        if fused is None:  # open_bundle(baseline=True) refuses a bundle without it
            raise RuntimeError(f"{self.bundle.folder}: no monolithic graph")
        out = fused.run({**feeds, PRESENT: present})
        used = tuple(m for m in self.modalities if m in raw)
        return Result(out[SCORES], out[EMBEDDING], used, {}, time.perf_counter_ns() - start)
