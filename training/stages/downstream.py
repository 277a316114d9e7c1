"""Stage 2: the downstream learners on a training-modality set M_T (``use``).

``probe`` fits the head on frozen encoders; ``finetune`` trains every weight (with
``drop`` > 0 it is modality dropout); ``self_distill`` is MASD. Each starts from the
model it is given and returns the trained model plus a record of what was done.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mmrt.methods import DISTILLING, METHODS
from mmrt.training.data.splits import Split
from mmrt.training.model.config import Downstream, Schedule
from mmrt.training.model.model import MultimodalModel
from mmrt.training.stages.distributed import Context
from mmrt.training.stages.evaluate import embed_split, fused
from mmrt.training.stages.loop import epoch_batches, epoch_order, fit, global_batch
from mmrt.training.stages.objectives import Probe, SelfDistillation, Supervised, any_present
from mmrt.training.stages.speed import Speed

log = logging.getLogger(__name__)


@dataclass
class StageRun:
    """Where a stage keeps its resumable state, and how it reports."""

    ctx: Context
    seed: int = 0
    state_file: Path | None = None
    resume: bool = False
    progress: bool = True
    checkpoint_every: int = 50
    speed: Speed = field(default_factory=Speed)


def probe(pretrained: MultimodalModel, train: Split, indices: torch.Tensor, use: Sequence[str],
          classes: Sequence[str], task: str, schedule: Schedule,
          run: StageRun) -> tuple[MultimodalModel, dict]:
    """Linear probe: BatchNorm(affine=False) + Linear on the frozen, fused embeddings of ``use``.

    The encoders run once over the training examples; every process fits the same head on
    the same features (it is cheap), so no process group is needed.
    """
    model = pretrained.with_head(classes, task).to(run.ctx.device)
    features = embed_split(model, train, use, indices=indices, device=run.ctx.device)
    keep = any_present(features["present"], use)
    x, y = fused(features, use)[keep], features["labels"][keep]
    batch_size = min(schedule.batch_size, len(x))
    steps = max(1, len(x) // batch_size)

    def batches(epoch: int) -> Iterator[dict]:
        order = epoch_order(torch.arange(len(x)), run.seed, epoch)
        for i in range(steps):
            idx = order[i * batch_size:(i + 1) * batch_size]
            yield {"features": x[idx].to(run.ctx.device), "labels": y[idx].to(run.ctx.device)}

    result = fit(Probe(model), list(model.head.parameters()), batches, steps, schedule, run.ctx,
                 run.seed, f"probe {'+'.join(use)}", progress=run.progress, speed=run.speed,
                 distributed=False)
    return model, {"stage": "probe", "use": list(use), "examples": len(x), "schedule": asdict(schedule),
                   **result}


def finetune(start: MultimodalModel, train: Split, indices: torch.Tensor, use: Sequence[str],
             schedule: Schedule, run: StageRun, downstream: Downstream,
             drop: float = 0.0) -> tuple[MultimodalModel, dict]:
    """All weights on D_T|M_T, head initialised from the probe, batches augmented as ``downstream``
    says; ``drop`` > 0: modality dropout."""
    model = copy.deepcopy(start).to(run.ctx.device)
    batch_size = global_batch(schedule.batch_size, len(indices), run.ctx)
    batches, steps = epoch_batches(train, indices, batch_size, run.seed, run.ctx)
    name = "moddrop" if drop else "finetune"
    params = [p for n, p in model.named_parameters() if n != "logit_scale"]
    result = fit(Supervised(model, use, drop, downstream), params, batches, steps, schedule,
                 run.ctx, run.seed, f"{name} {'+'.join(use)}", state_file=run.state_file, resume=run.resume,
                 checkpoint_every=run.checkpoint_every, progress=run.progress, speed=run.speed)
    model.set_drop_path(0.0)
    return model, {"stage": name, "use": list(use), "drop": drop, "batch_size": batch_size,
                   "schedule": asdict(schedule), "recipe": downstream.to_dict(), **result}


def _paired(first, first_steps: int, second, second_steps: int):
    """Each epoch of ``first`` zipped with as many epochs of ``second`` as it takes (seeded cycling)."""
    rounds = math.ceil(first_steps / second_steps)

    def batches(epoch: int) -> Iterator:
        def cycle() -> Iterator:
            for j in range(rounds):
                yield from second(epoch * rounds + j)

        yield from zip(first(epoch), cycle(), strict=False)  # cycle() outlasts first

    return batches


def self_distill(start: MultimodalModel, train: Split, indices: torch.Tensor, distill: Split,
                 distill_indices: torch.Tensor, use: Sequence[str], schedule: Schedule, run: StageRun,
                 downstream: Downstream, confidence_weighted: bool = False) -> tuple[MultimodalModel, dict]:
    """MASD: task loss on D_T|M_T plus self-distillation from M_T to M \\ M_T on D_SD
    (each example weighted by the teacher's confidence with ``confidence_weighted``)."""
    model = copy.deepcopy(start).to(run.ctx.device)
    batch_size = global_batch(schedule.batch_size, len(indices), run.ctx)
    labeled, steps = epoch_batches(train, indices, batch_size, run.seed, run.ctx)
    distill_size = global_batch(schedule.batch_size, len(distill_indices), run.ctx)
    unlabeled, distill_steps = epoch_batches(distill, distill_indices, distill_size, run.seed + 1, run.ctx)
    objective = SelfDistillation(model, use, downstream, confidence_weighted)
    stage = "masd-cw" if confidence_weighted else "masd"
    params = [p for n, p in model.named_parameters() if n != "logit_scale"]
    result = fit(objective, params, _paired(labeled, steps, unlabeled, distill_steps), steps,
                 schedule, run.ctx, run.seed, f"{stage} {'+'.join(use)}", state_file=run.state_file,
                 resume=run.resume, checkpoint_every=run.checkpoint_every, progress=run.progress,
                 speed=run.speed)
    model.set_drop_path(0.0)
    return model, {"stage": stage, "use": list(use), "student": list(objective.student_use),
                   "distill_examples": len(distill_indices), "batch_size": batch_size,
                   "schedule": asdict(schedule), "recipe": downstream.to_dict(), **result}


def tuning_stage(method: str, use: Sequence[str], modalities: Sequence[str]) -> str | None:
    """The stage ``method`` trains on M_T = ``use`` after the probe, where degenerate cases
    collapse: MASD with M_T = M has no student (plain fine-tuning), and modality dropout
    on one modality cannot drop anything (plain fine-tuning)."""
    stage = METHODS[method].trains
    if stage in DISTILLING and set(use) == set(modalities):
        log.info("%s on %s: M_T is every modality, so there is no student set; this is plain "
                 "fine-tuning", method, "+".join(use))
        return "finetune"
    if stage == "moddrop" and len(use) == 1:
        log.info("moddrop on %s: one modality cannot be dropped; this is plain fine-tuning", use[0])
        return "finetune"
    return stage


@dataclass
class Learners:
    """The downstream data and settings of one run; each method is probe -> (tuned stage)."""

    train: Split
    train_indices: torch.Tensor
    distill: Split | None  # D_SD, needed by masd only
    distill_indices: torch.Tensor | None
    classes: Sequence[str]
    task: str
    probe_schedule: Schedule
    tune_schedule: Schedule
    downstream: Downstream

    def probe(self, pretrained: MultimodalModel, use: Sequence[str], run: StageRun):
        return probe(pretrained, self.train, self.train_indices, use, self.classes, self.task,
                     self.probe_schedule, run)

    def tune(self, stage: str, lp: MultimodalModel, use: Sequence[str], run: StageRun):
        if stage in DISTILLING:
            if self.distill is None:
                raise ValueError(f"{stage} needs the distill split")
            return self_distill(lp, self.train, self.train_indices, self.distill,
                                self.distill_indices, use, self.tune_schedule, run, self.downstream,
                                confidence_weighted=stage == "masd-cw")
        return finetune(lp, self.train, self.train_indices, use, self.tune_schedule, run, self.downstream,
                        self.downstream.drop if stage == "moddrop" else 0.0)
