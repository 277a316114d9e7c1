"""Masked-autoencoder pretraining (paper section 4.1; AV-MAE / CAV-MAE style).

Each modality's encoder sees only a random share of its tokens (``MaeConfig.mask_ratio``:
80% of audio patches and 90% of video tubelets hidden, as the paper; half of the text's
word pieces) and a small per-modality decoder reconstructs the hidden ones: the
per-patch normalised log-mel or pixels (MAE's normalised-pixel loss) for audio and
video, the word-piece ids for text. The encoders' last blocks are one module shared by
every modality (``ArchConfig.shared_depth``), positions are fixed sin-cos, and each batch
is used ``repeats`` times with a fresh mask (repeated sampling). The decoders exist only
here: the pretrained model directory holds the encoders, as for contrastive pretraining.

Masking happens after the patch embedding. With the ``small`` preset's convolutional stem a
visible token has therefore seen a few pixels (three at most) across its patch's border.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mmrt.text import PAD_ID
from mmrt.training.data.frontend import LOG_MEL, input_key
from mmrt.training.model.config import MaeConfig
from mmrt.training.model.encoders import Block, attend_mask, grid_tokens, sincos_positions
from mmrt.training.model.model import MultimodalModel


def visible_order(valid: torch.Tensor, ratio: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Which tokens each example shows its encoder.

    valid: [B, N] True for real tokens (padding is never shown, never reconstructed).
    Returns (order [B, N]: a random permutation of positions, real tokens first;
    visible [B]: how many of ``order``'s first positions are shown: the real tokens less
    ceil(ratio x real), at least one).
    """
    noise = torch.rand(valid.shape, generator=g).to(valid.device) + (~valid).float() * 2.0
    order = noise.argsort(dim=1)
    real = valid.sum(dim=1)
    visible = (real - torch.ceil(real * ratio).long()).clamp(min=1)
    return order, visible


