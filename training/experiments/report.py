"""An experiment's outputs: results.json, report.md laid out like the paper's Table 3 (metrics per
method) and Table 4, and the plots."""

from __future__ import annotations

import json
from pathlib import Path

from mmrt import atomic
from mmrt.robustness import MIN_GAP, STRATUM_TITLES
from mmrt.training.experiments.made import made_line, merged
from mmrt.training.experiments.plots import write_plots
from mmrt.training.experiments.results import BASELINE, HEADLINE, RESULTS, build_results


def _cell(mean: float | None, std: float | None, seeds: int, ci: dict | None = None) -> str:
    """A figure: ± its std over seeds, or with one seed its 95% bootstrap interval where known."""
    if mean is None:
        return "–"
    if seeds > 1 and std is not None:
        return f"{mean:.3f} ± {std:.3f}"
    return f"{mean:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else f"{mean:.3f}"


def _ci(res: dict, *path: str) -> dict | None:
    """The 95% interval at ``path`` under a method's ``ci95`` (one seed), else None."""
    node = res.get("ci95")
    for key in path:
        node = None if node is None else node.get(key)
    return node


def _headline(docs: dict[str, dict]) -> list[str]:
    """Table 3: a row per method; with several runs (labelled by the keys), their rows in turn."""
    titles = {"overall": "Overall", **STRATUM_TITLES}
    labelled = len(docs) > 1
    head = ["pretraining"] * labelled + ["method"] + [f"{titles[s]} {n}" for s, n in HEADLINE]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, doc in docs.items():
        seeds = len(doc["seeds"])
        for method, res in doc["methods"].items():
            cells = [_cell(res["metrics"][s][n], res["metrics_std"][f"{s}.{n}"], seeds,
                           _ci(res, "metrics", s, n)) for s, n in HEADLINE]
            lines.append("| " + f"{label} | " * labelled + f"{method} | " + " | ".join(cells) + " |")
    return lines


