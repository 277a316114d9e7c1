"""An experiment's results.json: p(M_E; M_T) per method (mean over seeds), the paper's metrics,
and their spread over seeds. report.md and the plots are drawn from this file alone."""

from __future__ import annotations

import numpy as np

from mmrt.intervals import ci95
from mmrt.robustness import STRATA, PMatrix, robustness_report
from mmrt.scores import metric_name

RESULTS = "results.json"
HEADLINE = [("overall", "P_best"), ("overall", "R_best"), ("overall", "P"), ("overall", "R"),
            ("missing", "P"), ("missing", "R"), ("added", "P"), ("added", "R"),
            ("transfer", "P"), ("transfer", "R")]


BASELINE = "ft"  # the method the others are measured against; its diagonal is the oracle


def _metrics(scores: dict, modalities: list[str], baseline: dict | None = None) -> dict:
    def matrix(table: dict) -> PMatrix:
        return PMatrix.from_json({"modalities": modalities, "scores": table})

    return robustness_report(matrix(scores), None if baseline is None else matrix(baseline))


def _seed_figures(metrics: dict, base: dict | None) -> dict:
    """One seed's P and R per stratum, their ratios to the baseline's, and the gap closed."""
    out: dict = {"metrics": {s: {n: metrics[s][n] for n in ("P", "R")} for s in STRATA}}
    if base is not None:
        def ratio(s: str, n: str) -> float | None:
            return None if metrics[s][n] is None or not base[s][n] else metrics[s][n] / base[s][n]

        out["ratio"] = {s: {n: ratio(s, n) for n in ("P", "R")} for s in STRATA}
    if "gap_closed" in metrics:
        out["gap_closed"] = metrics["gap_closed"]
    return out


def _mean_std(tables: list[dict]) -> tuple[dict, dict]:
    """Cell-wise mean and (population) std of {M_T: {M_E: p}} tables over seeds."""
    mean, std = {}, {}
    for mt in tables[0]:
        mean[mt], std[mt] = {}, {}
        for me in tables[0][mt]:
            values = np.array([t[mt][me] for t in tables])
            mean[mt][me], std[mt][me] = float(values.mean()), float(values.std())
    return mean, std


def headline_spread(per_seed_metrics: list[dict]) -> dict:
    """Std over seeds of each headline figure ("overall.P" ...), None where a stratum is empty."""
    out = {}
    for stratum, name in HEADLINE:
        values = [m[stratum][name] for m in per_seed_metrics if m[stratum][name] is not None]
        out[f"{stratum}.{name}"] = float(np.std(values)) if values else None
    return out


def intervals(samples: dict, modalities: list[str]) -> dict:
    """95% bootstrap intervals of one seed's scores and of P and R per stratum, from each score
    on the same resamples of the eval examples ({M_T: {M_E: [R values]}})."""
    cells = {(mt, me): np.asarray(v) for mt, row in samples.items() for me, v in row.items()}
    count = len(next(iter(cells.values())))
    figures: dict[tuple[str, str], list[float]] = {}
    for r in range(count):
        table: dict = {}
        for (mt, me), v in cells.items():
            table.setdefault(mt, {})[me] = float(v[r])
        metrics = _metrics(table, modalities)
        for s in STRATA:
            for n in ("P", "R"):
                if metrics[s][n] is not None:
                    figures.setdefault((s, n), []).append(metrics[s][n])
    out: dict = {"scores": {}, "metrics": {s: {} for s in STRATA}}
    for (mt, me), v in cells.items():
        out["scores"].setdefault(mt, {})[me] = ci95(v)
    for (s, n), values in figures.items():
        out["metrics"][s][n] = ci95(np.asarray(values)) if len(values) == count else None
    return out


def build_results(per_seed: dict[int, dict], modalities: list[str], task: str,
                  samples: dict | None = None) -> dict:
    """Aggregate per-seed ``scores.json`` contents (only methods every seed finished); with one
    seed's ``samples`` (``bootstrap.json``), each method's 95% intervals."""
    seeds = sorted(per_seed)
    methods = [m for m in per_seed[seeds[0]]["methods"]
               if all(m in per_seed[s]["methods"] for s in seeds)]
    doc: dict = {"metric": metric_name(task), "task": task,
                 "modalities": modalities, "seeds": seeds, "methods": {}, "alpha_sweep": {}}
    complete = {m: [per_seed[s]["methods"][m] for s in seeds] for m in methods}
    complete = {m: t for m, t in complete.items() if all(set(x) == set(t[0]) for x in t)}  # every seed done
    base = complete.get(BASELINE)
    for method, tables in complete.items():
        mean, std = _mean_std(tables)
        base_mean = None if base is None else _mean_std(base)[0]
        per = [_metrics(t, modalities, None if base is None else base[i]) for i, t in enumerate(tables)]
        doc["methods"][method] = {
            "scores": mean, "scores_std": std, "metrics": _metrics(mean, modalities, base_mean),
            "metrics_std": headline_spread(per),
            "per_seed": {str(s): _seed_figures(m, None if base is None else _metrics(base[i], modalities))
                         for i, (s, m) in enumerate(zip(seeds, per, strict=True))}}
        cells = (samples or {}).get(method, {})
        if len(seeds) == 1 and cells and set(cells) == set(mean):
            doc["methods"][method]["ci95"] = intervals(cells, modalities)
    for method in per_seed[seeds[0]]["alpha_sweep"]:
        for alpha in per_seed[seeds[0]]["alpha_sweep"][method]:
            tables = [per_seed[s]["alpha_sweep"].get(method, {}).get(alpha) for s in seeds]
            if any(t is None or set(t) != set(tables[0]) for t in tables):
                continue
            mean, _ = _mean_std(tables)
            m = _metrics(mean, modalities)
            doc["alpha_sweep"].setdefault(method, {})[alpha] = {
                "train_sets": sorted(mean), "P": m["overall"]["P"], "R": m["overall"]["R"]}
    return doc
