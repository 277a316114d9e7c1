"""Stage 1: pretraining on the unlabeled split: contrastive (pairwise InfoNCE, VATT style; the
default) or masked autoencoding (``objective="mae"``, see ``mae.py``)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from mmrt.errors import UserError
from mmrt.methods import OBJECTIVES
from mmrt.preprocess import Preprocessing
from mmrt.split_files import read_split
from mmrt.text import TextTokenizer
from mmrt.training.data.data import inspect_data
from mmrt.training.data.overlap import check_pool
from mmrt.training.data.seen import read_record
from mmrt.training.data.splits import Split
from mmrt.training.data.tokenizer import train_tokenizer
from mmrt.training.model.checkpoint import TOKENIZER, write_model
from mmrt.training.model.config import ModelConfig, load_preset
from mmrt.training.model.mae import MaskedAutoencoding
from mmrt.training.model.model import MultimodalModel
from mmrt.training.stages.alignment import alignment
from mmrt.training.stages.distributed import setup
from mmrt.training.stages.loop import epoch_batches, fit, global_batch
from mmrt.training.stages.objectives import Contrastive
from mmrt.training.stages.rundir import STATE, prepare_out
from mmrt.training.stages.speed import Speed

log = logging.getLogger(__name__)

ALIGNMENT_EXAMPLES = 512  # clips each alignment check scores (seen and held out)


@dataclass
class PretrainOptions:
    data: Path
    out: Path
    preset: str = "small"
    modalities: tuple[str, ...] | None = None  # default: every modality the pretrain split has
    objective: str = "contrastive"  # or "mae"
    seed: int = 0
    epochs: int | None = None  # None: the preset's recipe
    lr: float | None = None
    batch_size: int | None = None
    resume: bool = False
    checkpoint_every: int = 50  # optimizer steps between saves of the resumable state
    overwrite: bool = False
    device: str | None = None
    progress: bool = True
    speed: Speed = field(default_factory=Speed)  # how the steps run (the same arithmetic)


def pretrain(opts: PretrainOptions) -> Path:
    if opts.objective not in OBJECTIVES:
        raise UserError(f"--objective {opts.objective!r}: expected one of {list(OBJECTIVES)}")
    mae = opts.objective == "mae"
    ctx = setup(opts.device)
    preset = load_preset(opts.preset)
    info = inspect_data(opts.data)
    modalities = info.modalities if opts.modalities is None else opts.modalities
    absent = [m for m in modalities if m not in info.modalities]
    if absent:
        raise UserError(f"{opts.data}/pretrain.jsonl: no example has {absent[0]!r}")
    if len(modalities) < 2 and not mae:
        raise UserError(f"contrastive pretraining needs two modalities or more, got {list(modalities)}")
    check_pool(info.root, "pretrain")
    read = read_record(info.root, "pretrain")
    stage_name = "pretrain_mae" if mae else "pretrain"
    schedule = preset.recipe[stage_name].override(opts.epochs, opts.lr, opts.batch_size)
    arch = preset.mae.encoder_arch(preset.arch) if mae else preset.arch
    out = prepare_out(opts.out, opts.resume, opts.overwrite) if ctx.main else Path(opts.out)
    ctx.barrier()

    prep = preset.arch.preprocessing
    tokenizer, vocab = None, 0
    if "text" in modalities:
        if ctx.main and not (out / TOKENIZER).is_file():
            texts = [ex.inputs.get("text") for ex in read_split(info.root, "pretrain", labeled=False)]
            train_tokenizer(texts, out / TOKENIZER, preset.arch.tokenizer_vocab)
        ctx.barrier()
        tokenizer = TextTokenizer(out / TOKENIZER, prep.max_tokens)
        vocab = tokenizer.vocab_size

    torch.manual_seed(opts.seed)
    config = ModelConfig(preset=preset.name, arch=arch, modalities=modalities, text_vocab=vocab,
                         task=info.task)
    model = MultimodalModel(config).to(ctx.device)
    split = Split(info.root, "pretrain", modalities, prep, tokenizer, labeled=False,
                  progress=opts.progress and ctx.main, audio_frontend=model.audio_frontend())
    batch_size = global_batch(schedule.batch_size, len(split), ctx)
    batches, steps = epoch_batches(split, torch.arange(len(split)), batch_size, opts.seed, ctx)
    log.info("pretrain (%s): %d examples, %s, %d steps, %d an epoch (batch %d) on %s x%d", opts.objective,
             len(split), "+".join(modalities), schedule.total_steps(steps), steps, batch_size,
             ctx.device.type, ctx.world)
    if mae:
        objective = MaskedAutoencoding(model, preset.mae).to(ctx.device)
        params = [p for n, p in objective.named_parameters() if n != "model.logit_scale"]
    else:
        objective, params = Contrastive(model), list(model.parameters())
    started = time.monotonic()
    result = fit(objective, params, batches, steps, schedule, ctx,
                 opts.seed, stage_name, state_file=out / STATE, resume=opts.resume,
                 checkpoint_every=opts.checkpoint_every, progress=opts.progress, speed=opts.speed)

    if ctx.main:
        checks = (alignment_checks(model, split, info.root, prep, tokenizer, batch_size, ctx.device)
                  if len(modalities) > 1 else {})
        stage = {"stage": "pretrain", "objective": opts.objective, **read, "seed": opts.seed,
                 "schedule": asdict(schedule), **result,
                 "seconds": round(time.monotonic() - started, 1), "alignment": checks,
                 **({"mae": asdict(preset.mae)} if mae else {})}
        model.config = replace(config, history=(stage,))
        write_model(out, model.cpu(), None)
        (out / STATE).unlink(missing_ok=True)
        log.info("pretrain: done, final loss %.4f; model in %s", result["final_loss"], out)
    ctx.barrier()
    return out


def alignment_checks(model: MultimodalModel, split: Split, root: Path, prep: Preprocessing,
                     tokenizer: TextTokenizer | None, batch_size: int, device: torch.device) -> dict:
    """How well paired modalities find each other, on pretraining clips and on as many clips
    pretraining never saw (logged and in the model card: memorising shows as a gap between the two)."""
    checks = {"pretrain": alignment(model, [(split, torch.arange(min(len(split), ALIGNMENT_EXAMPLES)))],
                                    batch_size, device)}
    held = held_out_parts(split, root, prep, tokenizer, model, ALIGNMENT_EXAMPLES)
    if sum(len(i) for _, i in held) >= batch_size:
        checks["held_out"] = alignment(model, held, batch_size, device)
    for name, check in checks.items():
        log.info("pretrain: alignment on %d %s examples (chance loss %.2f, retrieval %.3f): %s",
                 check["examples"], name, check["chance"]["loss"], check["chance"]["retrieval"],
                 ", ".join(f"{p} loss {v['loss']:.2f} retrieval {v['retrieval']:.3f}"
                           for p, v in check["pairs"].items()))
    return checks


def held_out_parts(split: Split, root: Path, prep: Preprocessing, tokenizer: TextTokenizer | None,
                   model: MultimodalModel, limit: int) -> list[tuple[Split, torch.Tensor]]:
    """Up to ``limit`` clips pretraining never saw: unseen.jsonl's (the distillation pool of clips
    pretraining never saw), then the train split's inputs (labels unused); an id that is also in
    pretrain.jsonl is left out. distill.jsonl is not used: the bundled data draws it from pretrain."""
    pretrain_ids = {ex.id for ex in split.dataset.examples}
    parts = []
    for name in ("unseen", "train"):
        if limit <= 0 or not (root / f"{name}.jsonl").is_file():
            continue
        held = Split(root, name, split.modalities, prep, tokenizer, labeled=False, progress=False,
                     audio_frontend=model.audio_frontend())
        fresh = [i for i, ex in enumerate(held.dataset.examples) if ex.id not in pretrain_ids][:limit]
        if fresh:
            parts.append((held, torch.tensor(fresh)))
            limit -= len(fresh)
    return parts
