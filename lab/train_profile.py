"""Where a training step's time goes, against what the arithmetic allows: the preset's contrastive
pretraining step and its MASD step at their batch sizes, stage by stage, with each stage's FLOPs
and the share of this machine's measured matmul peak it reaches. Quoted in
docs/results/training-throughput.md.

    python -m lab.train_profile --data runs/data-small [--preset small] [--steps 12]

The steps run as ``training.loop.fit`` runs them (same loss modules, optimizer and order of
work), with timers around each stage: taking the batch, the loss module's forward (each
encoder's share timed by forward hooks), the backward pass (each encoder's share measured again
alone: its forward and backward on the same batch), gradient clipping, the optimizer, and the
rest (zeroing gradients, reading the loss, the progress bar). FLOPs are counted by
``torch.utils.flop_counter`` (matmuls and convolutions: the work that could reach the peak);
the peak is the best of large fp32 matmuls timed here, on the same threads. Medians over
``--steps`` after ``--warmup``.

Quoted in docs/results/training-throughput.md."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from mmrt.split_files import read_split
from mmrt.text import TextTokenizer
from mmrt.training.data.data import DataInfo, inspect_data
from mmrt.training.data.splits import Split, open_distill
from mmrt.training.data.tokenizer import train_tokenizer
from mmrt.training.model.config import ModelConfig, Preset, Schedule, load_preset
from mmrt.training.model.model import MultimodalModel
from mmrt.training.stages.distributed import Context, setup
from mmrt.training.stages.loop import epoch_batches
from mmrt.training.stages.objectives import Contrastive, SelfDistillation
from mmrt.training.stages.speed import Speed, make_optimizer, prepare


def matmul_peak(size: int = 1024, repeats: int = 20) -> float:
    """FLOP/s of the best fp32 [size x size] @ [size x size] here (torch's threads as set)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size ** 3 / best


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Clock:
    """Seconds per named stage, one list entry per step."""

    def __init__(self):
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.open: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.open[name] += time.perf_counter() - start

    def add(self, name: str, seconds: float) -> None:
        self.open[name] += seconds

    def end_step(self) -> None:
        for name, s in self.open.items():
            self.seconds[name].append(s)
        self.open = defaultdict(float)

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(v) for name, v in self.seconds.items()}


def time_encoders(model: MultimodalModel, clock: Clock) -> list:
    """Forward hooks that add each encoder's forward time to ``clock`` ("forward: audio" ...; the
    teacher's passes, without gradient, apart)."""
    handles, starts = [], {}
    for m, encoder in model.encoders.items():
        def pre(module, args, m=m):
            starts[m] = time.perf_counter()

        def post(module, args, out, m=m):
            kind = "forward" if torch.is_grad_enabled() else "forward, no grad (teacher)"
            clock.add(f"{kind}: {m} encoder", time.perf_counter() - starts[m])

        handles += [encoder.register_forward_pre_hook(pre), encoder.register_forward_hook(post)]
        if m == "audio":  # the log-mel is precomputed: training calls embed_mel, not forward
            handles += [_time_method(encoder, "embed_mel", clock, m)]
    return handles


class _Restore:
    def __init__(self, obj, name, original):
        self.obj, self.name, self.original = obj, name, original

    def remove(self) -> None:
        setattr(self.obj, self.name, self.original)


def _time_method(obj, name: str, clock: Clock, m: str) -> _Restore:
    original = getattr(obj, name)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        kind = "forward" if torch.is_grad_enabled() else "forward, no grad (teacher)"
        clock.add(f"{kind}: {m} encoder", time.perf_counter() - start)
        return out

    setattr(obj, name, timed)
    return _Restore(obj, name, original)


def profile_steps(objective: nn.Module, model: MultimodalModel, params: list, batches: Iterator,
                  schedule: Schedule, steps: int, warmup: int, seed: int, speed: Speed) -> Clock:
    """``steps`` + ``warmup`` optimizer steps as ``fit`` takes them, each stage timed."""
    clock = Clock()
    optimizer = make_optimizer(params, schedule, speed)
    bar = tqdm(total=steps + warmup, desc="profile", leave=False, disable=True)
    handles = time_encoders(model, clock)
    objective.train()
    for step in range(steps + warmup):
        with clock.stage("take the batch"):
            batch = next(batches)
        g = torch.Generator().manual_seed(seed + step)
        with clock.stage("forward (loss module, all)"):
            loss, metrics = objective(batch, g)
        with clock.stage("zero_grad"):
            optimizer.zero_grad(set_to_none=True)
        with clock.stage("backward"):
            loss.backward()
        if schedule.grad_clip:
            with clock.stage("clip_grad_norm"):
                nn.utils.clip_grad_norm_(params, schedule.grad_clip)
        with clock.stage("optimizer step"):
            optimizer.step()
        with clock.stage("loss.item, progress bar"):
            value = loss.item()
            bar.update()
            bar.set_postfix(loss=f"{value:.4f}", **{k: f"{v:.3g}" for k, v in metrics.items()})
        if step >= warmup:
            clock.end_step()
        else:
            clock.open = defaultdict(float)
    for h in handles:
        h.remove()
    return clock


