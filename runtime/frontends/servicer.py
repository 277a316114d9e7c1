"""The KServe v2 / Triton gRPC service on grpc.aio: admission, the one place where an engine
status becomes a gRPC code, and inference moved off the event loop onto worker threads, so
that health checks, metadata and idle streams never wait behind it. No torch."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc

from mmrt.runtime.engine.ratelimit import RateLimitedLog
from mmrt.runtime.engine.status import INTERNAL_MESSAGE, InferError, Status, shown
from mmrt.runtime.frontends.access import Access, Caller, is_local_grpc_peer
from mmrt.runtime.frontends.admission import Admission, AdmissionOptions
from mmrt.runtime.frontends.workers import on_worker
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc
from mmrt.runtime.protocol.calls import ServerCalls

warn = RateLimitedLog(logging.getLogger(__name__))
GRPC_CODES = {Status.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
              Status.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
              Status.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
              Status.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE, Status.CANCELLED: grpc.StatusCode.CANCELLED,
              Status.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
              Status.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
              Status.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
              Status.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
              Status.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
              Status.INTERNAL: grpc.StatusCode.INTERNAL}


def watch(context) -> Callable[[], bool]:
    """A thread-safe ``alive()`` for a call: false once it ended (cancelled, failed) or its deadline
    passed."""
    ended = threading.Event()
    context.add_done_callback(lambda _: ended.set())
    remaining = context.time_remaining()
    deadline = None if remaining is None else time.monotonic() + remaining
    return lambda: not ended.is_set() and (deadline is None or time.monotonic() < deadline)


def grpc_caller(context) -> Caller:
    metadata = dict(context.invocation_metadata() or ())
    return Caller(metadata.get("authorization"), is_local_grpc_peer(context.peer()))


def grpc_code(e: InferError, context) -> grpc.StatusCode:
    """The gRPC code of a refusal; a request dropped because its deadline passed says so."""
    if e.status is Status.CANCELLED:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
    return GRPC_CODES[e.status]


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, model: ServerCalls, admission: AdmissionOptions | None = None,
                 access: Access | None = None):
        self.model, self.access = model, access or Access()
        self.options = admission = admission or AdmissionOptions()
        self.admission = Admission(admission)
        # A thread per admitted call or stream at most: neither ever waits for a free worker.
        self.pool = ThreadPoolExecutor(admission.max_calls + admission.max_streams,
                                       thread_name_prefix="mmrt-infer")

    async def _answer(self, context, fn, *args):
        """``fn(*args)`` (awaited if a coroutine function): an InferError becomes its gRPC status,
        anything else INTERNAL without its text."""
        try:
            result = fn(*args)
            return await result if asyncio.iscoroutine(result) else result
        except InferError as e:
            await context.abort(GRPC_CODES[e.status], e.message)
        except Exception:  # noqa: BLE001 - a bug answers INTERNAL and the server keeps serving
            warn.exception(fn.__name__, "%s failed", fn.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

    async def ServerLive(self, request, context):
        return await self._answer(context, self.model.server_live, request)

    async def ServerReady(self, request, context):
        return await self._answer(context, self.model.server_ready, request)

    async def ModelReady(self, request, context):
        return await self._answer(context, self.model.model_ready, request)

    async def ServerMetadata(self, request, context):
        return await self._answer(context, self.model.server_metadata, request)

    async def ModelMetadata(self, request, context):
        return await self._answer(context, self.model.model_metadata, request)

    async def ModelConfig(self, request, context):
        return await self._answer(context, self.model.model_config, request)

    async def ModelStatistics(self, request, context):
        return await self._answer(context, self.model.model_statistics, request)

    # ---- the admin category (runtime.access): shared memory and model control
    def _shared_memory(self, context, fn, request, what: str, every_region: bool = False):
        self.access.shared_memory(grpc_caller(context), what, every_region)
        return fn(request)

    def _model_control(self, context, fn, request, what: str):
        self.access.admin(grpc_caller(context), what)
        return fn(request)  # a load returns a coroutine: it runs on the control thread, never a worker

    async def SystemSharedMemoryStatus(self, request, context):
        return await self._answer(context, self._shared_memory, context, self.model.shm_status, request,
                                  "shared-memory status")

    async def SystemSharedMemoryRegister(self, request, context):
        return await self._answer(context, self._shared_memory, context, self.model.shm_register, request,
                                  "registering shared memory")

    async def SystemSharedMemoryUnregister(self, request, context):
        return await self._answer(context, self._shared_memory, context, self.model.shm_unregister, request,
                                  "unregistering shared memory", not request.name)

    async def RepositoryIndex(self, request, context):
        return await self._answer(context, self._model_control, context, self.model.repository_index,
                                  request, "the repository index")

    async def RepositoryModelLoad(self, request, context):
        return await self._answer(context, self._model_control, context, self.model.repository_load,
                                  request, "loading a model")

    async def RepositoryModelUnload(self, request, context):
        return await self._answer(context, self._model_control, context, self.model.repository_unload,
                                  request, "unloading a model")

    async def _infer(self, request, alive, shm: bool) -> pb.ModelInferResponse:
        """One inference on a worker thread (InferError and bugs raise through)."""
        return await on_worker(self.pool, self.model.infer, request, alive, shm)

    async def ModelInfer(self, request, context):
        try:
            async with self.admission.slot("calls"):
                shm = self.access.shm_tensors(grpc_caller(context))
                return await self._infer(request, watch(context), shm)
        except InferError as e:
            await context.abort(grpc_code(e, context), e.message)
        except Exception:  # noqa: BLE001 - a bug answers INTERNAL and the server keeps serving
            warn.exception("ModelInfer", "request %s failed", shown(request.id))
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

    async def ModelStreamInfer(self, request_iterator, context):
        try:
            async with self.admission.slot("streams"):
                async for response in self._stream(request_iterator, context):
                    yield response
        except InferError as e:
            await context.abort(grpc_code(e, context), e.message)

    async def _stream(self, request_iterator, context):
        alive, requests = watch(context), request_iterator.__aiter__()
        shm = self.access.shm_tensors(grpc_caller(context))
        while True:
            try:
                request = await asyncio.wait_for(requests.__anext__(), self.options.stream_idle_s)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                idle = self.options.stream_idle_s
                raise InferError(Status.DEADLINE_EXCEEDED, f"stream idle for {idle:g} s (the server's "
                                 f"--stream-idle-s)") from None
            try:
                yield pb.ModelStreamInferResponse(infer_response=await self._infer(request, alive, shm))
            except InferError as e:  # the stream stays open; the error rides in the response
                response = pb.ModelStreamInferResponse(error_message=e.message)
                response.infer_response.id = request.id
                yield response
            except Exception:  # noqa: BLE001 - one bad request must not end the stream
                warn.exception("stream", "stream request %s failed", shown(request.id))
                yield pb.ModelStreamInferResponse(error_message=INTERNAL_MESSAGE)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
