"""The bench's report: report.json (machine), report.md (human), requests.csv (one row a request),
and PNG plots (latency per subset, score per subset, mmrt against the monolithic graph)."""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from pathlib import Path

from mmrt import atomic
from mmrt.benchmarks.timing import machine

log = logging.getLogger(__name__)


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(ci: dict | None, signed: bool = False) -> str:
    if not ci:
        return ""
    f = "{:+.3f}" if signed else "{:.3f}"
    return f" [{f.format(ci['low'])}, {f.format(ci['high'])}]"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def headline(report: dict) -> str:
    """One line: what the dropout costs in score and what per-modality serving saves in time."""
    metric, rob = report["metric"], report["robustness"]
    dropped = "+".join(report["drop"]) or "nothing"
    left = "+".join(m for m in report["modalities"] if m not in report["drop"])
    line = (f"{dropped} dropped: {metric} {_fmt(report['overall']['score'])} on what is left "
            f"({left}; full set {_fmt(rob['full'])}); P {_fmt(rob['P'])}, R {_fmt(rob['R'])}; "
            f"p50 {report['overall']['latency_ms']['p50']:.1f} ms "
            f"({report.get('precision', 'unknown').upper()})")
    vs = report.get("vs_baseline", {}).get("overall")
    if vs:
        line += (f" vs {report['baseline']['overall']['latency_ms']['p50']:.1f} ms monolithic "
                 f"({vs['p50_ratio']:.2f}x) at {metric} {_fmt(vs['baseline_score'])}")
    return line


def markdown(report: dict, opts) -> str:
    m = report["metric"]
    lines = [f"# mmrt bench ({time.strftime('%Y-%m-%d')}, {machine()})", "", headline(report), "",
             f"{report['examples']} {opts.split} examples from {opts.data}; dropped: "
             f"{', '.join(report['drop']) or 'none'}; failing at random: "
             f"{', '.join(f'{k} {v:g}' for k, v in report['drop_rate'].items()) or 'none'}; encoders in "
             f"{report.get('precision', 'unknown').upper()}"
             + (f" (monolithic baseline in {report['baseline']['precision'].upper()})" if "baseline" in report
                else "") + ".", "",
             "## Robustness and latency by modality subset", "",
             f"{m} with its 95% bootstrap interval (the examples resampled 1,000 times, seeded); the "
             f"change is the subset's score minus the full set's, signed: negative is a loss. A model "
             f"that ranks at random would score {_fmt(report.get('chance'))}.", "",
             f"| subset | {m} [95% CI] | change vs full set [95% CI] | p50 ms | p90 | p95 | p99 | "
             "server p50 ms | req/s | requests |",
             "|---" * 10 + "|"]
    rob = report["robustness"]
    for name, row in [*report["subsets"].items(), ("overall (dropout workload)", report["overall"])]:
        lat = row["latency_ms"]
        change = rob["change"].get(name)
        change_ci = _interval(rob["change_ci95"].get(name), signed=True) if change is not None else ""
        lines.append(f"| {name} | {_fmt(row['score'])}{_interval(row.get('ci95'))} | "
                     f"{_signed(change)}{change_ci} | "
                     f"{lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p95']:.2f} | {lat['p99']:.2f} | "
                     f"{row['server_ms']['p50']:.2f} | {row['throughput_rps']:.1f} | {row['requests']} |")
    ci = rob.get("ci95", {})
    lines += ["", f"Over the subsets the dropout leaves: P = {_fmt(rob['P'])}{_interval(ci.get('P'))}, "
              f"R = {_fmt(rob['R'])}{_interval(ci.get('R'))} (full set {_fmt(rob['full'])}).", ""]
    levels = report["overall"]["concurrency"]
    if len(levels) > 1:
        lines += ["## Concurrency", "", "| clients | p50 ms | p99 ms | req/s |", "|---|---|---|---|"]
        lines += [f"| {c} | {r['latency_ms']['p50']:.2f} | {r['latency_ms']['p99']:.2f} | "
                  f"{r['throughput_rps']:.1f} |" for c, r in levels.items()]
        lines.append("")
    if "vs_baseline" in report:
        lines += ["## Against the monolithic graph (every encoder always runs)", "",
                  f"| subset | mmrt p50 ms | monolithic p50 ms | ratio | mmrt {m} | monolithic {m} |",
                  "|---|---|---|---|---|---|"]
        base = {**report["baseline"]["subsets"], "overall": report["baseline"]["overall"]}
        mine = {**report["subsets"], "overall": report["overall"]}
        for name, row in report["vs_baseline"].items():
            lines.append(f"| {name} | {mine[name]['latency_ms']['p50']:.2f} | "
                         f"{base[name]['latency_ms']['p50']:.2f} | {row['p50_ratio']:.2f}x | "
                         f"{_fmt(row['score'])} | {_fmt(row['baseline_score'])} |")
        lines.append("")
    if "streaming" in report:
        s = report["streaming"]
        first, final = s["first_answer_ms"] or {}, s["final_answer_ms"] or {}
        lines += ["## Streaming (modalities one by one on a sequence)", "",
                  f"{s['sequences']} sequences, {s['errors']} errors; {m} of the final answers "
                  f"{_fmt(s['score_final'])}; first answer p50 {_fmt(first.get('p50'), 2)} ms, "
                  f"final answer p50 {_fmt(final.get('p50'), 2)} ms.", ""]
    lines += ["Client time is tritonclient's, from send to answer; server time is the server's own "
              "(`server_time_ns` in the response). Files: report.json, requests.csv, *.png.", ""]
    return "\n".join(lines)


