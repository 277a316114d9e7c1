"""Real examples of a dataset as graph inputs, for the parity check (DESIGN.md section 5)."""

from __future__ import annotations

from pathlib import Path

import torch

from mmrt.errors import UserError
from mmrt.manifest import SPLITS
from mmrt.text import TextTokenizer
from mmrt.training.dataset import MultimodalDataset
from mmrt.training.model import MultimodalModel


def recorded_data(model: MultimodalModel) -> Path | None:
    """The newest dataset folder the model's history names, if it is still there."""
    for stage in reversed(model.config.history):
        data = stage.get("data")
        if data and Path(data).is_dir():
            return Path(data)
    return None


def parity_samples(model: MultimodalModel, data: Path | None, tokenizer: Path | None,
                   count: int) -> dict[str, torch.Tensor]:
    """Up to ``count`` real examples: ``{modality: [N, ...]}`` from examples that have it, and
    ``"mixed"``: the first ``count`` examples as they come, ``{modality: x, "present": [N, M]}``,
    missing modalities as zeros (what the monolithic graph is fed); ``"source"``: the manifest."""
    root = data or recorded_data(model)
    if root is None:
        raise UserError("parity needs real examples and the model's training data is not where its "
                        "config.json says; pass --data DIR (a dataset folder with its modalities)")
    split = next((s for s in ("eval", *SPLITS) if (Path(root) / f"{s}.jsonl").is_file()), None)
    if split is None:
        expected = [f"{s}.jsonl" for s in SPLITS]
        raise UserError(f"--data {root}: no manifest found (expected one of {expected})")
    prep = model.config.arch.preprocessing
    tok = TextTokenizer(tokenizer, prep.max_tokens) if "text" in model.modalities else None
    dataset = MultimodalDataset(root, split, model.modalities, prep, tok, labeled=False)
    samples: dict = {}
    for m in model.modalities:
        rows = [i for i, ex in enumerate(dataset.examples) if m in ex.inputs][:count]
        if not rows:
            raise UserError(f"--data {root}: {split}.jsonl has no example with {m} (parity needs some)")
        samples[m] = torch.stack([dataset[i][m] for i in rows])
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    samples["mixed"] = {m: torch.stack([it[m] for it in items]) for m in model.modalities}
    samples["mixed"]["present"] = torch.stack([it["present"] for it in items]).float()
    samples["source"] = f"{root}/{split}.jsonl"
    return samples
