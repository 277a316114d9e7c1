"""The downstream recipe: step budgets, mixup, drop path, Eq. 8's reduction, and the oracle
(headroom) figures of a p-matrix."""

import pytest
import torch
from helpers import batch, tiny_model
from torch.nn import functional as F

from mmrt.errors import UserError
from mmrt.robustness import PMatrix, gap_closed, oracle, robustness_report, score_unit
from mmrt.training.data.augment import mixup
from mmrt.training.model.config import Downstream, Schedule, load_preset
from mmrt.training.stages.objectives import soft_target_loss, task_loss


def test_a_step_budget_replaces_epochs_and_flags_replace_each_other():
    s = Schedule(lr=1e-4, batch_size=32, steps=1050)
    assert s.total_steps(steps_per_epoch=7) == 1050
    by_epochs = s.override(epochs=30)
    assert (by_epochs.epochs, by_epochs.steps, by_epochs.total_steps(7)) == (30, 0, 210)
    assert by_epochs.override(steps=500).total_steps(7) == 500
    with pytest.raises(UserError, match="either epochs or steps"):
        Schedule(lr=1e-4, batch_size=32)
    with pytest.raises(UserError, match="give one of them"):
        s.override(epochs=3, steps=3)
    with pytest.raises(UserError, match="--steps 0"):
        s.override(steps=0)


@pytest.mark.parametrize("field,value,flag", [("mixup", 1.5, "--mixup"), ("drop_path", 1.0, "--drop-path"),
                                              ("drop", -0.1, "--drop-prob"),
                                              ("distill_reduction", "max", "--distill-reduction"),
                                              ("distill_source", "eval", "--distill-source"),
                                              ("distill_examples", -1, "--distill-examples"),
                                              ("distill_temperature", 0.0, "--distill-temperature")])
def test_bad_recipe_values_name_their_flag(field, value, flag):
    with pytest.raises(UserError, match=flag):
        Downstream().override(**{field: value})


def test_every_preset_has_a_valid_downstream_recipe():
    for name in ("tiny", "small", "base"):
        preset = load_preset(name)
        assert isinstance(preset.downstream, Downstream)
        assert preset.recipe["finetune"].total_steps(7) > 0


def _mix_batch(b=8):
    g = torch.Generator().manual_seed(1)
    labels = torch.zeros(b, 4)
    labels[torch.arange(b), torch.arange(b) % 4] = 1.0
    return {"audio": torch.randn(b, 5, 6, generator=g),
            "video": torch.randint(0, 256, (b, 2, 3, 3, 3), dtype=torch.uint8, generator=g),
            "text": torch.arange(b)[:, None].repeat(1, 4),
            "present": {"audio": torch.ones(b, dtype=torch.bool), "video": torch.ones(b, dtype=torch.bool),
                        "text": torch.ones(b, dtype=torch.bool)},
            "labels": labels}


def _partners(x: dict, out: dict) -> dict[int, int]:
    """Each mixed example -> the example it was mixed with, found from the blend itself: the one
    k with audio_i = lam * audio_i + (1 - lam) * audio_k and labels alike, lam its own label weight."""
    found = {}
    for i in range(len(x["labels"])):
        lam = float((out["labels"][i] * x["labels"][i]).sum())
        if lam == 1.0:
            continue
        for k in range(len(x["labels"])):
            blend = lam * x["audio"][i] + (1 - lam) * x["audio"][k]
            labels = lam * x["labels"][i] + (1 - lam) * x["labels"][k]
            if torch.allclose(out["audio"][i], blend, atol=1e-5) and torch.allclose(out["labels"][i], labels):
                found[i] = k
        assert i in found, f"example {i}: audio and labels were not mixed with the same weight"
    return found


def test_mixup_blends_audio_video_and_labels_alike_and_leaves_text():
    x = _mix_batch()
    out = mixup(x, ("audio", "video", "text"), rate=1.0, g=torch.Generator().manual_seed(0))
    assert torch.equal(out["text"], x["text"]) and out["video"].dtype == torch.uint8
    assert torch.allclose(out["labels"].sum(1), torch.ones(8))  # a convex combination of one-hots
    assert _partners(x, out)
    assert torch.equal(mixup(x, ("audio", "video"), 0.0, torch.Generator())["audio"], x["audio"])


def test_mixup_never_pairs_an_example_with_one_missing_a_modality():
    x = _mix_batch()
    x["present"]["video"] = torch.tensor([True, False] * 4)
    out = mixup(x, ("audio", "video"), rate=1.0, g=torch.Generator().manual_seed(0))
    for i, k in _partners(x, out).items():
        assert bool(x["present"]["video"][i]) == bool(x["present"]["video"][k])


def test_drop_path_rises_over_the_blocks_and_is_off_in_eval():
    model = tiny_model(depth=3)
    model.set_drop_path(0.4)
    rates = [b.drop_path for b in model.encoders["audio"].trunk.blocks]
    assert rates == pytest.approx([0.0, 0.2, 0.4])  # linear over depth, as timm's ViTs
    x = batch(model, 6)
    model.eval()
    with torch.no_grad():
        a, b = model.encode_audio(x["audio"]), model.encode_audio(x["audio"])
    assert torch.equal(a, b)
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        dropped = model.encode_audio(x["audio"])
    model.set_drop_path(0.0)
    with torch.no_grad():
        plain = model.encode_audio(x["audio"])
    assert not torch.allclose(dropped, plain)


