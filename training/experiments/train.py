"""`mmrt train`: one downstream method on one training-modality set, from a pretrained model.

Every method starts with the linear probe. Intermediate models are kept under
``OUT/stages/`` until the run ends, so ``--resume`` skips finished stages and continues
the unfinished one from its last saved step.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from mmrt.errors import UserError
from mmrt.methods import DISTILLING, METHODS, get_method
from mmrt.modalities import parse_subset, subset_key
from mmrt.training.data.data import inspect_data, require_modalities
from mmrt.training.data.overlap import check_pool
from mmrt.training.data.seen import check_unseen, trained_on
from mmrt.training.data.splits import distill_pool
from mmrt.training.model.checkpoint import (
    CONFIG,
    WEIGHTS,
    load_model,
    save_model,
    tokenizer_path,
    write_model,
)
from mmrt.training.model.config import load_preset
from mmrt.training.model.model import MultimodalModel
from mmrt.training.stages.distributed import setup
from mmrt.training.stages.downstream import StageRun, tuning_stage
from mmrt.training.stages.evaluate import embed_split, subset_scores
from mmrt.training.stages.learners import open_downstream
from mmrt.training.stages.rundir import prepare_out
from mmrt.training.stages.speed import Speed
from mmrt.training.stages.wiseft import wise

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    data: Path
    pretrained: Path
    method: str
    modalities: str  # M_T as a subset key, e.g. "audio+video"
    out: Path
    alphas: tuple[float, ...] = (0.75,)
    downstream: dict = field(default_factory=dict)  # overrides of the preset's downstream section
    epochs: int | None = None
    steps: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    holdout: float = 0.0  # share of train kept out as a validation split (scores logged)
    seed: int = 0
    resume: bool = False
    checkpoint_every: int = 50  # optimizer steps between saves of the resumable state
    overwrite: bool = False
    keep_stages: bool = False
    device: str | None = None
    progress: bool = True
    speed: Speed = field(default_factory=Speed)  # how the steps run (the same arithmetic)


def check_options(opts: TrainOptions, model_modalities: tuple[str, ...]) -> tuple[str, ...]:
    """Validate everything that needs no training; returns M_T in the model's order."""
    get_method(opts.method)
    try:
        use = parse_subset(opts.modalities, model_modalities)
    except UserError as e:
        raise UserError(f"--modalities: {e} (the pretrained model's encoders)") from None
    if not 0.0 <= opts.holdout < 1.0:
        raise UserError(f"--holdout {opts.holdout}: expected a fraction below 1")
    for a in opts.alphas:
        if not 0.0 <= a <= 1.0:
            raise UserError(f"--alpha {a}: expected a number from 0 to 1")
    return tuple(m for m in model_modalities if m in use)


def _stage(out: Path, name: str, run: StageRun, train_fn, read: dict) -> MultimodalModel:
    """Run one stage, or load it when a resumed run already finished it; its record says what it
    read (``read``)."""
    folder = out / "stages" / name
    if run.resume and (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file():
        log.info("%s: already done, loaded from %s", name, folder)
        return load_model(folder).to(run.ctx.device)
    (out / "stages").mkdir(exist_ok=True)
    model, record = train_fn(replace(run, state_file=out / "stages" / f"{name}.resume.safetensors"))
    model.config = replace(model.config, history=(*model.config.history, {**record, **read}))
    if run.ctx.main:
        save_model(folder, model.cpu(), None)
        (out / "stages" / f"{name}.resume.safetensors").unlink(missing_ok=True)
    run.ctx.barrier()
    return model.to(run.ctx.device)


def train(opts: TrainOptions) -> Path:
    ctx = setup(opts.device)
    pretrained = load_model(opts.pretrained)
    use = check_options(opts, pretrained.modalities)
    info = inspect_data(opts.data, split="train")
    require_modalities(info, "train", use, f"training on {opts.modalities}")
    preset = load_preset(pretrained.config.preset)
    tune_schedule, downstream = preset.downstream_settings(opts.epochs, opts.lr, opts.batch_size, opts.steps,
                                                           opts.downstream)
    tok_file = tokenizer_path(opts.pretrained)
    if "text" in pretrained.modalities and tok_file is None:
        raise UserError(f"{opts.pretrained}: the model reads text but has no tokenizer.model")
    check_unseen(info.root, opts.pretrained, pretrained.config.history, opts.holdout, [opts.seed])
    read = trained_on(info.root, opts.holdout, opts.seed)
    stage = tuning_stage(opts.method, use, pretrained.modalities)
    if stage in DISTILLING:
        student = [m for m in pretrained.modalities if m not in use]
        pool = distill_pool(info.root, downstream.distill_source, downstream.distill_examples, opts.holdout)
        check_pool(info.root, pool, scored_on_train=opts.holdout > 0)
        require_modalities(info, pool, student, "self-distillation to the other modalities")
    out = prepare_out(opts.out, opts.resume, opts.overwrite) if ctx.main else Path(opts.out)
    ctx.barrier()

    data = open_downstream(pretrained, tok_file, info, tune_schedule, downstream, opts.holdout, opts.seed,
                           stage in DISTILLING, opts.progress and ctx.main)
    learners, train_split, val = data.learners, data.train, data.held_out
    run = StageRun(ctx, opts.seed, resume=opts.resume, progress=opts.progress,
                   checkpoint_every=opts.checkpoint_every, speed=opts.speed)
    torch.manual_seed(opts.seed)
    lp = _stage(out, "probe", run, lambda r: learners.probe(pretrained, use, r), read)
    tuned = lp if stage is None else _stage(out, stage, run, lambda r: learners.tune(stage, lp, use, r), read)

    if ctx.main:
        wise_ft = METHODS[opts.method].averages is not None
        for alpha in opts.alphas if wise_ft else (None,):
            model = wise(tuned.cpu(), lp.cpu(), alpha) if wise_ft else tuned.cpu()
            record = {"stage": "result", "method": opts.method, "alpha": alpha,
                      **read,
                      "train_modalities": subset_key(use, model.modalities)}
            if len(val):
                features = embed_split(model, train_split, model.modalities, indices=torch.from_numpy(val))
                record["validation"] = subset_scores(model, features)
                log.info("validation on %d held-out train examples%s: %s", len(val),
                         "" if alpha is None else f", alpha {alpha:g}",
                         ", ".join(f"{k} {v:.3f}" for k, v in record["validation"].items()))
            model.config = replace(model.config, history=(*model.config.history, record))
            if wise_ft and len(opts.alphas) > 1:  # a sweep: one model directory per alpha
                save_model(out / f"alpha-{alpha:g}", model, tok_file)
            else:
                write_model(out, model, tok_file)
        if not opts.keep_stages:
            shutil.rmtree(out / "stages", ignore_errors=True)
        log.info("train: %s on %s done; model in %s", opts.method, "+".join(use), out)
    ctx.barrier()
    return out