def _ratios(docs: dict[str, dict]) -> list[str]:
    """R of each method against fine-tuning's (of the same run), overall and on Transferability
    (the paper's claim)."""
    labelled = len(docs) > 1
    head = ["pretraining"] * labelled + ["method", "R / R(ft) overall", "R / R(ft) transfer",
                                         "P / P(ft) overall", "R / R(ft) overall, each seed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, doc in docs.items():
        lines += _ratio_rows(doc, f"{label} | " * labelled)
    return lines if len(lines) > 2 else []


def _ratio_rows(doc: dict, prefix: str) -> list[str]:
    base = doc["methods"].get(BASELINE)
    if base is None:
        return []
    lines = []
    for method, res in doc["methods"].items():
        cells = []
        for stratum, name in (("overall", "R"), ("transfer", "R"), ("overall", "P")):
            a, b = res["metrics"][stratum][name], base["metrics"][stratum][name]
            cells.append("–" if a is None or not b else f"{a / b:.2f}x")
        seeds = [f["ratio"]["overall"]["R"] for f in res.get("per_seed", {}).values() if "ratio" in f]
        cells.append(", ".join("–" if r is None else f"{r:.2f}x" for r in seeds) or "–")
        lines.append(f"| {prefix}{method} | " + " | ".join(cells) + " |")
    return lines


PAPER_CLOSED = 0.76  # MASD+WiSE-FT, AudioSet contrastive: (22.8 - 13.8) / (25.6 - 13.8) of Overall R


def _headroom(doc: dict) -> list[str]:
    """The oracle (each eval set's fine-tuned specialist) and each method's share of the
    fine-tune-to-oracle gap closed, per stratum, with the paper's figure beside it."""
    base = doc["methods"].get(BASELINE)
    if base is None or "oracle" not in base["metrics"]:
        return ["No oracle: it needs fine-tuning on every training set."]
    strata = {"overall": "Overall", **STRATUM_TITLES}
    oracle = base["metrics"]["oracle"]
    head = ["method", *(f"{t} {n}" for t in strata.values() for n in ("R", "P"))]
    figures = [_cell(oracle[s][n], None, 1) for s in strata for n in ("R", "P")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
             "| oracle | " + " | ".join(figures) + " |"]
    for method, res in doc["methods"].items():
        closed = res["metrics"].get("gap_closed")
        if method == BASELINE or closed is None:
            continue
        seeds = [f["gap_closed"]["overall"]["R"] for f in res["per_seed"].values() if "gap_closed" in f]
        cells = [_share(closed[s][n]) for s in strata for n in ("R", "P")]
        if len(seeds) > 1:
            cells[0] += " (" + ", ".join(_share(v) for v in seeds) + ")"
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return [*lines, "", f"The paper's MASD+WiSE-FT closes {PAPER_CLOSED:.0%} of the Overall R gap (AudioSet, "
            "contrastive: (22.8 - 13.8) / (25.6 - 13.8), Tables 3 and 5)."]


def _share(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _best_eval(doc: dict) -> list[str]:
    methods = list(doc["methods"])
    train_sets = list(next(iter(doc["methods"].values()))["scores"]) if methods else []
    lines = ["| trained on M_T | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for mt in train_sets:
        lines.append(f"| {mt} | " + " | ".join(doc["methods"][m]["metrics"]["best_eval"][mt]
                                             for m in methods) + " |")
    return lines


def _pmatrix(doc: dict, method: str) -> list[str]:
    res, seeds = doc["methods"][method], len(doc["seeds"])
    evals = list(next(iter(res["scores"].values())))
    lines = [f"#### {method}", "", "| M_T \\ M_E | " + " | ".join(evals) + " |",
             "|---|" + "---|" * len(evals)]
    for mt, row in res["scores"].items():
        lines.append(f"| {mt} | " + " | ".join(_cell(row[me], res["scores_std"][mt][me], seeds,
                                                   _ci(res, "scores", mt, me)) for me in evals) + " |")
    return lines + [""]


def _sweep(doc: dict) -> list[str]:
    lines = []
    for method, rows in doc["alpha_sweep"].items():
        lines += [f"{method}: alpha * tuned + (1 - alpha) * probe", "", "| alpha | P | R |", "|---|---|---|"]
        for alpha, r in sorted(rows.items(), key=lambda kv: float(kv[0])):
            lines.append(f"| {alpha} | {r['P']:.3f} | {r['R']:.3f} |")
        lines.append("")
    return lines


def _recipe(s: dict) -> str:
    """The downstream settings in a sentence, and what the scores were measured on."""
    ft, r = s["finetune"], s["recipe"]
    budget = f"{ft['steps']} steps" if ft.get("steps") else f"{ft['epochs']} epochs"
    scored = (f"Scored on validation: {s['holdout']:g} of train held out (seeded), never eval."
              if s.get("holdout") else "Scored on eval.")
    return (f"Fine-tuning: {budget} at lr {ft['lr']:g}, batch {ft['batch_size']}; mixup {r['mixup']:g}, "
            f"drop path {r['drop_path']:g}, augmentation {'on' if r['augment'] else 'off'}; moddrop "
            f"probability {r['drop']:g}; distillation weight {r['distill_weight']:g}, {_matching(r)}, "
            f"{r['distill_reduction']} over classes, on "
            f"{r['distill_examples'] or 'all'} {r['distill_source']} clips. {scored}")


def _matching(r: dict) -> str:
    if r.get("distill_loss") == "logits":
        return "matching the teacher's logits"
    return f"matching its probabilities at temperature {r['distill_temperature']:g}"


def write_report(out: Path, doc: dict) -> None:
    s = doc["settings"]
    seeds = ", ".join(str(x) for x in doc["seeds"])
    lines = [
        "# mmrt experiment", "",
        f"Data `{s['data']}`, preset `{s['preset']}`, {s.get('objective', 'contrastive')} pretraining, "
        f"metric {doc['metric']} ({doc['task']}), "
        f"modalities {', '.join(doc['modalities'])}, seeds {seeds}; {s['minutes']} min. "
        f"WiSE-FT alpha {s['alpha']}. {_recipe(s)}", "",
        *([made_line(doc["made"]), ""] if doc.get("made") else []),
        "p(M_E; M_T) is the eval-split score of the model trained on M_T and evaluated on M_E. "
        "P is the mean and R the minimum over M_E (averaged over M_T; *_best: the best M_T). "
        + ("Cells are the mean ± std over seeds." if len(doc["seeds"]) > 1 else "One seed: in brackets, "
           "95% bootstrap intervals over the eval examples (resampled 1,000 times, seeded; the same "
           "resamples for every model); they do not include the seed-to-seed spread, which moves a "
           "cell by about ±0.1 here: use --seeds 0,1,2 for figures to quote."),
        "", "## Robustness (paper Table 3)", "", *_headline({"": doc}), "", *_ratios({"": doc}), "",
        "## Headroom: the share of the fine-tune-to-oracle gap closed", "",
        "The oracle matches, on every eval set M_E, the fine-tuned model trained on M_E itself (the "
        "diagonal p(M_E; M_E)). A share is (method - ft) / (oracle - ft): 100% matches every specialist; "
        f"– where oracle - ft is under {MIN_GAP:g}, where one eval set's noise would decide the share. "
        "Overall R's share per seed in brackets.", "", *_headroom(doc), "",
        "## Best eval set for each training set (paper Table 4)", "", *_best_eval(doc), "",
        "## WiSE-FT alpha sweep", "", *_sweep(doc),
        "## p(M_E; M_T) per method", "",
    ]
    for method in doc["methods"]:
        lines += _pmatrix(doc, method)
    lines += ["## Plots", "", "![robustness vs performance](robustness_vs_performance.png)",
              "![P and R by overlap](overlap.png)", "![alpha sweep](alpha_sweep.png)",
              *[f"![{m}](pmatrix_{m.replace('+', '_')}.png)" for m in doc["methods"]], ""]
    atomic.write_text(out / "report.md", "\n".join(lines))


def comparison(docs: dict[str, dict]) -> str:
    """Several experiments side by side (the paper's Table 3, contrastive and MAE blocks): their
    Table 3 rows in turn, then each method's ratios against its own run's ft. ``docs``: label ->
    results.json."""
    first = next(iter(docs.values()))
    lines = ["# mmrt experiments compared", "",
             f"Metric {first['metric']} ({first['task']}), modalities {', '.join(first['modalities'])}.", ""]
    for label, doc in docs.items():
        s = doc["settings"]
        lines.append(f"- **{label}**: data `{s['data']}`, preset `{s['preset']}`, "
                     f"{s.get('objective', 'contrastive')} pretraining, seeds "
                     f"{', '.join(str(x) for x in doc['seeds'])}; {s['minutes']} min"
                     + (f". {made_line(doc['made'])}" if doc.get("made") else ""))
    lines += ["", "## Robustness (paper Table 3)", "", *_headline(docs), "", *_ratios(docs), "",
              "## Best eval set for each training set (paper Table 4)", ""]
    for label, doc in docs.items():
        lines += [f"### {label}", "", *_best_eval(doc), ""]
    return "\n".join(lines)


def write_results(out: Path, per_seed: dict[int, dict], modalities: list[str], opts, task: str,
                  seconds: float, settings: dict, samples: dict | None = None) -> dict:
    doc = build_results(per_seed, modalities, task, samples)
    calls = merged([scores.get("made", []) for scores in per_seed.values()])
    if calls:
        doc["made"] = calls
    doc["settings"] = {"preset": opts.preset, "objective": opts.objective, "data": str(opts.data),
                       "alpha": opts.alpha, **settings, "minutes": round(seconds / 60, 1)}
    atomic.write_text(out / RESULTS, json.dumps(doc, indent=2) + "\n")
    write_report(out, doc)
    write_plots(out, doc)
    return doc