def test_eq8_sum_is_the_class_count_times_the_mean_for_multi_label_only():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 10, generator=g), torch.randn(5, 10, generator=g)
    mean = soft_target_loss(student, teacher, "multi-label", 2.0)
    total = soft_target_loss(student, teacher, "multi-label", 2.0, over_classes="sum")
    assert total == pytest.approx(10 * mean)
    single = [soft_target_loss(student, teacher, "single-label", 1.0, over_classes=r)
              for r in ("sum", "mean")]
    assert single[0] == pytest.approx(single[1])


def test_single_label_loss_takes_soft_targets_and_equals_cross_entropy_on_one_hot():
    logits = torch.randn(4, 3)
    one_hot = F.one_hot(torch.tensor([0, 2, 1, 2]), 3).float()
    assert task_loss(logits, one_hot, "single-label") == pytest.approx(
        F.cross_entropy(logits, one_hot.argmax(1)).item())
    soft = 0.7 * one_hot + 0.3 * one_hot.roll(1, 0)
    expected = -(soft * F.log_softmax(logits, 1)).sum(1).mean()
    assert task_loss(logits, soft, "single-label") == pytest.approx(expected.item())


AV = ["audio", "video"]


def _pm(rows):
    keys = ["audio", "video", "audio+video"]
    return PMatrix.from_json({"modalities": AV, "scores": {mt: dict(zip(keys, r, strict=True))
                                                           for mt, r in rows.items()}})


def test_the_oracle_is_the_diagonal_and_the_gap_closed_is_measured_against_it():
    ft = _pm({"audio": [0.6, 0.2, 0.5], "video": [0.3, 0.5, 0.4], "audio+video": [0.5, 0.4, 0.7]})
    masd = _pm({"audio": [0.6, 0.4, 0.6], "video": [0.45, 0.5, 0.5], "audio+video": [0.55, 0.45, 0.7]})
    ceiling = oracle(ft)
    assert ceiling.scores[frozenset({"audio"})][frozenset({"video"})] == 0.5  # p(video; video)
    o = robustness_report(ceiling)
    # Every training set's row is (0.6, 0.5, 0.7): R is its min, P its mean.
    assert o["overall"]["R"] == pytest.approx(0.5) and o["overall"]["P"] == pytest.approx(0.6)
    report = robustness_report(masd, ft)
    assert report["oracle"]["overall"]["R"] == pytest.approx(0.5)
    f = robustness_report(ft)
    expected = (report["overall"]["R"] - f["overall"]["R"]) / (0.5 - f["overall"]["R"])
    assert report["gap_closed"]["overall"]["R"] == pytest.approx(expected)
    assert 0.0 < expected < 1.0
    # ft against itself closes nothing; no gap (baseline at the oracle) gives no share.
    assert robustness_report(ft, ft)["gap_closed"]["overall"]["R"] == pytest.approx(0.0)
    assert gap_closed(f, o, o)["overall"]["R"] is None
    # a gap under MIN_GAP (0.03, or 3 in percent) is not a measure: no share, whatever the method did
    strata = ("overall", "missing", "added", "transfer")
    near = {s: {"P": o[s]["P"] - 0.02, "R": o[s]["R"] - 0.02} for s in strata}
    assert gap_closed(f, near, o)["overall"]["R"] is None
    assert gap_closed(f, near, o, min_gap=0.01)["overall"]["R"] is not None
    rows = {"audio": [0.6, 0.2, 0.5], "video": [0.3, 0.5, 0.4], "audio+video": [0.5, 0.4, 0.7]}
    percent = _pm({mt: [100 * v for v in row] for mt, row in rows.items()})
    masd100 = _pm({"audio": [60, 40, 60], "video": [45, 50, 50], "audio+video": [55, 45, 70]})
    shares = robustness_report(masd100, percent)["gap_closed"]["overall"]["R"]
    assert shares == pytest.approx(expected)  # the same share on a percent scale
    # a gap of 1 point on a percent scale is under 3 points: no share (as a fraction 1 would pass 0.03)
    close100 = _pm({"audio": [60, 59, 60], "video": [59, 60, 60], "audio+video": [60, 59, 60]})
    assert score_unit(close100) == 100.0 and score_unit(ft) == 1.0
    report100 = robustness_report(masd100, close100)
    gap = report100["oracle"]["overall"]["R"] - robustness_report(close100)["overall"]["R"]
    assert gap == pytest.approx(1.0)
    assert report100["gap_closed"]["overall"]["R"] is None


def test_no_oracle_without_every_training_set():
    partial = PMatrix.from_json({"modalities": AV, "scores": {"audio": {"audio": 0.5, "video": 0.2,
                                                                       "audio+video": 0.4}}})
    assert oracle(partial) is None and "oracle" not in robustness_report(partial)
