"""Parity: every exported graph against the PyTorch model on real examples, at batch 1 and at a
larger batch, with an explicit tolerance. Past it, export fails, naming the graph."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mmrt.bundle import FUSED, HEAD
from mmrt.errors import UserError
from mmrt.training.model.model import MultimodalModel

# Max |graph - torch| allowed on unit-norm embeddings and on probabilities. FP32 graphs land
# near 1e-7; FP16 engines are checked against their own, looser tolerance.
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-2
# INT8 engines: a sanity bound only (the INT8 graphs are checked by their score, export.score_check).
INT8_TOLERANCE = 1e-1


def _to_batch(x: torch.Tensor, n: int) -> torch.Tensor:
    """Exactly ``n`` rows, cycling through the examples when there are fewer."""
    return x[torch.arange(n) % len(x)]


def graph_inputs(name: str, model: MultimodalModel, samples: dict, batch: int) -> tuple[torch.Tensor, ...]:
    """The inputs of graph ``name`` for ``batch`` real examples (batch 2+ also makes export examples)."""
    mixed = {k: _to_batch(v, batch) for k, v in samples["mixed"].items()}
    if name == FUSED:
        return (*[mixed[m] for m in model.modalities], mixed["present"])
    if name == HEAD:
        with torch.no_grad():
            present = {m: mixed["present"][:, i] > 0 for i, m in enumerate(model.modalities)}
            return (model.fuse(model.embed(mixed, model.modalities), present),)
    return (_to_batch(samples[name], batch),)


def max_error(module: torch.nn.Module, run: Callable[[dict], dict], input_names: list[str],
              inputs: tuple[torch.Tensor, ...]) -> float:
    with torch.no_grad():
        expected = module(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = list(run({n: x.numpy() for n, x in zip(input_names, inputs, strict=True)}).values())
    worst = 0.0
    for want, have in zip(expected, got, strict=True):
        have = np.asarray(have, dtype=np.float32)
        if have.shape != tuple(want.shape):
            return float("inf")
        worst = max(worst, float(np.max(np.abs(have - want.numpy()), initial=0.0)))
        if not np.isfinite(have).all():
            return float("inf")
    return worst


def check_parity(file: str, module: torch.nn.Module, run: Callable[[dict], dict], input_names: list[str],
                 batches: dict[int, tuple[torch.Tensor, ...]], tolerance: float) -> float:
    """Max error over ``batches`` (batch size -> inputs); raises past ``tolerance``, and when the
    runtime cannot run the exported graph at all (an operator it lacks at this opset, say)."""
    worst = 0.0
    for size, inputs in batches.items():
        error = max_error(module, _refusal_named(file, size, run), input_names, inputs)
        if not error <= tolerance:
            raise UserError(f"{file}: parity check failed at batch {size}: max |exported - torch| = "
                            f"{error:.3g}, tolerance {tolerance:.3g}")
        worst = max(worst, error)
    return worst


def _refusal_named(file: str, size: int, run: Callable[[dict], dict]) -> Callable[[dict], dict]:
    def guarded(feeds: dict) -> dict:
        try:
            return run(feeds)
        except Exception as e:  # noqa: BLE001 - any runtime's refusal, as one line naming the graph
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"{file}: the exported graph does not run at batch {size} ({first[:300]}); "
                           "another --opset may help") from None
    return guarded


def embedding_agreement(reference: Callable[[dict], dict], other: Callable[[dict], dict],
                        feeds: list[dict[str, np.ndarray]]) -> dict:
    """Max |other - reference| and the lowest cosine between their unit embeddings, over ``feeds``."""
    worst, cosine = 0.0, 1.0
    for feed in feeds:
        a, b = (np.asarray(next(iter(run(feed).values())), np.float32) for run in (reference, other))
        worst = max(worst, float(np.max(np.abs(a - b))))
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cosine = min(cosine, float(np.min((a * b).sum(axis=1) / np.maximum(norms, 1e-12))))
    return {"max_error": worst, "min_cosine": cosine}
