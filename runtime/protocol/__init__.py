"""The protocol: every KServe v2 / Triton call apart from its transport (``calls``, ``kserve``),
tensors in and out of messages and shared memory, the model repository and its versions, the
metrics. May import the engine, the backends and the core.

Beside them, the generated protocol stubs (``*_pb2*.py``, ``make proto``; never edit by hand).
They register in ``POOL``, not protobuf's default pool, so that they coexist in one process
with any other client's copy of the same protocol (see proto/generate.py).
"""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
