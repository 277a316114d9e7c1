"""Client arrays -> what the bundle's encoders take, with the same numpy/OpenCV/sentencepiece
steps as training (``mmrt.preprocess``, ``mmrt.text``). No torch.

Any clip length, any frame count and size: audio is centre-cropped or zero-padded, video
frames are sampled uniformly, their centred square cropped and resized, text is tokenized and cut
(each within the server's limits, checked before any work: `mmrt.runtime.engine.limits`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmrt.bundle import Manifest
from mmrt.errors import UserError
from mmrt.preprocess import fit_length, prepare_video
from mmrt.runtime.engine.status import invalid
from mmrt.text import TextTokenizer


class Preprocessor:
    def __init__(self, folder: Path, manifest: Manifest, tokenizer: bytes | None = None):
        p = manifest.inputs
        self.clip_samples, self.frames, self.frame_size = p.clip_samples, p.frames, p.frame_size
        self.tokenizer = None
        if "text" in manifest.modalities:
            if manifest.tokenizer_file is None:
                raise UserError(f"{folder}: the model reads text but its manifest names no tokenizer")
            self.tokenizer = TextTokenizer(folder / manifest.tokenizer_file, p.max_tokens, tokenizer)

    def audio(self, x: np.ndarray) -> np.ndarray:
        """[B, samples] float32 PCM at 16 kHz -> [B, clip_samples]."""
        if not np.isfinite(x).all():
            raise invalid("input 'AUDIO': contains NaN or Inf (expected finite PCM samples)")
        return np.stack([fit_length(row, self.clip_samples) for row in x])

    def video(self, x: np.ndarray) -> np.ndarray:
        """[B, T, H, W, 3] uint8 -> [B, frames, frame_size, frame_size, 3]."""
        return np.stack([prepare_video(clip, self.frames, self.frame_size) for clip in x])

    def text(self, x: np.ndarray) -> np.ndarray:
        """[B] UTF-8 bytes -> [B, max_tokens] int64 ids."""
        texts = []
        for i, item in enumerate(x):
            try:
                texts.append(bytes(item).decode("utf-8"))
            except UnicodeDecodeError as e:
                raise invalid(f"input 'TEXT': element {i} is not valid UTF-8 ({e.reason} at byte "
                              f"{e.start})") from None
        if self.tokenizer is None:
            raise invalid("input 'TEXT': this model does not read text")
        return self.tokenizer.encode(texts)

    def __call__(self, modality: str, x: np.ndarray) -> np.ndarray:
        return getattr(self, modality)(x)
