"""What a model has read, checked against what a run scores.

With ``--holdout`` a run scores a seeded share of train.jsonl. Pretraining cannot know that a later
run will, so it only warns about a pool that shares clips with train; and a model trained on train
without that holdout has read the very clips the share holds, labels and all. Each stage of a
model's history records the folder it read and a fingerprint of the split (``digest``), so a run
on that folder, moved, copied or named from another directory, finds them and refuses before any
work.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from mmrt.errors import UserError
from mmrt.training.data.overlap import check_pool


def digest(root: Path, split: str) -> str:
    """A short fingerprint of ``root``'s ``split``.jsonl (its bytes)."""
    return hashlib.sha256((Path(root) / f"{split}.jsonl").read_bytes()).hexdigest()[:16]


def read_by(stage: dict, root: Path, split: str) -> bool:
    """Whether a history ``stage`` read ``root``'s ``split``: by the fingerprint it recorded, else
    (stages recorded before fingerprints) by its folder's real path."""
    key = f"{split}_digest"
    if key in stage:
        return (Path(root) / f"{split}.jsonl").is_file() and stage[key] == digest(root, split)
    return bool(stage.get("data")) and os.path.realpath(stage["data"]) == os.path.realpath(root)


def trained_on(root: Path, holdout: float, seed: int) -> dict:
    """What a stage that trains on ``root``'s train.jsonl records of it (for ``check_unseen``)."""
    return {"data": str(root), "train_digest": digest(root, "train"), "holdout": holdout, "seed": seed}


def check_unseen(root: Path, history: Iterable[dict], holdout: float, seed: int) -> None:
    """With a share of ``root``'s train scored (``holdout`` > 0, drawn with ``seed``), refuse a model
    whose ``history`` read it: pretrained on this folder's pretrain.jsonl while that shares clips
    with train, or trained on this folder's train.jsonl other than with the same holdout and seed."""
    if holdout <= 0:
        return
    for stage in history:
        if stage.get("stage") == "pretrain":
            if read_by(stage, root, "pretrain"):
                check_pool(root, "pretrain", scored_on_train=True)
        elif read_by(stage, root, "train") and (stage.get("holdout"), stage.get("seed")) != (holdout, seed):
            kept = ("keeping nothing out" if not stage.get("holdout") else
                    f"keeping out --holdout {stage['holdout']} with --seed {stage.get('seed')}")
            raise UserError(f"the model was trained ({stage.get('method') or stage.get('stage')}) on "
                            f"{Path(root) / 'train.jsonl'}, {kept}: --holdout {holdout} with --seed {seed} "
                            "would score clips it trained on; start from the model it was trained from")
