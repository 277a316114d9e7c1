"""Regenerate the protocol stubs in runtime/protocol from proto/*.proto (``make proto``).

The stubs are committed so that the edge runtime needs no grpcio-tools; this script is the
only way they change. Two rewrites follow protoc:

- its top-level imports (``import model_config_pb2``) become package-relative, so the
  stubs live inside ``mmrt.runtime.protocol``;
- the descriptors go to the package's own pool, not protobuf's default one: the protocol's
  files and messages (``grpc_service.proto``, ``inference.ModelInferRequest``) have the same
  names in every KServe client, and a process that imports such a client (tritonclient,
  in the tests and the bench) beside the server would otherwise fail with "duplicate file".
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ("model_config.proto", "grpc_service.proto")
OUT = ROOT / "runtime" / "protocol"


def main() -> int:
    from grpc_tools import protoc

    args = ["protoc", f"-I{ROOT / 'proto'}", f"--python_out={OUT}", f"--pyi_out={OUT}",
            f"--grpc_python_out={OUT}", *(str(ROOT / "proto" / p) for p in PROTOS)]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    for path in sorted(OUT.glob("*_pb2*.py*")):
        text = re.sub(r"^import (\w+_pb2)", r"from . import \1", path.read_text(), flags=re.M)
        if path.suffix == ".py" and "_descriptor_pool.Default()" in text:
            text = text.replace("_descriptor_pool.Default()", "_POOL").replace(
                "# @@protoc_insertion_point(imports)",
                "# @@protoc_insertion_point(imports)\nfrom . import POOL as _POOL", 1)
        path.write_text(text)
    print(f"stubs written to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
