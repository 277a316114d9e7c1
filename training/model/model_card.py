"""MODEL.md: a model directory's card, rendered from its config.json (what it is, how each stage
made it, and how well pretraining aligned the modalities on clips it trained on and on clips it
never saw). Every model directory gets one; config.json stays the record a program reads."""

from __future__ import annotations

from mmrt.training.model.config import ModelConfig

CARD = "MODEL.md"
_STAGE_FIELDS = ("objective", "method", "train_modalities", "data", "seed", "examples", "steps",
                 "final_loss", "alpha", "same_as")


def render_card(config: ModelConfig) -> str:
    lines = [f"# mmrt model: {'+'.join(config.modalities)}, preset `{config.preset}`", "",
             f"- task: {config.task}; classes: {len(config.classes) or 'none (not fine-tuned)'}",
             f"- embedding size {config.arch.embed_dim}; encoders of width {config.arch.width}, "
             f"depth {config.arch.depth}", "", "## How it was made", ""]
    for n, stage in enumerate(config.history, start=1):
        facts = ", ".join(f"{k} {_fmt(stage[k])}" for k in _STAGE_FIELDS if stage.get(k) not in (None, ""))
        schedule = stage.get("schedule")
        if schedule:
            budget = (f"{schedule['epochs']} epochs" if schedule.get("epochs")
                      else f"{schedule['steps']} steps")
            facts += f"; {budget} of batch {schedule['batch_size']} at lr {schedule['lr']:g}"
        if stage.get("final_metrics"):  # the loss's logged parts (MAE: each modality's)
            facts += "; last epoch's means: " + ", ".join(
                f"{k} {v:.3f}" for k, v in sorted(stage["final_metrics"].items()))
        lines.append(f"{n}. **{stage['stage']}**: {facts}")
        if stage.get("alignment"):
            lines += ["", *alignment_table(stage["alignment"]), ""]
    return "\n".join(lines).rstrip() + "\n"


def alignment_table(checks: dict) -> list[str]:
    """Retrieval (the share of examples whose own partner scores highest in a batch) and InfoNCE
    loss per pair of modalities, on pretraining clips and on held-out ones, beside chance."""
    names = [n for n in ("pretrain", "held_out") if n in checks]
    label = {"pretrain": "pretraining clips", "held_out": "held-out clips"}
    chance = checks[names[0]]["chance"]
    head = " | ".join(f"{label[n]}{_count(checks[n])}: retrieval / loss" for n in names)
    rows = [f"Alignment (chance: retrieval {chance['retrieval']:.3f}, loss {chance['loss']:.2f}; a "
            "held-out figure far below the pretraining one means the encoders memorised clips):", "",
            f"| pair | {head} |", "|---|" + "---|" * len(names)]
    for pair in checks[names[0]]["pairs"]:
        cells = " | ".join(_cell(checks[n]["pairs"].get(pair)) for n in names)
        rows.append(f"| {pair} | {cells} |")
    return rows


def _count(check: dict) -> str:
    return f" ({check['examples']})" if "examples" in check else ""


def _cell(v: dict | None) -> str:
    return "–" if v is None else f"{v['retrieval']:.3f} / {v['loss']:.2f}"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "+".join(map(str, v))
    return str(v)
