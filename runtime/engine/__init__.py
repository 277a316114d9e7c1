"""The engine: one request's modalities through only their encoders, batched across requests,
fused; stream sequences, request limits, fault injection for drills, the runtime's error type.
May import the backends and the core."""
