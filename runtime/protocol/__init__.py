"""Generated KServe v2 / Triton protocol stubs (``make proto``; never edit by hand).

They register in ``POOL``, not protobuf's default pool, so that they coexist in one process
with any other client's copy of the same protocol (see proto/generate.py).
"""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
