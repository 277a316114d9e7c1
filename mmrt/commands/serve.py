"""`mmrt serve BUNDLE|REPO`: the KServe v2 / Triton server, gRPC and REST (torch-free; the `serve` extra)."""

from __future__ import annotations

import argparse
import logging
import os
import stat
from pathlib import Path

from mmrt.errors import UserError

log = logging.getLogger(__name__)

# Fault injection for tests and drills: encoders that always fail, and a delay for every encoder run.
FAULTS_ENV, DELAY_ENV = "MMRT_INJECT_FAULTS", "MMRT_INJECT_DELAY_MS"

# flag -> (type, default, lowest allowed, help): every bound the server takes, checked in one place.
LIMIT_FLAGS = {
    "--max-batch": (int, 32, 1, "rows per request, and per encoder batch across requests"),
    "--max-audio-s": (float, 60.0, 0.001, "seconds of audio per row"),
    "--max-video-frames": (int, 1024, 1, "frames per row"),
    "--max-video-side": (int, 4096, 1, "pixels on a frame's longer side"),
    "--max-video-aspect": (float, 16.0, 1, "a frame's long side over its short side"),
    "--max-text-bytes": (int, 4096, 1, "UTF-8 bytes per text row, before tokenizing"),
    "--max-shm-mb": (float, 64.0, 0, "bytes one request's inputs may copy out of shared memory"),
}
CAPACITY_FLAGS = {
    "--max-calls": (int, 64, 1, "ModelInfer calls at once; past it, RESOURCE_EXHAUSTED at once"),
    "--max-streams": (int, 64, 1, "open ModelStreamInfer streams; past it, RESOURCE_EXHAUSTED"),
    "--stream-idle-s": (float, 120.0, 0.001, "close a stream with no request for this long"),
    "--max-uploads": (int, 64, 1, "REST bodies being received at once, read before a call is admitted "
                      "(a slow upload holds no --max-calls slot); past it, 429"),
    "--max-sequences": (int, 1024, 1, "open streaming sequences"),
    "--sequence-idle-s": (float, 60.0, 0.001, "drop a sequence idle this long"),
    "--max-sequence-mb": (float, 64.0, 0, "embeddings held by open sequences, all together"),
    "--max-message-mb": (int, 4, 1, "largest request or response (receiving one costs about 4x its "
                         "size in memory for a moment)"),
    "--keepalive-s": (float, 60.0, 1, "ping a connection quiet this long; drop it if unanswered"),
    "--max-connection-idle-s": (float, 300.0, 0, "close a connection with no call for this long (0: never)"),
    "--max-connection-age-s": (float, 0.0, 0, "close connections this old, gracefully (0: never)"),
    "--grace-s": (float, 30.0, 0, "on SIGTERM, how long admitted calls and open streams may finish"),
    "--drain-delay-s": (float, 1.0, 0, "on SIGTERM, health says NOT_SERVING and new calls get "
                        "UNAVAILABLE this long before the wait (lame duck)"),
    "--threads": (int, 0, 0, "ONNX Runtime threads per graph (0: all cores)"),
}


def _add(group, flags: dict) -> None:
    for flag, (kind, default, _, what) in flags.items():
        group.add_argument(flag, type=kind, default=default, help=f"{what} (default {default:g})")


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve a bundle or a model repository over gRPC and REST (KServe v2 / "
                       "Triton protocol)",
                       description="Serve BUNDLE (or every model of a repository, REPO/<model>/<version>/, "
                       "each at its newest version; a newer one is swapped in without dropping a request) "
                       "over the KServe v2 / Triton protocol, gRPC and REST: "
                       "each request runs only the encoders of the modalities it carries (AUDIO, VIDEO, "
                       "TEXT), fuses their embeddings and answers SCORES (and EMBEDDING on request). "
                       "Streams accumulate modalities per sequence_id. SIGTERM or SIGINT drains "
                       "in-flight requests and exits 0.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE|REPO",
                   help="bundle folder from 'mmrt export', or a model repository: REPO/<model>/<version>/ "
                   "with a bundle in each (exported with --name <model>), versions numbered 1, 2, ...")
    p.add_argument("--model-control", choices=("none", "poll", "explicit"),
                   help="as Triton's --model-control-mode: 'none' serves what loaded at start and refuses "
                   "load and unload calls (the default for one bundle); 'poll' swaps in new versions "
                   "dropped into the repository and refuses the calls (the default for a repository); "
                   "'explicit' takes load and unload calls, from an admin (--admin-token-file, else only "
                   "from this machine)")
    p.add_argument("--poll-s", type=float, default=5.0,
                   help="with --model-control poll: look for new versions this often, and swap the newest "
                   "in once it verifies and warms up (default 5)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback "
                   "only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8001, help="gRPC port (default 8001; 0 picks a free one)")
    p.add_argument("--http-port", type=int, default=8000,
                   help="KServe v2 REST port, Triton's HTTP API (default 8000; 0 picks a free "
                   "one; -1 for none)")
    p.add_argument("--metrics-port", type=int, default=8002,
                   help="Prometheus metrics over HTTP (default 8002; -1 for none)")
    p.add_argument("--metrics-host", default="127.0.0.1",
                   help="address the metrics bind to (default 127.0.0.1, whatever --host is)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate chain (with --tls-key): serve TLS")
    p.add_argument("--tls-key", type=Path, help="PEM private key (SIGHUP re-reads both, and the CA)")
    p.add_argument("--tls-client-ca", type=Path,
                   help="PEM CA certificate: require client certificates it signed (mutual TLS)")
    p.add_argument("--token-file", type=Path,
                   help="file holding a bearer token clients must send ('authorization: Bearer ...')")
    p.add_argument("--admin-token-file", type=Path,
                   help="file holding the admin token that model control (repository index, load, unload) "
                   "and shared memory need, apart from the inference token; without it those calls come "
                   "only from this machine. Refused on a bind beyond loopback without TLS")
    p.add_argument("--allow-remote-shm", action="store_true",
                   help="take tensors naming shared-memory regions from other machines too, and with "
                   "--admin-token-file the shared-memory calls (default: only from loopback or a Unix "
                   "socket; unregistering every region never is)")
    p.add_argument("--verify-key", type=Path, help="Ed25519 public key (PEM): refuse a bundle it did not "
                   "sign ('mmrt export --sign')")
    p.add_argument("--max-queue-delay-ms", type=float, default=0.0,
                   help="how long a request may wait for an encoder batch to fill (default 0: batch "
                   "what is queued when the encoder frees up, adding no latency when idle)")
    p.add_argument("--no-batching", action="store_true", help="run each request's encoders on their own")
    p.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto",
                   help="encoder graphs to run: the bundle's INT8 copies ('mmrt export --int8'), FP32, or "
                   "auto (default): INT8 if the bundle has them and they are at least 10%% faster on "
                   "this machine, timed at start-up; responses say which ('precision')")
    p.add_argument("--monolithic", action="store_true",
                   help="serve the bundle's fused.onnx baseline instead (every encoder runs for every "
                   "request; export with --baseline): what 'mmrt bench --baseline' compares against")
    _add(p.add_argument_group("request limits", "checked before any work; a request past one is refused "
                              "with INVALID_ARGUMENT naming it (ModelConfig reports them)"), LIMIT_FLAGS)
    _add(p.add_argument_group("capacity, connections and shutdown"), CAPACITY_FLAGS)
    p.set_defaults(run=run, prog=p.prog)


