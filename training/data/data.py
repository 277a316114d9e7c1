"""What a dataset folder offers a training run: its modalities, classes and task type."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmrt.errors import UserError
from mmrt.modalities import DEFAULT_MODALITIES
from mmrt.split_files import read_classes, read_split

TASKS = ("multi-label", "single-label")


@dataclass(frozen=True)
class DataInfo:
    root: Path
    modalities: tuple[str, ...]  # those the pretrain split carries, in the canonical order
    classes: tuple[str, ...]
    task: str  # "multi-label" (metric mAP) or "single-label" (metric top-1)


def _task(root: Path) -> str:
    """The data card's label type if any; else single-label iff every train example has one label."""
    card = root / "datacard.json"
    if card.is_file():
        labels = json.loads(card.read_text("utf-8")).get("labels")
        if labels in ("multi", "single"):
            return f"{labels}-label"
    examples = read_split(root, "train")
    return "single-label" if all(len(ex.labels) == 1 for ex in examples) else "multi-label"


def inspect_data(root: str | Path, split: str = "pretrain") -> DataInfo:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--data {root}: not a folder (make one with 'mmrt data make')")
    classes = tuple(read_classes(root))
    seen = set().union(*(ex.modalities for ex in read_split(root, split, labeled=False)))
    modalities = tuple(m for m in DEFAULT_MODALITIES if m in seen)
    return DataInfo(root, modalities, classes, _task(root))


def require_modalities(info: DataInfo, split: str, needed: Sequence[str], purpose: str) -> None:
    """Refuse a run whose modality set the split cannot provide (named, before any training)."""
    examples = read_split(info.root, split)
    have = set().union(*(ex.modalities for ex in examples))
    missing = [m for m in needed if m not in have]
    if missing:
        raise UserError(f"{info.root / (split + '.jsonl')}: no example has {missing[0]!r}, "
                        f"which {purpose} needs")
