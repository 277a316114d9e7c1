"""The front ends: the gRPC servicer and the REST server over the protocol's calls, TLS, tokens and
who may call what, admission, the server's options and its assembly (``server.Server``). May import
the protocol, the engine, the backends and the core."""
