"""PNG plots of an experiment (paper Figs. 5-6): robustness vs performance per M_T, P and R by
overlap, a p(M_E; M_T) heat map per method, and the WiSE-FT alpha curve."""

from __future__ import annotations

import io
from pathlib import Path

from mmrt import atomic


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())


def robustness_vs_performance(doc: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for method, res in doc["methods"].items():
        per_train = res["metrics"]["per_train"]["overall"]
        xs = [v["P"] for v in per_train.values()]
        ys = [v["R"] for v in per_train.values()]
        ax.scatter(xs, ys, label=method, s=28)
    ax.set_xlabel("performance P(M_T) (mean over M_E)")
    ax.set_ylabel("robustness R(M_T) (min over M_E)")
    ax.set_title("each point: one training set M_T")
    ax.legend(fontsize=8)
    return fig


def by_overlap(doc: dict):
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_r) = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for method, res in doc["methods"].items():
        rows = res["metrics"]["by_overlap"]
        ks = sorted(rows, key=int)
        ax_p.plot([int(k) for k in ks], [rows[k]["P"] for k in ks], marker="o", label=method)
        ax_r.plot([int(k) for k in ks], [rows[k]["R"] for k in ks], marker="o", label=method)
    for ax, name in ((ax_p, "P"), (ax_r, "R")):
        ax.set_xlabel("shared modalities k = |M_T ∩ M_E|")
        ax.set_title(f"{name} by overlap")
    ax_p.set_ylabel(doc["metric"])
    ax_r.legend(fontsize=8)
    return fig


def heat_map(doc: dict, method: str):
    import matplotlib.pyplot as plt
    import numpy as np

    scores = doc["methods"][method]["scores"]
    trains, evals = list(scores), list(next(iter(scores.values())))
    grid = np.array([[scores[t][e] for e in evals] for t in trains])
    fig, ax = plt.subplots(figsize=(1.1 * len(evals) + 2, 0.6 * len(trains) + 1.5))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=max(1e-9, float(grid.max())))
    ax.set_xticks(range(len(evals)), evals, rotation=45, ha="right")
    ax.set_yticks(range(len(trains)), trains)
    for i in range(len(trains)):
        for j in range(len(evals)):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xlabel("evaluated on M_E")
    ax.set_ylabel("trained on M_T")
    ax.set_title(f"p(M_E; M_T), {method} ({doc['metric']})")
    fig.colorbar(im, ax=ax)
    return fig


def alpha_curve(doc: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, rows in doc["alpha_sweep"].items():
        alphas = sorted(rows, key=float)
        ax.plot([float(a) for a in alphas], [rows[a]["P"] for a in alphas], marker="o", label=f"{method} P")
        ax.plot([float(a) for a in alphas], [rows[a]["R"] for a in alphas], marker="s", ls="--",
                label=f"{method} R")
    ax.set_xlabel("alpha (0 = probe, 1 = tuned)")
    ax.set_ylabel(doc["metric"])
    ax.legend(fontsize=8)
    return fig


def write_plots(out: Path, doc: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only; servers and CI have no display
    written = []
    if not doc["methods"]:
        return written
    figures = {"robustness_vs_performance.png": robustness_vs_performance(doc),
               "overlap.png": by_overlap(doc)}
    if doc["alpha_sweep"]:
        figures["alpha_sweep.png"] = alpha_curve(doc)
    for method in doc["methods"]:
        figures[f"pmatrix_{method.replace('+', '_')}.png"] = heat_map(doc, method)
    for name, fig in figures.items():
        save_figure(fig, out / name)
        written.append(out / name)
    return written
