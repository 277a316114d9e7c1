"""Model directories (model.safetensors + config.json + tokenizer.model) and resumable training state.

Both are safetensors plus JSON, never pickle, and every file is written atomically.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from mmrt import atomic
from mmrt.errors import UserError
from mmrt.training.model.config import ModelConfig
from mmrt.training.model.model import MultimodalModel
from mmrt.training.model.model_card import CARD, render_card

WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "config.json", "tokenizer.model"
# Optimizer settings that say how its update runs, not what it computes.
IMPLEMENTATION = ("fused", "foreach", "capturable", "differentiable")


def cpu_state(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """``module``'s state dict on the CPU, ready for safetensors: a module that appears under
    several names (MAE's shared blocks sit in every encoder) is written under each, as a copy,
    so the file loads into the same architecture with no special case."""
    state, seen = {}, set()
    for k, v in module.state_dict().items():
        v = v.detach().cpu().contiguous()
        if v.data_ptr() in seen:
            v = v.clone()
        seen.add(v.data_ptr())
        state[prefix + k] = v
    return state


def write_model(folder: Path, model: MultimodalModel, tokenizer: Path | None) -> None:
    """Write a model directory's files into ``folder`` (an existing, usually staged, folder)."""
    atomic.write_bytes(folder / WEIGHTS, save(cpu_state(model)))
    atomic.write_text(folder / CONFIG, json.dumps(model.config.to_dict(), indent=2) + "\n")
    atomic.write_text(folder / CARD, render_card(model.config))
    if tokenizer is not None:
        shutil.copyfile(tokenizer, folder / TOKENIZER)


def save_model(out: str | Path, model: MultimodalModel, tokenizer: Path | None,
               overwrite: bool = True) -> Path:
    """Write a whole model directory at ``out``: it appears complete or not at all."""
    with atomic.staged_dir(out, overwrite=overwrite) as stage:
        write_model(stage, model, tokenizer)
    return Path(out)


def read_config(folder: str | Path) -> ModelConfig:
    folder = Path(folder)
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise UserError(f"{folder}: not an mmrt model directory (expected {WEIGHTS} and {CONFIG})")
    try:
        doc = json.loads((folder / CONFIG).read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{folder / CONFIG}: not valid JSON ({e})") from None
    return ModelConfig.from_dict(doc, source=str(folder / CONFIG))


def load_weights(model: torch.nn.Module, blob: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict, refusing one that does not match the architecture (named, not a traceback)."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(blob)), sorted(set(blob) - set(own))
    wrong = [k for k in own if k in blob and own[k].shape != blob[k].shape]
    if missing or unexpected or wrong:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
                  if unexpected else f"shape of {wrong[0]} is {tuple(blob[wrong[0]].shape)}, "
                  f"the config needs {tuple(own[wrong[0]].shape)}")
        raise UserError(f"{source}: weights do not match the config's architecture ({detail})")
    model.load_state_dict(blob)


def load_model(folder: str | Path) -> MultimodalModel:
    folder = Path(folder)
    config = read_config(folder)
    model = MultimodalModel(config)
    try:
        blob = load((folder / WEIGHTS).read_bytes())
    except (SafetensorError, OSError) as e:
        raise UserError(f"{folder / WEIGHTS}: cannot read the weights ({e})") from None
    load_weights(model, blob, str(folder / WEIGHTS))
    return model


def tokenizer_path(folder: str | Path) -> Path | None:
    path = Path(folder) / TOKENIZER
    return path if path.is_file() else None


def save_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict) -> None:
    """One file holding everything a stage needs to continue: weights, AdamW moments, step, meta."""
    opt = optimizer.state_dict()
    tensors = cpu_state(model, "model.")
    for index, slots in opt["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    header = {"meta": meta, "param_groups": opt["param_groups"]}
    atomic.write_bytes(path, save(tensors, metadata={"state": json.dumps(header)}))


def load_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore what :func:`save_state` wrote; returns its ``meta``."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        header = json.loads(f.metadata()["state"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    saved_groups = header["param_groups"]
    if len(saved_groups) != len(optimizer.param_groups):
        raise UserError(f"{path}: saved by an optimizer with {len(saved_groups)} parameter groups, this "
                        f"stage has {len(optimizer.param_groups)}; start again without --resume")
    # How the update runs (fused, foreach) is the running optimizer's choice, not the saved one's.
    groups = [{**saved, **{k: own[k] for k in IMPLEMENTATION if k in own}}
              for saved, own in zip(saved_groups, optimizer.param_groups, strict=True)]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    for group in optimizer.param_groups:  # moments in their parameter's layout (channels-last or not)
        for p in group["params"]:
            slots = optimizer.state.get(p, {})
            for name, value in slots.items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    slots[name] = torch.empty_like(p).copy_(value)
    return header["meta"]
