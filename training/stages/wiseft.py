"""WiSE-FT (paper Eq. 9): alpha * theta_finetuned + (1 - alpha) * theta_probe, over all weights."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch

from mmrt.training.model.model import MultimodalModel


def interpolate(tuned: Mapping[str, torch.Tensor], probe: Mapping[str, torch.Tensor],
                alpha: float) -> dict[str, torch.Tensor]:
    """Weight-space average of two state dicts with the same keys and shapes.

    Integer tensors (BatchNorm's batch counter) are not averaged: the fine-tuned one is kept.
    """
    if set(tuned) != set(probe):
        raise ValueError(f"state dicts differ in keys: {sorted(set(tuned) ^ set(probe))[:3]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha}: expected a number from 0 to 1")
    out = {}
    for key, a in tuned.items():
        b = probe[key]
        if a.shape != b.shape:
            raise ValueError(f"{key}: shapes differ ({tuple(a.shape)} vs {tuple(b.shape)})")
        out[key] = alpha * a + (1.0 - alpha) * b if a.is_floating_point() else a.clone()
    return out


def wise(tuned: MultimodalModel, probe: MultimodalModel, alpha: float) -> MultimodalModel:
    """A new model whose weights are the WiSE-FT average of ``tuned`` and ``probe``."""
    model = copy.deepcopy(tuned)
    model.load_state_dict(interpolate(tuned.state_dict(), probe.state_dict(), alpha))
    return model
