"""A torch Dataset over a split file that yields any subset of modalities, decoded through the cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mmrt.decode import load_audio, load_video
from mmrt.preprocess import Preprocessing, fit_length, prepare_video
from mmrt.split_files import Example, multi_hot, read_classes, read_split
from mmrt.text import TextTokenizer
from mmrt.training.data.cache import DecodeCache


class MultimodalDataset(Dataset):
    """Items: ``{"audio": [S] f32, "video": [T, H, W, 3] u8, "text": [L] i64, "present": [M] bool,
    "labels": [C] f32, "index": int}`` for the requested modalities.

    A modality the example lacks comes as zeros with ``present`` False, so batches collate
    with the default collate function and the model averages only present embeddings.
    """

    def __init__(self, root: str | Path, split: str, modalities: Sequence[str],
                 prep: Preprocessing | None = None, tokenizer: TextTokenizer | None = None,
                 cache: DecodeCache | None = None, labeled: bool | None = None):
        self.root = Path(root)
        self.classes = read_classes(self.root)
        self.examples: list[Example] = read_split(self.root, split, self.classes, labeled)
        self.modalities = tuple(modalities)
        if "text" in self.modalities and tokenizer is None:
            raise ValueError("the text modality needs a tokenizer")
        self.prep, self.tokenizer = prep or Preprocessing(), tokenizer
        self.cache = cache if cache is not None else DecodeCache()
        self.labels = multi_hot(self.examples, self.classes)

    def __len__(self) -> int:
        return len(self.examples)

    def audio(self, path: str) -> np.ndarray:
        p = self.prep
        params = {"sample_rate": p.sample_rate, "clip_samples": p.clip_samples}
        return self.cache.get("audio", path, params,
                              lambda: fit_length(load_audio(path, p.sample_rate), p.clip_samples))

    def video(self, path: str) -> np.ndarray:
        p = self.prep
        params = {"frames": p.frames, "frame_size": p.frame_size}
        return self.cache.get("video", path, params,
                              lambda: prepare_video(load_video(path), p.frames, p.frame_size))

    def _empty(self, modality: str) -> torch.Tensor:
        p = self.prep
        if modality == "audio":
            return torch.zeros(p.clip_samples, dtype=torch.float32)
        if modality == "video":
            return torch.zeros((p.frames, p.frame_size, p.frame_size, 3), dtype=torch.uint8)
        return torch.zeros(p.max_tokens, dtype=torch.int64)

    def __getitem__(self, index: int) -> dict:
        ex = self.examples[index]
        item: dict = {"index": index, "labels": torch.from_numpy(self.labels[index])}
        present = []
        for m in self.modalities:
            value = ex.inputs.get(m)
            present.append(value is not None)
            if value is None:
                item[m] = self._empty(m)
            elif m == "audio":
                item[m] = torch.from_numpy(self.audio(value))
            elif m == "video":
                item[m] = torch.from_numpy(self.video(value))
            else:
                item[m] = torch.from_numpy(self.tokenizer.encode([value])[0])
        item["present"] = torch.tensor(present, dtype=torch.bool)
        return item
