"""A split as batches of tensors: held in memory when it fits, streamed from the cache when not.

Small CPU runs are dominated by per-item overhead, so a split that fits in ``memory_budget``
is decoded once (through the on-disk cache) into stacked tensors and batches are slices.
Larger splits (the ``base`` preset on a GPU server) stream through a DataLoader instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate
from tqdm import tqdm

from mmrt.errors import UserError
from mmrt.preprocess import Preprocessing
from mmrt.split_files import read_split
from mmrt.text import TextTokenizer
from mmrt.training.data.dataset import MultimodalDataset
from mmrt.training.data.frontend import LOG_MEL

log = logging.getLogger(__name__)

MEMORY_BUDGET = 8 << 30  # bytes of decoded tensors a split may hold in memory


def _bytes_per_example(modalities: Sequence[str], prep: Preprocessing) -> int:
    sizes = {"audio": 4 * prep.clip_samples, "video": 3 * prep.frames * prep.frame_size ** 2,
             "text": 8 * prep.max_tokens}
    return sum(sizes.get(m, 0) for m in modalities)


def _split_batch(items: dict, modalities: Sequence[str]) -> dict:
    """Collated dataset items -> {modality: x, "present": {modality: [B] bool}, "labels", "index"}."""
    present = items.pop("present")
    items["present"] = {m: present[:, i] for i, m in enumerate(modalities)}
    return items


class Split:
    """One split of a dataset; ``batches(order, batch_size)`` yields batch dicts in that order."""

    def __init__(self, root: str | Path, split: str, modalities: Sequence[str], prep: Preprocessing,
                 tokenizer: TextTokenizer | None, labeled: bool | None = None,
                 memory_budget: int = MEMORY_BUDGET, workers: int = 0, progress: bool = True,
                 audio_frontend: torch.nn.Module | None = None):
        self.name = split
        self.dataset = MultimodalDataset(root, split, modalities, prep, tokenizer, labeled=labeled)
        self.modalities = self.dataset.modalities
        self.classes = self.dataset.classes
        self.labels = torch.from_numpy(self.dataset.labels)  # [N, C]
        self.present = {m: torch.tensor([ex.inputs.get(m) is not None for ex in self.dataset.examples])
                        for m in self.modalities}
        self.workers = workers
        self.tensors: dict | None = None
        if len(self) * _bytes_per_example(self.modalities, prep) <= memory_budget:
            self.tensors = self._load_all(progress)
            if audio_frontend is not None:
                precompute_log_mel(self, audio_frontend)
        else:
            log.info("%s: streaming from the decode cache (larger than the memory budget)", split)

    def __len__(self) -> int:
        return len(self.dataset)

    def _load_all(self, progress: bool) -> dict:
        loader = DataLoader(self.dataset, batch_size=64, num_workers=self.workers)
        parts = [b for b in tqdm(loader, desc=f"load {self.name}", unit="batch", disable=not progress,
                                 leave=False)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}

    def batches(self, order: torch.Tensor, batch_size: int, drop_last: bool = False) -> Iterator[dict]:
        """Batches of the examples at ``order`` (a permutation or any index list)."""
        chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        if drop_last and chunks and len(chunks[-1]) < batch_size and len(chunks) > 1:
            chunks.pop()
        if self.tensors is not None:
            for idx in chunks:
                yield _split_batch({k: v[idx] for k, v in self.tensors.items()}, self.modalities)
            return
        loader = DataLoader(self.dataset, batch_sampler=[c.tolist() for c in chunks],
                            num_workers=self.workers, collate_fn=default_collate)
        for items in loader:
            yield _split_batch(items, self.modalities)


def holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (keep, held_out) index arrays: the validation split carved from train."""
    perm = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * fraction))
    return np.sort(perm[cut:]), np.sort(perm[:cut])


