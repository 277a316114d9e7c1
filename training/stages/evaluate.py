"""Scores of a trained model on every modality subset: each encoder runs once over the split,
then every subset is a fusion of cached embeddings (as the runtime fuses them).

An eval example lacking every modality of a subset fuses to zeros and gets the head's
prior answer: every subset is scored on the same examples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mmrt.modalities import Subset, all_subsets, subset_key
from mmrt.scores import task_score
from mmrt.training.data.frontend import input_key
from mmrt.training.data.splits import Split
from mmrt.training.model.model import MultimodalModel, probabilities


@torch.no_grad()
def embed_split(model: MultimodalModel, split: Split, modalities: Sequence[str], batch_size: int = 64,
                indices: torch.Tensor | None = None, device: torch.device | None = None) -> dict:
    """{modality: [N, d] embeddings, "present": {modality: [N] bool}, "labels": [N, C]}."""
    model.eval()
    device = device or torch.device("cpu")
    order = torch.arange(len(split)) if indices is None else indices
    parts: dict[str, list[torch.Tensor]] = {m: [] for m in modalities}
    for batch in split.batches(order, batch_size):
        for m in modalities:
            key = input_key(batch, m)
            parts[m].append(model.encode_input({key: batch[key].to(device)}, m).float().cpu())
    return {**{m: torch.cat(v) for m, v in parts.items()},
            "present": {m: split.present[m][order] for m in modalities},
            "labels": split.labels[order]}


def fused(features: dict, use: Sequence[str]) -> torch.Tensor:
    """[N, d] mean of the present embeddings among ``use``."""
    return MultimodalModel.fuse({m: features[m] for m in use}, {m: features["present"][m] for m in use})


@torch.no_grad()
def subset_probabilities(model: MultimodalModel, features: dict,
                         subsets: Sequence[Subset] | None = None) -> dict[str, np.ndarray]:
    """{subset key: [N, C] class probabilities} for every subset (default: every non-empty one)."""
    model.eval()
    order, out = model.modalities, {}
    for subset in subsets or all_subsets(order):
        logits = model.head(fused(features, [m for m in order if m in subset]))
        out[subset_key(subset, order)] = probabilities(logits, model.config.task).numpy()
    return out


def subset_scores(model: MultimodalModel, features: dict, subsets: Sequence[Subset] | None = None) -> dict:
    """{subset key: score} for every subset (default: every non-empty subset of the model's)."""
    probs = subset_probabilities(model, features, subsets)
    return scores_of(probs, features["labels"].numpy(), model.config.task)


def scores_of(probabilities: dict[str, np.ndarray], labels: np.ndarray, task: str) -> dict[str, float]:
    """{subset key: the task's score} of each subset's [N, C] probabilities."""
    return {k: task_score(labels, p, task) for k, p in probabilities.items()}


def evaluate_model(model_dir, data, split: str = "eval", device: str | None = None) -> tuple[dict, str]:
    """(scores by subset key, metric name) of a model directory on a labeled split."""
    from mmrt.errors import UserError
    from mmrt.text import TextTokenizer
    from mmrt.training.data.data import inspect_data
    from mmrt.training.model.checkpoint import load_model, tokenizer_path

    model = load_model(model_dir)
    if model.head is None:
        raise UserError(f"{model_dir}: a pretrained model without a classifier (train one with 'mmrt train')")
    info = inspect_data(data, split)
    if tuple(info.classes) != tuple(model.config.classes):
        raise UserError(f"{data}/classes.txt: the model was trained on other classes "
                        f"({len(model.config.classes)} classes: {', '.join(model.config.classes[:4])}...)")
    prep = model.config.arch.preprocessing
    tok = tokenizer_path(model_dir)
    split_data = Split(info.root, split, model.modalities, prep,
                       TextTokenizer(tok, prep.max_tokens) if tok else None, labeled=True,
                       audio_frontend=model.audio_frontend())
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    features = embed_split(model.to(dev), split_data, model.modalities, device=dev)
    return subset_scores(model.cpu(), features), model.config.metric
