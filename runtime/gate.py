"""What every call passes before its handler: the bearer token, and the drain (new calls get
UNAVAILABLE once the server is shutting down). Health checks pass both: an orchestrator must
see NOT_SERVING, not an error."""

from __future__ import annotations

import hmac

import grpc

HEALTH_PREFIX = "/grpc.health.v1.Health/"


class Gate(grpc.aio.ServerInterceptor):
    def __init__(self, token: str | None):
        self.token = token.encode() if token else None
        self.draining = False

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method.startswith(HEALTH_PREFIX):
            return handler
        if self.draining:
            return refusal(handler, grpc.StatusCode.UNAVAILABLE, "the server is shutting down; retry")
        if self.token:
            sent = dict(details.invocation_metadata or ()).get("authorization", "")
            if not hmac.compare_digest(str(sent).encode(), b"Bearer " + self.token):
                why = "missing bearer token" if not sent else "wrong bearer token"
                return refusal(handler, grpc.StatusCode.UNAUTHENTICATED, why)
        return handler


def refusal(handler, code: grpc.StatusCode, message: str):
    """A handler of the same streaming kind as ``handler`` that aborts with ``code``."""
    async def abort(request_or_iterator, context):
        await context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort, request_deserializer=handler.request_deserializer)
    return grpc.unary_unary_rpc_method_handler(abort, request_deserializer=handler.request_deserializer)
