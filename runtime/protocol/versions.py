"""A served model version and a model's versions, as the repository keeps them. No torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmrt.runtime.protocol.kserve import KServeModel


@dataclass(eq=False)  # compared by identity: a version reloaded in place is another one
class Version:
    number: int
    folder: Path
    api: KServeModel
    fingerprint: tuple
    inflight: int = 0

    def idle(self) -> bool:
        return self.inflight == 0 and self.api.engine.sequences.active() == 0


@dataclass
class Model:
    name: str
    current: Version | None = None  # what new requests go to
    loaded: list[Version] = field(default_factory=list)  # the current version and those retiring
    failed: dict[int, tuple[tuple, str]] = field(default_factory=dict)  # version -> (fingerprint, why)
    unloaded: bool = False  # by a call, and not loaded since
    generation: int = 0  # counts unload calls: a load that started before one is discarded

    def version(self, number: int) -> Version | None:
        """The loaded version ``number`` (the current one first: a version reloaded in place
        has its old copy retiring beside it)."""
        if self.current is not None and self.current.number == number:
            return self.current
        return next((v for v in self.loaded if v.number == number), None)

    def state(self, number: int) -> tuple[str, str]:
        """The repository index's state of one version, and why."""
        if self.current is not None and number == self.current.number:
            return "READY", ""
        if any(v.number == number for v in self.loaded):
            return "UNLOADING", "finishing its running requests and sequences"
        if number in self.failed:
            return "UNAVAILABLE", self.failed[number][1]
        if self.unloaded:
            return "UNAVAILABLE", "unloaded by a call"
        return "UNAVAILABLE", "not the newest version" if self.current else "not loaded"
