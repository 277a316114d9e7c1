"""Losses: MASD's teacher passes no gradient and the student uses BatchNorm running statistics;
modality dropout keeps one modality; WiSE-FT averages weights."""

import copy

import pytest
import torch
from helpers import MODS, batch, tiny_model

from mmrt.training.model.config import Downstream
from mmrt.training.stages.objectives import (
    Contrastive,
    SelfDistillation,
    Supervised,
    confidence,
    logit_matching,
    soft_target_loss,
)
from mmrt.training.stages.wiseft import interpolate, wise


def labeled(model, b=6):
    x = batch(model, b)
    x["present"] = {m: torch.ones(b, dtype=torch.bool) for m in MODS}
    x["labels"] = torch.zeros(b, 3)
    x["labels"][torch.arange(b), torch.arange(b) % 3] = 1.0
    return x


def grads(model):
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
            for n, p in model.named_parameters()}


@pytest.mark.parametrize("confidence_weighted", [False, True])
def test_no_gradient_reaches_the_weights_through_the_teacher(confidence_weighted):
    """M_T = audio: the audio encoder only gets the task loss's gradient, whatever the distillation does."""
    model = tiny_model()
    task_batch, distill_batch = labeled(model), labeled(model)
    g = torch.Generator().manual_seed(0)

    reference = copy.deepcopy(model)
    loss, _ = Supervised(reference, ["audio"])(task_batch, g)
    loss.backward()
    task_only = grads(reference)

    loss, parts = SelfDistillation(model, ["audio"], Downstream(distill_weight=5.0),
                                   confidence_weighted=confidence_weighted)((task_batch, distill_batch), g)
    loss.backward()
    full = grads(model)
    assert parts["distill"] > 0
    audio = [n for n in full if n.startswith("encoders.audio.")]
    assert audio and all(torch.equal(full[n], task_only[n]) for n in audio)
    # ...while the student's encoders do learn from the teacher.
    assert any(full[n].abs().sum() > 0 for n in full if n.startswith("encoders.video."))
    assert all(task_only[n].abs().sum() == 0 for n in task_only if n.startswith("encoders.video."))


@pytest.mark.parametrize("task", ["multi-label", "single-label"])
def test_teacher_confidence_is_one_when_sure_and_zero_when_undecided(task):
    sure = torch.tensor([[30.0, -30.0, -30.0]])
    undecided = torch.zeros(1, 3)
    c = confidence(torch.cat([sure, undecided, sure / 30]), task, temperature=1.0)
    assert c[0] == pytest.approx(1.0, abs=1e-4) and c[1] == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < c[2] < 1.0
    # A higher temperature softens the teacher, so it is less sure.
    assert confidence(sure / 30, task, temperature=4.0) < c[2]


@pytest.mark.parametrize("task", ["multi-label", "single-label"])
def test_weighted_distillation_ignores_examples_of_weight_zero(task):
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    alone = soft_target_loss(student[:2], teacher[:2], task, 2.0)
    weighted = soft_target_loss(student, teacher, task, 2.0, weights=torch.tensor([0.5, 0.5, 0.0, 0.0]))
    torch.testing.assert_close(weighted, alone)
    assert soft_target_loss(student, teacher, task, 2.0, weights=torch.zeros(4)) == 0.0


def test_distillation_passes_use_the_heads_running_statistics():
    model = tiny_model()
    task_batch, distill_batch = labeled(model), labeled(model)
    g = torch.Generator().manual_seed(0)
    reference = copy.deepcopy(model)
    Supervised(reference, ["audio"])(task_batch, g)  # what the task pass alone does to the statistics
    SelfDistillation(model, ["audio"])((task_batch, distill_batch), g)
    assert model.head.training  # restored for the next step
    torch.testing.assert_close(model.head.norm.running_mean, reference.head.norm.running_mean)
    assert int(model.head.norm.num_batches_tracked) == 1


def test_the_teacher_runs_without_drop_path_and_the_student_with_it():
    model = tiny_model(depth=3)
    modes = []
    forward = model.forward

    def recording(inputs, present, use):
        modes.append((tuple(use), model.encoders["audio"].training, model.head.training))
        return forward(inputs, present, use)

    model.forward = recording
    SelfDistillation(model, ["audio"], Downstream(drop_path=0.5))((labeled(model), labeled(model)),
                                                                  torch.Generator().manual_seed(0))
    # task pass: training; teacher (audio): eval, so no drop path; student (video+text): training
    # encoders with the head's running statistics.
    assert modes == [(("audio",), True, True), (("audio",), False, False), (("video", "text"), True, False)]
    assert model.training and model.head.training


