"""How well pretraining aligned the modalities, on examples it trained on and on held-out ones.

Per pair of modalities, in batches of the training batch size: the InfoNCE loss and the
share of examples whose own partner scores highest (chance: 1 / batch). A low loss on
training examples with a chance-level held-out one means the encoders memorised clips
instead of learning what the modalities share (seen on the bundled data: video-text
retrieval 0.68 on pretrain clips, 0.016 = chance on unseen ones).
"""

from __future__ import annotations

import math

import torch

from mmrt.training.data.splits import Split
from mmrt.training.model.model import MultimodalModel
from mmrt.training.stages.loop import to_device
from mmrt.training.stages.objectives import Contrastive


@torch.no_grad()
def alignment(model: MultimodalModel, parts: list[tuple[Split, torch.Tensor]], batch_size: int,
              device: torch.device) -> dict:
    """Over the examples ``indices`` of each ``(split, indices)`` part: {"pairs": {"audio+text":
    {"loss", "retrieval"}}, "chance": {"loss", "retrieval"}, "examples": n}."""
    model.eval()
    objective = Contrastive(model, augment=False)
    sums: dict[str, list[float]] = {}
    examples = 0
    for split, indices in parts:
        for batch in split.batches(indices, batch_size):
            if len(batch["labels"]) < batch_size:
                continue  # equal batches, so that the chance level is one number
            examples += batch_size
            for pair, (loss, hits, rows) in objective.pairs(to_device(batch, device)).items():
                acc = sums.setdefault(pair, [0.0, 0.0, 0])
                acc[0] += float(loss) * rows
                acc[1] += float(hits) * rows
                acc[2] += rows
    model.train()
    return {"pairs": {p: {"loss": s[0] / s[2], "retrieval": s[1] / s[2]} for p, s in sums.items() if s[2]},
            "chance": {"loss": math.log(batch_size), "retrieval": 1 / batch_size}, "examples": examples}
