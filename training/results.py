"""An experiment's results.json: p(M_E; M_T) per method (mean over seeds), the paper's metrics,
and their spread over seeds. report.md and the plots are drawn from this file alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmrt import atomic
from mmrt.robustness import PMatrix, robustness_report
from mmrt.scores import metric_name

RESULTS = "results.json"
HEADLINE = [("overall", "P_best"), ("overall", "R_best"), ("overall", "P"), ("overall", "R"),
            ("missing", "P"), ("missing", "R"), ("added", "P"), ("added", "R"),
            ("transfer", "P"), ("transfer", "R")]


def _metrics(scores: dict, modalities: list[str]) -> dict:
    return robustness_report(PMatrix.from_json({"modalities": modalities, "scores": scores}))


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


def build_results(per_seed: dict[int, dict], modalities: list[str], task: str) -> dict:
    """Aggregate per-seed ``scores.json`` contents (only methods every seed finished)."""
    seeds = sorted(per_seed)
    methods = [m for m in per_seed[seeds[0]]["methods"]
               if all(m in per_seed[s]["methods"] for s in seeds)]
    doc: dict = {"metric": metric_name(task), "task": task,
                 "modalities": modalities, "seeds": seeds, "methods": {}, "alpha_sweep": {}}
    for method in methods:
        tables = [per_seed[s]["methods"][method] for s in seeds]
        if any(set(t) != set(tables[0]) for t in tables):
            continue  # a seed has not finished this method on every training set
        mean, std = _mean_std(tables)
        doc["methods"][method] = {
            "scores": mean, "scores_std": std, "metrics": _metrics(mean, modalities),
            "metrics_std": headline_spread([_metrics(t, modalities) for t in tables])}
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


def write_results(out: Path, per_seed: dict[int, dict], modalities: list[str], opts, task: str,
                  seconds: float) -> dict:
    from mmrt.training.plots import write_plots
    from mmrt.training.report import write_report

    doc = build_results(per_seed, modalities, task)
    doc["settings"] = {"preset": opts.preset, "objective": opts.objective, "data": str(opts.data),
                       "alpha": opts.alpha, "drop_prob": opts.drop, "distill_weight": opts.distill_weight,
                       "distill_temperature": opts.distill_temperature, "minutes": round(seconds / 60, 1)}
    atomic.write_text(out / RESULTS, json.dumps(doc, indent=2) + "\n")
    write_report(out, doc)
    write_plots(out, doc)
    return doc