def encoder_costs(model: MultimodalModel, batch: dict, repeats: int) -> dict:
    """Each encoder alone on ``batch``: forward and backward seconds (medians) and FLOPs."""
    out = {}
    model.train()
    for m in model.modalities:
        def forward(m=m):
            return model.encode_input(batch, m)

        fwd, bwd = [], []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            z = forward()
            middle = time.perf_counter()
            z.sum().backward()
            end = time.perf_counter()
            fwd.append(middle - start)
            bwd.append(end - middle)
            model.zero_grad(set_to_none=True)
        with FlopCounterMode(display=False) as counter:
            z = forward()
        forward_flops = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            z.sum().backward()
        model.zero_grad(set_to_none=True)
        out[m] = {"forward_s": statistics.median(fwd[1:]), "backward_s": statistics.median(bwd[1:]),
                  "forward_flops": forward_flops, "backward_flops": counter.get_total_flops()}
    return out


def step_flops(objective: nn.Module, batch, seed: int) -> tuple[int, int]:
    """FLOPs of one whole step's forward and backward."""
    g = torch.Generator().manual_seed(seed)
    with FlopCounterMode(display=False) as counter:
        loss, _ = objective(batch, g)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        loss.backward()
    objective.zero_grad(set_to_none=True)
    return forward, counter.get_total_flops()


def cycle(make: Callable[[int], Iterator]) -> Iterator:
    epoch = 0
    while True:
        yield from make(epoch)
        epoch += 1


def report(name: str, clock: Clock, encoders: dict, flops: tuple[int, int], peak: float) -> dict:
    medians = clock.medians()
    inside = [k for k in medians if k.startswith(("forward: ", "forward, no grad"))]  # within forward
    encoder_forward = sum(medians[k] for k in inside)
    rows = []
    for stage, seconds in medians.items():
        if stage == "forward (loss module, all)":
            rows.append({"stage": "forward: the rest (augment, fusion, head, loss, slicing)",
                         "ms": 1e3 * (seconds - encoder_forward)})
            continue
        rows.append({"stage": stage, "ms": 1e3 * seconds})
    total_s = sum(v for k, v in medians.items() if k not in inside)
    for m, c in encoders.items():
        rows.append({"stage": f"(alone) {m} encoder: forward / backward", "ms": 1e3 * c["forward_s"],
                     "backward_ms": 1e3 * c["backward_s"],
                     "bound_share": (c["forward_flops"] + c["backward_flops"]) /
                     ((c["forward_s"] + c["backward_s"]) * peak)})
    forward, backward = flops
    return {"step": name, "step_ms": 1e3 * total_s, "rows": rows, "forward_flops": forward,
            "backward_flops": backward, "bound_share": (forward + backward) / (total_s * peak),
            "peak_gflops": peak / 1e9, "steps": len(next(iter(clock.seconds.values())))}


def print_report(r: dict) -> None:
    print(f"\n{r['step']}: {r['step_ms']:.1f} ms a step (median of {r['steps']}), "
          f"{(r['forward_flops'] + r['backward_flops']) / 1e9:.2f} GFLOP (forward "
          f"{r['forward_flops'] / 1e9:.2f}, backward {r['backward_flops'] / 1e9:.2f}): "
          f"{r['bound_share']:.0%} of the {r['peak_gflops']:.0f} GFLOP/s matmul peak")
    for row in r["rows"]:
        extra = ""
        if "backward_ms" in row:
            extra = f" / {row['backward_ms']:7.1f} ms   ({row['bound_share']:.0%} of peak)"
        print(f"  {row['stage']:<58} {row['ms']:7.1f} ms{extra}")


