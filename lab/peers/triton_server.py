"""Triton's side: the Triton Inference Server binary that PyTriton ships, its front end (gRPC,
HTTP) and dynamic batcher in front of a Python model that runs mmrt's engine in ONNX Runtime.
That is Triton with a Python model, not Triton's onnxruntime backend (which would take the graphs
but not the decoding and tokenising the wire contract asks of the server).

    python triton_server.py --bundle B --mode split|mono --grpc-port P --http-port Q --metrics-port R

Run with the PyTriton venv's python, beside engine_model.py. Prints "READY" once Triton answers;
SIGTERM stops Triton and its backend. The dynamic batcher (max batch 32, no queue delay, as
`mmrt serve`'s defaults) hands the model the requests it queued; those with the same inputs and
shapes run as one batch."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import sysconfig
from pathlib import Path

import numpy as np
from engine_model import load_engine, scores

WIRE = {"AUDIO": (np.float32, (-1,)), "VIDEO": (np.uint8, (-1, -1, -1, 3)), "TEXT": (bytes, (1,))}


def infer_function(engine):
    def infer(requests: list) -> list:
        groups: dict = {}
        for i, request in enumerate(requests):
            key = tuple(sorted((name, np.shape(x)[1:]) for name, x in request.items()))
            groups.setdefault(key, []).append(i)
        answers: list = [None] * len(requests)
        for key, members in groups.items():
            names = [name for name, _ in key]
            batch = scores(engine, {n: np.concatenate([requests[i][n] for i in members]) for n in names})
            start = 0
            for i in members:
                rows = len(requests[i][names[0]])
                answers[i] = {"SCORES": batch[start:start + rows]}
                start += rows
        return answers
    return infer


def own_libpython_first() -> None:
    """The wheel's Python backend stub links libpython by soname; where this interpreter is not the
    system's (pyenv), it would load the system's library with this one's standard library and the
    model would fail to load. PyTriton passes LD_LIBRARY_PATH on to the stub."""
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if libdir and soname and (Path(libdir) / soname).exists():
        os.environ["LD_LIBRARY_PATH"] = ":".join([libdir, os.environ.get("LD_LIBRARY_PATH", "")]).rstrip(":")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--mode", default="split")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-batch", type=int, default=32)
    for port in ("--grpc-port", "--http-port", "--metrics-port"):
        p.add_argument(port, type=int, required=True)
    args = p.parse_args()
    own_libpython_first()
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    engine = load_engine(args.bundle, args.mode, args.threads)
    names = {m.upper() for m in engine.bundle.manifest.modalities}
    inputs = [Tensor(name=n, dtype=d, shape=s, optional=True) for n, (d, s) in WIRE.items() if n in names]
    config = TritonConfig(grpc_address="127.0.0.1", grpc_port=args.grpc_port, http_address="127.0.0.1",
                          http_port=args.http_port, metrics_address="127.0.0.1",
                          metrics_port=args.metrics_port, allow_gpu_metrics=False)
    triton = Triton(config=config)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        triton.bind(model_name="mmrt", infer_func=infer_function(engine), inputs=inputs,
                    outputs=[Tensor(name="SCORES", dtype=np.float32, shape=(-1,))],
                    config=ModelConfig(max_batch_size=args.max_batch,
                                       batcher=DynamicBatcher(max_queue_delay_microseconds=0)),
                    strict=False)
        triton.run()
        print("READY", flush=True)
        triton.serve()
    except KeyboardInterrupt:
        pass
    finally:
        triton.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
