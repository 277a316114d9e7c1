"""One seed's intervals in an experiment's results: each cell's from its own resampled scores,
P's and R's from the figure recomputed on every resample."""

import numpy as np
import pytest

from mmrt.intervals import ci95
from mmrt.training.experiments.results import build_results

MODS = ["audio", "video"]
SUBSETS = ["audio", "video", "audio+video"]


def _table(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {mt: {me: float(rng.uniform(0.3, 0.8)) for me in SUBSETS} for mt in SUBSETS}


def test_a_shift_shared_by_every_cell_shifts_p_and_r_alike():
    scores = {"ft": _table(0), "masd": _table(1)}
    shift = np.random.default_rng(2).normal(0, 0.02, 200)
    samples = {m: {mt: {me: (v + shift).tolist() for me, v in row.items()} for mt, row in t.items()}
               for m, t in scores.items()}
    doc = build_results({0: {"methods": scores, "alpha_sweep": {}}}, MODS, "single-label", samples)
    expected_shift = ci95(shift)
    for method, res in doc["methods"].items():
        ci = res["ci95"]
        assert ci["scores"]["audio"]["video"] == ci95(np.asarray(samples[method]["audio"]["video"]))
        for stratum in ("overall", "missing", "added", "transfer"):
            for name in ("P", "R"):
                value, interval = res["metrics"][stratum][name], ci["metrics"][stratum][name]
                assert interval["low"] == pytest.approx(value + expected_shift["low"])
                assert interval["high"] == pytest.approx(value + expected_shift["high"])


def test_several_seeds_report_their_spread_and_no_interval():
    per_seed = {s: {"methods": {"ft": _table(s)}, "alpha_sweep": {}} for s in (0, 1)}
    doc = build_results(per_seed, MODS, "single-label", None)
    assert "ci95" not in doc["methods"]["ft"]