def read_token(path: Path, flag: str = "--token-file") -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or "not UTF-8"
        raise UserError(f"{flag} {path}: cannot read it ({why})") from None
    if not token or not token.isascii() or not token.isprintable():
        raise UserError(f"{flag} {path}: expected a token of printable ASCII characters")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s %s: other users may read it (mode %o); chmod 600 it", flag, path, mode & 0o777)
    return token


def _options(args: argparse.Namespace):
    from mmrt.preprocess import SAMPLE_RATE
    from mmrt.runtime.admission import AdmissionOptions
    from mmrt.runtime.batcher import BatchingOptions
    from mmrt.runtime.limits import Limits
    from mmrt.runtime.options import ServerOptions
    from mmrt.runtime.sequences import SequenceLimits

    for flag, (_, _, low, _) in {**LIMIT_FLAGS, **CAPACITY_FLAGS, "--port": (int, 0, 0, ""),
                                 "--http-port": (int, -1, -1, "")}.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value < low:
            raise UserError(f"{flag} {value}: expected {low:g} or more")
    if args.max_queue_delay_ms < 0:
        raise UserError(f"--max-queue-delay-ms {args.max_queue_delay_ms}: expected 0 or more")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key),
                       ("--tls-client-ca", args.tls_client_ca), ("--verify-key", args.verify_key)):
        if path is not None and not path.is_file():
            raise UserError(f"{flag} {path}: file not found")
    faults = tuple(f for f in os.environ.get(FAULTS_ENV, "").split(",") if f)
    try:
        delay_s = float(os.environ.get(DELAY_ENV, "0")) / 1000
    except ValueError:
        raise UserError(f"{DELAY_ENV}={os.environ[DELAY_ENV]!r}: expected milliseconds") from None
    a = args
    return ServerOptions(
        host=a.host, port=a.port, http_port=None if a.http_port < 0 else a.http_port,
        metrics_port=None if a.metrics_port < 0 else a.metrics_port,
        metrics_host=a.metrics_host, tls_cert=a.tls_cert, tls_key=a.tls_key, tls_client_ca=a.tls_client_ca,
        verify_key=a.verify_key,
        token=read_token(a.token_file) if a.token_file is not None else None,
        admin_token=read_token(a.admin_token_file, "--admin-token-file") if a.admin_token_file else None,
        remote_shm=a.allow_remote_shm, max_message_mb=a.max_message_mb,
        admission=AdmissionOptions(a.max_calls, a.max_streams, a.stream_idle_s, a.max_uploads),
        keepalive_s=a.keepalive_s,
        max_connection_idle_s=a.max_connection_idle_s, max_connection_age_s=a.max_connection_age_s,
        threads=a.threads,
        batching=BatchingOptions(not a.no_batching, a.max_batch, a.max_queue_delay_ms / 1000),
        limits=Limits(a.max_batch, round(a.max_audio_s * SAMPLE_RATE), a.max_video_frames, a.max_video_side,
                      a.max_video_aspect, a.max_text_bytes, a.max_shm_mb),
        sequences=SequenceLimits(a.max_sequences, a.sequence_idle_s, a.max_sequence_mb),
        grace_s=a.grace_s, drain_delay_s=a.drain_delay_s, faults=faults, delay_s=delay_s,
        monolithic=a.monolithic, precision=a.precision, model_control=a.model_control, poll_s=a.poll_s)


def run(args: argparse.Namespace) -> int:
    from mmrt.runtime.server import Server

    server = Server(args.bundle, _options(args)).start()
    print(f"mmrt serve: listening on {server.address}", flush=True)  # the gRPC address, first
    if server.http_address:
        print(f"mmrt serve: REST listening on {server.http_address}", flush=True)
    server.serve_until_signal()
    return 0
