"""Same-run A/B of the training speed levers: the preset's pretraining step and its MASD step,
each lever on and off, in alternating rounds; the median time a step, its spread over rounds,
and each variant's speed against every lever off. Quoted in docs/results/training-throughput.md.

    python -m lab.train_speed --data runs/data-small [--rounds 7] [--steps 6] [--device cuda]

Every variant trains its own model from the same initial weights on the same batches, as
``training.loop.fit`` does (loss module, backward, clipping, AdamW); a round runs ``--steps``
steps of each variant in turn, so a slow spell of the machine falls on all of them. At the end
each variant's weights are compared with every-lever-off's (the same steps taken): what its
rounding moved. Variants:
the levers of ``training.speed.Speed`` alone and together, ``--compile`` (compile time reported
apart), and settings that are not levers of the code: on the CPU bf16 autocast and one thread; on
CUDA, where training always runs under bf16 autocast (``training.loop.fit``), fp32 without it.

Quoted in docs/results/serving.md, docs/results/training-throughput.md."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from lab.train_profile import Lab, open_lab
from mmrt.training.stages.speed import Speed, cannot_compile, make_optimizer


@dataclass(frozen=True)
class Variant:
    name: str
    speed: Speed
    bf16: bool | None = None  # bf16 autocast around the forward pass; None: as fit does on the device
    threads: int | None = None  # torch's intra-op threads during this variant's steps


def variants(device: str, with_compile: bool) -> list[Variant]:
    off = Speed.off()
    out = [Variant("every lever off (as before)", off),
           Variant("channels-last, dense audio input", replace(off, channels_last=True)),
           Variant("fused AdamW", replace(off, fused_optimizer=True)),
           Variant("default (both)", Speed())]
    if device == "cpu":
        out += [Variant("default + bf16 autocast", Speed(), bf16=True),
                Variant("default, 1 thread", Speed(), threads=1)]
    else:
        out.append(Variant("default, fp32 (no bf16 autocast)", Speed(), bf16=False))
    if with_compile:
        out.append(Variant("default + torch.compile", Speed(compile=True)))
    return out


class Stepper:
    """One variant's model, optimizer and batches; ``step()`` takes one training step."""

    def __init__(self, lab: Lab, variant: Variant, stage: str, teacher: tuple[str, ...]):
        self.variant = variant
        device = lab.ctx.device.type
        bf16 = device == "cuda" if variant.bf16 is None else variant.bf16
        self.autocast = torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()
        model = lab.model(variant.speed)
        self.objective, self.batches, schedule = (lab.pretraining(model) if stage == "pretraining"
                                                  else lab.masd(model, teacher))
        self.params = [p for p in self.objective.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, schedule, variant.speed)
        self.clip = schedule.grad_clip
        self.objective.train()
        self.count = 0
        started = time.perf_counter()
        self.run(2)  # warm-up (and, compiled, the compile)
        self.first_s = time.perf_counter() - started

    def step(self) -> None:
        batch: Iterator = next(self.batches)
        g = torch.Generator().manual_seed(self.count)
        torch.manual_seed(self.count)
        self.count += 1
        with self.autocast:
            loss, _ = self.objective(batch, g)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        loss.item()  # as fit reads it; on CUDA this waits for the step

    def run(self, steps: int) -> float:
        """Seconds a step, over ``steps`` steps."""
        threads = torch.get_num_threads()
        if self.variant.threads:
            torch.set_num_threads(self.variant.threads)
        try:
            started = time.perf_counter()
            for _ in range(steps):
                self.step()
            return (time.perf_counter() - started) / steps
        finally:
            torch.set_num_threads(threads)


def ab(lab: Lab, stage: str, teacher: tuple[str, ...], rounds: int, steps: int, with_compile: bool) -> dict:
    steppers = [Stepper(lab, v, stage, teacher) for v in variants(lab.ctx.device.type, with_compile)]
    seconds: dict[str, list[float]] = {s.variant.name: [] for s in steppers}
    for r in range(rounds):
        order = steppers if r % 2 == 0 else steppers[::-1]  # neither end always first
        for s in order:
            seconds[s.variant.name].append(s.run(steps))
    base = seconds[steppers[0].variant.name]
    plain = dict(steppers[0].objective.named_parameters())
    rows = []
    for s in steppers:
        # every variant took the same steps on the same batches from the same weights: how far
        # apart their weights ended is what the lever's rounding did
        drift = max(float((p.detach().float() - plain[n].detach().float()).abs().max())
                    for n, p in s.objective.named_parameters())
        mine = seconds[s.variant.name]
        ratios = [b / m for b, m in zip(base, mine, strict=True)]  # same-round speed against "off"
        rows.append({"variant": s.variant.name, "median_ms": 1e3 * statistics.median(mine),
                     "min_ms": 1e3 * min(mine), "max_ms": 1e3 * max(mine),
                     "speedup_median": statistics.median(ratios), "speedup_min": min(ratios),
                     "speedup_max": max(ratios), "first_two_steps_s": s.first_s,
                     "max_weight_difference_vs_off": drift})
    return {"stage": stage, "rounds": rounds, "steps_a_round": steps, "rows": rows}


def print_table(result: dict) -> None:
    print(f"\n{result['stage']}: {result['rounds']} alternating rounds of {result['steps_a_round']} steps")
    print(f"  {'variant':<36} {'ms a step':>10} {'(min-max)':>15} {'speed-up vs off':>22} "
          f"{'max |dw| vs off':>16}")
    for r in result["rows"]:
        print(f"  {r['variant']:<36} {r['median_ms']:10.1f} {r['min_ms']:7.1f}-{r['max_ms']:<7.1f} "
              f"{r['speedup_median']:9.2f}x ({r['speedup_min']:.2f}-{r['speedup_max']:.2f}) "
              f"{r['max_weight_difference_vs_off']:16.1e}"
              + (f"   first two steps {r['first_two_steps_s']:.1f} s" if "compile" in r["variant"] else ""))


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--preset", default="small")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=6, help="steps of each variant a round")
    p.add_argument("--teacher", default="audio", help="MASD's training modalities (default audio)")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = p.parse_args(argv)
    lab = open_lab(args.data, args.preset, args.device)
    with_compile = not args.no_compile and cannot_compile(torch.device(args.device)) is None
    teacher = tuple(args.teacher.split("+"))
    results = [ab(lab, stage, teacher, args.rounds, args.steps, with_compile)
               for stage in ("pretraining", "masd")]
    print(f"torch {torch.__version__} on {args.device}, {torch.get_num_threads()} threads")
    for r in results:
        print_table(r)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
