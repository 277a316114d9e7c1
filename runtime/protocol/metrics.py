"""Prometheus metrics of a server, in a registry of its own (served over HTTP by ``mmrt serve``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("mmrt_requests", "Inference requests by outcome and modality set",
                                ["outcome", "modalities"], registry=self.registry)
        self.latency = Histogram("mmrt_request_seconds", "Server time per successful request, by the "
                                 "modality set it carried", ["modalities"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.queue = Histogram("mmrt_queue_seconds", "Time a request waited for its encoder batch",
                               ["encoder"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.compute = Histogram("mmrt_encoder_seconds", "Encoder compute time per batch", ["encoder"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch = Histogram("mmrt_encoder_batch_rows", "Rows per encoder run", ["encoder"],
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.degraded = Counter("mmrt_encoder_failures", "Encoder failures answered from the other "
                                "modalities", ["encoder"], registry=self.registry)
        self.sequences = Gauge("mmrt_open_sequences", "Open streaming sequences", registry=self.registry)

    def observe_encoder(self, encoder: str, rows: int, compute_s: float, queue_s: float) -> None:
        self.compute.labels(encoder).observe(compute_s)
        self.queue.labels(encoder).observe(queue_s)
        self.batch.labels(encoder).observe(rows)
