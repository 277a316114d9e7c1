"""What `mmrt serve` is started with (``ServerOptions``, and the gRPC channel options it implies),
and the warning for a bind that lets the network in unguarded. No torch."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from mmrt.runtime.admission import AdmissionOptions
from mmrt.runtime.batcher import BatchingOptions
from mmrt.runtime.limits import Limits
from mmrt.runtime.sequences import SequenceLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8001
    http_port: int | None = None  # KServe v2 REST (the CLI's default is 8000, as Triton's); None: none
    metrics_port: int | None = 8002  # None: no metrics endpoint
    metrics_host: str = "127.0.0.1"  # metrics stay on loopback unless asked otherwise
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # require client certificates signed by this CA (mutual TLS)
    token: str | None = None  # clients send "authorization: Bearer <token>"
    verify_key: Path | None = None  # Ed25519 public key: serve only a bundle it signed
    max_message_mb: int = 4  # gRPC's own default; receiving costs ~4x a message's size in transient memory
    admission: AdmissionOptions = AdmissionOptions()
    keepalive_s: float = 60.0  # ping a connection idle this long; drop it if the ping goes unanswered
    max_connection_idle_s: float = 300.0  # close a connection with no call for this long
    max_connection_age_s: float = 0.0  # 0: connections may live forever
    threads: int = 0  # ONNX Runtime intra-op threads per session (0: all cores)
    batching: BatchingOptions = BatchingOptions()
    limits: Limits = Limits()  # what one request may ask, checked before any work
    sequences: SequenceLimits = SequenceLimits()
    grace_s: float = 30.0  # how long a drain waits for admitted calls and open streams
    drain_delay_s: float = 1.0  # lame duck: NOT_SERVING and new calls refused, before the wait
    faults: tuple[str, ...] = ()  # encoders that always fail (fault injection for tests and drills)
    delay_s: float = 0.0  # added to every encoder run (fault injection: slow encoders)
    monolithic: bool = False  # serve the bundle's fused.onnx baseline instead (mmrt bench --baseline)
    precision: str = "auto"  # encoder graphs: "fp32", "int8", or "auto" (runtime.precision)
    poll_s: float = 5.0  # a model repository: look for new versions this often (0: load calls only)

    def grpc_options(self) -> list[tuple[str, int]]:
        limit, a = self.max_message_mb << 20, self.admission
        ms = {"grpc.keepalive_time_ms": self.keepalive_s,
              "grpc.max_connection_idle_ms": self.max_connection_idle_s,
              "grpc.max_connection_age_ms": self.max_connection_age_s,
              "grpc.max_connection_age_grace_ms": self.grace_s}
        return [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                ("grpc.keepalive_timeout_ms", 20_000), ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
                ("grpc.max_concurrent_streams", a.max_calls + a.max_streams + 16),  # per connection
                *((k, int(v * 1000)) for k, v in ms.items() if v > 0)]


def warn_if_exposed(o: ServerOptions) -> None:
    """A bind beyond loopback without TLS or a token lets anyone on the network in: say so."""
    try:
        loopback = o.host == "localhost" or ipaddress.ip_address(o.host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not (o.tls_cert or o.token):
        log.warning("listening on %s without TLS or a token: anyone who can reach it can use the model "
                    "(--tls-cert/--tls-key, --token-file)", o.host)
