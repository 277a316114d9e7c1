"""The gRPC server around the engine: KServe v2 service, health, reflection, optional TLS and
bearer-token auth, a message size limit, Prometheus metrics, graceful drain. No torch."""

from __future__ import annotations

import hmac
import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mmrt.errors import UserError
from mmrt.runtime.batcher import BatchingOptions
from mmrt.runtime.bundle import open_bundle
from mmrt.runtime.engine import Engine
from mmrt.runtime.limits import Limits
from mmrt.runtime.memory import limit_malloc_arenas
from mmrt.runtime.metrics import Metrics
from mmrt.runtime.monolithic import MonolithicEngine
from mmrt.runtime.protocol import POOL
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc
from mmrt.runtime.sequences import SequenceLimits
from mmrt.runtime.servicer import InferenceServicer
from mmrt.runtime.sessions import SessionOptions

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
HEALTH_PREFIX = "/grpc.health.v1.Health/"


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8001
    metrics_port: int | None = 8002  # None: no metrics endpoint
    tls_cert: Path | None = None
    tls_key: Path | None = None
    token: str | None = None  # clients send "authorization: Bearer <token>"
    max_message_mb: int = 64
    workers: int = 64  # gRPC handler threads (concurrent requests in flight)
    threads: int = 0  # ONNX Runtime intra-op threads per session (0: all cores)
    batching: BatchingOptions = BatchingOptions()
    limits: Limits = Limits()  # what one request may ask, checked before any work
    sequences: SequenceLimits = SequenceLimits()
    grace_s: float = 30.0  # how long a drain waits for in-flight requests
    faults: tuple[str, ...] = ()  # encoders that always fail (fault injection for tests and drills)
    delay_s: float = 0.0  # added to every encoder run (fault injection: slow encoders)
    monolithic: bool = False  # serve the bundle's fused.onnx baseline instead (mmrt bench --baseline)


class _Gate(grpc.ServerInterceptor):
    """Token auth and drain: refuses before any handler runs (health checks pass the token check)."""

    def __init__(self, token: str | None):
        self.token = token.encode() if token else None
        self.draining = False

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None:
            return None
        if self.draining and not details.method.startswith(HEALTH_PREFIX):
            return self._wrap(handler, grpc.StatusCode.UNAVAILABLE, "server is shutting down")
        if self.token and not details.method.startswith(HEALTH_PREFIX):
            sent = dict(details.invocation_metadata).get("authorization", "")
            if not hmac.compare_digest(sent.encode(), b"Bearer " + self.token):
                why = "missing bearer token" if not sent else "wrong bearer token"
                return self._wrap(handler, grpc.StatusCode.UNAUTHENTICATED, why)
        return handler

    @staticmethod
    def _wrap(handler, code: grpc.StatusCode, message: str):
        """A handler of the same streaming kind as ``handler`` that aborts with ``code``."""
        def abort(request_or_iterator, context):
            context.abort(code, message)

        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(abort)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(abort)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(abort)
        return grpc.unary_unary_rpc_method_handler(
            abort, request_deserializer=handler.request_deserializer)


class Server:
    """A running server: ``start()``, then ``wait()`` until ``stop()`` or a signal drains it."""

    def __init__(self, bundle_dir: str | Path, options: ServerOptions):
        if (options.tls_cert is None) != (options.tls_key is None):
            raise UserError("--tls-cert and --tls-key go together")
        self.options = options
        limit_malloc_arenas()  # before any worker thread allocates
        self.metrics = Metrics()
        bundle = open_bundle(bundle_dir, SessionOptions(threads=options.threads), baseline=options.monolithic)
        if options.monolithic:
            self.engine: Engine = MonolithicEngine(bundle, options.limits)
        else:
            self.engine = Engine(bundle, options.batching, options.limits, options.sequences,
                                 faults=options.faults, observe=self.metrics.observe_encoder,
                                 delay_s=options.delay_s)
        self.servicer = InferenceServicer(self.engine, self.metrics)
        self.gate = _Gate(options.token)
        limit = options.max_message_mb << 20
        self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=options.workers),
                                interceptors=[self.gate],
                                options=[("grpc.max_receive_message_length", limit),
                                         ("grpc.max_send_message_length", limit)])
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(self.servicer, self.grpc)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), self.grpc, pool=POOL)
        address = f"{options.host}:{options.port}"
        self.port = self._bind(address)
        self.address = f"{options.host}:{self.port}"
        self.metrics_server, self.metrics_port = None, None
        self.stopped = threading.Event()
        self.stop_lock = threading.Lock()

    def _bind(self, address: str) -> int:
        o = self.options
        try:
            if o.tls_cert:
                creds = grpc.ssl_server_credentials([(o.tls_key.read_bytes(), o.tls_cert.read_bytes())])
                port = self.grpc.add_secure_port(address, creds)
            else:
                port = self.grpc.add_insecure_port(address)
        except (OSError, RuntimeError) as e:
            raise UserError(f"cannot listen on {address} ({e})") from None
        if not port:
            raise UserError(f"cannot listen on {address} (in use, or not an address of this machine)")
        return port

    def start(self) -> Server:
        self.grpc.start()
        for name in ("", SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.options.metrics_port is not None:
            from prometheus_client import start_http_server

            try:
                self.metrics_server, _ = start_http_server(self.options.metrics_port, self.options.host,
                                                           registry=self.metrics.registry)
            except OSError as e:
                self.grpc.stop(0)
                raise UserError(f"--metrics-port {self.options.metrics_port}: cannot listen "
                                f"({e.strerror})") from None
            self.metrics_port = self.metrics_server.server_port
        m = self.engine.manifest
        log.info("serving %s (%s%s) on %s%s; metrics on %s", m.name, "+".join(m.modalities),
                 ", monolithic baseline" if self.options.monolithic else "", self.address,
                 " with TLS" if self.options.tls_cert else "",
                 f"http://{self.options.host}:{self.metrics_port}/metrics"
                 if self.options.metrics_port is not None else "no port")
        return self

    def stop(self, grace_s: float | None = None) -> None:
        """Drain: refuse new requests (UNAVAILABLE), finish those in flight, then stop. Idempotent
        (a second SIGTERM, or a stop after a signal, waits for the first to finish)."""
        with self.stop_lock:
            if self.stopped.is_set():
                return
            self._drain(grace_s)

    def _drain(self, grace_s: float | None) -> None:
        grace = self.options.grace_s if grace_s is None else grace_s
        self.gate.draining = True  # from here new calls get UNAVAILABLE
        self.servicer.ready = False
        self.health.enter_graceful_shutdown()
        if not self.servicer.wait_idle(grace):
            log.warning("drain: requests still running after %.0f s; stopping anyway", grace)
        self.grpc.stop(min(grace, 1.0)).wait()
        self.engine.close()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        self.stopped.set()
        log.info("stopped")

    def wait(self) -> None:
        self.stopped.wait()

    def serve_until_signal(self) -> None:
        """Block until SIGTERM or SIGINT, then drain and return (the process exits 0)."""
        def drain(signum, frame):
            log.info("%s: draining in-flight requests", signal.Signals(signum).name)
            threading.Thread(target=self.stop, daemon=True).start()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, drain)
        self.wait()
