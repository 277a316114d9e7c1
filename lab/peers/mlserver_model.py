"""MLServer's side: a custom runtime (an ``MLModel``) serving mmrt's engine as model "mmrt".

model-settings.json's ``parameters.extra``: ``bundle`` (the folder), ``mode`` (split or mono),
``threads`` (ONNX Runtime threads per graph). Predictions run in ``predict()`` on MLServer's event
loop, as its own runtimes do; MLServer's adaptive batching, when the settings turn it on, merges
requests carrying the same inputs before ``predict()``. A bad input answers 400 without its
details (they go to the log)."""

from __future__ import annotations

import logging

import numpy as np
from engine_model import load_engine, scores
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse

log = logging.getLogger("mmrt-peer")
DTYPES = {"FP32": np.float32, "UINT8": np.uint8}


class BadRequest(MLServerError):
    def __init__(self) -> None:
        super().__init__("the request's inputs are not AUDIO FP32, VIDEO UINT8 and TEXT BYTES",
                         status_code=400)


def as_array(request_input) -> np.ndarray:
    data = getattr(request_input.data, "root", request_input.data)
    if request_input.datatype == "BYTES":
        rows = [d.encode("utf-8") if isinstance(d, str) else bytes(d) for d in data]
        return np.array(rows, dtype=object).reshape(request_input.shape)
    return np.asarray(data, dtype=DTYPES[request_input.datatype]).reshape(request_input.shape)


class EngineRuntime(MLModel):
    async def load(self) -> bool:
        extra = self.settings.parameters.extra
        self.engine = load_engine(extra["bundle"], extra["mode"], int(extra["threads"]))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        try:
            answer = scores(self.engine, {i.name: as_array(i) for i in payload.inputs})
        except Exception:
            log.exception("request refused")
            raise BadRequest() from None
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("SCORES", answer)])
