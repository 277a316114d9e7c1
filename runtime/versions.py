"""A served model version and a model's versions, as the repository keeps them. No torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmrt.runtime.kserve import KServeModel


@dataclass
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
    versions: dict[int, Version] = field(default_factory=dict)  # the current one and those retiring
    current: int | None = None
    failed: dict[int, tuple[tuple, str]] = field(default_factory=dict)  # version -> (fingerprint, why)
    unloaded: bool = False  # by a call: the poller leaves it alone until a load call

    def serving(self) -> Version | None:
        return self.versions.get(self.current) if self.current is not None else None

    def state(self, number: int) -> tuple[str, str]:
        """The repository index's state of one version, and why."""
        if number == self.current:
            return "READY", ""
        if number in self.versions:
            return "UNLOADING", "finishing its running requests and sequences"
        if number in self.failed:
            return "UNAVAILABLE", self.failed[number][1]
        if self.unloaded:
            return "UNAVAILABLE", "unloaded by a call"
        return "UNAVAILABLE", "not the newest version" if self.current else "not loaded"
