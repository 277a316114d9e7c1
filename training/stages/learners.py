"""The downstream set-up that `mmrt train` and the experiment runner share: from a pretrained
model and a dataset, the training split (less a held-out validation share), MASD's
distillation pool when a method needs one, and the learners that train every method on them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmrt.text import TextTokenizer
from mmrt.training.data.data import DataInfo
from mmrt.training.data.splits import Split, carve, holdout, open_distill, sample
from mmrt.training.model.config import Downstream, Schedule, load_preset
from mmrt.training.model.model import MultimodalModel
from mmrt.training.stages.downstream import Learners

log = logging.getLogger(__name__)


@dataclass
class DownstreamData:
    learners: Learners
    train: Split  # the whole train split; ``learners`` trains on ``learners.train_indices``
    held_out: np.ndarray  # indices of train kept out for validation (empty without a holdout)
    tokenizer: TextTokenizer | None


def open_downstream(pretrained: MultimodalModel, tokenizer_file: Path | None, info: DataInfo,
                    tune_schedule: Schedule, downstream: Downstream, holdout_share: float, seed: int,
                    distill: bool, progress: bool) -> DownstreamData:
    """Open the train split (and the distillation pool when ``distill``) as ``pretrained``
    preprocesses them, hold out ``holdout_share`` of train (seeded), and set up the learners with
    the preset's probe schedule, ``tune_schedule`` and ``downstream``."""
    prep = pretrained.config.arch.preprocessing
    tokenizer = TextTokenizer(tokenizer_file, prep.max_tokens) if tokenizer_file else None
    frontend = pretrained.audio_frontend()
    train = Split(info.root, "train", pretrained.modalities, prep, tokenizer, progress=progress,
                  audio_frontend=frontend)
    keep, held = holdout(len(train), holdout_share, seed)
    pool, pool_indices = None, None
    if downstream.distill_source == "carve":  # every stage trains on the rest, so the methods compare
        keep, carved = carve(keep, seed)
        log.info("--distill-source carve: every stage trains on %d labelled examples, %d are carved out "
                 "for distillation", len(keep), len(carved))
        if distill:
            pool, pool_indices = train, sample(carved, downstream.distill_examples, seed)
    elif distill:
        pool, pool_indices = open_distill(info.root, pretrained.modalities, prep, tokenizer, seed, progress,
                                          frontend, downstream.distill_source, downstream.distill_examples)
    probe_schedule = load_preset(pretrained.config.preset).recipe["probe"]
    learners = Learners(train, torch.from_numpy(keep), pool, pool_indices, info.classes, info.task,
                        probe_schedule, tune_schedule, downstream)
    return DownstreamData(learners, train, held, tokenizer)
