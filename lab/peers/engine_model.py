"""The model both peers serve: mmrt's own engine (its preprocessing and the bundle's ONNX Runtime
graphs), so that what differs between `mmrt serve` and a peer is the server in front of it.

Runs inside a peer's virtual environment, where mmrt is installed without its dependencies
(`pip install --no-deps`) beside the peer's own onnxruntime, numpy, OpenCV and sentencepiece.
``split``: the encoders of the modalities a request carries, their mean and the head (what mmrt
serve does); ``mono``: the monolithic graph with zeros for what is missing (what a generic
server is given when the model is exported as one graph)."""

from __future__ import annotations

import numpy as np

from mmrt.runtime.backends.loaded_bundle import open_bundle
from mmrt.runtime.backends.sessions import SessionOptions
from mmrt.runtime.engine.batcher import BatchingOptions
from mmrt.runtime.engine.engine import Engine
from mmrt.runtime.engine.monolithic import MonolithicEngine

MODES = ("split", "mono")


def load_engine(bundle: str, mode: str, threads: int) -> Engine:
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    opened = open_bundle(bundle, SessionOptions(threads=threads), baseline=mode == "mono")
    engine = MonolithicEngine(opened) if mode == "mono" else Engine(opened, BatchingOptions(enabled=False))
    engine.warm()
    return engine


def scores(engine: Engine, tensors: dict[str, np.ndarray]) -> np.ndarray:
    """SCORES [B, C] for one request's tensors (mmrt's wire names: AUDIO, VIDEO, TEXT)."""
    return np.asarray(engine.infer(tensors).scores, np.float32)