@dataclass
class Lab:
    """The preset, data and model config a lab run trains on."""

    preset: Preset
    info: DataInfo
    tokenizer: TextTokenizer
    config: ModelConfig
    ctx: Context
    splits: dict = field(default_factory=dict)  # loaded once: the log-mel front-end has no weights

    def split(self, name: str, labeled: bool = True) -> tuple[Split, torch.Tensor]:
        """(split, the indices to train on): "pretrain", "train", or "distill" (MASD's pool as the
        preset's recipe draws it)."""
        if name not in self.splits:
            prep, recipe, mods = self.preset.arch.preprocessing, self.preset.downstream, self.info.modalities
            frontend = MultimodalModel(self.config).audio_frontend()
            if name == "distill":
                self.splits[name] = open_distill(self.info.root, mods, prep, self.tokenizer, 0, False,
                                                 frontend, recipe.distill_source, recipe.distill_examples)
            else:
                split = Split(self.info.root, name, mods, prep, self.tokenizer, labeled=labeled,
                              audio_frontend=frontend, progress=False)
                self.splits[name] = (split, torch.arange(len(split)))
        return self.splits[name]

    def model(self, speed: Speed) -> MultimodalModel:
        """A fresh model on the lab's device (the same initial weights every time), prepared as
        ``speed`` says."""
        torch.manual_seed(0)
        return prepare(MultimodalModel(self.config).to(self.ctx.device), speed)

    def pretraining(self, model: MultimodalModel) -> tuple[nn.Module, Iterator, Schedule]:
        """(Contrastive loss module, endless batches, schedule) of the preset's pretraining."""
        schedule = self.preset.recipe["pretrain"]
        make, _ = epoch_batches(*self.split("pretrain", labeled=False), schedule.batch_size, 0, self.ctx)
        return Contrastive(model), cycle(make), schedule

    def masd(self, model: MultimodalModel, teacher: tuple[str, ...]) -> tuple[nn.Module, Iterator, Schedule]:
        """(MASD loss module, endless (labelled, unlabelled) batches, schedule) of the preset's
        fine-tuning recipe, ``teacher`` the training modalities."""
        schedule, recipe = self.preset.recipe["finetune"], self.preset.downstream
        labeled, _ = epoch_batches(*self.split("train"), schedule.batch_size, 0, self.ctx)
        pool, pool_indices = self.split("distill")
        unlabeled, _ = epoch_batches(pool, torch.as_tensor(pool_indices), schedule.batch_size, 1, self.ctx)
        paired = zip(cycle(labeled), cycle(unlabeled), strict=False)
        return SelfDistillation(model, teacher, recipe), paired, schedule


def open_lab(data: Path, preset_name: str, device: str = "cpu") -> Lab:
    """The lab's set-up on the dataset at ``data`` (its tokenizer trained as pretraining trains it)."""
    ctx = setup(device)
    preset = load_preset(preset_name)
    info = inspect_data(data)
    prep = preset.arch.preprocessing
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer_file = Path(tmp) / "tokenizer.model"
        texts = [ex.inputs.get("text") for ex in read_split(info.root, "pretrain", labeled=False)]
        train_tokenizer(texts, tokenizer_file, preset.arch.tokenizer_vocab)
        tokenizer = TextTokenizer(tokenizer_file, prep.max_tokens)
    config = ModelConfig(preset=preset.name, arch=preset.arch, modalities=info.modalities,
                         text_vocab=tokenizer.vocab_size, task=info.task, classes=info.classes)
    return Lab(preset, info, tokenizer, config, ctx)


def profile(lab: Lab, speed: Speed, teacher: tuple[str, ...], steps: int, warmup: int,
            peak: float) -> list[dict]:
    """The pretraining and the MASD step, profiled with ``speed``."""
    results = []
    model = lab.model(speed)
    objective, batches, schedule = lab.pretraining(model)
    clock = profile_steps(objective, model, list(model.parameters()), batches, schedule, steps, warmup, 0,
                          speed)
    batch = next(batches)
    results.append(report(f"pretraining (contrastive, batch {schedule.batch_size}), speed-ups: "
                          f"{speed.describe()}", clock, encoder_costs(model, batch, 5),
                          step_flops(objective, batch, 0), peak))
    model = lab.model(speed)
    objective, pairs, schedule = lab.masd(model, teacher)
    clock = profile_steps(objective, model, list(model.parameters()), pairs, schedule, steps, warmup, 0,
                          speed)
    pair = next(pairs)
    results.append(report(f"MASD (teacher {'+'.join(teacher)}, batch {schedule.batch_size} + "
                          f"{schedule.batch_size}), speed-ups: {speed.describe()}", clock,
                          encoder_costs(model, pair[1], 5), step_flops(objective, pair, 0), peak))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--teacher", default="audio", help="MASD's training modalities (default audio)")
    p.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = p.parse_args()
    lab = open_lab(args.data, args.preset)
    peak = matmul_peak()
    teacher = tuple(args.teacher.split("+"))
    results = [*profile(lab, Speed.off(), teacher, args.steps, args.warmup, peak),
               *profile(lab, Speed(), teacher, args.steps, args.warmup, peak)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"matmul peak {peak / 1e9:.1f} GFLOP/s")
    for r in results:
        print_report(r)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
