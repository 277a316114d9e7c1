"""Array-level preprocessing shared by training and the edge runtime (numpy + OpenCV, no torch).

File decoding lives in ``mmrt.decode``; this module starts from arrays, so
the runtime, which receives arrays over gRPC, runs exactly the same steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

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


AREA_OVERSAMPLE = 4  # a square larger than this many output sides is decimated by striding first


def resize_center_crop(frames: np.ndarray, size: int, indices=None) -> np.ndarray:
    """Crop the centred square of each frame in ``indices`` (default: all), then resize it:
    [T, H, W, 3] -> [len(indices), size, size, 3].

    The work follows the output, not the input: frames are views until resized, a frame picked
    twice is resized once, and a square over ``AREA_OVERSAMPLE`` x ``size`` on a side is first
    thinned by an integer stride (a view) to between 4 and 8 output sides, then area-averaged.
    Squares of up to 4x the output (the bundled data's 64 -> 32) are area-averaged whole."""
    import cv2

    _, h, w, _ = frames.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    stride = max(1, side // (AREA_OVERSAMPLE * size))
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    indices = range(len(frames)) if indices is None else [int(i) for i in indices]
    out = np.empty((len(indices), size, size, 3), dtype=np.uint8)
    first: dict[int, int] = {}
    for k, i in enumerate(indices):
        if i in first:
            out[k] = out[first[i]]
            continue
        first[i] = k
        square = frames[i, top:top + side:stride, left:left + side:stride]
        out[k] = square if square.shape[0] == size else cv2.resize(np.ascontiguousarray(square), (size, size),
                                                                   interpolation=interp)
    return out


def prepare_video(frames: np.ndarray, t: int, size: int) -> np.ndarray:
    """Uniformly sample ``t`` frames and resize/crop them: [N, H, W, 3] uint8 -> [t, size, size, 3]."""
    return resize_center_crop(frames, size, sample_frame_indices(len(frames), t))


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

    @classmethod
    def from_dict(cls, doc: dict) -> Preprocessing:
        """The fields of a model config's or a bundle manifest's preprocessing (other keys, such
        as the mel parameters or the tokenizer file, are read where they are used)."""
        return cls(**{f.name: int(doc[f.name]) for f in fields(cls)})
