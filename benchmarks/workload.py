"""What `mmrt bench` sends: eval examples decoded from their real files as a rig would capture
them (16 kHz PCM of any length, frames at the camera's size, UTF-8 text), and which of their
modalities each request carries under a dropout plan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mmrt.decode import load_audio, load_video
from mmrt.errors import UserError
from mmrt.modalities import subset_key
from mmrt.preprocess import SAMPLE_RATE
from mmrt.split_files import multi_hot, read_classes, read_split


@dataclass(frozen=True)
class Example:
    id: str
    inputs: dict  # modality -> PCM [samples], frames [T, H, W, 3] or UTF-8 bytes (no batch axis)
    labels: np.ndarray  # [C] multi-hot


@dataclass(frozen=True)
class DropPlan:
    """Sensors absent on the rig (``drop``) and sensors failing per request (``rates``, seeded)."""

    drop: frozenset[str] = frozenset()
    rates: tuple[tuple[str, float], ...] = ()
    seed: int = 0

    def left(self, modalities) -> tuple[str, ...]:
        return tuple(m for m in modalities if m not in self.drop)


def load_examples(data: Path, modalities, classes: tuple[str, ...], split: str = "eval",
                  limit: int | None = None, progress: bool = True) -> list[Example]:
    """Decode up to ``limit`` examples of ``split``, keeping the modalities the bundle reads."""
    names = read_classes(data)
    if tuple(names) != tuple(classes):
        raise UserError(f"--data {data}: classes.txt does not match the bundle's classes "
                        f"(the bundle scores {len(classes)} classes, the data has {len(names)})")
    examples = read_split(data, split, names)[:limit]
    labels = multi_hot(examples, names)
    out = []
    for ex, y in tqdm(list(zip(examples, labels, strict=True)), desc=f"decode {split}", unit="example",
                      disable=not progress, leave=False):
        arrays = {}
        for m in modalities:
            value = ex.inputs.get(m)
            if value is None:
                continue
            if m == "audio":
                arrays[m] = load_audio(value, SAMPLE_RATE)
            elif m == "video":
                arrays[m] = load_video(value)
            else:
                arrays[m] = value.encode("utf-8")
        if arrays:
            out.append(Example(ex.id, arrays, y))
    if not out:
        raise UserError(f"--data {data}: no {split} example has a modality the bundle reads")
    return out


def plan(examples: list[Example], modalities, drop: DropPlan, subset=None) -> list[tuple[str, ...]]:
    """The modalities each example's request carries: those it has, minus dropped sensors, minus
    sensors that fail at random (per example, seeded), restricted to ``subset`` when given."""
    rng = np.random.default_rng(drop.seed)
    rates = dict(drop.rates)
    carried = []
    for ex in examples:
        keep = [m for m in drop.left(modalities) if m in ex.inputs and (subset is None or m in subset)]
        keep = [m for m in keep if rng.random() >= rates.get(m, 0.0)]
        carried.append(tuple(keep))
    return carried


def key(carried: tuple[str, ...], modalities) -> str:
    return subset_key(carried, modalities) if carried else "none"
