"""`mmrt serve BUNDLE`: the KServe v2 / Triton gRPC server (torch-free; the `serve` extra)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mmrt.errors import UserError

# Fault injection for tests and drills: encoders that always fail, and a delay for every encoder run.
FAULTS_ENV, DELAY_ENV = "MMRT_INJECT_FAULTS", "MMRT_INJECT_DELAY_MS"


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve a bundle over gRPC (KServe v2 / Triton protocol)",
                       description="Serve BUNDLE over the KServe v2 / Triton gRPC protocol: each request "
                       "runs only the encoders of the modalities it carries (AUDIO, VIDEO, TEXT), "
                       "fuses their embeddings and answers SCORES (and EMBEDDING on request). "
                       "Streams accumulate modalities per sequence_id. SIGTERM or SIGINT drains "
                       "in-flight requests and exits 0.")
    p.add_argument("bundle", type=Path, help="bundle folder from 'mmrt export'")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback "
                   "only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8001, help="gRPC port (default 8001; 0 picks a free one)")
    p.add_argument("--metrics-port", type=int, default=8002,
                   help="Prometheus metrics over HTTP (default 8002; -1 for none)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate chain (with --tls-key): serve TLS")
    p.add_argument("--tls-key", type=Path, help="PEM private key")
    p.add_argument("--token-file", type=Path,
                   help="file holding a bearer token clients must send ('authorization: Bearer ...')")
    p.add_argument("--max-batch", type=int, default=32,
                   help="rows per request, and per encoder batch across requests (default 32)")
    p.add_argument("--max-queue-delay-ms", type=float, default=0.0,
                   help="how long a request may wait for an encoder batch to fill (default 0: batch "
                   "what is queued when the encoder frees up, adding no latency when idle)")
    p.add_argument("--no-batching", action="store_true", help="run each request's encoders on their own")
    p.add_argument("--max-sequences", type=int, default=1024, help="open streaming sequences (default 1024)")
    p.add_argument("--sequence-idle-s", type=float, default=60.0,
                   help="drop a sequence idle this long (default 60)")
    p.add_argument("--max-sequence-mb", type=float, default=64.0,
                   help="embeddings held by open sequences, all together (default 64)")
    limits = p.add_argument_group("request limits", "checked before any work; a request past one is "
                                  "refused with INVALID_ARGUMENT naming it (ModelConfig reports them)")
    limits.add_argument("--max-audio-s", type=float, default=60.0,
                        help="seconds of audio per row (default 60)")
    limits.add_argument("--max-video-frames", type=int, default=1024, help="frames per row (default 1024)")
    limits.add_argument("--max-video-side", type=int, default=4096,
                        help="pixels on a frame's longer side (default 4096)")
    limits.add_argument("--max-video-aspect", type=float, default=16.0,
                        help="a frame's long side over its short side (default 16)")
    limits.add_argument("--max-text-bytes", type=int, default=4096,
                        help="UTF-8 bytes per text row, before tokenizing (default 4096)")
    p.add_argument("--max-message-mb", type=int, default=64, help="largest request or response (default 64)")
    p.add_argument("--threads", type=int, default=0,
                   help="ONNX Runtime threads per graph (default: all cores)")
    p.add_argument("--workers", type=int, default=64, help="requests handled at once (default 64)")
    p.add_argument("--monolithic", action="store_true",
                   help="serve the bundle's fused.onnx baseline instead (every encoder runs for every "
                   "request; export with --baseline): what 'mmrt bench --baseline' compares against")
    p.set_defaults(run=run, prog=p.prog)


def _options(args: argparse.Namespace):
    from mmrt.preprocess import SAMPLE_RATE
    from mmrt.runtime.batcher import BatchingOptions
    from mmrt.runtime.limits import Limits
    from mmrt.runtime.sequences import SequenceLimits
    from mmrt.runtime.server import ServerOptions

    bounds = (("--port", args.port, 0), ("--max-batch", args.max_batch, 1),
              ("--max-sequences", args.max_sequences, 1), ("--max-message-mb", args.max_message_mb, 1),
              ("--workers", args.workers, 1), ("--threads", args.threads, 0),
              ("--max-sequence-mb", args.max_sequence_mb, 0),
              ("--max-audio-s", args.max_audio_s, 1 / SAMPLE_RATE),
              ("--max-video-frames", args.max_video_frames, 1), ("--max-video-side", args.max_video_side, 1),
              ("--max-video-aspect", args.max_video_aspect, 1), ("--max-text-bytes", args.max_text_bytes, 1))
    for flag, value, low in bounds:
        if value < low:
            raise UserError(f"{flag} {value}: expected {low:g} or more")
    if args.max_queue_delay_ms < 0 or args.sequence_idle_s <= 0:
        raise UserError("--max-queue-delay-ms must be >= 0 and --sequence-idle-s > 0")
    token = None
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise UserError(f"--token-file {args.token_file}: cannot read it ({e.strerror})") from None
        if not token:
            raise UserError(f"--token-file {args.token_file}: empty (expected a token)")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not path.is_file():
            raise UserError(f"{flag} {path}: file not found")
    faults = tuple(f for f in os.environ.get(FAULTS_ENV, "").split(",") if f)
    try:
        delay_s = float(os.environ.get(DELAY_ENV, "0")) / 1000
    except ValueError:
        raise UserError(f"{DELAY_ENV}={os.environ[DELAY_ENV]!r}: expected milliseconds") from None
    return ServerOptions(
        host=args.host, port=args.port, metrics_port=None if args.metrics_port < 0 else args.metrics_port,
        tls_cert=args.tls_cert, tls_key=args.tls_key, token=token, max_message_mb=args.max_message_mb,
        workers=args.workers, threads=args.threads,
        batching=BatchingOptions(not args.no_batching, args.max_batch, args.max_queue_delay_ms / 1000),
        limits=Limits(args.max_batch, round(args.max_audio_s * SAMPLE_RATE), args.max_video_frames,
                      args.max_video_side, args.max_video_aspect, args.max_text_bytes),
        sequences=SequenceLimits(args.max_sequences, args.sequence_idle_s, args.max_sequence_mb),
        faults=faults, delay_s=delay_s, monolithic=args.monolithic)


def run(args: argparse.Namespace) -> int:
    from mmrt.runtime.server import Server

    server = Server(args.bundle, _options(args)).start()
    print(f"mmrt serve: listening on {server.address}", flush=True)
    server.serve_until_signal()
    return 0