DISTILL_SAMPLE = 0.2  # share of pretrain used as D_SD when the data has no distill.jsonl
CARVE = 0.2  # share of the labelled examples carved out as D_SD with --distill-source carve
POOL_FILES = {"pretrain": "distill.jsonl", "unseen": "unseen.jsonl", "carve": "train.jsonl"}


def distill_pool(root: Path, source: str, examples: int = 0, holdout_share: float = 0.0) -> str:
    """The split D_SD is drawn from for ``source``: "distill", "unseen" or "train" (carved from
    what ``holdout_share`` leaves), or "pretrain" for data without distill.jsonl. Checks, before
    any work, that the pool exists and holds ``examples``."""
    file = Path(root) / POOL_FILES[source]
    if not file.is_file() and source != "pretrain":
        raise UserError(f"--distill-source {source}: {file} does not exist (it lists unlabeled, "
                        "modality-complete clips pretraining never saw; 'mmrt data make' writes one; "
                        "or use --distill-source pretrain)")
    pool = file.stem if file.is_file() else "pretrain"
    size = len(read_split(root, pool, labeled=False))  # refuses an empty pool, naming the file
    if pool == "pretrain":
        size = int(round(size * DISTILL_SAMPLE))
    if source == "carve":
        size = int(round((size - int(round(size * holdout_share))) * CARVE))
    if examples > size:
        raise UserError(f"--distill-examples {examples}: the {source} pool ({pool}.jsonl) has only "
                        f"{size} examples")
    return pool


def open_distill(root: Path, modalities: Sequence[str], prep: Preprocessing, tokenizer: TextTokenizer | None,
                 seed: int, progress: bool = True, audio_frontend: torch.nn.Module | None = None,
                 source: str = "pretrain", examples: int = 0) -> tuple[Split, torch.Tensor]:
    """D_SD for MASD and the indices to use: ``source`` "pretrain" is ``distill.jsonl`` (a sample
    of the pretraining clips; a seeded 20% of pretrain when the data has none), "unseen" is
    ``unseen.jsonl`` (clips pretraining never saw). ``examples`` > 0 takes a seeded sample."""
    pool = distill_pool(root, source, examples)
    split = Split(root, pool, modalities, prep, tokenizer, labeled=False, progress=progress,
                  audio_frontend=audio_frontend)
    indices = np.arange(len(split))
    if pool == "pretrain":
        _, indices = holdout(len(split), DISTILL_SAMPLE, seed)
        log.info("no distill.jsonl: self-distillation uses %d pretrain examples", len(indices))
    return split, sample(indices, examples, seed)


def carve(keep: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train on, distil on): a seeded ``CARVE`` share of the labelled indices ``keep`` set apart
    as D_SD (the paper's distill-on-Kinetics runs: the downstream task trains on the rest)."""
    rest, carved = holdout(len(keep), CARVE, seed + 1)
    return keep[rest], keep[carved]


def sample(indices: np.ndarray, examples: int, seed: int) -> torch.Tensor:
    """``examples`` > 0: a seeded sample of ``indices``; 0: all of them."""
    if examples:
        indices = np.sort(np.random.default_rng(seed).choice(indices, size=examples, replace=False))
    return torch.from_numpy(np.asarray(indices))


@torch.no_grad()
def precompute_log_mel(split: Split, log_mel: torch.nn.Module, batch_size: int = 256) -> None:
    """Replace an in-memory split's audio PCM by its log-mel, once.

    The front-end has no weights and augmentation works on the log-mel, so this gives the same
    numbers as running it every step, at a fraction of the cost. It runs on the front-end's
    device; the split stays in host memory (batches move to the device as they are taken).
    """
    if split.tensors is None or "audio" not in split.tensors:
        return
    pcm = split.tensors.pop("audio")
    device = next(log_mel.buffers()).device
    chunks = [log_mel(pcm[i:i + batch_size].to(device)).cpu() for i in range(0, len(pcm), batch_size)]
    split.tensors[LOG_MEL] = torch.cat(chunks)