def patches(x: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """[B, C, *spatial] -> [B, N, prod(sizes) * C]: non-overlapping patches of ``sizes`` in raster
    order (the order of a strided conv's flattened output), channels last within a patch."""
    b, c = x.shape[:2]
    grid = [s // p for s, p in zip(x.shape[2:], sizes, strict=True)]
    shape = [b, c]
    for n, p in zip(grid, sizes, strict=True):
        shape += [n, p]
    x = x.reshape(shape)
    d = len(sizes)
    outer = [2 + 2 * i for i in range(d)]  # grid axes
    inner = [3 + 2 * i for i in range(d)]  # within-patch axes
    return x.permute(0, *outer, *inner, 1).reshape(b, math.prod(grid), -1)


def normalise_patches(target: torch.Tensor) -> torch.Tensor:
    """MAE's normalised-pixel target: each patch to zero mean and unit variance."""
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True, unbiased=False)
    return (target - mean) / (var + 1e-6).sqrt()


class Decoder(nn.Module):
    """Visible hidden states + mask tokens at the hidden positions -> a prediction per position."""

    def __init__(self, width: int, decoder_width: int, depth: int, grid: tuple[int, ...], out_dim: int):
        super().__init__()
        self.inp = nn.Linear(width, decoder_width)
        self.mask = nn.Parameter(torch.zeros(1, 1, decoder_width))
        nn.init.normal_(self.mask, std=0.02)
        self.register_buffer("pos", sincos_positions(grid, decoder_width)[None], persistent=False)
        heads = max(1, decoder_width // 32)
        self.blocks = nn.ModuleList(Block(decoder_width, heads, 4) for _ in range(depth))
        self.norm = nn.LayerNorm(decoder_width)
        self.out = nn.Linear(decoder_width, out_dim)

    def forward(self, hidden: torch.Tensor, order: torch.Tensor, shown: torch.Tensor,
                pad: torch.Tensor | None) -> torch.Tensor:
        # hidden: [B, 1 + K, W] ([CLS] first); order: [B, N]; shown: [B, K] True for real slots
        x = self.inp(hidden)
        b, n = order.shape
        k = x.shape[1] - 1
        mask = self.mask.to(x.dtype)
        values = torch.where(shown[..., None], x[:, 1:], mask)
        full = mask.expand(b, n, -1).scatter(1, order[:, :k, None].expand(-1, -1, x.shape[-1]), values)
        y = torch.cat([x[:, :1], full], dim=1) + self.pos
        keep = attend_mask(pad)
        for block in self.blocks:
            y = block(y, keep)
        return self.out(self.norm(y[:, 1:]))  # [B, N, out_dim]


class MaskedAutoencoding(nn.Module):
    """The MAE loss over every modality of ``model``: ``forward(batch, generator) -> (loss, metrics)``."""

    def __init__(self, model: MultimodalModel, mae: MaeConfig):
        super().__init__()
        self.model, self.mae = model, mae
        arch = model.config.arch
        self.decoders = nn.ModuleDict()
        for m in model.modalities:
            mae.ratio(m)  # every modality needs its mask ratio: refuse before any training
            enc = model.encoders[m]
            self.decoders[m] = Decoder(arch.width, mae.decoder_width, mae.decoder_depth, enc.grid,
                                       self.target_dim(m))

    @property
    def checkpointed(self) -> nn.Module:
        """What a resumable state must hold: the encoders and the decoders."""
        return self

    def target_dim(self, modality: str) -> int:
        arch = self.model.config.arch
        if modality == "audio":
            return arch.audio_patch ** 2
        if modality == "video":
            t, h, w = arch.video_tubelet
            return t * h * w * 3
        return self.model.config.text_vocab

    def tokens(self, modality: str, x: torch.Tensor,
               key: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens [B, N, W] without positions, targets [B, N, ...], valid [B, N]) of one modality."""
        enc = self.model.encoders[modality]
        if modality == "text":
            valid = x != PAD_ID
            return enc.embed(x), x, valid
        if modality == "audio":
            mel = enc.covered(x) if key == LOG_MEL else enc.mel(x)
            image, sizes = enc.normalised(mel), (enc.patch_size, enc.patch_size)
        else:
            image, sizes = enc.normalised(x), tuple(self.model.config.arch.video_tubelet)
        tokens = grid_tokens(enc.patch, image)
        target = patches(image, sizes)
        if modality not in self.mae.raw_targets:
            target = normalise_patches(target)
        return tokens, target, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)

    def modality_loss(self, modality: str, x: torch.Tensor, g: torch.Generator,
                      key: str | None = None) -> torch.Tensor:
        """The reconstruction loss of one modality's input ``x``, found in its batch under
        ``key`` (``LOG_MEL``: audio already as log-mel)."""
        trunk = self.model.encoders[modality].trunk
        tokens, target, valid = self.tokens(modality, x, key)
        order, visible = visible_order(valid, self.mae.ratio(modality), g)
        k = int(visible.max())
        shown = torch.arange(k, device=order.device)[None, :] < visible[:, None]  # [B, K]
        seen = (tokens + trunk.pos[:, 1:]).gather(1, order[:, :k, None].expand(-1, -1, tokens.shape[-1]))
        hidden = trunk.hidden(seen, pad=~shown)
        pad = None if modality != "text" else ~valid
        pred = self.decoders[modality](hidden, order, shown, pad)
        was_shown = torch.zeros_like(valid).scatter(1, order[:, :k], shown)
        hidden_tokens = valid & ~was_shown  # what the loss scores: real tokens the encoder did not see
        if modality == "text":
            per_token = F.cross_entropy(pred.transpose(1, 2).float(), target, reduction="none")
        else:
            per_token = (pred.float() - target).pow(2).mean(dim=-1)
        return (per_token * hidden_tokens).sum() / hidden_tokens.sum().clamp(min=1)

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        losses: dict[str, list[torch.Tensor]] = {}
        for _ in range(self.mae.repeats):
            for m in self.model.modalities:
                rows = batch["present"][m]
                if rows.any():
                    key = input_key(batch, m)
                    losses.setdefault(m, []).append(self.modality_loss(m, batch[key][rows], generator, key))
        if not losses:  # keeps the graph connected so every process still takes the step
            return sum(p.sum() for p in self.decoders.parameters()) * 0.0, {}
        per_modality = {m: torch.stack(v).mean() for m, v in losses.items()}
        total = torch.stack(list(per_modality.values())).mean()
        return total, {m: float(v.detach()) for m, v in per_modality.items()}
