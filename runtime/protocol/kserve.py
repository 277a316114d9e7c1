"""The KServe v2 / Triton protocol's meaning for one served model version, apart from any
transport: protobuf messages in, protobuf messages out, refusals as ``InferError``. The
repository (``runtime.repository``) routes each call to a version and answers the server-wide
ones; the gRPC servicer and the REST front end run them. No grpc, no torch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from mmrt.bundle import EMBEDDING, SCORES, WIRE, input_name
from mmrt.runtime.engine.batcher import always
from mmrt.runtime.engine.engine import Engine, Result, SequenceFlags
from mmrt.runtime.engine.status import InferError, Status, invalid, shown
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import model_config_pb2 as mc
from mmrt.runtime.protocol.metrics import Metrics
from mmrt.runtime.protocol.shm import SharedMemoryRegions
from mmrt.runtime.protocol.tensors import decode_inputs, encode_output, shared_memory

PLATFORM = "mmrt_multimodal"
# Every input's shape with its batch axis, as ModelMetadata reports it; ModelConfig's dims are the
# same without the batch axis (Triton's rule with max_batch_size > 0). TEXT [B] is accepted too.
TENSOR_SHAPES = {"audio": [-1, -1], "video": [-1, -1, -1, -1, 3], "text": [-1, 1]}
CONFIG_TYPES = {"FP32": mc.TYPE_FP32, "UINT8": mc.TYPE_UINT8, "BYTES": mc.TYPE_STRING}


def sequence_flags(request) -> SequenceFlags | None:
    """Triton's sequence parameters; None for a request outside any sequence (id absent or 0)."""
    params = request.parameters
    if "sequence_id" not in params:
        return None
    p = params["sequence_id"]
    kind = p.WhichOneof("parameter_choice")
    if kind not in ("int64_param", "uint64_param", "string_param"):
        raise invalid("parameter 'sequence_id': expected an integer or a string")
    sequence_id = getattr(p, kind)
    if sequence_id in (0, ""):
        return None
    flags = {}
    for key in ("sequence_start", "sequence_end"):
        value = params.get(key)
        if value is not None and value.WhichOneof("parameter_choice") != "bool_param":
            raise invalid(f"parameter {key!r}: expected a boolean")
        flags[key] = bool(value.bool_param) if value is not None else False
    return SequenceFlags(sequence_id, flags["sequence_start"], flags["sequence_end"])


def refuse_shared_memory(request) -> None:
    """Refuse a request with a tensor in a shared-memory region (from a caller on another machine)."""
    for what, tensors in (("input", request.inputs), ("output", request.outputs)):
        for t in tensors:
            if "shared_memory_region" in t.parameters:
                raise InferError(Status.PERMISSION_DENIED, f"{what} {shown(t.name)}: shared-memory tensors "
                                 f"are taken only from this machine (the server's --allow-remote-shm)")


