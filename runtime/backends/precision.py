"""Which encoder graphs the server runs: the FP32 ones or the bundle's INT8 copies
(``mmrt serve --precision``). No torch.

``auto`` decides on the machine that serves, as TensorRT's builder picks kernels: both sets are
timed at start-up on the same inputs (batch 1 and 8, interleaved) and INT8 runs only where it is
clearly faster, since it costs up to the bundle's ``--max-score-drop`` of score for nothing
otherwise. On a small CPU with tiny encoders the FP32 graphs can be the faster ones: quantize and
dequantize steps cost more than 8-bit matrix products save (docs/results/int8.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np

from mmrt.bundle import GraphSpec, Manifest, TensorSpec

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "int8")
MARGIN = 0.9  # auto: INT8 when its time is under 90% of FP32's
TIMED_BATCHES, ROUNDS = (1, 8), 7


def has_int8(manifest: Manifest) -> bool:
    return all(manifest.graphs[m].int8 for m in manifest.modalities)


def as_int8(spec: GraphSpec) -> GraphSpec:
    """The INT8 copy as a graph of its own (its QDQ file and, where built, its INT8 engine)."""
    if spec.int8 is None:
        raise ValueError(f"{spec.file}: no INT8 copy in the bundle")
    return replace(spec, file=spec.int8, engine=spec.int8_engine, int8=None, int8_engine=None)


def zeros(spec: TensorSpec, batch: int) -> np.ndarray:
    return np.zeros([batch if d < 0 else d for d in spec.shape], dtype=spec.dtype)


def seconds(graphs: dict, specs: dict[str, GraphSpec]) -> float:
    """Median time of one round through every graph, at each timed batch, summed."""
    total = 0.0
    for name, graph in graphs.items():
        for batch in TIMED_BATCHES:
            feeds = {t.name: zeros(t, batch) for t in specs[name].inputs}
            graph.run(feeds)  # the first run of a shape allocates
            times = []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                graph.run(feeds)
                times.append(time.perf_counter() - start)
            total += float(np.median(times))
    return total


def faster_int8(fp32: dict, int8: dict, specs: dict[str, GraphSpec]) -> bool:
    """Whether the INT8 encoders beat the FP32 ones here by the margin; timed in alternation,
    twice, so a burst of other load does not decide it alone."""
    t32 = t8 = 0.0
    for _ in range(2):
        t32 += seconds(fp32, specs)
        t8 += seconds(int8, specs)
    choice = t8 < MARGIN * t32
    log.info("precision auto: the encoders take %.1f ms in FP32 and %.1f ms in INT8 here (batch 1 and 8); "
             "running %s", t32 * 1e3 / 2, t8 * 1e3 / 2, "INT8" if choice else "FP32")
    return choice
