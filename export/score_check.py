"""An INT8 bundle is checked by the score it keeps, not by a tolerance: the FP32 and the INT8
encoder graphs both run over the eval split (in ONNX Runtime, as the server runs them), every
modality subset is fused and scored the way training evaluates it, and a subset that loses more
than ``max_drop`` fails the export, naming it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mmrt.bundle import EMBEDDING, input_name
from mmrt.errors import UserError
from mmrt.text import TextTokenizer
from mmrt.training.data.splits import Split
from mmrt.training.model.model import MultimodalModel
from mmrt.training.stages.evaluate import subset_scores

Run = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def eval_split(model: MultimodalModel, root: Path, tokenizer: Path | None) -> Split:
    if not (root / "eval.jsonl").is_file():
        raise UserError(f"--int8: {root}/eval.jsonl not found (the INT8 graphs are checked by their score "
                        f"on the eval split; pass --data DIR with one)")
    prep = model.config.arch.preprocessing
    tok = TextTokenizer(tokenizer, prep.max_tokens) if tokenizer is not None else None
    return Split(root, "eval", model.modalities, prep, tok, labeled=True, progress=False)


def graph_features(encoders: dict[str, Run], split: Split, batch: int = 32) -> dict:
    """What ``training.evaluate.embed_split`` gives, from exported encoder graphs."""
    parts: dict[str, list[np.ndarray]] = {m: [] for m in encoders}
    for b in split.batches(torch.arange(len(split)), batch):
        for m, run in encoders.items():
            parts[m].append(run({input_name(m): b[m].numpy()})[EMBEDDING])
    return {**{m: torch.from_numpy(np.concatenate(v)) for m, v in parts.items()},
            "present": split.present, "labels": split.labels}


def score_change(model: MultimodalModel, split: Split, fp32: dict[str, Run], int8: dict[str, Run]) -> dict:
    """{subset: {"fp32", "int8", "change"}} on every modality subset (the head is FP32 in both)."""
    before = subset_scores(model, graph_features(fp32, split))
    after = subset_scores(model, graph_features(int8, split))
    return {k: {"fp32": before[k], "int8": after[k], "change": after[k] - before[k]} for k in before}


def check_drop(change: dict, max_drop: float, metric: str) -> None:
    """Refuse the export if any subset loses more than ``max_drop`` (absolute), naming the worst."""
    worst = min(change, key=lambda k: change[k]["change"])
    c = change[worst]
    if -c["change"] > max_drop:
        raise UserError(f"--int8: on {worst} the INT8 graphs score {metric} {c['int8']:.4f} against "
                        f"{c['fp32']:.4f} in FP32, a drop of {-c['change']:.4f} (over --max-score-drop "
                        f"{max_drop:g}); calibrate on more examples (--calibration-examples) or export "
                        f"without --int8")
