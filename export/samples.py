"""Real examples of a dataset as graph inputs: for the parity check (DESIGN.md section 5) and
for INT8 calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmrt.bundle import input_name
from mmrt.errors import UserError
from mmrt.split_files import SPLITS
from mmrt.text import TextTokenizer
from mmrt.training.data.dataset import MultimodalDataset
from mmrt.training.model.model import MultimodalModel


def recorded_data(model: MultimodalModel) -> Path | None:
    """The newest dataset folder the model's history names, if it is still there."""
    for stage in reversed(model.config.history):
        data = stage.get("data")
        if data and Path(data).is_dir():
            return Path(data)
    return None


def data_root(model: MultimodalModel, data: Path | None) -> Path:
    """``--data``, else the model's training data as its history records it."""
    root = data or recorded_data(model)
    if root is None:
        raise UserError("export needs real examples and the model's training data is not where its "
                        "config.json says; pass --data DIR (a dataset folder with its modalities)")
    return Path(root)


def parity_samples(model: MultimodalModel, root: Path, tokenizer: Path | None,
                   count: int) -> dict[str, torch.Tensor]:
    """Up to ``count`` real examples: ``{modality: [N, ...]}`` from examples that have it, and
    ``"mixed"``: the first ``count`` examples as they come, ``{modality: x, "present": [N, M]}``,
    missing modalities as zeros (what the monolithic graph is fed); ``"source"``: the manifest.
    ``root``: the dataset folder (``data_root``)."""
    split = next((s for s in ("eval", *SPLITS) if (Path(root) / f"{s}.jsonl").is_file()), None)
    if split is None:
        expected = [f"{s}.jsonl" for s in SPLITS]
        raise UserError(f"--data {root}: no manifest found (expected one of {expected})")
    dataset = _dataset(model, root, split, tokenizer)
    samples: dict = {m: _with(dataset, m, count, f"--data {root}: {split}.jsonl", "parity")
                     for m in model.modalities}
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    samples["mixed"] = {m: torch.stack([it[m] for it in items]) for m in model.modalities}
    samples["mixed"]["present"] = torch.stack([it["present"] for it in items]).float()
    samples["source"] = f"{root}/{split}.jsonl"
    return samples


def calibration_batches(model: MultimodalModel, root: Path, tokenizer: Path | None, modality: str,
                        count: int, batch: int = 8) -> list[dict[str, np.ndarray]]:
    """Up to ``count`` training examples that have ``modality``, as batches of its graph's input:
    what INT8 calibration measures activation ranges on (the train split, never eval)."""
    if not (Path(root) / "train.jsonl").is_file():
        raise UserError(f"--int8: {root}/train.jsonl not found (calibration uses the training split)")
    x = _with(_dataset(model, root, "train", tokenizer), modality, count, f"--int8: {root}/train.jsonl",
              "calibration").numpy()
    return [{input_name(modality): x[i:i + batch]} for i in range(0, len(x), batch)]


def _dataset(model: MultimodalModel, root: Path, split: str, tokenizer: Path | None) -> MultimodalDataset:
    prep = model.config.arch.preprocessing
    tok = TextTokenizer(tokenizer, prep.max_tokens) if "text" in model.modalities else None
    return MultimodalDataset(root, split, model.modalities, prep, tok, labeled=False)


def _with(dataset: MultimodalDataset, modality: str, count: int, where: str, purpose: str) -> torch.Tensor:
    """[N, ...] the first ``count`` examples that have ``modality``; an error naming it if none do."""
    rows = [i for i, ex in enumerate(dataset.examples) if modality in ex.inputs][:count]
    if not rows:
        raise UserError(f"{where} has no example with {modality} ({purpose} needs some)")
    return torch.stack([dataset[i][modality] for i in rows])
