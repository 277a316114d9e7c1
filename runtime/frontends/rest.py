"""The KServe v2 REST protocol (Triton's HTTP API) beside gRPC, on the same event loop, over the
same model (``runtime.kserve``): health, server and model metadata, model config, statistics and
inference with JSON tensors or Triton's binary tensor data extension. The same token, drain,
admission (one ``--max-calls`` for both protocols), limits and worker threads as gRPC. No torch.

Bounds: a body over ``--max-message-mb`` is refused (413) as it arrives; its JSON part over
``max_json_mb`` (a JSON number costs 30-40 bytes once parsed) is refused before parsing; a body
not received within ``body_timeout_s`` is refused (408); parsing runs on a worker thread, so the
event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from aiohttp import web

from mmrt.runtime.engine.ratelimit import RateLimitedLog
from mmrt.runtime.engine.status import INTERNAL_MESSAGE, InferError, Status, invalid, shown
from mmrt.runtime.frontends.access import Access, Caller, is_loopback
from mmrt.runtime.frontends.admission import Admission
from mmrt.runtime.frontends.gate import REFUSED
from mmrt.runtime.frontends.rest_codec import (
    HEADER_LENGTH,
    json_object,
    message_json,
    parse_infer,
    render_infer,
)
from mmrt.runtime.frontends.workers import on_worker
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol.calls import ServerCalls

warn = RateLimitedLog(logging.getLogger(__name__))
HTTP_CODES = {Status.INVALID_ARGUMENT: 400, Status.NOT_FOUND: 404, Status.RESOURCE_EXHAUSTED: 429,
              Status.UNAVAILABLE: 503, Status.CANCELLED: 499, Status.DEADLINE_EXCEEDED: 408,
              Status.UNAUTHENTICATED: 401, Status.PERMISSION_DENIED: 403, Status.FAILED_PRECONDITION: 400,
              Status.ALREADY_EXISTS: 409, Status.INTERNAL: 500}
MODEL = "/v2/models/{name}"
VERSIONED = "/v2/models/{name}/versions/{version}"


@dataclass(frozen=True)
class RestOptions:
    max_body_mb: int = 4  # the whole body, JSON and binary data (the server's --max-message-mb)
    max_json_mb: float = 1.0  # the JSON part of a body
    body_timeout_s: float = 60.0  # a body must arrive within this
    keepalive_s: float = 75.0  # an idle keep-alive connection is closed after this


class RestFrontEnd:
    def __init__(self, model: ServerCalls, admission: Admission, pool: Executor, access: Access | None = None,
                 options: RestOptions | None = None):
        self.model, self.admission, self.pool = model, admission, pool
        self.access = access or Access()
        self.options = options or RestOptions()
        self.refusing = False  # set once the drain's lame duck is over
        self.app = web.Application(client_max_size=self.options.max_body_mb << 20, middlewares=[self._gate])
        get = [("/v2/health/live", self.live), ("/v2/health/ready", self.ready),
               ("/v2", self.server_metadata), ("/v2/models/stats", self.statistics)]
        for base in (MODEL, VERSIONED):
            get += [(base, self.model_metadata), (base + "/ready", self.model_ready),
                    (base + "/config", self.model_config), (base + "/stats", self.statistics)]
        shm, region = "/v2/systemsharedmemory", "/v2/systemsharedmemory/region/{region}"
        get += [(shm + "/status", self.shm_status), (region + "/status", self.shm_status)]
        post = [(base + "/infer", self.infer) for base in (MODEL, VERSIONED)]
        post += [(region + "/register", self.shm_register), (shm + "/unregister", self.shm_unregister),
                 (region + "/unregister", self.shm_unregister),
                 ("/v2/repository/index", self.repository_index),
                 ("/v2/repository/models/{name}/load", self.repository_load),
                 ("/v2/repository/models/{name}/unload", self.repository_unload)]
        self.app.add_routes([web.get(path, handler) for path, handler in get]
                            + [web.post(path, handler) for path, handler in post])

    @web.middleware
    async def _gate(self, request: web.Request, handler):
        """Token and drain (health passes both, readiness the drain, as on gRPC); every refusal a
        JSON ``error``."""
        try:
            route = request.match_info.route.handler  # decided by the route matched, not the path's text
            if route not in (self.live, self.ready):
                if self.refusing and route != self.model_ready:
                    raise InferError(Status.UNAVAILABLE, REFUSED)
                self.access.authenticate(request.headers.get("Authorization"))
            return await handler(request)
        except InferError as e:
            return error(HTTP_CODES[e.status], e.message)
        except web.HTTPException as e:  # aiohttp's own: unknown path (404), body too large (413) ...
            return error(e.status, e.reason if e.status != 404 else f"no such endpoint {shown(request.path)}")
        except Exception:  # noqa: BLE001 - a bug answers 500 and the server keeps serving
            warn.exception("rest", "%s %s failed", request.method, shown(request.path))
            return error(500, INTERNAL_MESSAGE)

    def _call(self, request: web.Request, fn, message):
        """``fn`` with the protocol message for this path's model and version."""
        return web.json_response(message_json(fn(message(name=request.match_info.get("name", ""),
                                                          version=request.match_info.get("version", "")))))

    async def _small_json(self, request: web.Request, what: str) -> dict:
        return await small_json(request, what, self.options.body_timeout_s)

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})  # KServe's SDK reads the body, tritonclient the status

    async def ready(self, request: web.Request) -> web.Response:
        ready = self.model.server_ready(None).ready
        return web.json_response({"ready": ready}, status=200 if ready else 400)

    async def model_ready(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")
        ready = self.model.model_ready(pb.ModelReadyRequest(name=name, version=version)).ready
        return web.json_response({"name": name, "ready": ready}, status=200 if ready else 400)

    async def server_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(message_json(self.model.server_metadata(None)))

    async def model_metadata(self, request: web.Request) -> web.Response:
        return self._call(request, self.model.model_metadata, pb.ModelMetadataRequest)

    async def model_config(self, request: web.Request) -> web.Response:
        info = request.match_info
        response = self.model.model_config(pb.ModelConfigRequest(name=info["name"],
                                                                 version=info.get("version", "")))
        return web.json_response(message_json(response.config))

    async def statistics(self, request: web.Request) -> web.Response:
        return self._call(request, self.model.model_statistics, pb.ModelStatisticsRequest)

    async def shm_status(self, request: web.Request) -> web.Response:
        self.access.shared_memory(rest_caller(request), "shared-memory status")
        name = request.match_info.get("region", "")
        status = self.model.shm_status(pb.SystemSharedMemoryStatusRequest(name=name))
        return web.json_response([message_json(r) for r in status.regions.values()])

    async def shm_register(self, request: web.Request) -> web.Response:
        self.access.shared_memory(rest_caller(request), "registering shared memory")
        doc = await self._small_json(request, "a region's registration")
        key, offset, size = (doc.get(k) for k in ("key", "offset", "byte_size"))
        if not isinstance(key, str) or type(size) is not int or type(offset or 0) is not int \
                or not 0 <= (offset or 0) < 1 << 63 or not 0 <= size < 1 << 63:
            raise invalid("a registration: expected {'key': string, 'offset': integer, 'byte_size': "
                          "integer}, the integers 0 to 2^63-1")
        self.model.shm_register(pb.SystemSharedMemoryRegisterRequest(
            name=request.match_info["region"], key=key, offset=offset or 0, byte_size=size))
        return web.Response(status=200)

    async def shm_unregister(self, request: web.Request) -> web.Response:
        name = request.match_info.get("region", "")
        self.access.shared_memory(rest_caller(request), "unregistering shared memory", every_region=not name)
        await self._small_json(request, "an unregister request")
        self.model.shm_unregister(pb.SystemSharedMemoryUnregisterRequest(name=name))
        return web.Response(status=200)

    async def repository_index(self, request: web.Request) -> web.Response:
        self.access.admin(rest_caller(request), "the repository index")
        ready = (await self._small_json(request, "an index request")).get("ready", False)
        if not isinstance(ready, bool):
            raise invalid("'ready': expected true or false")
        index = await self.model.repository_index(pb.RepositoryIndexRequest(ready=ready))
        return web.json_response([message_json(m) for m in index.models])

    async def repository_load(self, request: web.Request) -> web.Response:
        self.access.admin(rest_caller(request), "loading a model")
        doc = await self._small_json(request, "a load request")
        message = pb.RepositoryModelLoadRequest(model_name=request.match_info["name"])
        for key in json_object(doc.get("parameters", {}), "a load request's 'parameters'"):
            message.parameters[key].string_param = ""  # named, so the load refuses them by name
        await self.model.repository_load(message)
        return web.Response(status=200)

    async def repository_unload(self, request: web.Request) -> web.Response:
        self.access.admin(rest_caller(request), "unloading a model")
        await self._small_json(request, "an unload request")
        self.model.repository_unload(pb.RepositoryModelUnloadRequest(model_name=request.match_info["name"]))
        return web.Response(status=200)

    async def infer(self, request: web.Request) -> web.Response:
        """The body is read first, under its own cap (``--max-uploads``) and timeout, so a slow
        upload never holds an inference slot that gRPC calls need."""
        async with self.admission.slot("uploads"):
            body = await read_body(request, self.options.max_body_mb << 20, self.options.body_timeout_s)
        shm = self.access.shm_tensors(rest_caller(request))
        async with self.admission.slot("calls"):
            name, version = request.match_info["name"], request.match_info.get("version", "")
            header_length = request.headers.get(HEADER_LENGTH)
            alive = connected(request)
            out, length = await on_worker(self.pool, self._infer, body, header_length, name, version, alive,
                                          shm)
        headers = {} if length is None else {HEADER_LENGTH: str(length)}
        return web.Response(body=out, headers=headers,
                            content_type="application/json" if length is None else "application/octet-stream")

    def _infer(self, body: bytes, header_length: str | None, name: str, version: str,
               alive: Callable[[], bool], shm: bool) -> tuple[bytes, int | None]:
        parsed = parse_infer(body, header_length, name, version, int(self.options.max_json_mb * (1 << 20)))
        return render_infer(self.model.infer(parsed.request, alive, shm), parsed)


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """A body of at most ``limit`` bytes (else 413) that arrives within ``timeout_s`` (else 408)."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)

    async def read() -> bytes:
        chunks, size = [], 0
        while chunk := await request.content.read(1 << 16):
            size += len(chunk)
            if size > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError:
        raise InferError(Status.DEADLINE_EXCEEDED, f"the body did not arrive within {timeout_s:g} s") \
            from None


async def small_json(request: web.Request, what: str, timeout_s: float, limit: int = 4096) -> dict:
    """A control call's body: empty, or a small JSON object, read under its own cap and timeout."""
    try:
        body = await read_body(request, limit, timeout_s)
    except web.HTTPRequestEntityTooLarge:
        raise invalid(f"{what} is a small JSON object (at most {limit} bytes)") from None
    if not body.strip():
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        raise invalid(f"{what}: not JSON") from None
    if not isinstance(doc, dict):
        raise invalid(f"{what}: expected a JSON object")
    return doc


def rest_caller(request: web.Request) -> Caller:
    """REST listens on TCP only: local means a loopback peer address (none known: not local)."""
    return Caller(request.headers.get("Authorization"), is_loopback(request.remote))


def connected(request: web.Request) -> Callable[[], bool]:
    """A thread-safe ``alive()``: false once the client has closed its connection."""
    transport = request.transport
    return lambda: transport is not None and not transport.is_closing()


def error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"error": message}), content_type="application/json")
