"""The one optimisation loop every stage shares: AdamW, warm-up + cosine per step, resumable.

A stage supplies a loss module (``forward(batch, generator) -> (loss, metrics)``) and a
function that yields an epoch's batches. Batch order and any per-step randomness are
derived from (seed, epoch, step), so a run resumed from its state file takes exactly the
steps the uninterrupted run would have taken.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mmrt.errors import UserError
from mmrt.training.data.splits import Split
from mmrt.training.model.checkpoint import load_state, save_state
from mmrt.training.model.config import Schedule
from mmrt.training.stages.distributed import Context
from mmrt.training.stages.speed import DEFAULT, Speed, make_optimizer, prepare, release

log = logging.getLogger(__name__)


Batches = Callable[[int], Iterator]  # epoch -> that epoch's batches on this rank
# Where no one sees a progress bar (--quiet, or output to a log file), an epoch's end is logged
# instead, at most this often: an unattended run of hours says where it is.
PROGRESS_EVERY_S = 60.0


def epoch_order(indices: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """A permutation of ``indices`` fixed by (seed, epoch): the same on every rank and on resume."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return indices[torch.randperm(len(indices), generator=g)]


def fit(loss_module: nn.Module, params: list[nn.Parameter], batches: Batches, steps_per_epoch: int,
        schedule: Schedule, ctx: Context, seed: int, desc: str, state_file: Path | None = None,
        resume: bool = False, checkpoint_every: int = 50, progress: bool = True,
        speed: Speed = DEFAULT, distributed: bool = True) -> dict:
    """Train ``params`` of ``loss_module`` for the schedule's steps (or epochs); returns a metrics dict.

    With ``state_file`` set, the weights and optimizer are saved there every
    ``checkpoint_every`` steps and at the end; ``resume`` continues from it. ``speed``: how
    the steps run (the same arithmetic, rounded differently; see ``speed.py``). Under torchrun the
    loss module is wrapped for DDP here, after ``speed``'s layout (DDP's gradient buckets take
    the parameters' layout when built), unless ``distributed`` is False (every process then fits
    the same parameters alone, as the probe does).
    """
    total = schedule.total_steps(steps_per_epoch)
    # What a resumable state holds: the MultimodalModel, or more where the loss has its own
    # weights (MAE's decoders).
    model = getattr(loss_module, "checkpointed", loss_module.model)
    prepare(model, speed)
    try:
        return _steps(ctx.wrap(loss_module) if distributed else loss_module, model, params, batches,
                      steps_per_epoch, total, schedule, ctx, seed, desc, state_file, resume,
                      checkpoint_every, progress, speed)
    finally:
        release(model)


