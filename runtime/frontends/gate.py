"""What every gRPC call passes before its handler: the bearer token (``runtime.access``), and
the end of a drain (once the lame duck is over, new calls get UNAVAILABLE). Health passes both,
and the liveness calls (ServerLive, ServerReady, ModelReady) the drain: an orchestrator must
read live=true, ready=false, as Triton answers, not an error."""

from __future__ import annotations

import grpc

from mmrt.runtime.engine.status import InferError
from mmrt.runtime.frontends.access import Access

HEALTH_PREFIX = "/grpc.health.v1.Health/"
LIVENESS = {f"/inference.GRPCInferenceService/{m}" for m in ("ServerLive", "ServerReady", "ModelReady")}
REFUSED = "the server is shutting down; retry on another"


class Gate(grpc.aio.ServerInterceptor):
    def __init__(self, access: Access):
        self.access = access
        self.refusing = False  # set once the drain's lame duck is over

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method.startswith(HEALTH_PREFIX):
            return handler
        if self.refusing and details.method not in LIVENESS:
            return refusal(handler, grpc.StatusCode.UNAVAILABLE, REFUSED)
        try:
            self.access.authenticate(dict(details.invocation_metadata or ()).get("authorization"))
        except InferError as e:
            return refusal(handler, grpc.StatusCode.UNAUTHENTICATED, e.message)
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
