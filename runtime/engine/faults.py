"""Fault injection for tests and drills (``MMRT_INJECT_FAULTS=audio``, ``--fault-delay-s``):
graphs that fail or stall on purpose, wrapped around or in place of a bundle's encoders. Kept
out of the engine: production graphs never pass through here unless a drill asks."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import numpy as np

from mmrt.runtime.backends.graph import Graph


class FailingGraph:
    """A graph that always raises, as an encoder whose device has gone."""

    kind = "fault"

    def __init__(self, name: str):
        self.name, self.providers = name, ["fault-injection"]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise RuntimeError(f"injected fault in the {self.name} encoder")


class SlowGraph:
    """A graph that takes ``delay_s`` longer (drains, deadlines, cancellations)."""

    def __init__(self, graph: Graph, delay_s: float):
        self.graph, self.delay_s = graph, delay_s
        self.kind, self.providers = graph.kind, graph.providers

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(self.delay_s)
        return self.graph.run(feeds)


def with_faults(graphs: Mapping[str, Graph], failing: Iterable[str] = (),
                delay_s: float = 0.0) -> dict[str, Graph]:
    """``graphs`` with the ``failing`` ones replaced by graphs that raise and, with ``delay_s``,
    every one slowed down; an unknown name in ``failing`` is a ValueError."""
    unknown = set(failing) - set(graphs)
    if unknown:
        raise ValueError(f"fault injection: unknown modality {sorted(unknown)[0]!r}")
    out: dict[str, Graph] = {m: FailingGraph(m) if m in failing else g for m, g in graphs.items()}
    return {m: SlowGraph(g, delay_s) for m, g in out.items()} if delay_s > 0 else out
