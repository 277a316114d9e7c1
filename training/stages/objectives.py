"""Loss modules, one per way of training: ``forward(batch, generator) -> (loss, metrics)``.

Each wraps the model so that one forward call computes the whole loss, which is what
DistributedDataParallel needs (MASD's teacher and student passes included).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mmrt.training.data.augment import augment, mixup
from mmrt.training.data.frontend import rows_of
from mmrt.training.model.config import Downstream
from mmrt.training.model.model import MultimodalModel

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's cap on the learned inverse temperature


def task_loss(logits: torch.Tensor, labels: torch.Tensor, task: str) -> torch.Tensor:
    """Per-class BCE for multi-label, softmax cross-entropy for single-label. ``labels`` [B, C]:
    multi-hot, or soft where mixup blended two examples."""
    if task == "multi-label":
        return F.binary_cross_entropy_with_logits(logits, labels)
    return F.cross_entropy(logits, labels)  # class probabilities as the target


def soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor, task: str,
                       over_classes: str = "mean") -> torch.Tensor:
    """[B]: cross-entropy of the student's logits against the teacher's probabilities; for
    multi-label the per-class binary ones, averaged or summed (``over_classes``) over the
    classes. With student = teacher, the teacher's entropy."""
    if task == "multi-label":
        per_class = F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher), reduction="none")
        return per_class.sum(1) if over_classes == "sum" else per_class.mean(1)
    return -(F.softmax(teacher, dim=1) * F.log_softmax(student, dim=1)).sum(1)


def soft_target_loss(student: torch.Tensor, teacher: torch.Tensor, task: str, temperature: float,
                     weights: torch.Tensor | None = None, over_classes: str = "mean") -> torch.Tensor:
    """Distillation: the student matches the teacher's probabilities at ``temperature``; the mean
    over examples, or the ``weights`` [B]-weighted mean; ``over_classes``: Eq. 8's sum over a
    multi-label head's classes, or their mean.

    Scaled by T^2 so the gradient size does not change with the temperature (Hinton et al.).
    """
    t = temperature
    return weighted_mean(soft_cross_entropy(student / t, teacher / t, task, over_classes), weights) * t * t


def weighted_mean(per_example: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return per_example.mean()
    # all-zero weights (a teacher with no confidence at all) distil nothing
    return (weights * per_example).sum() / weights.sum().clamp(min=1e-12)


def logit_matching(student: torch.Tensor, teacher: torch.Tensor, task: str,
                   over_classes: str = "mean") -> torch.Tensor:
    """[B]: a loss whose gradient is the limit of ``soft_target_loss``'s (with its T^2 scaling) as
    the temperature grows: (s - t)^2 / 8 per class of a multi-label head (summed or averaged as
    ``over_classes``), and for a softmax head the centred squared difference over 2C (a common
    shift is free). The values differ (soft targets add T^2 times the teacher's entropy), so
    logged distillation losses of the two are not comparable."""
    diff = student - teacher
    if task == "multi-label":
        per_class = diff.pow(2) / 8
        return per_class.sum(1) if over_classes == "sum" else per_class.mean(1)
    return (diff - diff.mean(1, keepdim=True)).pow(2).sum(1) / (2 * diff.shape[1])


def confidence(teacher: torch.Tensor, task: str, temperature: float) -> torch.Tensor:
    """[B] in [0, 1]: one minus the normalised entropy of the teacher's prediction (the mean
    binary entropy over classes for multi-label; the softmax entropy for single-label)."""
    z = teacher / temperature
    most = math.log(2) if task == "multi-label" else math.log(z.shape[1])  # entropy when undecided
    return (1.0 - soft_cross_entropy(z, z, task) / most).clamp(min=0.0)


def any_present(present: dict[str, torch.Tensor], use: Sequence[str]) -> torch.Tensor:
    """[B] bool: the example has at least one modality of ``use``."""
    return torch.stack([present[m] for m in use]).any(0)


class Contrastive(nn.Module):
    """Pairwise InfoNCE over every pair of modalities (VATT), with a learnable temperature.

    A pair's loss uses the examples that have both modalities; negatives are the other
    examples of the batch on this process.
    """

    def __init__(self, model: MultimodalModel, augment: bool = True):
        super().__init__()
        self.model, self.augment = model, augment

    def pairs(self, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor, int]]:
        """{"audio+text": (InfoNCE loss, share of rows whose partner scores highest, rows)} per pair."""
        mods = self.model.modalities
        z = self.model.embed(batch, mods)  # modality -> [B, d]
        scale = self.model.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        out = {}
        for i, a in enumerate(mods):
            for b in mods[i + 1:]:
                both = batch["present"][a] & batch["present"][b]
                if both.sum() < 2:
                    continue
                logits = scale * z[a][both] @ z[b][both].T  # [n, n]
                target = torch.arange(len(logits), device=logits.device)
                loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
                hits = (logits.argmax(1) == target).float().mean()
                out[f"{a}+{b}"] = (loss, hits, len(logits))
        return out

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        if self.augment:
            batch = augment(batch, self.model.modalities, generator)
        losses = [loss for loss, _, _ in self.pairs(batch).values()]
        scale = self.model.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        if not losses:  # keeps the graph connected so every process still takes the step
            return scale * 0.0, {"temp": float(1 / scale.detach())}
        return torch.stack(losses).mean(), {"temp": float(1 / scale.detach())}


