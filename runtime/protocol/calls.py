"""Every KServe v2 / Triton call the server answers, apart from any transport: the server-wide
ones (health, metadata, shared memory, the model repository extension) here, the model ones
routed by the repository to one version's ``KServeModel``. The gRPC servicer and the REST front
end both run these. No grpc, no torch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import mmrt
from mmrt.runtime.engine.batcher import always
from mmrt.runtime.engine.status import InferError, Status, invalid, shown
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol.metrics import Metrics
from mmrt.runtime.protocol.repository import Repository
from mmrt.runtime.protocol.shm import SharedMemoryRegions

EXTENSIONS = ["model_configuration", "sequence", "statistics", "system_shared_memory", "binary_tensor_data",
              "model_repository"]


class ServerCalls:
    def __init__(self, repository: Repository, regions: SharedMemoryRegions, metrics: Metrics | None = None):
        self.repository, self.regions = repository, regions
        self.metrics = metrics or Metrics()
        self.control = ThreadPoolExecutor(1, thread_name_prefix="mmrt-control")  # load calls, one at a time

    @property
    def draining(self) -> bool:
        return self.repository.draining

    @draining.setter
    def draining(self, value: bool) -> None:  # not ready; no new sequence starts
        self.repository.draining = value

    # ---- server-wide
    def server_live(self, request) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    def server_ready(self, request) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=not self.draining and bool(self.repository.serving()))

    def server_metadata(self, request) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="mmrt", version=mmrt.__version__, extensions=EXTENSIONS)

    # ---- one model, routed to a version
    def model_ready(self, request) -> pb.ModelReadyResponse:
        try:
            self.repository.call(request.name, request.version, lambda api: None)
        except InferError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=not self.draining)

    def model_metadata(self, request) -> pb.ModelMetadataResponse:
        response = self.repository.call(request.name, request.version,
                                        lambda api: api.model_metadata(request))
        numbers = sorted({v.number for v in self.repository.loaded(request.name)})
        response.versions[:] = [str(n) for n in numbers]
        return response

    def model_config(self, request) -> pb.ModelConfigResponse:
        return self.repository.call(request.name, request.version, lambda api: api.model_config(request))

    def model_statistics(self, request) -> pb.ModelStatisticsResponse:
        """Every loaded version of the model asked for (every model without a name)."""
        names = [request.name] if request.name else list(self.repository.models)
        response = pb.ModelStatisticsResponse()
        for name in names:
            versions = [v for v in self.repository.loaded(name)
                        if not request.version or str(v.number) == request.version]
            if request.name and not versions:
                self.repository.acquire(name, request.version)  # raises NOT_FOUND, naming what is served
            for v in versions:
                asked = pb.ModelStatisticsRequest(name=name, version=str(v.number))
                response.model_stats.extend(v.api.model_statistics(asked).model_stats)
        return response

    def infer(self, request, alive: Callable[[], bool] = always, shm: bool = True) -> pb.ModelInferResponse:
        """``shm``: whether this caller's tensors may name shared-memory regions (``runtime.access``)."""
        try:
            version = self.repository.acquire(request.model_name, request.model_version, request)
        except InferError:  # no such model or version: counted like the versions count their refusals
            self.metrics.requests.labels("error", "invalid").inc()
            raise
        try:
            return version.api.infer(request, alive, shm)
        finally:
            self.repository.release(version)

    # ---- system shared memory
    def shm_status(self, request) -> pb.SystemSharedMemoryStatusResponse:
        response = pb.SystemSharedMemoryStatusResponse()
        for r in self.regions.status(request.name):
            response.regions[r.name].CopyFrom(response.RegionStatus(name=r.name, key=r.key, offset=r.offset,
                                                                    byte_size=r.byte_size))
        return response

    def shm_register(self, request) -> pb.SystemSharedMemoryRegisterResponse:
        self.regions.register(request.name, request.key, request.offset, request.byte_size)
        return pb.SystemSharedMemoryRegisterResponse()

    def shm_unregister(self, request) -> pb.SystemSharedMemoryUnregisterResponse:
        self.regions.unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()

    # ---- the model repository extension
    async def repository_index(self, request) -> pb.RepositoryIndexResponse:
        response = pb.RepositoryIndexResponse()
        for entry in await asyncio.to_thread(self.repository.index):  # it lists folders: off the loop
            if not request.ready or entry["state"] == "READY":
                response.models.add(**entry)
        return response

    async def repository_load(self, request) -> pb.RepositoryModelLoadResponse:
        """Load on the control thread (verifying and warming take seconds), never on the inference
        workers; a second load while one runs is refused at once, not queued."""
        self._check_repository(request)
        if request.parameters:
            keys = sorted(request.parameters)
            named = ", ".join(shown(k) for k in keys[:3]) + (f" and {len(keys) - 3} more" if keys[3:] else "")
            raise invalid(f"load parameters ({named}): not taken (a version is a bundle from 'mmrt export', "
                          f"copied into the repository)")
        self.repository.try_lock_loading()
        try:
            future = self.control.submit(self.repository.load_locked, request.model_name)
        except BaseException:
            self.repository.loading.release()
            raise
        # A caller that leaves before the load starts cancels it: the lock goes back here then
        # (once started, ``load_locked`` gives it back, and the load runs to its end).
        future.add_done_callback(self._release_if_cancelled)
        await asyncio.wrap_future(future)
        return pb.RepositoryModelLoadResponse()

    def _release_if_cancelled(self, future) -> None:
        if future.cancelled():
            self.repository.loading.release()

    def repository_unload(self, request) -> pb.RepositoryModelUnloadResponse:
        self._check_repository(request)
        self.repository.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    def _check_repository(self, request) -> None:
        if request.repository_name:
            raise InferError(Status.NOT_FOUND, f"repository {shown(request.repository_name)}: not served "
                             f"here (this server has one repository: leave repository_name empty)")
        self.repository.check_call(request.model_name)

    def close(self) -> None:
        self.control.shutdown(wait=False, cancel_futures=True)
