"""The multimodal model: one encoder per modality, mean fusion (paper Eq. 7), BatchNorm + linear head."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mmrt.training.data.frontend import LOG_MEL, input_key
from mmrt.training.model.config import ModelConfig
from mmrt.training.model.encoders import TokenEncoder, build_encoder, shared_blocks


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Class scores from logits: sigmoid (multi-label) or softmax (single-label)."""
    return torch.sigmoid(logits) if task == "multi-label" else torch.softmax(logits, dim=-1)


class Head(nn.Module):
    """BatchNorm1d without affine, then Linear (MAE's linear probe): [B, d] -> [B, C] logits."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, affine=False)
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(z))


class MultimodalModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.modalities = tuple(config.modalities)
        arch = config.arch
        shared = shared_blocks(arch)  # one module inside every encoder (MAE), or None
        self.encoders = nn.ModuleDict({m: build_encoder(m, arch, config.text_vocab, shared)
                                       for m in self.modalities})
        # CLIP's learnable temperature for contrastive pretraining, stored as log(1 / T).
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.head = Head(arch.embed_dim, len(config.classes)) if config.classes else None

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """One modality's L2-normalised embedding [B, d] of its raw input (PCM for audio);
        ``encode_audio`` etc. are aliases, what export compiles."""
        return self.encoders[modality](x)

    def encode_input(self, inputs: Mapping[str, torch.Tensor], modality: str) -> torch.Tensor:
        """``modality``'s embedding from a batch, whose audio may be its precomputed log-mel
        (under ``LOG_MEL``) instead of PCM."""
        if input_key(inputs, modality) == LOG_MEL:
            audio = self.encoders["audio"]
            return audio.embed_mel(audio.covered(inputs[LOG_MEL]))
        return self.encode(modality, inputs[modality])

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth of every encoder in training mode (0: off)."""
        for module in self.encoders.modules():
            if isinstance(module, TokenEncoder):
                module.set_drop_path(rate)

    def audio_frontend(self) -> nn.Module | None:
        """The weightless log-mel front-end, for splits that precompute it."""
        return self.encoders["audio"].mel if "audio" in self.encoders else None

    def encode_audio(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode("audio", x)

    def encode_video(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode("video", x)

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode("text", x)

    def embed(self, inputs: Mapping[str, torch.Tensor], use: Sequence[str]) -> dict[str, torch.Tensor]:
        """Embeddings of the modalities in ``use`` (others are not run at all)."""
        return {m: self.encode_input(inputs, m) for m in self.modalities if m in use}

    @staticmethod
    def fuse(embeddings: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Mean of the present embeddings per example (Eq. 7).

        embeddings: modality -> [B, d]; mask: modality -> [B] bool (False where the example
        lacks it). An example with nothing present fuses to zeros: callers drop such rows.
        """
        total = count = None
        for m, z in embeddings.items():
            w = mask[m].to(z.dtype).unsqueeze(1)  # [B, 1]
            total = z * w if total is None else total + z * w
            count = w if count is None else count + w
        return total / count.clamp(min=1.0)

    def forward(self, inputs: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor],
                use: Sequence[str]) -> torch.Tensor:
        """Class logits [B, C] from the modalities in ``use`` that each example has."""
        if self.head is None:
            raise RuntimeError("this model has no classifier head (pretrained only)")
        return self.head(self.fuse(self.embed(inputs, use), present))

    def with_head(self, classes: Sequence[str], task: str) -> MultimodalModel:
        """A copy of this model's config with a fresh head for ``classes`` (weights copied in)."""
        from dataclasses import replace

        model = MultimodalModel(replace(self.config, classes=tuple(classes), task=task))
        missing, _ = model.load_state_dict(self.state_dict(), strict=False)
        assert all(k.startswith("head.") for k in missing), missing
        return model
