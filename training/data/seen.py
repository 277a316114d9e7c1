"""What a model has read, checked against what a run scores.

With ``--holdout`` a run scores a seeded share of train.jsonl. Pretraining cannot know that a later
run will, so it only warns about a pool that shares clips with train; and a model trained on train
without that holdout has read the very clips the share holds, labels and all. Each stage of a
model's history records the folder it read (its real path) and a fingerprint of the split, taken
before training (``read_record``), so a run on that folder, or on a copy of it, finds them and
refuses before any work.
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


def read_record(root: Path, split: str, **more) -> dict:
    """What a stage that reads ``root``'s ``split`` records of it (for ``check_unseen``): taken
    before the stage trains, so it describes what was read."""
    return {"data": str(Path(root).resolve()), f"{split}_digest": digest(root, split), **more}


def trained_on(root: Path, holdout: float, seed: int) -> dict:
    """The record of a stage that trains on ``root``'s train.jsonl, less the share ``holdout``
    drawn with ``seed`` keeps out."""
    return read_record(root, "train", holdout=holdout, seed=seed)


def _read(stage: dict, root: Path, split: str) -> tuple[bool, bool]:
    """(whether a history ``stage`` read ``root``'s ``split``, whether the split changed since):
    read where the fingerprint it recorded is the split's (the folder copied or moved) or where
    its folder is this one (records made before fingerprints: a relative path read from here)."""
    here = os.path.realpath(root)
    same_folder = bool(stage.get("data")) and os.path.realpath(stage["data"]) == here
    key = f"{split}_digest"
    if key not in stage:
        return same_folder, False
    same_split = (Path(root) / f"{split}.jsonl").is_file() and stage[key] == digest(root, split)
    return same_split or same_folder, same_folder and not same_split


def check_unseen(root: Path, model: Path | str, history: Iterable[dict], holdout: float,
                 seeds: Iterable[int]) -> None:
    """With a share of ``root``'s train scored (``holdout`` > 0, drawn with each of ``seeds``), refuse
    ``model`` where its ``history`` read that share: pretrained on this folder's pretrain.jsonl
    while that shares clips with train, or trained on this folder's train.jsonl other than with the
    same holdout and seed, or before train.jsonl changed (which clips its share held is then lost)."""
    if holdout <= 0:
        return
    train_file, seeds = Path(root) / "train.jsonl", list(seeds)
    for stage in reversed(list(history)):  # the latest first: a refusal names the method that made the model
        name = stage.get("method") or stage.get("stage")
        if stage.get("stage") == "pretrain":
            if _read(stage, root, "pretrain")[0]:
                try:
                    check_pool(root, "pretrain", scored_on_train=True)
                except UserError as e:
                    raise UserError(f"--pretrained {model}: pretrained on this folder's pool: {e}") from None
            continue
        read, changed = _read(stage, root, "train")
        if not read:
            continue
        if changed:
            raise UserError(f"--pretrained {model} was trained ({name}) on {train_file} before it changed, "
                            "so which clips it kept out is not known: start from the model it was trained "
                            "from")
        for seed in seeds:
            if (stage.get("holdout"), stage.get("seed")) == (holdout, seed):
                continue
            kept = ("keeping nothing out" if stage.get("holdout") == 0 else
                    "in a record that does not say what it kept out" if "holdout" not in stage else
                    f"keeping out --holdout {stage['holdout']} with --seed {stage.get('seed')}")
            raise UserError(f"--pretrained {model} was trained ({name}) on {train_file}, {kept}: "
                            f"--holdout {holdout} with --seed {seed} would score clips it trained on; start "
                            "from the model it was trained from, or hold out what it held out")
