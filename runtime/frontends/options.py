"""What `mmrt serve` is started with (``ServerOptions``, and the gRPC channel options it implies),
and what a bind beyond loopback is refused or warned about. No torch."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mmrt.errors import UserError
from mmrt.knobs import knob
from mmrt.runtime.engine.batcher import BatchingOptions
from mmrt.runtime.engine.limits import Limits
from mmrt.runtime.engine.sequences import SequenceLimits
from mmrt.runtime.frontends.access import is_loopback
from mmrt.runtime.frontends.admission import AdmissionOptions

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
    admin_token: str | None = None  # model control and shared memory (runtime.access); None: local peers only
    remote_shm: bool = False  # shared memory from other machines too (never unregistering every region)
    verify_key: Path | None = None  # Ed25519 public key: serve only a bundle it signed
    max_message_mb: int = knob(4, "--max-message-mb", 1, "largest request or response, gRPC's own default "
                               "(receiving one costs about 4x its size in memory for a moment)")
    admission: AdmissionOptions = AdmissionOptions()
    keepalive_s: float = knob(60.0, "--keepalive-s", 1,
                              "ping a connection quiet this long; drop it if unanswered")
    max_connection_idle_s: float = knob(300.0, "--max-connection-idle-s", 0,
                                        "close a connection with no call for this long (0: never)")
    max_connection_age_s: float = knob(0.0, "--max-connection-age-s", 0,
                                       "close connections this old, gracefully (0: never)")
    threads: int = knob(0, "--threads", 0, "ONNX Runtime threads per graph (0: all cores)")
    batching: BatchingOptions = BatchingOptions()
    limits: Limits = Limits()  # what one request may ask, checked before any work
    sequences: SequenceLimits = SequenceLimits()
    grace_s: float = knob(30.0, "--grace-s", 0,
                          "on SIGTERM, how long admitted calls and open streams may finish")
    drain_delay_s: float = knob(1.0, "--drain-delay-s", 0, "on SIGTERM, health says NOT_SERVING and new "
                                "calls get UNAVAILABLE this long before the wait (lame duck)")
    faults: tuple[str, ...] = ()  # encoders that always fail (fault injection for tests and drills)
    delay_s: float = 0.0  # added to every encoder run (fault injection: slow encoders)
    monolithic: bool = False  # serve the bundle's fused.onnx baseline instead (mmrt bench --baseline)
    precision: str = "auto"  # encoder graphs: "fp32", "int8", or "auto" (runtime.precision)
    model_control: str | None = None  # none, poll, explicit; None: none for a bundle, poll for a repository
    poll_s: float = knob(5.0, "--poll-s", 0, "with --model-control poll: look for new versions this "
                         "often, and swap the newest in once it verifies and warms up")

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


def check_exposure(o: ServerOptions) -> None:
    """A bind beyond loopback: the admin token never over plaintext (refused); without TLS, say
    that anyone can use the model, or that the token crosses the network in clear."""
    if is_loopback(o.host) or o.tls_cert:
        return
    if o.admin_token:
        raise UserError(f"--admin-token-file with --host {o.host} and no TLS: the admin token would cross "
                        f"the network in clear (add --tls-cert/--tls-key, or bind to 127.0.0.1)")
    if o.token:
        log.warning("listening on %s without TLS: the bearer token crosses the network in clear "
                    "(--tls-cert/--tls-key)", o.host)
    else:
        log.warning("listening on %s without TLS or a token: anyone who can reach it can use the model "
                    "(--tls-cert/--tls-key, --token-file)", o.host)
