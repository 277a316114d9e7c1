"""mmrt.runtime: the edge runtime. Never imports torch: it must run with only the `serve` extra.

Four rooms, each importing only those below it: ``frontends`` (gRPC, REST, TLS, who may call
what, the server's assembly), ``protocol`` (KServe v2 calls apart from transport, tensors, shared
memory, the model repository), ``engine`` (a request's encoders, batching, sequences, limits) and
``backends`` (ONNX Runtime and TensorRT graphs, bundles opened into them). docs/architecture.md
draws them.

Its public face, loaded on first use (importing one room does not load the server):

    from mmrt.runtime import Server, ServerOptions, open_bundle
    server = Server("runs/quickstart/bundle", ServerOptions(port=8001)).start()
"""

from __future__ import annotations

__all__ = ["Bundle", "Server", "ServerOptions", "open_bundle"]


def __getattr__(name: str):
    if name == "Server":
        from mmrt.runtime.frontends.server import Server

        return Server
    if name == "ServerOptions":
        from mmrt.runtime.frontends.options import ServerOptions

        return ServerOptions
    if name in ("Bundle", "open_bundle"):
        from mmrt.runtime.backends import loaded_bundle

        return getattr(loaded_bundle, name)
    raise AttributeError(f"module 'mmrt.runtime' has no attribute {name!r}")
