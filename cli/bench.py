"""`mmrt bench`: robustness and latency under sensor dropout, through the real gRPC server."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrt.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="robustness and latency under sensor dropout, through the server",
                       description="Send the eval split of DATA through a KServe v2 server (a running one "
                       "with --url, or 'mmrt serve BUNDLE' started for the run with --bundle): its score "
                       "on every modality subset the dropout leaves, P and R over them, and latency "
                       "percentiles and throughput per subset; with --baseline the same through the "
                       "monolithic graph. Writes report.md, report.json, requests.csv and plots to --out.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="HOST:PORT of a running mmrt server")
    where.add_argument("--bundle", type=Path, help="bundle to serve for the run (on a free loopback port)")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (its eval split is sent)")
    p.add_argument("--out", required=True, type=Path, help="report folder (replaced if it exists)")
    p.add_argument("--drop", action="append", default=[], metavar="MODALITY",
                   help="a sensor absent on the rig: no request carries it (repeatable)")
    p.add_argument("--drop-rate", action="append", default=[], metavar="MODALITY=P",
                   help="a sensor that fails at random, per request, with probability P (repeatable)")
    p.add_argument("--concurrency", default="1", help="clients sending at once; a list sweeps (e.g. 1,4,16)")
    p.add_argument("--requests", type=int, help="examples per phase (default: the whole split)")
    p.add_argument("--duration", type=float, help="stop each phase after this many seconds")
    p.add_argument("--streaming", action="store_true",
                   help="also send each example's modalities one by one on a sequence (the rig case)")
    p.add_argument("--baseline", action="store_true",
                   help="also run the monolithic fused.onnx (every encoder always runs) for the ratios")
    p.add_argument("--baseline-url", help="with --url --baseline: a server running 'mmrt serve --monolithic'")
    p.add_argument("--threads", type=int, default=0, help="with --bundle: ONNX Runtime threads per graph")
    p.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto",
                   help="with --bundle: the encoder graphs the server runs ('mmrt serve --precision'; the "
                   "report says which ran)")
    p.add_argument("--split", default="eval", help="split to send (default eval)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sensor failures (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run, prog=p.prog)


def parse_rates(items: list[str]) -> tuple[tuple[str, float], ...]:
    rates = []
    for item in items:
        name, sep, value = item.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not sep or not name or not 0.0 <= rate <= 1.0:
            raise UserError(f"--drop-rate {item!r}: expected MODALITY=P with P between 0 and 1, "
                            f"e.g. audio=0.3")
        rates.append((name, rate))
    return tuple(rates)


def parse_levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        levels = ()
    if not levels or min(levels) < 1:
        raise UserError(f"--concurrency {text!r}: expected positive integers, e.g. 1 or 1,4,16")
    return levels


def run(args: argparse.Namespace) -> int:
    from mmrt.benchmarks.report import headline
    from mmrt.benchmarks.run import BenchOptions, run_bench
    from mmrt.benchmarks.workload import DropPlan

    for flag, value in (("--requests", args.requests), ("--duration", args.duration)):
        if value is not None and value <= 0:
            raise UserError(f"{flag} {value}: expected a positive number")
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: expected a non-negative integer")
    drop = DropPlan(frozenset(args.drop), parse_rates(args.drop_rate), args.seed)
    report = run_bench(BenchOptions(
        data=args.data, out=args.out, url=args.url, bundle=args.bundle, baseline_url=args.baseline_url,
        drop=drop, concurrency=parse_levels(args.concurrency), requests=args.requests, duration=args.duration,
        streaming=args.streaming, baseline=args.baseline, threads=args.threads, precision=args.precision,
        split=args.split,
        progress=not args.quiet))
    print(headline(report))
    print(f"report: {args.out / 'report.md'}")
    return 0
