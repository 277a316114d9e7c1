"""A dataset folder seen with some splits cut short: the first N examples of a split file, every
other file linked. The bundled generator seeds each example by its index, so the first N clips of a
larger split are the split `mmrt data make` writes at size N: one draw serves every size. A cut
pretraining pool gets the distill.jsonl `mmrt data make` would write for it (a sample of the pool,
which does not nest).

Used by lab/foundation_curve.py, lab/paper_table.py."""

from __future__ import annotations

import json
from pathlib import Path

from mmrt import atomic
from mmrt.training.datagen.make import distill_pick


def data_view(data: Path, view: Path, sizes: dict[str, int]) -> Path:
    """``view``: ``data`` with each split of ``sizes`` cut to its first ``sizes[split]`` examples."""
    data = data.resolve()
    view.mkdir(parents=True, exist_ok=True)
    written = {f"{s}.jsonl" for s in sizes} | ({"distill.jsonl"} if "pretrain" in sizes else set())
    for entry in data.iterdir():
        link = view / entry.name
        if entry.name not in written and not link.is_symlink() and not link.exists():
            link.symlink_to(entry)
    cut = {}
    for split, size in sizes.items():
        lines = (data / f"{split}.jsonl").read_text("utf-8").splitlines(keepends=True)
        if len(lines) < size:
            raise SystemExit(f"{data}/{split}.jsonl has {len(lines)} examples, fewer than {size}")
        cut[split] = lines[:size]
        atomic.write_text(view / f"{split}.jsonl", "".join(cut[split]))
    if "pretrain" in sizes and (data / "distill.jsonl").is_file():
        seed = json.loads((data / "datacard.json").read_text("utf-8"))["config"]["seed"]
        distill = len((data / "distill.jsonl").read_text("utf-8").splitlines())
        pick = distill_pick(seed, len(cut["pretrain"]), distill)
        atomic.write_text(view / "distill.jsonl", "".join(cut["pretrain"][i] for i in pick))
    return view
