"""Unlabelled pools checked against the labelled splits, by example id and by file.

A pool (pretraining or distillation) that holds clips a model is scored on lets it see them:
refused, naming the first shared example and the count. That is eval, and train too when a
validation share of train is what is scored (``--holdout``). A pool that holds train clips is
otherwise legal but not what the figures assume: a warning of the same form.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mmrt.errors import UserError
from mmrt.split_files import FILE_MODALITIES, Example, read_split

log = logging.getLogger(__name__)


def shared(pool: list[Example], other: list[Example]) -> tuple[int, str | None]:
    """(examples of ``pool`` that are in ``other`` by id or by an audio/video file, the first one
    described), files compared by their real path."""
    ids = {ex.id for ex in other}
    files = {os.path.realpath(ex.inputs[m]): ex.id for ex in other for m in FILE_MODALITIES if m in ex.inputs}
    count, first = 0, None
    for ex in pool:
        hit = f"id {ex.id!r}" if ex.id in ids else None
        for m in FILE_MODALITIES:
            owner = files.get(os.path.realpath(ex.inputs[m])) if hit is None and m in ex.inputs else None
            if owner is not None:
                hit = f"{ex.id!r}'s {m} file is {owner!r}'s"
        if hit is not None:
            count += 1
            first = first or hit
    return count, first


def check_pool(root: Path, pool: str, scored_on_train: bool = False) -> None:
    """Refuse ``pool`` if it shares an example with eval (and with train when validation is a
    share of train: ``scored_on_train``); warn if it shares one with train otherwise."""
    examples = read_split(root, pool, labeled=False)
    for split, fatal in (("eval", True), ("train", scored_on_train)):
        if split == pool or not (root / f"{split}.jsonl").is_file():
            continue  # a pool carved out of train is apart from what trains by construction
        count, first = shared(examples, read_split(root, split, labeled=False))
        if not count:
            continue
        what = (f"{root / (pool + '.jsonl')}: {count} of its {len(examples)} examples are also in "
                f"{split}.jsonl (first: {first})")
        if fatal:
            raise UserError(f"{what}; an unlabelled pool must not hold the clips a model is scored on")
        log.warning("%s; the figures assume it holds none", what)
