"""`mmrt serve BUNDLE|REPO`: the KServe v2 / Triton server, gRPC and REST (torch-free; the `serve` extra)."""

from __future__ import annotations

import argparse
import logging
import os
import stat
from pathlib import Path

from mmrt.errors import UserError
from mmrt.knobs import add_flags, check, from_flags
from mmrt.runtime.engine.batcher import BatchingOptions
from mmrt.runtime.engine.limits import Limits
from mmrt.runtime.engine.sequences import SequenceLimits
from mmrt.runtime.frontends.admission import AdmissionOptions
from mmrt.runtime.frontends.options import ServerOptions

log = logging.getLogger(__name__)

# Fault injection for tests and drills: encoders that always fail, and a delay for every encoder run.
FAULTS_ENV, DELAY_ENV = "MMRT_INJECT_FAULTS", "MMRT_INJECT_DELAY_MS"

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
    p.add_argument("--no-batching", action="store_true", help="run each request's encoders on their own")
    p.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto",
                   help="encoder graphs to run: the bundle's INT8 copies ('mmrt export --int8'), FP32, or "
                   "auto (default): INT8 if the bundle has them and they are at least 10%% faster on "
                   "this machine, timed at start-up; responses say which ('precision')")
    p.add_argument("--monolithic", action="store_true",
                   help="serve the bundle's fused.onnx baseline instead (every encoder runs for every "
                   "request; export with --baseline): what 'mmrt bench --baseline' compares against")
    add_flags(p.add_argument_group("request limits", "checked before any work; a request past one is refused "
                                   "with INVALID_ARGUMENT naming it (ModelConfig reports them)"), Limits)
    capacity = p.add_argument_group("capacity, batching, connections and shutdown")
    for options in (AdmissionOptions, SequenceLimits, BatchingOptions, ServerOptions):
        add_flags(capacity, options)
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


def _options(args: argparse.Namespace) -> ServerOptions:
    for flag, value, low in (("--port", args.port, 0), ("--http-port", args.http_port, -1)):
        check(flag, value, low)
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
    limits = from_flags(Limits, a)
    return from_flags(
        ServerOptions, a,
        host=a.host, port=a.port, http_port=None if a.http_port < 0 else a.http_port,
        metrics_port=None if a.metrics_port < 0 else a.metrics_port,
        metrics_host=a.metrics_host, tls_cert=a.tls_cert, tls_key=a.tls_key, tls_client_ca=a.tls_client_ca,
        verify_key=a.verify_key,
        token=read_token(a.token_file) if a.token_file is not None else None,
        admin_token=read_token(a.admin_token_file, "--admin-token-file") if a.admin_token_file else None,
        remote_shm=a.allow_remote_shm, admission=from_flags(AdmissionOptions, a),
        batching=from_flags(BatchingOptions, a, enabled=not a.no_batching, max_batch=limits.max_batch),
        limits=limits,
        sequences=from_flags(SequenceLimits, a), faults=faults, delay_s=delay_s,
        monolithic=a.monolithic, precision=a.precision, model_control=a.model_control)


def run(args: argparse.Namespace) -> int:
    from mmrt.runtime.frontends.server import Server

    server = Server(args.bundle, _options(args)).start()
    print(f"mmrt serve: listening on {server.address}", flush=True)  # the gRPC address, first
    if server.http_address:
        print(f"mmrt serve: REST listening on {server.http_address}", flush=True)
    server.serve_until_signal()
    return 0