class Stats:
    """ModelStatistics counters (Triton's names), updated under a lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.success = [0, 0]  # count, ns
        self.fail = [0, 0]
        self.inferences = 0
        self.last_ms = 0

    def record(self, ok: bool, ns: int, rows: int = 0) -> None:
        with self.lock:
            bucket = self.success if ok else self.fail
            bucket[0] += 1
            bucket[1] += ns
            self.inferences += rows if ok else 0
            self.last_ms = int(time.time() * 1000)


class KServeModel:
    """One model version's protocol calls (the bundle's manifest names the model).
    ``draining``: no new sequence starts."""

    def __init__(self, engine: Engine, metrics: Metrics | None = None,
                 regions: SharedMemoryRegions | None = None, version: str = "1"):
        self.engine, self.manifest, self.version = engine, engine.manifest, version
        self.metrics = metrics or Metrics()
        self.regions = regions if regions is not None else SharedMemoryRegions()
        self.stats = Stats()
        self.draining = False

    def _check_model(self, name: str, version: str) -> None:
        """The repository routed this call here; a mismatch is a routing bug, refused all the same."""
        if name != self.manifest.name or version not in ("", self.version):
            asked = f"model {shown(name)}" + (f" version {shown(version)}" if version else "")
            raise InferError(Status.NOT_FOUND, f"{asked}: not served here")

    def _tensors(self):
        m = self.manifest
        inputs = [(input_name(x), WIRE[x][1], TENSOR_SHAPES[x]) for x in m.modalities]
        outputs = [(SCORES, "FP32", [-1, len(m.classes)]), (EMBEDDING, "FP32", [-1, m.embedding_dim])]
        return inputs, outputs

    def model_metadata(self, request) -> pb.ModelMetadataResponse:
        self._check_model(request.name, request.version)
        inputs, outputs = self._tensors()
        meta = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=self.manifest.name, versions=[self.version], platform=PLATFORM,
            inputs=[meta(name=n, datatype=t, shape=s) for n, t, s in inputs],
            outputs=[meta(name=n, datatype=t, shape=s) for n, t, s in outputs])

    def model_config(self, request) -> pb.ModelConfigResponse:
        self._check_model(request.name, request.version)
        inputs, outputs = self._tensors()
        batching, limits = self.engine.batching, self.engine.limits
        config = mc.ModelConfig(
            name=self.manifest.name, platform=PLATFORM, backend="mmrt", max_batch_size=limits.max_batch,
            input=[mc.ModelInput(name=n, data_type=CONFIG_TYPES[t], dims=s[1:], optional=True)
                   for n, t, s in inputs],
            output=[mc.ModelOutput(name=n, data_type=CONFIG_TYPES[t], dims=s[1:]) for n, t, s in outputs])
        m, seq = self.manifest, self.engine.sequences.limits
        # Sequences are taken (Triton's sequence protocol); requests, in a sequence or not, share
        # encoder batches oldest first: Triton's sequence batcher with the Oldest strategy.
        config.sequence_batching.max_sequence_idle_microseconds = int(seq.idle_timeout_s * 1e6)
        if batching.enabled:
            config.sequence_batching.oldest.max_candidate_sequences = seq.max_sequences
            config.sequence_batching.oldest.max_queue_delay_microseconds = int(batching.max_delay_s * 1e6)
        reported = {"modalities": "+".join(m.modalities), "classes": ",".join(m.classes), "task": m.task,
                    "precision": self.engine.bundle.precision,
                    **limits.to_dict(), "max_sequences": seq.max_sequences,
                    "sequence_idle_s": seq.idle_timeout_s, "max_sequence_mb": seq.max_mb}
        for key, value in reported.items():  # the limits as the server checks them, for clients to read
            config.parameters[key].string_value = f"{value:g}" if isinstance(value, float) else str(value)
        return pb.ModelConfigResponse(config=config)

    def model_statistics(self, request) -> pb.ModelStatisticsResponse:
        if request.name:
            self._check_model(request.name, request.version)
        s, runners = self.stats, self.engine.runners.values()
        with s.lock:
            success, fail, inferences, last = list(s.success), list(s.fail), s.inferences, s.last_ms
        duration = pb.StatisticDuration
        queue = duration(count=sum(r.stats.runs for r in runners), ns=sum(r.stats.queue_ns for r in runners))
        compute = duration(count=queue.count, ns=sum(r.stats.compute_ns for r in runners))
        stats = pb.ModelStatistics(
            name=self.manifest.name, version=self.version, last_inference=last, inference_count=inferences,
            execution_count=success[0],
            inference_stats=pb.InferStatistics(success=duration(count=success[0], ns=success[1]),
                                               fail=duration(count=fail[0], ns=fail[1]), queue=queue,
                                               compute_infer=compute))
        return pb.ModelStatisticsResponse(model_stats=[stats])

    def infer(self, request, alive: Callable[[], bool] = always, shm: bool = True) -> pb.ModelInferResponse:
        """Answer one ModelInferRequest; ``alive()`` false (the client left) stops it early;
        ``shm`` false refuses tensors in shared memory (a caller on another machine)."""
        started = time.perf_counter_ns()
        label = "invalid"
        try:
            self._check_model(request.model_name, request.model_version)
            if not shm:
                refuse_shared_memory(request)
            tensors = decode_inputs(request, self.engine.limits, self.regions)
            label = "+".join(m for m in self.manifest.modalities if input_name(m) in tensors) or "none"
            wanted = {o.name: shared_memory(o.parameters, f"output {shown(o.name)}") for o in request.outputs}
            wanted = wanted or {SCORES: None}
            for name in wanted:
                if name not in (SCORES, EMBEDDING):
                    raise invalid(f"unknown output {shown(name)} (this model gives {[SCORES, EMBEDDING]})")
            self._check_output_regions(wanted, max((len(x) for x in tensors.values()), default=0))
            sequence = sequence_flags(request)
            if sequence is not None and sequence.start and self.draining:
                raise InferError(Status.UNAVAILABLE, "the server is shutting down: start new sequences "
                                 "on another server (open ones may finish here)")
            result = self.engine.infer(tensors, sequence, alive)
            if not alive():
                raise InferError(Status.CANCELLED, "the client left before the answer was ready")
            response = self._response(request, result, wanted)
        except InferError as e:
            outcome = "cancelled" if e.status is Status.CANCELLED else "error"
            self.stats.record(False, time.perf_counter_ns() - started)
            self.metrics.requests.labels(outcome, label).inc()
            raise
        self.stats.record(True, time.perf_counter_ns() - started, len(result.scores))
        self.metrics.requests.labels("success", label).inc()
        self.metrics.latency.labels(label).observe(result.server_ns / 1e9)
        for m in result.failed:
            self.metrics.degraded.labels(m).inc()
        self.metrics.sequences.set(len(self.engine.sequences))
        return response

    def _response(self, request, result: Result, wanted: dict) -> pb.ModelInferResponse:
        response = pb.ModelInferResponse(model_name=self.manifest.name, model_version=self.version,
                                         id=request.id)
        response.parameters["modalities_used"].string_param = "+".join(result.used)
        response.parameters["precision"].string_param = self.engine.bundle.precision
        response.parameters["server_time_ns"].int64_param = result.server_ns
        if result.failed:
            response.parameters["modalities_failed"].string_param = "+".join(
                m for m in self.manifest.modalities if m in result.failed)
        for name, where in wanted.items():
            array = result.scores if name == SCORES else result.embedding
            if where is None:
                encode_output(response, name, array)
                continue
            region, offset, _ = where  # written into the client's region, not into the message
            data = np.ascontiguousarray(array, dtype="<f4")
            self.regions.write(region, offset, data, f"output {name!r}")
            tensor = response.outputs.add(name=name, datatype="FP32", shape=list(array.shape))
            tensor.parameters["shared_memory_region"].string_param = region
            tensor.parameters["shared_memory_byte_size"].int64_param = data.nbytes
            if offset:
                tensor.parameters["shared_memory_offset"].int64_param = offset
        return response

    def _check_output_regions(self, wanted: dict, batch: int) -> None:
        """Outputs asked into shared memory must fit their windows: checked before any work."""
        width = {SCORES: len(self.manifest.classes), EMBEDDING: self.manifest.embedding_dim}
        for name, where in wanted.items():
            if where is not None:
                need = 4 * batch * width[name]
                if where[2] < need:
                    raise invalid(f"output {name!r}: shared_memory_byte_size {where[2]}, the answer "
                                  f"needs {need}")
                self.regions.check(where[0], where[1], need, f"output {name!r}")
