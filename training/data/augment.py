"""Training-time augmentation on batched tensors, seeded by the step's generator.

Contrastive pretraining on a few thousand clips otherwise learns to recognise each clip
rather than what the modalities share (the loss falls to ~0.1 while a linear probe stays
at chance); the paper also augments (SpecAugment, crops, colour jitter). Each view is
perturbed independently, so only content that survives the perturbations (the spoken or
shown digit, not the exact noise) identifies a pair.
"""

from __future__ import annotations

import numpy as np
import torch

from mmrt.text import EOS_ID, PAD_ID
from mmrt.training.data.frontend import LOG_MEL, input_key

# Mixup's weight of the example itself, drawn from Beta(10, 10) (close to 1/2), as in AST and
# Audio-MAE, whose audio recipe the paper follows (Huang et al. 2022).
MIXUP_BETA = 10.0
MIXED = ("audio", "video")  # the paper mixes every input but text


def _randint(high: int, n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, max(1, high), (n,), generator=g)


def log_mel(x: torch.Tensor, g: torch.Generator, max_shift: int = 40, freq_mask: int = 8,
            time_mask: int = 24) -> torch.Tensor:
    """x: [B, n_mels, frames]: random circular time shift, one frequency and one time mask (SpecAugment)."""
    b, f, t = x.shape
    shift = _randint(2 * max_shift + 1, b, g) - max_shift
    idx = (torch.arange(t)[None, :] - shift[:, None]) % t
    x = torch.gather(x, 2, idx[:, None, :].expand(b, f, t).to(x.device))
    fill = x.mean(dim=(1, 2), keepdim=True)
    f0, fw = _randint(f, b, g), _randint(freq_mask + 1, b, g)
    t0, tw = _randint(t, b, g), _randint(time_mask + 1, b, g)
    fr, tr = torch.arange(f)[None, :], torch.arange(t)[None, :]
    fmask = ((fr >= f0[:, None]) & (fr < (f0 + fw)[:, None]))[:, :, None]
    tmask = ((tr >= t0[:, None]) & (tr < (t0 + tw)[:, None]))[:, None, :]
    return torch.where((fmask | tmask).to(x.device), fill, x)


def video(x: torch.Tensor, g: torch.Generator, max_shift: int = 4) -> torch.Tensor:
    """x: [B, T, H, W, 3] uint8: random spatial shift (reflected at the borders), brightness and contrast."""
    b = x.shape[0]
    dy, dx = _randint(2 * max_shift + 1, b, g) - max_shift, _randint(2 * max_shift + 1, b, g) - max_shift
    out = torch.empty_like(x)
    for i in range(b):  # per-example shifts; B is small
        out[i] = torch.roll(x[i], shifts=(int(dy[i]), int(dx[i])), dims=(1, 2))
    gain = 0.8 + 0.4 * torch.rand(b, 1, 1, 1, 1, generator=g)
    bias = (torch.rand(b, 1, 1, 1, 1, generator=g) - 0.5) * 40
    return (out.float() * gain.to(x.device) + bias.to(x.device)).clamp(0, 255).to(torch.uint8)


def text(x: torch.Tensor, g: torch.Generator, drop: float = 0.15) -> torch.Tensor:
    """x: [B, L] ids: each word piece (not BOS/EOS/PAD) replaced by PAD with probability ``drop``."""
    special = x <= EOS_ID  # PAD, UNK, BOS, EOS
    dropped = (torch.rand(x.shape, generator=g) < drop).to(x.device) & ~special
    return torch.where(dropped, torch.full_like(x, PAD_ID), x)


def augment(batch: dict, modalities: tuple[str, ...], g: torch.Generator) -> dict:
    """A copy of ``batch`` with each present modality augmented (audio as precomputed log-mel or PCM)."""
    out = dict(batch)
    if "audio" in modalities and LOG_MEL in batch:  # PCM (a streamed split) is not augmented
        out[LOG_MEL] = log_mel(batch[LOG_MEL], g)
    if "video" in modalities:
        out["video"] = video(batch["video"], g)
    if "text" in modalities:
        out["text"] = text(batch["text"], g)
    return out


def mixup(batch: dict, modalities: tuple[str, ...], rate: float, g: torch.Generator) -> dict:
    """A copy of ``batch`` in which a ``rate`` share of the examples is mixed with a partner from
    the batch: audio, video and labels become lam * own + (1 - lam) * partner's; text stays the
    example's own (paper section 5). An example is mixed only with a partner that has the same
    audio and video present, so a label never comes from an input that is not there."""
    labels = batch["labels"]
    b = len(labels)
    partner = torch.randperm(b, generator=g)
    mix = torch.rand(b, generator=g) < rate
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=g))
    lam = torch.from_numpy(np.random.default_rng(seed).beta(MIXUP_BETA, MIXUP_BETA, b)).float()
    mods = [m for m in MIXED if m in modalities and input_key(batch, m) in batch]
    for m in mods:
        present = batch["present"][m].cpu()
        mix &= present == present[partner]
    lam = torch.where(mix, lam, torch.ones_like(lam))
    out = dict(batch)
    for m in mods:
        k = input_key(batch, m)
        x = batch[k]
        w = lam.view(-1, *(1,) * (x.dim() - 1)).to(x.device)
        mixed = w * x.float() + (1.0 - w) * x[partner.to(x.device)].float()
        out[k] = mixed.round().clamp(0, 255).to(x.dtype) if x.dtype == torch.uint8 else mixed.to(x.dtype)
    w = lam[:, None].to(labels.device)
    out["labels"] = w * labels + (1.0 - w) * labels[partner.to(labels.device)]
    return out