def _steps(loss_module: nn.Module, model: nn.Module, params: list[nn.Parameter], batches: Batches,
           steps_per_epoch: int, total: int, schedule: Schedule, ctx: Context, seed: int, desc: str,
           state_file: Path | None, resume: bool, checkpoint_every: int, progress: bool,
           speed: Speed) -> dict:
    optimizer = make_optimizer(params, schedule, speed)
    step = 0
    if resume and state_file is not None and state_file.is_file():
        meta = load_state(state_file, model, optimizer)
        if meta.get("schedule") != asdict(schedule) or meta.get("total") != total:
            raise UserError(f"{state_file}: saved with other training settings; "
                            "start again without --resume")
        step = int(meta["step"])
        log.info("%s: resuming at step %d of %d", desc, step, total)

    def checkpoint() -> None:
        if state_file is not None and ctx.main:
            save_state(state_file, model, optimizer,
                       {"step": step, "total": total, "schedule": asdict(schedule), "stage": desc})

    started = time.monotonic()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=ctx.device.type == "cuda")
    bar = tqdm(total=total, initial=step, desc=desc, unit="step", disable=not (progress and ctx.main),
               dynamic_ncols=True, leave=False)
    lines = ctx.main and not (progress and sys.stderr.isatty())  # no bar a person sees
    last_line = started
    history: list[float] = []
    metric_history: dict[str, list[float]] = {}  # a loss's own parts (MAE: each modality's)
    skipped = 0
    first_step = step
    loss_module.train()
    while step < total:
        epoch, offset = divmod(step, steps_per_epoch)
        for i, batch in enumerate(batches(epoch)):
            if i < offset:
                continue  # resumed mid-epoch: these batches were already trained on
            if i >= steps_per_epoch:
                break
            for group in optimizer.param_groups:
                group["lr"] = schedule.lr_at(step, total)
            g = torch.Generator(device="cpu").manual_seed(seed * 1_000_003 + step)
            torch.manual_seed(seed * 1_000_003 + step)  # in-model randomness (drop path) too
            with autocast:
                loss, metrics = loss_module(batch, g)
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                if schedule.grad_clip:
                    nn.utils.clip_grad_norm_(params, schedule.grad_clip)
                optimizer.step()
                history.append(loss.item())
                for k, v in metrics.items():
                    metric_history.setdefault(k, []).append(float(v))
            else:
                skipped += 1  # a non-finite loss would poison AdamW's moments: skip the step
                if skipped > max(10, total // 10):
                    raise RuntimeError(f"{desc}: loss is not finite in {skipped} steps; stopping")
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{history[-1]:.4f}" if history else "nan",
                            **{k: f"{v:.3g}" for k, v in metrics.items()})
            if step % checkpoint_every == 0 or step == total:
                checkpoint()
            if lines and (step % steps_per_epoch == 0 or step == total) and \
                    time.monotonic() - last_line >= PROGRESS_EVERY_S:
                last_line = time.monotonic()
                rate = (last_line - started) / (step - first_step)
                _log_epoch(desc, step, total, steps_per_epoch, history, rate)
            if step == total:
                break
    bar.close()
    # The last epoch's means (the loss over every process; each logged metric as this process saw
    # it), over the steps this call took: a run resumed late in its last epoch averages fewer.
    tail = history[-steps_per_epoch:] or [float("nan")]
    final_metrics = {k: float(np.mean(v[-steps_per_epoch:])) for k, v in metric_history.items()}
    taken, seconds = step - first_step, time.monotonic() - started
    return {"steps": step, "final_loss": ctx.mean(sum(tail) / len(tail)), "skipped_steps": skipped,
            "final_metrics": final_metrics, "final_steps": min(len(history), steps_per_epoch),
            "resumed_at": first_step, "seconds_per_step": round(seconds / taken, 4) if taken else None}


def _log_epoch(desc: str, step: int, total: int, steps_per_epoch: int, history: list[float],
               seconds_per_step: float) -> None:
    epoch_loss = np.mean(history[-steps_per_epoch:]) if history else float("nan")
    log.info("%s: epoch %d of %d (step %d of %d), loss %.4f over the epoch, %.2f s a step, about %.0f min "
             "left", desc, -(-step // steps_per_epoch), -(-total // steps_per_epoch), step, total, epoch_loss,
             seconds_per_step, (total - step) * seconds_per_step / 60)


def to_device(batch, device: torch.device):
    """Move a (nested) batch of tensors to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def global_batch(batch_size: int, examples: int, ctx: Context) -> int:
    """The batch size a stage can use: at most the examples there are, a multiple of the processes."""
    size = min(batch_size, examples) // ctx.world * ctx.world
    if size < 2 * ctx.world:
        raise UserError(f"{examples} examples cannot make batches of two per process for {ctx.world} "
                        "process(es); use more data or fewer processes")
    return size


def epoch_batches(split: Split, indices: torch.Tensor, batch_size: int, seed: int,
                  ctx: Context) -> tuple[Batches, int]:
    """(epoch -> this process's batches, steps per epoch) over ``indices`` of ``split``.

    Each global batch of ``batch_size`` is cut into equal per-process shards; the ragged
    end of an epoch is dropped (BatchNorm wants full batches).
    """
    steps = len(indices) // batch_size
    local = batch_size // ctx.world

    def batches(epoch: int) -> Iterator:
        order = epoch_order(indices, seed, epoch)
        mine = torch.cat([ctx.shard(order[i * batch_size:(i + 1) * batch_size]) for i in range(steps)])
        for batch in split.batches(mine, local):
            yield to_device(batch, ctx.device)

    return batches, steps
