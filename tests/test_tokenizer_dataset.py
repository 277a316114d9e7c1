"""Tokenizer trained on the pretrain titles, and the torch Dataset over any modality subset."""

import json

import numpy as np
import pytest
import torch

from mmrt.preprocess import Preprocessing
from mmrt.split_files import read_split
from mmrt.text import BOS_ID, EOS_ID, PAD_ID, TextTokenizer
from mmrt.training.data.cache import DecodeCache
from mmrt.training.data.dataset import MultimodalDataset
from mmrt.training.data.tokenizer import train_tokenizer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tokenizer(tiny_data, tmp_path_factory):
    texts = [ex.inputs["text"] for ex in read_split(tiny_data, "pretrain")]
    return TextTokenizer(train_tokenizer(texts, tmp_path_factory.mktemp("tok") / "t.model"), 16)


def test_tokenizer_is_deterministic_and_pads(tiny_data, tmp_path, tokenizer):
    texts = [ex.inputs["text"] for ex in read_split(tiny_data, "pretrain")]
    a = train_tokenizer(texts, tmp_path / "a.model").read_bytes()
    assert a == train_tokenizer(texts, tmp_path / "b.model").read_bytes()
    ids = tokenizer.encode(["one more than six", "sieben kleine Enten " * 20])
    assert ids.shape == (2, 16) and ids.dtype == np.int64
    assert ids[0, 0] == BOS_ID and EOS_ID in ids[0] and ids[0, -1] == PAD_ID
    assert ids[1, -1] == EOS_ID  # a long title is cut, keeping EOS


def test_rows_are_the_pieces_sentencepiece_gives_the_whole_list(tiny_data, tokenizer):
    texts = [ex.inputs["text"] for ex in read_split(tiny_data, "eval")]
    texts += ["", "  ", "Zähl bis sieben 🦆", "x" * 200]
    rows = tokenizer.encode(texts)
    for row, pieces in zip(rows, tokenizer.sp.encode(texts), strict=True):
        want = [BOS_ID, *pieces[: tokenizer.max_tokens - 2], EOS_ID]
        assert row[: len(want)].tolist() == want and (row[len(want):] == PAD_ID).all()


def test_dataset_yields_any_subset_and_collates(tiny_data, tokenizer, tmp_path):
    prep = Preprocessing(clip_samples=16_000, frames=4, frame_size=24, max_tokens=16)
    ds = MultimodalDataset(tiny_data, "train", ("video", "text"), prep, tokenizer,
                           DecodeCache(tmp_path / "c"))
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["video"].shape == (4, 4, 24, 24, 3) and batch["video"].dtype == torch.uint8
    assert batch["text"].shape == (4, 16) and "audio" not in batch
    assert batch["present"].all() and batch["labels"].shape == (4, 10)
    assert torch.equal(batch["labels"].sum(1) >= 1, torch.ones(4, dtype=torch.bool))


def test_missing_modality_comes_as_zeros_with_present_false(tiny_data, tokenizer, tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    (root / "classes.txt").write_text((tiny_data / "classes.txt").read_text())
    first = json.loads((tiny_data / "train.jsonl").read_text().splitlines()[0])
    first["audio"] = str(tiny_data / first["audio"])  # absolute paths are fine too
    first["video"] = None
    (root / "train.jsonl").write_text(json.dumps(first) + "\n")
    ds = MultimodalDataset(root, "train", ("audio", "video", "text"), Preprocessing(), tokenizer,
                           DecodeCache(tmp_path / "c"))
    item = ds[0]
    assert item["present"].tolist() == [True, False, True]
    assert item["video"].abs().sum() == 0 and item["audio"].abs().sum() > 0


def test_second_pass_reads_the_cache_not_the_files(tiny_data, tokenizer, tmp_path):
    cache = DecodeCache(tmp_path / "c")
    ds = MultimodalDataset(tiny_data, "eval", ("audio", "video"), cache=cache)
    first = [ds[i]["audio"] for i in range(5)]
    assert cache.stats["miss"] == 10 and cache.stats["hit"] == 0
    again = MultimodalDataset(tiny_data, "eval", ("audio", "video"),
                              cache=DecodeCache(tmp_path / "c"))
    assert all(torch.equal(a, again[i]["audio"]) for i, a in enumerate(first))
    assert again.cache.stats["hit"] == 10 and again.cache.stats["miss"] == 0
