"""How a training step runs fast on the device it has: the same arithmetic, rounded differently.

Each lever is a switch of ``Speed``, measured as a same-run A/B by
``lab/train_speed.py`` (figures in docs/results/training-throughput.md; the defaults
were chosen on a CPU, and the GPU check runs the same A/B on CUDA). With every switch off a
step runs as it did before the levers existed, which is what the A/B compares against.

No lever changes the model or what is saved, only the order in which floats are summed (over a
whole pretraining that makes two runs part as two seeds do; the results page compares them):
channels-last is a memory layout (checkpoints are written contiguous), the fused optimizer is
AdamW's own update in one kernel, and a compiled encoder is the same module, compiled only
while its stage trains (export opens the saved weights in a plain model, so the ONNX graphs do
not change).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, fields

import torch
from torch import nn

from mmrt.training.model.config import Schedule
from mmrt.training.model.encoders import AudioEncoder, TokenEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Speed:
    # The convolutions' weights, and so their activations, in channels-last layout, and the
    # audio stem's input dense (only the log-mel frames its patches cover, copied contiguous):
    # on CPU the stem's convolutions and their backward no longer copy between layouts.
    channels_last: bool = True
    # AdamW's update as one fused kernel over all parameters (torch's ``fused=True``).
    fused_optimizer: bool = True
    # torch.compile of each encoder's transformer while a stage trains; off by default: on 2 CPU
    # cores it did not repay its compile time within a pretraining (see the results page).
    compile: bool = False

    @classmethod
    def off(cls) -> Speed:
        """Every lever off: the step as it ran before them."""
        return cls(**{f.name: False for f in fields(cls)})

    def describe(self) -> str:
        on = [f.name.replace("_", " ") for f in fields(self) if getattr(self, f.name)]
        return ", ".join(on) or "none"


DEFAULT = Speed()


def cannot_compile(device: torch.device) -> str | None:
    """Why torch.compile cannot build kernels for ``device`` here, or None when it can: Inductor
    needs a C++ compiler for the CPU and Triton for CUDA."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "Triton is not installed"
    if device.type != "cpu":
        return f"no Inductor backend for {device.type}"
    compilers = ("g++", "c++", "clang++")
    return None if any(shutil.which(c) for c in compilers) else f"no C++ compiler ({', '.join(compilers)})"


def prepare(model: nn.Module, speed: Speed) -> nn.Module:
    """Lay out ``model`` as ``speed`` says, and compile its transformers if asked (undone by
    ``release``); in place. Call it before wrapping the model for DDP."""
    layouts = {nn.Conv2d: torch.channels_last, nn.Conv3d: torch.channels_last_3d}
    for module in model.modules():
        if isinstance(module, AudioEncoder):
            module.dense_input = speed.channels_last
        elif type(module) in layouts:
            module.to(memory_format=layouts[type(module)] if speed.channels_last else torch.contiguous_format)
    if speed.compile:
        device = next(model.parameters()).device
        why = cannot_compile(device)
        if why:
            log.warning("--compile: torch.compile cannot build kernels here (%s); training uncompiled", why)
        else:
            for module in model.modules():
                if isinstance(module, TokenEncoder):
                    module.compile()  # shapes that change (MASD's rows) recompile once, as dynamic
    return model


def release(model: nn.Module) -> None:
    """Undo ``prepare``'s compiling: after its stage the model scores and exports as a plain one."""
    for module in model.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None


def make_optimizer(params: list[nn.Parameter], schedule: Schedule, speed: Speed) -> torch.optim.Optimizer:
    """Every stage's optimizer: AdamW at the schedule's rate and weight decay, fused where asked
    and the parameters' device has the kernel."""
    fused = speed.fused_optimizer and all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay,
                             **({"fused": True} if fused else {}))
