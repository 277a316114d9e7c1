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
import hmac
import json
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from aiohttp import web

from mmrt.runtime.admission import Admission
from mmrt.runtime.calls import ServerCalls
from mmrt.runtime.errors import InferError, Status, invalid, shown
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.ratelimit import RateLimitedLog
from mmrt.runtime.rest_codec import HEADER_LENGTH, message_json, parse_infer, render_infer
from mmrt.runtime.workers import on_worker

warn = RateLimitedLog(logging.getLogger(__name__))
HTTP_CODES = {Status.INVALID_ARGUMENT: 400, Status.NOT_FOUND: 404, Status.RESOURCE_EXHAUSTED: 429,
              Status.UNAVAILABLE: 503, Status.CANCELLED: 499, Status.DEADLINE_EXCEEDED: 408,
              Status.UNAUTHENTICATED: 401, Status.ALREADY_EXISTS: 409, Status.INTERNAL: 500}
INTERNAL_MESSAGE = "internal error (the server's log has the details)"
MODEL = "/v2/models/{name}"
VERSIONED = "/v2/models/{name}/versions/{version}"


@dataclass(frozen=True)
class RestOptions:
    max_body_mb: int = 4  # the whole body, JSON and binary data (the server's --max-message-mb)
    max_json_mb: float = 1.0  # the JSON part of a body
    body_timeout_s: float = 60.0  # a body must arrive within this
    keepalive_s: float = 75.0  # an idle keep-alive connection is closed after this


class RestFrontEnd:
    def __init__(self, model: ServerCalls, admission: Admission, pool: Executor, token: str | None,
                 options: RestOptions | None = None):
        self.model, self.admission, self.pool = model, admission, pool
        self.token = token.encode() if token else None
        self.options = options or RestOptions()
        self.draining = False
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
        """Token and drain (health passes both, as on gRPC); every refusal a JSON ``error``."""
        try:
            if not request.path.startswith("/v2/health/"):
                if self.draining:
                    raise InferError(Status.UNAVAILABLE, "the server is shutting down; retry")
                if self.token is not None:
                    sent = request.headers.get("Authorization", "")
                    if not hmac.compare_digest(sent.encode(), b"Bearer " + self.token):
                        raise InferError(Status.UNAUTHENTICATED,
                                         "missing bearer token" if not sent else "wrong bearer token")
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

    async def live(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def ready(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.model.server_ready(None).ready else 400)

    async def model_ready(self, request: web.Request) -> web.Response:
        ready = self.model.model_ready(pb.ModelReadyRequest(name=request.match_info["name"],
                                                            version=request.match_info.get("version", "")))
        return web.Response(status=200 if ready.ready else 400)

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
        name = request.match_info.get("region", "")
        status = self.model.shm_status(pb.SystemSharedMemoryStatusRequest(name=name))
        return web.json_response([message_json(r) for r in status.regions.values()])

    async def shm_register(self, request: web.Request) -> web.Response:
        doc = await small_json(request, "a region's registration")
        key, offset, size = (doc.get(k) for k in ("key", "offset", "byte_size"))
        if not isinstance(key, str) or type(size) is not int or type(offset or 0) is not int:
            raise invalid("a registration: expected {'key': string, 'offset': integer, 'byte_size': integer}")
        self.model.shm_register(pb.SystemSharedMemoryRegisterRequest(
            name=request.match_info["region"], key=key, offset=offset or 0, byte_size=size))
        return web.Response(status=200)

    async def shm_unregister(self, request: web.Request) -> web.Response:
        name = request.match_info.get("region", "")
        self.model.shm_unregister(pb.SystemSharedMemoryUnregisterRequest(name=name))
        return web.Response(status=200)

    async def repository_index(self, request: web.Request) -> web.Response:
        ready = (await small_json(request, "an index request")).get("ready", False)
        if not isinstance(ready, bool):
            raise invalid("'ready': expected true or false")
        index = self.model.repository_index(pb.RepositoryIndexRequest(ready=ready))
        return web.json_response([message_json(m) for m in index.models])

    async def repository_load(self, request: web.Request) -> web.Response:
        await small_json(request, "a load request")
        message = pb.RepositoryModelLoadRequest(model_name=request.match_info["name"])
        await on_worker(self.pool, self.model.repository_load, message)  # verifying and warming take seconds
        return web.Response(status=200)

    async def repository_unload(self, request: web.Request) -> web.Response:
        await small_json(request, "an unload request")
        self.model.repository_unload(pb.RepositoryModelUnloadRequest(model_name=request.match_info["name"]))
        return web.Response(status=200)

    async def infer(self, request: web.Request) -> web.Response:
        async with self.admission.slot("calls"):
            try:
                body = await asyncio.wait_for(request.read(), self.options.body_timeout_s)
            except asyncio.TimeoutError:
                raise InferError(Status.DEADLINE_EXCEEDED, f"the body did not arrive within "
                                 f"{self.options.body_timeout_s:g} s") from None
            name, version = request.match_info["name"], request.match_info.get("version", "")
            header_length = request.headers.get(HEADER_LENGTH)
            alive = connected(request)
            out, length = await on_worker(self.pool, self._infer, body, header_length, name, version, alive)
        headers = {} if length is None else {HEADER_LENGTH: str(length)}
        return web.Response(body=out, headers=headers,
                            content_type="application/json" if length is None else "application/octet-stream")

    def _infer(self, body: bytes, header_length: str | None, name: str, version: str,
               alive: Callable[[], bool]) -> tuple[bytes, int | None]:
        parsed = parse_infer(body, header_length, name, version, int(self.options.max_json_mb * (1 << 20)))
        return render_infer(self.model.infer(parsed.request, alive), parsed)


async def small_json(request: web.Request, what: str, limit: int = 4096) -> dict:
    """A control call's body: empty, or a small JSON object."""
    body = await request.read()
    if len(body) > limit:
        raise invalid(f"{what} is a small JSON object (at most {limit} bytes)")
    if not body.strip():
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        raise invalid(f"{what}: not JSON") from None
    if not isinstance(doc, dict):
        raise invalid(f"{what}: expected a JSON object")
    return doc


def connected(request: web.Request) -> Callable[[], bool]:
    """A thread-safe ``alive()``: false once the client has closed its connection."""
    transport = request.transport
    return lambda: transport is not None and not transport.is_closing()


def error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"error": message}), content_type="application/json")
