"""The torch modules that become the bundle's graphs, with their tensor specs.

Each modality encoder is its own graph (the runtime runs only those a request
carries); the head turns a fused embedding into probabilities; ``fused`` is the
monolithic graph a user would otherwise build, kept as the bench's baseline.
"""

from __future__ import annotations

import torch
from torch import nn

from mmrt.bundle import EMBEDDING, FUSED, HEAD, PRESENT, SCORES, TensorSpec, input_name
from mmrt.training.model.model import MultimodalModel, probabilities

BATCH = -1  # the dynamic batch axis in a TensorSpec


def input_spec(model: MultimodalModel, modality: str) -> TensorSpec:
    """What a modality's graph takes: raw PCM, frames at the model's size, or token ids."""
    prep = model.config.arch.preprocessing
    if modality == "audio":
        return TensorSpec(input_name(modality), "float32", (BATCH, prep.clip_samples))
    if modality == "video":
        return TensorSpec(input_name(modality), "uint8", (BATCH, prep.frames, prep.frame_size,
                                                          prep.frame_size, 3))
    if modality == "text":
        return TensorSpec(input_name(modality), "int64", (BATCH, prep.max_tokens))
    raise ValueError(f"no graph input defined for modality {modality!r}")


def embedding_spec(model: MultimodalModel) -> TensorSpec:
    return TensorSpec(EMBEDDING, "float32", (BATCH, model.config.arch.embed_dim))


def scores_spec(model: MultimodalModel) -> TensorSpec:
    return TensorSpec(SCORES, "float32", (BATCH, len(model.config.classes)))


def present_spec(model: MultimodalModel) -> TensorSpec:
    return TensorSpec(PRESENT, "float32", (BATCH, len(model.modalities)))


class EncoderGraph(nn.Module):
    """One modality: its input -> the L2-normalised embedding [B, d]."""

    def __init__(self, model: MultimodalModel, modality: str):
        super().__init__()
        self.encoder, self.modality = model.encoders[modality], modality
        self.specs = ((input_spec(model, modality),), (embedding_spec(model),))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class HeadGraph(nn.Module):
    """Fused embedding [B, d] -> class probabilities [B, C] (BatchNorm with running statistics)."""

    def __init__(self, model: MultimodalModel):
        super().__init__()
        self.head, self.task = model.head, model.config.task
        self.specs = ((embedding_spec(model),), (scores_spec(model),))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return probabilities(self.head(z), self.task)


class FusedGraph(nn.Module):
    """The monolithic baseline: every encoder always runs, a missing modality is fed as zeros,
    and PRESENT [B, M] (1 where the sensor reported, in the bundle's modality order) keeps the
    zeros out of the mean, so its scores equal per-modality serving and only the cost differs.
    """

    def __init__(self, model: MultimodalModel):
        super().__init__()
        self.encoders, self.head, self.task = model.encoders, model.head, model.config.task
        self.modalities = model.modalities
        inputs = tuple(input_spec(model, m) for m in self.modalities) + (present_spec(model),)
        self.specs = (inputs, (scores_spec(model), embedding_spec(model)))

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        present = xs[-1]
        z = torch.stack([self.encoders[m](x) for m, x in zip(self.modalities, xs[:-1], strict=True)], dim=1)
        weights = present.unsqueeze(-1)  # [B, M, 1]
        fused = (z * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return probabilities(self.head(fused), self.task), fused


def bundle_graphs(model: MultimodalModel, baseline: bool) -> dict[str, nn.Module]:
    """Graph name -> module, in bundle order: modalities, head, then fused with ``baseline``."""
    graphs: dict[str, nn.Module] = {m: EncoderGraph(model, m) for m in model.modalities}
    graphs[HEAD] = HeadGraph(model)
    if baseline:
        graphs[FUSED] = FusedGraph(model)
    return {name: g.eval() for name, g in graphs.items()}