def requests_csv(phases) -> str:
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(["phase", "example", "subset", "concurrency", "step", "client_ms", "server_ms", "ok",
                  "error"])
    for phase in phases:
        for r in phase.records:
            out.writerow([phase.name, r.example, r.subset, r.concurrency, r.step, f"{r.client_ms:.3f}",
                          f"{r.server_ms:.3f}", int(r.ok), r.error])
    return buf.getvalue()


def plots(folder: Path, report: dict, phases) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: no plots")
        return []
    written = []
    names = list(report["subsets"])
    mmrt_phases = {p.name.split(" ", 1)[1]: p for p in phases if p.name.startswith("mmrt ")}
    fig, ax = plt.subplots(figsize=(8, 4))
    data = [[r.client_ms for r in mmrt_phases[n].records if r.ok] or [0.0] for n in names]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20)
    ax.set_ylabel("client latency (ms)")
    ax.set_title("Latency by modality subset")
    fig.tight_layout()
    fig.savefig(folder / "latency.png", dpi=120)
    written.append("latency.png")
    fig, ax = plt.subplots(figsize=(8, 4))
    rows = [report["subsets"][n] for n in names]
    heights = [r["score"] or 0.0 for r in rows]
    errors = [[h - r["ci95"]["low"] if r.get("ci95") else 0.0 for h, r in zip(heights, rows, strict=True)],
              [r["ci95"]["high"] - h if r.get("ci95") else 0.0 for h, r in zip(heights, rows, strict=True)]]
    ax.bar(names, heights, yerr=errors, capsize=4, label=f"{report['metric']} (95% bootstrap interval)")
    if report.get("chance") is not None:
        ax.axhline(report["chance"], color="grey", linestyle="--", label=f"chance ({report['chance']:.3f})")
    ax.set_ylabel(report["metric"])
    ax.set_title("Score by modality subset")
    ax.legend(loc="lower right")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(folder / "score.png", dpi=120)
    written.append("score.png")
    if "vs_baseline" in report:
        rows = report["vs_baseline"]
        base = {**report["baseline"]["subsets"], "overall": report["baseline"]["overall"]}
        mine = {**report["subsets"], "overall": report["overall"]}
        xs = list(rows)
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.4
        ax.bar([i - width / 2 for i in range(len(xs))], [mine[x]["latency_ms"]["p50"] for x in xs], width,
               label="mmrt (per-modality)")
        ax.bar([i + width / 2 for i in range(len(xs))], [base[x]["latency_ms"]["p50"] for x in xs], width,
               label="monolithic")
        ax.set_xticks(range(len(xs)), xs, rotation=20)
        ax.set_ylabel("p50 latency (ms)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "vs_monolithic.png", dpi=120)
        written.append("vs_monolithic.png")
    plt.close("all")
    return written


def write_report(out: Path, report: dict, phases, opts) -> None:
    with atomic.staged_dir(out, overwrite=True) as stage:
        atomic.write_text(stage / "report.json", json.dumps(report, indent=2) + "\n")
        atomic.write_text(stage / "report.md", markdown(report, opts))
        atomic.write_text(stage / "requests.csv", requests_csv(phases))
        plots(stage, report, phases)
