"""`mmrt bench`: robustness and latency under sensor dropout, through the real gRPC server.

Phases, every request through the KServe v2 protocol (tritonclient):
1. robustness: the eval split sent with exactly each modality subset the dropout leaves (and
   with the full set, for the drop), scored with the bundle's metric; P (mean) and R (min)
   over those subsets; these requests also give the latency of each subset;
2. overall: the dropout workload itself (dropped sensors absent, ``--drop-rate`` sensors
   failing per request, seeded) at each ``--concurrency``;
3. with ``--baseline``: phases 1-2 again against the bundle's monolithic graph (every encoder
   always runs) served by ``mmrt serve --monolithic``: the latency and score ratios;
4. with ``--streaming``: each example's modalities sent one by one on a sequence, timing the
   first and the final answer.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mmrt.benchmarks.client import Client, Record, ServerProcess, run_concurrently
from mmrt.benchmarks.model_info import ModelInfo, from_bundle, from_server, served_precision
from mmrt.benchmarks.workload import DropPlan, Example, key, load_examples, plan
from mmrt.bundle import verify_bundle
from mmrt.errors import UserError
from mmrt.intervals import ci95, figure_intervals, resampled_scores, resamples
from mmrt.modalities import all_subsets, subset_key
from mmrt.scores import chance_score, task_score

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class BenchOptions:
    data: Path
    out: Path
    url: str | None = None
    bundle: Path | None = None
    baseline_url: str | None = None
    drop: DropPlan = field(default_factory=DropPlan)
    concurrency: tuple[int, ...] = (1,)
    requests: int | None = None  # examples per phase (default: the whole split)
    duration: float | None = None  # seconds per phase at most
    streaming: bool = False
    baseline: bool = False
    threads: int = 0
    precision: str = "auto"  # with --bundle: the server's --precision
    split: str = "eval"
    progress: bool = True


@dataclass
class Phase:
    name: str
    records: list[Record]
    seconds: float


def latency_summary(records: list[Record], seconds: float) -> dict:
    ok = [r for r in records if r.ok]
    client = np.array([r.client_ms for r in ok]) if ok else np.array([np.nan])
    server = np.array([r.server_ms for r in ok]) if ok else np.array([np.nan])
    return {"latency_ms": {f"p{p}": float(np.percentile(client, p)) for p in PERCENTILES},
            "server_ms": {f"p{p}": float(np.percentile(server, p)) for p in PERCENTILES},
            "throughput_rps": len(ok) / seconds if seconds > 0 else 0.0,
            "requests": len(records), "errors": len(records) - len(ok)}


def score_of(records: list[Record], labels: dict[str, np.ndarray], task: str) -> float | None:
    ok = [r for r in records if r.ok]
    if not ok:
        return None
    y = np.stack([labels[r.example] for r in ok])
    return task_score(y, np.stack([r.scores for r in ok]), task)


class Bench:
    def __init__(self, opts: BenchOptions, manifest: ModelInfo, examples: list[Example]):
        self.opts, self.manifest, self.examples = opts, manifest, examples
        self.modalities = manifest.modalities
        self.labels = {ex.id: ex.labels for ex in examples}
        self.by_id = {ex.id: ex for ex in examples}
        # Bootstrap resamples of the examples, shared by every score of the run (paired intervals).
        self.row = {ex.id: i for i, ex in enumerate(examples)}
        self.y = np.stack([ex.labels for ex in examples])
        self.draws = resamples(len(examples))
        self.samples: dict[str, dict[str, np.ndarray]] = {}  # server label -> subset -> resampled scores

    def scored(self, records: list[Record], label: str, name: str) -> dict:
        """The score of a phase's answers with its 95% bootstrap interval; the resampled scores
        are kept for the intervals of P, R and the changes against the full set."""
        ok = [r for r in records if r.ok]
        if not ok:
            return {"score": None, "ci95": None}
        probs, include = np.zeros(self.y.shape), np.zeros(len(self.y), dtype=bool)
        for r in ok:
            probs[self.row[r.example]], include[self.row[r.example]] = r.scores, True
        samples = resampled_scores(self.y, probs, self.manifest.task, self.draws, include)
        self.samples.setdefault(label, {})[name] = samples
        return {"score": score_of(ok, self.labels, self.manifest.task), "ci95": ci95(samples)}

    def send(self, client: Client, name: str, carried: list[tuple[str, ...]], concurrency: int) -> Phase:
        """One request per example that carries something; stops early past ``--duration``."""
        jobs = [(ex, c) for ex, c in zip(self.examples, carried, strict=True) if c]
        deadline = None if self.opts.duration is None else time.perf_counter() + self.opts.duration

        def one(ex: Example, c: tuple[str, ...]) -> Record | None:
            if deadline is not None and time.perf_counter() > deadline:
                return None
            return client.infer(ex.id, ex.inputs, c, key(c, self.modalities), concurrency)

        bar = tqdm(total=len(jobs), desc=name, unit="req", disable=not self.opts.progress, leave=False)
        start = time.perf_counter()
        with bar:
            records = run_concurrently(jobs, one, concurrency, bar)
        return Phase(name, [r for r in records if r is not None], time.perf_counter() - start)

    def subsets(self) -> list[frozenset[str]]:
        left = self.opts.drop.left(self.modalities)
        if not left:
            raise UserError("--drop: every modality is dropped; nothing would be sent")
        subsets = all_subsets(left)
        full = frozenset(self.modalities)
        return subsets + ([full] if full not in subsets else [])

    def robustness(self, client: Client, label: str) -> tuple[dict, list[Phase]]:
        nothing = DropPlan()
        phases, subsets = [], {}
        c = self.opts.concurrency[0]
        for subset in self.subsets():
            name = subset_key(subset, self.modalities)
            carried = plan(self.examples, self.modalities, nothing, subset)
            phase = self.send(client, f"{label} {name}", carried, c)
            phases.append(phase)
            subsets[name] = {**self.scored(phase.records, label, name),
                             **latency_summary(phase.records, phase.seconds)}
        return subsets, phases

    def overall(self, client: Client, label: str, levels) -> tuple[dict, list[Phase]]:
        carried = plan(self.examples, self.modalities, self.opts.drop)
        phases, by_level = [], {}
        for c in levels:
            phase = self.send(client, f"{label} overall x{c}", carried, c)
            phases.append(phase)
            by_level[str(c)] = {"score": score_of(phase.records, self.labels, self.manifest.task),
                                **latency_summary(phase.records, phase.seconds)}
        first = {**by_level[str(levels[0])], **self.scored(phases[0].records, label, "overall")}
        skipped = sum(1 for c in carried if not c)
        return {**first, "concurrency": by_level, "examples_without_any_sensor": skipped}, phases

    def stream(self, url: str) -> tuple[dict, list[Phase]]:
        from mmrt.benchmarks.streaming import stream_examples

        carried = plan(self.examples, self.modalities, self.opts.drop)
        records, seconds = stream_examples(url, self.manifest.name, self.examples, carried, self.modalities,
                                           self.opts.concurrency[0], self.opts.progress)
        finals = [r for r in records if r.ok and r.step == -1]
        firsts = [r for r in records if r.ok and r.step == 1]
        summary = {"score_final": score_of(finals, self.labels, self.manifest.task),
                   "first_answer_ms": {f"p{p}": float(np.percentile([r.client_ms for r in firsts], p))
                                       for p in PERCENTILES} if firsts else None,
                   "final_answer_ms": {f"p{p}": float(np.percentile([r.client_ms for r in finals], p))
                                       for p in PERCENTILES} if finals else None,
                   "sequences": len(finals), "errors": sum(1 for r in records if not r.ok)}
        return summary, [Phase("stream", records, seconds)]


def run_bench(opts: BenchOptions) -> dict:
    from mmrt.benchmarks.report import write_report

    if (opts.url is None) == (opts.bundle is None):
        raise UserError("give exactly one of --url HOST:PORT (a running server) and --bundle DIR")
    if opts.baseline and opts.bundle is None and opts.baseline_url is None:
        raise UserError("--baseline with --url needs --baseline-url (a server started with "
                        "'mmrt serve BUNDLE --monolithic')")
    if opts.baseline and opts.bundle is not None and "fused" not in verify_bundle(opts.bundle).graphs:
        raise UserError(f"--baseline: {opts.bundle} has no fused.onnx (export it with --baseline)")
    manifest = from_bundle(opts.bundle) if opts.bundle is not None else from_server(opts.url)
    unknown = (opts.drop.drop | {m for m, _ in opts.drop.rates}) - set(manifest.modalities)
    if unknown:
        raise UserError(f"--drop/--drop-rate: unknown modality {sorted(unknown)[0]!r} (the model has "
                        f"{list(manifest.modalities)})")
    examples = load_examples(opts.data, manifest.modalities, manifest.classes, opts.split, opts.requests,
                             opts.progress)
    bench = Bench(opts, manifest, examples)
    phases: list[Phase] = []
    report: dict = {"metric": manifest.metric, "modalities": list(manifest.modalities),
                    "drop": sorted(opts.drop.drop), "drop_rate": dict(opts.drop.rates),
                    "examples": len(examples), "chance": chance_score(bench.y, manifest.task)}
    flags = ("--precision", opts.precision)
    with (ServerProcess(opts.bundle, opts.threads, flags=flags) if opts.bundle
          else _Remote(opts.url)) as server:
        client = Client(server.url, manifest.name)
        client.check()
        report["precision"] = served_precision(server.url, manifest.name)
        report["subsets"], ran = bench.robustness(client, "mmrt")
        phases += ran
        report["overall"], ran = bench.overall(client, "mmrt", opts.concurrency)
        phases += ran
        if opts.streaming:
            report["streaming"], ran = bench.stream(server.url)
            phases += ran
    report["robustness"] = robustness(report["subsets"], bench, opts)
    if opts.baseline:
        with (ServerProcess(opts.bundle, opts.threads, monolithic=True) if opts.bundle
              else _Remote(opts.baseline_url)) as server:
            client = Client(server.url, manifest.name)
            client.check()
            precision = served_precision(server.url, manifest.name)
            subsets, ran = bench.robustness(client, "monolithic")
            phases += [Phase(f"baseline {p.name}", p.records, p.seconds) for p in ran]
            overall, ran = bench.overall(client, "monolithic", opts.concurrency[:1])
            phases += [Phase(f"baseline {p.name}", p.records, p.seconds) for p in ran]
        report["baseline"] = {"subsets": subsets, "overall": overall, "precision": precision}
        report["vs_baseline"] = comparison(report, subsets, overall)
    write_report(opts.out, report, phases, opts)
    return report


def robustness(subsets: dict, bench: Bench, opts: BenchOptions) -> dict:
    """P and R over the subsets the dropout leaves, and each one's signed change against the full
    set (positive: a gain), each with its 95% bootstrap interval."""
    full_key = "+".join(bench.modalities)
    left = [subset_key(s, bench.modalities) for s in all_subsets(opts.drop.left(bench.modalities))]
    scores = {k: subsets[k]["score"] for k in left if subsets[k]["score"] is not None}
    full = subsets[full_key]["score"]
    samples = bench.samples.get("mmrt", {})
    figures = {"P": lambda v: float(np.mean([v[k] for k in scores])),
               "R": lambda v: min(v[k] for k in scores)}
    compared = full is not None
    return {"P": float(np.mean(list(scores.values()))) if scores else None,
            "R": min(scores.values()) if scores else None, "full": full,
            "ci95": figure_intervals({k: samples[k] for k in scores}, figures) if scores else {},
            "change": {k: v - full for k, v in scores.items()} if compared else {},
            "change_ci95": {k: ci95(samples[k] - samples[full_key]) for k in scores} if compared else {}}


def comparison(report: dict, subsets: dict, overall: dict) -> dict:
    """mmrt against the monolithic graph: p50 latency ratio and score difference, per subset."""
    rows = {}
    for name, mine in itertools.chain(report["subsets"].items(), [("overall", report["overall"])]):
        theirs = overall if name == "overall" else subsets.get(name)
        if theirs is None:
            continue
        rows[name] = {"p50_ratio": mine["latency_ms"]["p50"] / theirs["latency_ms"]["p50"],
                      "score": mine["score"], "baseline_score": theirs["score"]}
    return rows


class _Remote:
    """A server someone else runs (``--url``): nothing to start or stop."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self) -> _Remote:
        return self

    def __exit__(self, *exc) -> None:
        pass