class Supervised(nn.Module):
    """Task loss on the modalities ``use``, on batches augmented and mixed as ``downstream`` says;
    with ``drop`` > 0 each example loses each of its modalities with that probability, always
    keeping one (modality dropout)."""

    def __init__(self, model: MultimodalModel, use: Sequence[str], drop: float = 0.0,
                 downstream: Downstream | None = None):
        super().__init__()
        self.model, self.use, self.drop = model, tuple(use), drop
        self.downstream = downstream or Downstream()
        model.set_drop_path(self.downstream.drop_path)

    def prepared(self, batch: dict, generator: torch.Generator) -> dict:
        """The batch as the recipe trains on it: augmented, then mixed."""
        if self.downstream.augment:
            batch = augment(batch, self.use, generator)
        if self.downstream.mixup:
            batch = mixup(batch, self.use, self.downstream.mixup, generator)
        return batch

    def dropped(self, present: dict, generator: torch.Generator) -> dict:
        if not self.drop or len(self.use) < 2:
            return present
        keep = {m: present[m] & (torch.rand(len(present[m]), generator=generator) >= self.drop)
                for m in self.use}
        # An example that lost everything keeps one of its own modalities, chosen at random.
        lost = ~any_present(keep, self.use)
        choice = torch.rand(len(lost), len(self.use), generator=generator)
        have = torch.stack([present[m] for m in self.use], dim=1)  # [B, |use|]
        pick = torch.where(have, choice, torch.full_like(choice, -1.0)).argmax(dim=1)
        for j, m in enumerate(self.use):
            keep[m] = keep[m] | (lost & (pick == j) & present[m])
        return {**present, **keep}

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        batch = self.prepared(batch, generator)
        present = self.dropped(batch["present"], generator)
        rows = any_present(present, self.use)
        if rows.sum() < 2:  # BatchNorm needs two rows; a zero loss keeps every process stepping
            return self.model.head.linear.weight.sum() * 0.0, {}
        logits = self.model(rows_of(batch, self.use, rows),
                            {m: present[m][rows] for m in self.use}, self.use)
        return task_loss(logits, batch["labels"][rows], self.model.config.task), {}


class SelfDistillation(nn.Module):
    """MASD (paper Eq. 8): task loss on D_T|M_T plus ``weight`` x self-distillation on D_SD.

    The labelled batches are augmented and mixed as ``downstream`` says (as fine-tuning's); the
    unlabelled ones get the modality augmentations only, the same view for teacher and student.

    Teacher: the model on M_T, without gradient and without drop path. Student: the same weights
    on M \\ M_T.
    Both distillation passes use the head's BatchNorm running statistics (eval mode): batch
    statistics of the student's unfamiliar modalities collapse it (12% where fine-tuning
    reached 71% in a prototype).

    ``confidence_weighted`` (mmrt's ``masd-cw``, not in the paper) weights each example's
    distillation loss by the teacher's confidence (``confidence``), normalised over the batch,
    so an unsure teacher passes on less of its guesses; the total weight is unchanged.
    """

    def __init__(self, model: MultimodalModel, teacher_use: Sequence[str],
                 downstream: Downstream | None = None, confidence_weighted: bool = False):
        super().__init__()
        self.downstream = downstream or Downstream()
        self.model, self.weight = model, self.downstream.distill_weight
        self.temperature = self.downstream.distill_temperature
        self.confidence_weighted = confidence_weighted
        self.teacher_use = tuple(teacher_use)
        self.student_use = tuple(m for m in model.modalities if m not in self.teacher_use)
        self.task = Supervised(model, self.teacher_use, downstream=self.downstream)

    def forward(self, batch: tuple[dict, dict], generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        labeled, unlabeled = batch
        task, _ = self.task(labeled, generator)
        if self.downstream.augment:
            unlabeled = augment(unlabeled, self.model.modalities, generator)
        p = unlabeled["present"]
        rows = any_present(p, self.teacher_use) & any_present(p, self.student_use)
        self.model.eval()  # the teacher as it will be used: no drop path either
        try:
            with torch.no_grad():
                teacher = self.model(rows_of(unlabeled, self.teacher_use, rows),
                                     {m: p[m][rows] for m in self.teacher_use}, self.teacher_use)
            self.model.train()
            self.model.head.eval()
            student = self.model(rows_of(unlabeled, self.student_use, rows),
                                 {m: p[m][rows] for m in self.student_use}, self.student_use)
        finally:
            self.model.train()
        if not rows.any():
            distill = student.sum() * 0.0
        else:
            task_kind = self.model.config.task
            distill = self.distillation(student, teacher, task_kind)
        return task + self.weight * distill, {"task": task.item(), "distill": distill.item()}


    def distillation(self, student: torch.Tensor, teacher: torch.Tensor, task: str) -> torch.Tensor:
        weights = confidence(teacher, task, self.temperature) if self.confidence_weighted else None
        if self.downstream.distill_loss == "logits":
            return weighted_mean(logit_matching(student, teacher, task, self.downstream.distill_reduction),
                                 weights)
        return soft_target_loss(student, teacher, task, self.temperature, weights,
                                self.downstream.distill_reduction)


class Probe(nn.Module):
    """Linear probe on frozen features: batch = {"features": [B, d], "labels": [B, C]}."""

    def __init__(self, model: MultimodalModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        logits = self.model.head(batch["features"])
        return task_loss(logits, batch["labels"], self.model.config.task), {}
