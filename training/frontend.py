"""Log-mel front-end written with fixed-weight convolutions, so it exports to ONNX and runs
under TensorRT (no STFT op, no complex numbers): raw 16 kHz PCM in, log-mel out.
"""

from __future__ import annotations

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


def dft_kernels(p: MelParams) -> np.ndarray:
    """Windowed real DFT as conv1d weights [2 * (n_fft // 2 + 1), 1, win_length] (cos rows, then sin).

    As torch.stft does, the window sits centred in an n_fft frame; the zero taps
    around it are dropped and the input is offset instead (see LogMel.forward).
    """
    window = torch.hamming_window(p.win_length, periodic=True, dtype=torch.float64).numpy()
    offset = (p.n_fft - p.win_length) // 2
    n = np.arange(p.win_length) + offset
    k = np.arange(p.n_fft // 2 + 1)
    angle = 2 * np.pi * np.outer(k, n) / p.n_fft  # [F, win]
    kernels = np.concatenate([np.cos(angle), -np.sin(angle)]) * window[None, :]
    return kernels[:, None, :].astype(np.float32)


class LogMel(nn.Module):
    """x: [B, samples] float PCM -> [B, n_mels, frames] natural-log mel power."""

    def __init__(self, params: MelParams | None = None):
        super().__init__()
        self.params = params or MelParams()
        self.register_buffer("kernels", torch.from_numpy(dft_kernels(self.params)), persistent=False)
        self.register_buffer("fbank", torch.from_numpy(mel_filterbank(self.params)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        if x.shape[-1] < p.n_fft:
            raise ValueError(f"log-mel needs at least n_fft={p.n_fft} samples, got {x.shape[-1]}")
        frames = p.num_frames(x.shape[-1])
        offset = (p.n_fft - p.win_length) // 2
        x = x[:, offset: offset + (frames - 1) * p.hop_length + p.win_length]
        spec = nn.functional.conv1d(x.unsqueeze(1), self.kernels, stride=p.hop_length)  # [B, 2F, T]
        real, imag = spec.chunk(2, dim=1)
        power = real * real + imag * imag  # [B, F, T]
        mel = torch.matmul(power.transpose(1, 2), self.fbank).transpose(1, 2)  # [B, n_mels, T]
        return torch.log(mel + p.log_floor)
