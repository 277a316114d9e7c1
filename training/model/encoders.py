"""ViT-style encoders, one per modality: patches -> tokens -> transformer -> [CLS] -> d, L2-normalised.

Each encoder's ``forward`` is exactly what export compiles for that modality, so it takes
what the runtime can send: raw PCM for audio, uint8 frames for video, token ids for text.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mmrt.text import PAD_ID
from mmrt.training.data.frontend import LogMel, MelParams
from mmrt.training.model.config import ArchConfig


class Attention(nn.Module):
    """Multi-head self-attention on scaled_dot_product_attention (exports as plain matmuls)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        # x: [B, N, W]; keep: [B, 1, 1, N] True where a key may be attended to
        b, n, w = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        if keep is not None:  # one row per query: ONNX Runtime's Attention operator broadcasts no other way
            keep = keep.expand(b, 1, n, n)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # [B, H, N, W / H]
        return self.out(y.transpose(1, 2).reshape(b, n, w))


class Block(nn.Module):
    """Pre-norm transformer block, with stochastic depth in training (``drop_path``, set by the
    downstream stages; never saved, and a no-op in eval mode and so in export)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(),
                                 nn.Linear(mlp_ratio * width, width))
        self.drop_path = 0.0

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.dropped(self.attn(self.norm1(x), keep))
        return x + self.dropped(self.mlp(self.norm2(x)))

    def dropped(self, branch: torch.Tensor) -> torch.Tensor:
        """Drop path (Huang et al. 2016): each example skips the residual branch with probability
        ``drop_path``; the kept ones are scaled up so the expected output is unchanged."""
        if not self.training or not self.drop_path:
            return branch
        keep = 1.0 - self.drop_path
        mask = (torch.rand(branch.shape[0], *(1,) * (branch.dim() - 1), device=branch.device) < keep)
        return branch * mask.to(branch.dtype) / keep


def sincos_positions(grid: tuple[int, ...], width: int) -> torch.Tensor:
    """Fixed sin-cos positions of a token grid in raster order, with a zero row for [CLS] first:
    [1 + prod(grid), width]. Each axis gets an equal share of the channels (MAE's 2-D scheme,
    extended to any number of axes); channels left over are zero."""
    share = width // (2 * len(grid)) * 2
    coords = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in grid), indexing="ij")
    parts = []
    for c in coords:
        freqs = 1.0 / 10_000 ** (torch.arange(share // 2, dtype=torch.float64) / max(1, share // 2))
        angle = c.reshape(-1, 1) * freqs  # [N, share / 2]
        parts += [angle.sin(), angle.cos()]
    table = torch.cat(parts, dim=1)
    table = F.pad(table, (0, width - table.shape[1]))
    return torch.cat([torch.zeros(1, width, dtype=table.dtype), table]).float()


class TokenEncoder(nn.Module):
    """The transformer every modality's encoder ends in: prepend [CLS], add positions, run the
    blocks, pool (the [CLS] token, or the mean or max of the tokens) and project to d.

    ``shared`` blocks, when given, run after this encoder's own blocks and are the same module
    in every modality's encoder (MAE's shared final layer): the exported encoder carries them.
    """

    def __init__(self, arch: ArchConfig, grid: tuple[int, ...], shared: nn.ModuleList | None = None):
        super().__init__()
        num_tokens = math.prod(grid)
        self.cls = nn.Parameter(torch.zeros(1, 1, arch.width))
        if arch.positions == "sinusoidal":
            self.register_buffer("pos", sincos_positions(grid, arch.width)[None], persistent=False)
        else:
            self.pos = nn.Parameter(torch.randn(1, num_tokens + 1, arch.width) * 0.02)
        own = arch.depth - (len(shared) if shared is not None else 0)
        self.blocks = nn.ModuleList(Block(arch.width, arch.heads, arch.mlp_ratio) for _ in range(own))
        self.shared = shared
        self.norm = nn.LayerNorm(arch.width)
        self.proj = nn.Linear(arch.width, arch.embed_dim, bias=False)
        self.pool = arch.pool

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth rising linearly over the blocks, 0 at the first, ``rate`` at the last."""
        blocks = [*self.blocks, *(self.shared or ())]
        for i, block in enumerate(blocks):
            block.drop_path = rate * i / max(1, len(blocks) - 1)

    def forward(self, tokens: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        # tokens: [B, N, W]; pad: [B, N] True where a token is padding
        return self.embed(self.hidden(tokens + self.pos[:, 1:], pad), pad)

    def hidden(self, tokens: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens that already carry their positions (any subset of the grid, as MAE feeds)
        -> the normalised hidden states [B, 1 + N, W], [CLS] first."""
        cls = (self.cls + self.pos[:, :1]).expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1)
        keep = attend_mask(pad)
        for block in (*self.blocks, *(self.shared or ())):
            x = block(x, keep)
        return self.norm(x)

    def embed(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states [B, 1 + N, W] -> the pooled, projected, L2-normalised embedding [B, d]."""
        if self.pool == "cls":
            pooled = x[:, 0]
        elif self.pool == "max":  # over real tokens and [CLS], which keeps an all-padding row defined
            if pad is not None:
                x = x.masked_fill(attend_mask(pad)[:, 0, 0, :, None].logical_not(), -torch.inf)
            pooled = x.amax(dim=1)
        elif pad is None:
            pooled = x[:, 1:].mean(dim=1)
        else:  # the mean over real tokens; [CLS] keeps an all-padding row defined
            w = pad.logical_not().unsqueeze(-1).to(x.dtype)  # [B, N, 1]
            pooled = (x[:, 1:] * w).sum(1) / w.sum(1).clamp(min=1.0)
        return F.normalize(self.proj(pooled), dim=-1)  # [B, d]


def attend_mask(pad: torch.Tensor | None) -> torch.Tensor | None:
    """[B, N] padding -> [B, 1, 1, 1 + N] True where a key may be attended to; [CLS] always is,
    so no row is fully masked."""
    if pad is None:
        return None
    return torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1).logical_not()[:, None, None, :]


def patch_embedding(dims: int, in_channels: int, width: int, patch: tuple[int, ...], stem: int,
                    norm: bool = False) -> nn.Module:
    """Non-overlapping patches -> width channels: one strided conv (ViT), or with ``stem`` > 0 two
    stride-2 3x3 convs first, then the patch conv over what is left (same tokens, same grid).

    For video (dims 3) the stem works on each frame; the patch conv also spans time. ``norm``
    puts a one-group GroupNorm after each stem conv: each example's feature maps are
    standardised as a whole (no batch statistics, so a batch of one behaves like any other).
    Without it, the small preset's video encoder stays at chance even trained on labels.
    """
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    if not stem:
        return conv(in_channels, width, kernel_size=patch, stride=patch)
    k, s, pad = ((3, 3), (2, 2), (1, 1)) if dims == 2 else ((1, 3, 3), (1, 2, 2), (0, 1, 1))
    rest = tuple(patch[:-2]) + (patch[-2] // 4, patch[-1] // 4)

    def stage(cin: int) -> list[nn.Module]:
        return [conv(cin, stem, k, s, pad), *([nn.GroupNorm(1, stem)] if norm else []), nn.GELU()]

    return nn.Sequential(*stage(in_channels), *stage(stem), conv(stem, width, kernel_size=rest, stride=rest))


def grid_tokens(patch: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The patch embedding's output grid [B, W, *grid] as tokens [B, N, W] in raster order."""
    return patch(image).flatten(2).transpose(1, 2)


class AudioEncoder(nn.Module):
    """x: [B, samples] float32 PCM at the preprocessing sample rate -> [B, d]."""

    def __init__(self, arch: ArchConfig, shared: nn.ModuleList | None = None):
        super().__init__()
        prep = arch.preprocessing
        self.mel = LogMel(MelParams(sample_rate=prep.sample_rate, n_mels=arch.n_mels))
        p = arch.audio_patch
        self.time_patches = self.mel.params.num_frames(prep.clip_samples) // p
        self.patch_size = p
        self.patch = patch_embedding(2, 1, arch.width, (p, p), arch.stem_channels, arch.stem_norm)
        self.grid = (arch.n_mels // p, self.time_patches)  # mel bands x time, raster order
        self.trunk = TokenEncoder(arch, self.grid, shared)
        self.dense_input = False  # set by training.speed.prepare; never saved, unused in export

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_mel(self.mel(x))

    def covered(self, mel: torch.Tensor) -> torch.Tensor:
        """A precomputed log-mel as training feeds it to ``embed_mel``: with ``dense_input``, only
        the frames the patches cover, contiguous in memory (the stem's convolutions then read
        dense memory; the same numbers); as given otherwise (``normalised`` trims it)."""
        if not self.dense_input:
            return mel
        return mel[:, :, : self.time_patches * self.patch_size].contiguous()

    def embed_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: [B, n_mels, frames] from ``self.mel`` (training precomputes it once per clip) -> [B, d]."""
        return self.trunk(self.tokens(mel))

    def normalised(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, frames] log-mel -> [B, 1, n_mels, whole patches of frames], about N(0, 1)."""
        # Fixed normalisation (log-mel mean -1, std 2.5 on 16 kHz speech in noise, as in the bundled
        # data): constants, like AST's dataset statistics, so the exported graph needs no state.
        mel = (mel + 1.0) / 2.5
        return mel[:, :, : self.time_patches * self.patch_size].unsqueeze(1)

    def tokens(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel -> patch tokens [B, N, W], without positions."""
        return grid_tokens(self.patch, self.normalised(mel))


class VideoEncoder(nn.Module):
    """x: [B, T, H, W, 3] uint8 frames, already sampled and resized -> [B, d]."""

    def __init__(self, arch: ArchConfig, shared: nn.ModuleList | None = None):
        super().__init__()
        prep = arch.preprocessing
        t, h, w = arch.video_tubelet
        self.patch = patch_embedding(3, 3, arch.width, (t, h, w), arch.stem_channels, arch.stem_norm)
        self.grid = (prep.frames // t, prep.frame_size // h, prep.frame_size // w)
        self.trunk = TokenEncoder(arch, self.grid, shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.tokens(x))

    @staticmethod
    def normalised(x: torch.Tensor) -> torch.Tensor:
        """[B, T, H, W, 3] uint8 -> [B, 3, T, H, W] in [-1, 1]."""
        return x.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Frames -> tubelet tokens [B, N, W], without positions."""
        return grid_tokens(self.patch, self.normalised(x))


class TextEncoder(nn.Module):
    """x: [B, L] int64 sentencepiece ids (PAD = 0 after EOS) -> [B, d]."""

    def __init__(self, arch: ArchConfig, vocab: int, shared: nn.ModuleList | None = None):
        super().__init__()
        self.embed = nn.Embedding(vocab, arch.width)
        self.grid = (arch.preprocessing.max_tokens,)
        self.trunk = TokenEncoder(arch, self.grid, shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.embed(x), pad=x == PAD_ID)


def shared_blocks(arch: ArchConfig) -> nn.ModuleList | None:
    """The final blocks every encoder shares (``arch.shared_depth`` of them), or None."""
    if not arch.shared_depth:
        return None
    return nn.ModuleList(Block(arch.width, arch.heads, arch.mlp_ratio) for _ in range(arch.shared_depth))


def build_encoder(modality: str, arch: ArchConfig, text_vocab: int,
                  shared: nn.ModuleList | None = None) -> nn.Module:
    if modality == "audio":
        return AudioEncoder(arch, shared)
    if modality == "video":
        return VideoEncoder(arch, shared)
    if modality == "text":
        return TextEncoder(arch, text_vocab, shared)
    raise ValueError(f"no encoder for modality {modality!r} (mmrt has audio, video and text)")
