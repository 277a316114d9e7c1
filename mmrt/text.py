"""Text to token ids with a sentencepiece model (shared by training and the runtime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmrt.errors import UserError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


class TextTokenizer:
    """Encodes strings to fixed-length id rows: [BOS] pieces... [EOS] then PAD (id 0)."""

    def __init__(self, model_path: str | Path, max_tokens: int, model: bytes | None = None):
        """The sentencepiece model in ``model`` (its verified bytes) if given, else ``model_path``."""
        import sentencepiece as spm

        if model is not None:
            self.sp = spm.SentencePieceProcessor(model_proto=model)
        elif not Path(model_path).is_file():
            raise UserError(f"{model_path}: sentencepiece model not found")
        else:
            self.sp = spm.SentencePieceProcessor(model_file=str(model_path))
        self.max_tokens = max_tokens

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, texts: list[str]) -> np.ndarray:
        """[B] strings -> int64 [B, max_tokens]; long texts are cut, keeping EOS last."""
        ids = np.full((len(texts), self.max_tokens), PAD_ID, dtype=np.int64)
        for row, text in enumerate(texts):
            # One string at a time: sentencepiece's list form starts a thread pool on every call,
            # 61 us for one short title against 3-5 us (and 119 against 48 us for 16).
            pieces = self.sp.encode_as_ids(text)
            seq = [BOS_ID, *pieces[: self.max_tokens - 2], EOS_ID]
            ids[row, : len(seq)] = seq
        return ids
