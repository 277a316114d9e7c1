"""Array-level preprocessing shared by training and the edge runtime (numpy + OpenCV, no torch).

File decoding lives in ``mmrt.training.decode``; this module starts from arrays, so
the runtime, which receives arrays over gRPC, runs exactly the same steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SAMPLE_RATE = 16_000


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Crop the centre or zero-pad the end of a 1-D waveform to exactly ``n`` samples."""
    wave = np.asarray(wave, dtype=np.float32)
    if len(wave) >= n:
        start = (len(wave) - n) // 2
        return wave[start:start + n]
    return np.pad(wave, (0, n - len(wave)))


def sample_frame_indices(num_frames: int, t: int) -> np.ndarray:
    """``t`` frame indices spread uniformly over a clip of ``num_frames`` (centre of each segment)."""
    if num_frames <= 0:
        raise ValueError("a video needs at least one frame")
    return np.minimum(((np.arange(t) + 0.5) * num_frames / t).astype(np.int64), num_frames - 1)


def resize_center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Crop the centred square, then resize it: [T, H, W, 3] -> [T, size, size, 3]. Cropping first
    keeps the work proportional to the square, whatever the aspect ratio of the frames."""
    import cv2

    _, h, w, _ = frames.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        square = frame[top:top + side, left:left + side]
        out[i] = square if side == size else cv2.resize(square, (size, size), interpolation=interp)
    return out


def prepare_video(frames: np.ndarray, t: int, size: int) -> np.ndarray:
    """Uniformly sample ``t`` frames and resize/crop them: [N, H, W, 3] uint8 -> [t, size, size, 3]."""
    return resize_center_crop(frames[sample_frame_indices(len(frames), t)], size)


@dataclass(frozen=True)
class Preprocessing:
    """What the encoders receive; recorded in model configs and bundles so all parts agree."""

    sample_rate: int = SAMPLE_RATE
    clip_samples: int = 32_000  # audio is cropped (centre) or zero-padded to this length
    frames: int = 8  # video frames sampled uniformly from a clip
    frame_size: int = 32  # the centred square of each frame, resized to this side
    max_tokens: int = 24  # text ids per example, BOS and EOS included

    def to_dict(self) -> dict:
        return asdict(self)
