"""Train the sentencepiece model on the pretrain split's text (the runtime only encodes)."""

from __future__ import annotations

import io
from pathlib import Path

from mmrt import atomic
from mmrt.errors import UserError
from mmrt.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID


def train_tokenizer(texts: list[str], out: str | Path, vocab_size: int = 1000) -> Path:
    """Fit a unigram sentencepiece model; ``vocab_size`` is an upper bound on small corpora."""
    import sentencepiece as spm

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise UserError("cannot train a tokenizer: the pretrain split has no text")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        num_threads=1, shuffle_input_sentence=False,  # deterministic for a given corpus
        minloglevel=2,
    )
    out = Path(out)
    atomic.write_bytes(out, model.getvalue())
    return out
