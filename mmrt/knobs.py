"""Numeric settings declared once: a dataclass field carries its default, its command-line flag,
the lowest value allowed and its help; the command line builds its flags from the fields and
reads them back, so no default, bound or unit is written twice.

    @dataclass(frozen=True)
    class Limits:
        max_batch: int = knob(32, "--max-batch", 1, "rows per request")
        max_audio_samples: int = knob(960_000, "--max-audio-s", 0.001, "seconds of audio per row",
                                      scale=16_000)   # the flag in seconds, the field in samples

    add_flags(parser_group, Limits)          # --max-batch (default 32), --max-audio-s (default 60)
    limits = from_flags(Limits, args)        # bounds checked: "--max-batch 0: expected 1 or more"
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from mmrt.errors import UserError


@dataclass(frozen=True)
class Knob:
    flag: str
    low: float  # the smallest value the flag takes
    help: str
    scale: float = 1.0  # field = flag value * scale (the flag's unit is the one people think in)

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


def knob(default: Any, flag: str, low: float, help: str, scale: float = 1.0) -> Any:
    """A dataclass field whose flag, bound and help are declared beside its default."""
    return dataclasses.field(default=default, metadata={"knob": Knob(flag, low, help, scale)})


def knobs(cls: type) -> list[tuple[dataclasses.Field, Knob]]:
    return [(f, f.metadata["knob"]) for f in dataclasses.fields(cls) if "knob" in f.metadata]


def flag_default(f: dataclasses.Field, k: Knob) -> int | float:
    return f.default / k.scale if k.scale != 1 else f.default  # type: ignore[operator,return-value]


def add_flags(group: argparse._ActionsContainer, cls: type) -> None:
    for f, k in knobs(cls):
        default = flag_default(f, k)
        group.add_argument(k.flag, type=type(default), default=default,
                           help=f"{k.help} (default {default:g})")


def check(flag: str, value: float, low: float) -> None:
    if value < low:
        raise UserError(f"{flag} {value:g}: expected {low:g} or more")


def from_flags(cls: type, args: argparse.Namespace, **others: Any) -> Any:
    """``cls`` built from the parsed flags of its knobs (each checked against its bound), plus
    ``others`` for its fields that are not knobs."""
    values = {}
    for f, k in knobs(cls):
        value = getattr(args, k.dest)
        check(k.flag, value, k.low)
        values[f.name] = round(value * k.scale) if isinstance(f.default, int) else value * k.scale
    return cls(**values, **others)
