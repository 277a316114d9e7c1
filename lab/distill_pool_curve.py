"""MASD's gain against the size of its distillation pool (clips pretraining never saw), one seed.

    python -m lab.distill_pool_curve --data D --pretrained P --out runs/pool-curve \\
        [--sizes 240,960,3840] [--seed 0] [--control]

D needs an unseen pool as large as the largest size (`mmrt data make --unseen-size 3840`: the
same seed gives the same pretrain, train and eval, so a model pretrained on the default data
serves). Fine-tuning runs once (it does not read the pool); MASD and MASD+WiSE-FT run once per
size with `--distill-source unseen --distill-examples N`, each on every training set, scored on
eval with the preset's recipe (chosen on validation beforehand; nothing here is chosen from
these scores). Writes RUN/curve.json, RUN/curve.md and RUN/curve.png: Overall and
Transferability R, and the share of the fine-tune-to-oracle gap closed, against the pool size.
Resumable: run the same command again.

Quoted in docs/results/training-recipe.md."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from mmrt import atomic
from mmrt.benchmarks.timing import machine
from mmrt.cli import main as mmrt
from mmrt.robustness import MIN_GAP, PMatrix, robustness_report

METHODS = ("masd", "masd+wiseft")


def run_experiment(args: argparse.Namespace, out: Path, methods: str, *flags: str) -> dict:
    resume = ["--resume"] if out.is_dir() else []
    assert mmrt(["experiment", "--data", str(args.data), "--pretrained", str(args.pretrained),
                 "--out", str(out), "--methods", methods, "--seed", str(args.seed), "--quiet", *flags,
                 *resume]) == 0
    return json.loads((out / "results.json").read_text("utf-8"))


def matrix(results: dict, method: str) -> PMatrix:
    return PMatrix.from_json({"modalities": results["modalities"],
                              "scores": results["methods"][method]["scores"]})


def figures(report: dict, key: str) -> dict:
    """Overall and Transferability R from ``report[key]`` (the metrics, or "oracle" or "gap_closed")."""
    part = report if key == "metrics" else report[key]
    return {"R": part["overall"]["R"], "R_transfer": part["transfer"]["R"]}


def curve_point(results: dict, ft: PMatrix, method: str) -> dict:
    r = robustness_report(matrix(results, method), ft)
    closed = figures(r, "gap_closed")
    return {**figures(r, "metrics"), "P": r["overall"]["P"], "closed_R": closed["R"],
            "closed_R_transfer": closed["R_transfer"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--pretrained", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs/pool-curve"))
    p.add_argument("--sizes", default="240,960,3840", help="pool sizes (clips), comma list")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--control", action="store_true",
                   help="also MASD on distill.jsonl (pretraining clips, all of them): novelty or size?")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = run_experiment(args, args.out / "ft", "ft")
    ft = matrix(base, "ft")
    fr = robustness_report(ft, ft)
    oracle = figures(fr, "oracle")
    points = {"ft": {**figures(fr, "metrics"), "P": fr["overall"]["P"], "oracle_R": oracle["R"],
                     "oracle_R_transfer": oracle["R_transfer"]}}
    for n in sizes:
        res = run_experiment(args, args.out / f"pool-{n}", ",".join(METHODS), "--distill-source", "unseen",
                             "--distill-examples", str(n))
        points[str(n)] = {m: curve_point(res, ft, m) for m in METHODS}
    if args.control:
        res = run_experiment(args, args.out / "control", ",".join(METHODS), "--distill-source", "pretrain")
        size = sum(1 for line in (args.data / "distill.jsonl").open(encoding="utf-8") if line.strip())
        points["control"] = {"size": size, **{m: curve_point(res, ft, m) for m in METHODS}}
    doc = {"machine": machine(), "date": str(date.today()), "seed": args.seed, "data": str(args.data),
           "points": points}
    atomic.write_text(args.out / "curve.json", json.dumps(doc, indent=1) + "\n")
    lines = [f"MASD against its distillation pool size (unseen clips), seed {args.seed}; {doc['machine']}; "
             f"{doc['date']}. Fine-tuning: R {points['ft']['R']:.3f}, Transferability R "
             f"{points['ft']['R_transfer']:.3f}; oracle R {points['ft']['oracle_R']:.3f}.", "",
             "| pool (clips) | method | Overall P | Overall R | Transfer R | gap closed, R | gap closed, "
             "Transfer R |", "|---|---|---|---|---|---|---|"]
    for n in sizes:
        for m in METHODS:
            c = points[str(n)][m]
            lines.append(f"| {n} | {m} | {c['P']:.3f} | {c['R']:.3f} | {c['R_transfer']:.3f} | "
                         f"{share(c['closed_R'])} | {share(c['closed_R_transfer'])} |")
    atomic.write_text(args.out / "curve.md", "\n".join(lines) + "\n")
    plot(args.out / "curve.png", sizes, points,
         f"MASD against its distillation pool, seed {args.seed}, {doc['date']} (eval)")
    print("\n".join(lines))


def share(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"  # None: a gap under MIN_GAP (or ft at or above the oracle)


def plot(path: Path, sizes: list[int], points: dict, title: str) -> None:
    """The share of the gap closed against the pool size, ticks at the measured sizes; the control
    (MASD on as many pretraining clips, ``points["control"]``) as hollow markers where measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator, PercentFormatter

    fig, ax = plt.subplots(figsize=(8.5, 4))
    drawn = 0
    colours = {"masd": "tab:blue", "masd+wiseft": "tab:green"}
    for m in METHODS:
        for key, style, what in (("closed_R", "o-", "Overall R"),
                                 ("closed_R_transfer", "s--", "Transferability R")):
            values = [points[str(n)][m][key] for n in sizes]
            drawn += sum(v is not None for v in values)
            ax.plot(sizes, [float("nan") if v is None else v for v in values], style, color=colours[m],
                    label=f"{m}: {what}")
            control = points.get("control")
            if control and control[m][key] is not None:
                ax.plot([control["size"]], [control[m][key]], style[0], color=colours[m], mfc="white",
                        ms=9, label=f"{m}: {what}, {control['size']} pretraining clips (control)")
    ax.axhline(0.76, color="grey", lw=0.8, ls=":", label="paper: 76% (Overall R)")
    if not drawn:  # fine-tuning within MIN_GAP of the specialists everywhere: no share to plot
        ax.text(0.5, 0.5,
                f"no gap to close at any pool size\n(fine-tuning within {MIN_GAP:g} of the specialists)",
                transform=ax.transAxes, ha="center", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(min(sizes) / 1.5, max(sizes) * 1.5)  # set, not found from the data: there may be none
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("distillation pool (unseen clips)")
    ax.set_ylabel("share of the fine-tune-to-oracle gap closed")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
