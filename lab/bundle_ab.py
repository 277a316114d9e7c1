"""Two bundles of the same model, encoder by encoder, timed in alternation: what an export change
(an opset, a fusion, a front-end) does to latency, with everything else equal.

    python -m lab.bundle_ab BUNDLE_A BUNDLE_B [--threads 0] [--repeats 200]

Both bundles' graphs are opened as the server opens them (its session and malloc settings) and
fed the same seeded inputs at batch 1 and 8; prints the median latency of each, the speed-up of B
over A, and the largest difference between their embeddings. No torch.

Quoted in docs/results/serving.md."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mmrt.benchmarks.timing import machine, paired_ms
from mmrt.bundle import EMBEDDING, verify_bundle
from mmrt.errors import UserError
from mmrt.runtime.backends.memory import tune_malloc
from mmrt.runtime.backends.precision import zeros
from mmrt.runtime.backends.sessions import OrtGraph, SessionOptions

BATCHES = (1, 8)


def seeded(spec, batch: int) -> np.ndarray:
    """Inputs with values (an all-zero clip would skip work in some operators)."""
    rng = np.random.default_rng(0)
    x = zeros(spec, batch)
    if x.dtype == np.float32:
        return (rng.standard_normal(x.shape) * 0.1).astype(np.float32)
    return rng.integers(4, 64 if x.dtype == np.int64 else 256, x.shape).astype(x.dtype)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args(argv)
    a, b = verify_bundle(args.a), verify_bundle(args.b)
    if a.modalities != b.modalities:
        raise UserError(f"{args.a} and {args.b}: different modalities ({a.modalities} against "
                        f"{b.modalities})")
    tune_malloc()
    options = SessionOptions(threads=args.threads)
    print(f"{machine()}, threads {args.threads}; A {args.a} (opset {a.opset}), B {args.b} (opset {b.opset})")
    for m in a.modalities:
        ga = OrtGraph(args.a / a.graphs[m].file, a.graphs[m], options)
        gb = OrtGraph(args.b / b.graphs[m].file, b.graphs[m], options)
        spec = a.graphs[m].inputs[0]
        for batch in BATCHES:
            feed = {spec.name: seeded(spec, batch)}
            diff = float(np.abs(ga.run(feed)[EMBEDDING] - gb.run(feed)[EMBEDDING]).max())
            ta, tb = paired_ms(lambda g=ga, f=feed: g.run(f), lambda g=gb, f=feed: g.run(f), args.repeats)
            print(f"{m} batch {batch}: A {ta:.2f} ms, B {tb:.2f} ms, B is {ta / tb:.2f}x; "
                  f"max |diff| {diff:.2g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
