"""Stage 1: contrastive pretraining on the unlabeled split (pairwise InfoNCE, VATT style)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from mmrt.errors import UserError
from mmrt.manifest import read_manifest
from mmrt.text import TextTokenizer
from mmrt.training.alignment import alignment
from mmrt.training.checkpoint import TOKENIZER, write_model
from mmrt.training.config import ModelConfig, load_preset
from mmrt.training.data import inspect_data
from mmrt.training.distributed import setup
from mmrt.training.loop import epoch_batches, fit, global_batch
from mmrt.training.model import MultimodalModel
from mmrt.training.objectives import Contrastive
from mmrt.training.rundir import STATE, prepare_out
from mmrt.training.splits import Split
from mmrt.training.tokenizer import train_tokenizer

log = logging.getLogger(__name__)


@dataclass
class PretrainOptions:
    data: Path
    out: Path
    preset: str = "small"
    modalities: tuple[str, ...] | None = None  # default: every modality the pretrain split has
    seed: int = 0
    epochs: int | None = None  # None: the preset's recipe
    lr: float | None = None
    batch_size: int | None = None
    resume: bool = False
    checkpoint_every: int = 50  # optimizer steps between saves of the resumable state
    overwrite: bool = False
    device: str | None = None
    progress: bool = True


def pretrain(opts: PretrainOptions) -> Path:
    ctx = setup(opts.device)
    preset = load_preset(opts.preset)
    info = inspect_data(opts.data)
    modalities = info.modalities if opts.modalities is None else opts.modalities
    absent = [m for m in modalities if m not in info.modalities]
    if absent:
        raise UserError(f"{opts.data}/pretrain.jsonl: no example has {absent[0]!r}")
    if len(modalities) < 2:
        raise UserError(f"contrastive pretraining needs two modalities or more, got {list(modalities)}")
    schedule = preset.recipe["pretrain"].override(opts.epochs, opts.lr, opts.batch_size)
    out = prepare_out(opts.out, opts.resume, opts.overwrite) if ctx.main else Path(opts.out)
    ctx.barrier()

    prep = preset.arch.preprocessing
    tokenizer, vocab = None, 0
    if "text" in modalities:
        if ctx.main and not (out / TOKENIZER).is_file():
            texts = [ex.inputs.get("text") for ex in read_manifest(info.root, "pretrain", labeled=False)]
            train_tokenizer(texts, out / TOKENIZER, preset.arch.tokenizer_vocab)
        ctx.barrier()
        tokenizer = TextTokenizer(out / TOKENIZER, prep.max_tokens)
        vocab = tokenizer.vocab_size

    torch.manual_seed(opts.seed)
    config = ModelConfig(preset=preset.name, arch=preset.arch, modalities=modalities, text_vocab=vocab,
                         task=info.task)
    model = MultimodalModel(config).to(ctx.device)
    split = Split(info.root, "pretrain", modalities, prep, tokenizer, labeled=False,
                  progress=opts.progress and ctx.main, audio_frontend=model.audio_frontend())
    batch_size = global_batch(schedule.batch_size, len(split), ctx)
    batches, steps = epoch_batches(split, torch.arange(len(split)), batch_size, opts.seed, ctx)
    log.info("pretrain: %d examples, %s, %d epochs of %d steps (batch %d) on %s x%d",
             len(split), "+".join(modalities), schedule.epochs, steps, batch_size, ctx.device.type, ctx.world)
    result = fit(ctx.wrap(Contrastive(model)), list(model.parameters()), batches, steps, schedule, ctx,
                 opts.seed, "pretrain", state_file=out / STATE, resume=opts.resume,
                 checkpoint_every=opts.checkpoint_every,
                 progress=opts.progress)

    if ctx.main:
        seen = torch.arange(min(len(split), 512))
        checks = {"pretrain": alignment(model, split, seen, batch_size, ctx.device)}
        # The train split's inputs (labels unused) are clips pretraining never saw; distill.jsonl
        # is not: the bundled data draws it from pretrain, as DESIGN.md's default does.
        held = Split(info.root, "train", modalities, prep, tokenizer, labeled=False, progress=False,
                     audio_frontend=model.audio_frontend())
        pretrain_ids = {ex.id for ex in split.dataset.examples}
        unseen = [i for i, ex in enumerate(held.dataset.examples) if ex.id not in pretrain_ids]
        if len(unseen) >= batch_size:
            checks["held_out"] = alignment(model, held, torch.tensor(unseen), batch_size, ctx.device)
        for name, check in checks.items():
            log.info("pretrain: alignment on %s examples (chance loss %.2f, retrieval %.3f): %s", name,
                     check["chance"]["loss"], check["chance"]["retrieval"],
                     ", ".join(f"{p} loss {v['loss']:.2f} retrieval {v['retrieval']:.3f}"
                               for p, v in check["pairs"].items()))
        stage = {"stage": "pretrain", "objective": "contrastive", "data": str(info.root), "seed": opts.seed,
                 "schedule": asdict(schedule), **result, "alignment": checks}
        model.config = replace(config, history=(stage,))
        write_model(out, model.cpu(), None)
        (out / STATE).unlink(missing_ok=True)
        log.info("pretrain: done, final loss %.4f; model in %s", result["final_loss"], out)
    ctx.barrier()
    return out