def test_modality_dropout_keeps_one_of_each_examples_own_modalities():
    model = tiny_model()
    obj = Supervised(model, MODS, drop=0.3)
    n = 2000
    gen = torch.Generator().manual_seed(3)
    present = {m: torch.rand(n, generator=gen) > 0.3 for m in MODS}
    present["audio"][: n // 2] |= ~(present["video"][: n // 2] | present["text"][: n // 2])  # none empty
    kept = obj.dropped(present, torch.Generator().manual_seed(4))
    has_any = torch.stack([present[m] for m in MODS]).any(0)
    keeps_any = torch.stack([kept[m] for m in MODS]).any(0)
    assert torch.equal(keeps_any, has_any)
    for m in MODS:
        assert not (kept[m] & ~present[m]).any()  # never invents a modality
    dropped_share = 1 - sum(int(kept[m].sum()) for m in MODS) / sum(int(present[m].sum()) for m in MODS)
    assert 0.22 < dropped_share < 0.31  # 0.3, less the few examples given one back


def test_contrastive_loss_falls_when_pairs_align():
    model = tiny_model()
    x = labeled(model, 8)
    obj = Contrastive(model, augment=False)  # the same views every step: pairs can be learned fast
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator()
    first = None
    for _ in range(25):
        loss, info = obj(x, g)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 0.3
    assert 0 < info["temp"] < 1


def test_wiseft_interpolates_every_float_weight_and_keeps_counters():
    a, b = tiny_model(), tiny_model()
    for p in b.parameters():
        p.data.add_(1.0)
    a.head.norm.num_batches_tracked.fill_(7)
    mid = interpolate(a.state_dict(), b.state_dict(), 0.25)
    w = "head.linear.weight"
    torch.testing.assert_close(mid[w], 0.25 * a.state_dict()[w] + 0.75 * b.state_dict()[w])
    assert int(mid["head.norm.num_batches_tracked"]) == 7
    for alpha, same in ((1.0, a), (0.0, b)):
        model = wise(a, b, alpha)
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                torch.testing.assert_close(v, same.state_dict()[k], msg=k)


def test_wiseft_refuses_state_dicts_that_do_not_match():
    a = tiny_model().state_dict()
    b = tiny_model(classes=("a", "b")).state_dict()
    with pytest.raises(ValueError, match="shapes differ"):
        interpolate(a, b, 0.5)
    with pytest.raises(ValueError, match="keys"):
        interpolate(a, {k: v for k, v in a.items() if "head" not in k}, 0.5)


def test_at_a_high_temperature_multi_label_distillation_matches_logits():
    """With the T^2 scaling, the gradient of per-class BCE against the teacher's softened
    probabilities tends to (student - teacher) / 4 per class: logit matching (the `small`
    preset distils at 16). At temperature 1 a sure teacher's targets saturate instead."""
    g = torch.Generator().manual_seed(0)
    student = (torch.randn(4, 10, generator=g) * 3).requires_grad_()
    teacher = torch.randn(4, 10, generator=g) * 3
    for t, close in ((16.0, True), (1.0, False)):
        student.grad = None
        soft_target_loss(student, teacher, "multi-label", t).backward()
        matching = (student.detach() - teacher) / 4 / (4 * 10)  # mean over 4 examples and 10 classes
        assert torch.allclose(student.grad, matching, atol=0.02 * matching.abs().max()) == close


@pytest.mark.parametrize("task,over_classes", [("multi-label", "mean"), ("multi-label", "sum"),
                                               ("single-label", "mean")])
def test_logit_matching_is_the_end_of_the_temperature_grid(task, over_classes):
    """--distill-loss logits has the gradient soft targets tend to as the temperature grows, for
    either head and reduction; at temperature 1 the two differ."""
    g = torch.Generator().manual_seed(1)
    student = (torch.randn(6, 10, generator=g) * 3).requires_grad_()
    teacher = torch.randn(6, 10, generator=g) * 3

    def grad(loss):
        student.grad = None
        loss.backward()
        return student.grad.clone()

    limit = grad(logit_matching(student, teacher, task, over_classes).mean())
    for t, close in ((1000.0, True), (1.0, False)):
        soft = grad(soft_target_loss(student, teacher, task, t, over_classes=over_classes))
        assert torch.allclose(soft, limit, rtol=0.01, atol=1e-3 * limit.abs().max()) == close, t


def test_logit_matching_distils_through_masd_and_masd_cw():
    model = tiny_model()
    recipe = Downstream(distill_loss="logits")
    for weighted in (False, True):
        loss, parts = SelfDistillation(model, ["audio"], recipe, weighted)((labeled(model), labeled(model)),
                                                                          torch.Generator().manual_seed(0))
        assert parts["distill"] > 0 and torch.isfinite(loss)
