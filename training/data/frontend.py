"""Log-mel front-end written with fixed-weight matrix products, so it exports to ONNX and runs
under TensorRT (no STFT op, no complex numbers): raw 16 kHz PCM in, log-mel out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class MelParams:
    sample_rate: int = 16_000
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = 8_000.0
    log_floor: float = 1e-6

    def to_dict(self) -> dict:
        return asdict(self)

    def num_frames(self, samples: int) -> int:
        return 1 + (samples - self.n_fft) // self.hop_length


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_filterbank(p: MelParams) -> np.ndarray:
    """HTK-scale triangular filters without area normalisation: [n_fft // 2 + 1, n_mels]."""
    freqs = np.linspace(0, p.sample_rate // 2, p.n_fft // 2 + 1)
    mel_pts = np.linspace(_hz_to_mel(np.float64(p.f_min)), _hz_to_mel(np.float64(p.f_max)),
                          p.n_mels + 2)
    hz_pts = 700.0 * (10 ** (mel_pts / 2595.0) - 1.0)
    slopes = hz_pts[None, :] - freqs[:, None]  # [F, n_mels + 2]
    widths = np.diff(hz_pts)
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


def dft_matrix(p: MelParams) -> np.ndarray:
    """Windowed real DFT as a matrix [win_length, n_fft]: the F = n_fft // 2 + 1 cos columns,
    then the -sin columns of bins 1..F-2 (those of bin 0 and the Nyquist bin are all zero).

    As torch.stft does, the window sits centred in an n_fft frame; the zero taps
    around it are dropped and the frames start at that offset instead (see LogMel.forward).
    """
    window = torch.hamming_window(p.win_length, periodic=True, dtype=torch.float64).numpy()
    offset = (p.n_fft - p.win_length) // 2
    n = np.arange(p.win_length) + offset
    k = np.arange(p.n_fft // 2 + 1)
    angle = 2 * np.pi * np.outer(n, k) / p.n_fft  # [win, F]
    columns = np.concatenate([np.cos(angle), -np.sin(angle[:, 1:-1])], axis=1)
    return (columns * window[:, None]).astype(np.float32)


class LogMel(nn.Module):
    """x: [B, samples] float PCM -> [B, n_mels, frames] natural-log mel power.

    All plain ONNX ops that TensorRT runs: the signal cut into frames [B, T, win], times the
    DFT matrix [win, n_fft] (real parts, then imaginary parts), squared, times the mel
    filterbank stacked to match [n_fft, n_mels], which sums real^2 + imag^2 per bin on the
    way: no complex numbers, no STFT op, no split.
    """

    def __init__(self, params: MelParams | None = None):
        super().__init__()
        self.params = params or MelParams()
        fbank = mel_filterbank(self.params)
        self.register_buffer("dft", torch.from_numpy(dft_matrix(self.params)), persistent=False)
        # real^2 and imag^2 rows of the same bin meet the same filter weights
        self.register_buffer("fbank", torch.from_numpy(np.concatenate([fbank, fbank[1:-1]])),
                             persistent=False)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """[B, samples] -> [B, T, win_length]: each frame's windowed taps.

        Frames overlap, so they are cut from blocks of g = gcd(hop, win) samples: frame t is
        blocks [t * hop/g, t * hop/g + win/g), i.e. win/g strided slices side by side. Slices
        and a concat export as plain copies (an index gather is several times slower in ONNX
        Runtime); with too many blocks a frame (g small) one gather is cheaper.
        """
        p = self.params
        count = p.num_frames(x.shape[-1])
        start = (p.n_fft - p.win_length) // 2
        g = math.gcd(p.hop_length, p.win_length)
        step, width = p.hop_length // g, p.win_length // g
        if width > 16:
            index = torch.arange(count, device=x.device)[:, None] * p.hop_length + start
            index = index + torch.arange(p.win_length, device=x.device)[None, :]
            return x.index_select(1, index.flatten()).unflatten(1, index.shape)
        blocks = (count - 1) * step + width
        x = x[:, start: start + blocks * g].unflatten(1, (blocks, g))  # [B, blocks, g]
        return torch.cat([x[:, j: j + (count - 1) * step + 1: step] for j in range(width)], dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        if x.shape[-1] < p.n_fft:
            raise ValueError(f"log-mel needs at least n_fft={p.n_fft} samples, got {x.shape[-1]}")
        frames = self.frames(x)  # [B, T, win]
        spec = torch.matmul(frames, self.dft)  # [B, T, 2F]: real parts, then imaginary parts
        mel = torch.matmul(spec * spec, self.fbank)  # [B, T, n_mels]
        return torch.log(mel + p.log_floor).transpose(1, 2)


# Training splits compute audio's log-mel once (``splits.precompute_log_mel``) and carry it under
# this key instead of "audio" (PCM): what a batch holds is named, never inferred from a shape.
LOG_MEL = "audio_log_mel"


def input_key(batch, modality: str) -> str:
    """The key of ``modality``'s input in ``batch``: audio's precomputed log-mel where it has one."""
    return LOG_MEL if modality == "audio" and LOG_MEL in batch else modality


def rows_of(batch, modalities, rows) -> dict:
    """The inputs of ``modalities`` in ``batch`` (log-mel or PCM for audio), at ``rows``."""
    return {input_key(batch, m): batch[input_key(batch, m)][rows] for m in modalities}
