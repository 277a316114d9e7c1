"""The KServe v2 / Triton gRPC service: protobuf <-> engine calls, and the one place where an
engine status becomes a gRPC code. No torch."""

from __future__ import annotations

import logging
import threading
import time

import grpc

import mmrt
from mmrt.bundle import EMBEDDING, SCORES, input_name
from mmrt.runtime.engine import WIRE, Engine, Result, SequenceFlags
from mmrt.runtime.errors import InferError, Status, invalid, shown
from mmrt.runtime.metrics import Metrics
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc
from mmrt.runtime.protocol import model_config_pb2 as mc
from mmrt.runtime.ratelimit import RateLimitedLog
from mmrt.runtime.tensors import decode_inputs, encode_output

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)
INTERNAL_MESSAGE = "internal error (the server's log has the details)"  # never a Python exception's text

GRPC_CODES = {Status.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
              Status.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
              Status.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
              Status.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE, Status.CANCELLED: grpc.StatusCode.CANCELLED,
              Status.INTERNAL: grpc.StatusCode.INTERNAL}
VERSION = "1"  # a bundle is one model version
PLATFORM = "mmrt_multimodal"
CONFIG_TYPES = {"FP32": mc.TYPE_FP32, "UINT8": mc.TYPE_UINT8, "BYTES": mc.TYPE_STRING}


def _sequence(request) -> SequenceFlags | None:
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


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, engine: Engine, metrics: Metrics | None = None):
        self.engine, self.manifest = engine, engine.manifest
        self.metrics = metrics or Metrics()
        self.stats = Stats()
        self.ready = True  # False while draining
        self.in_flight = 0  # inference calls running now (a drain waits for them)
        self.flight_lock = threading.Condition()

    # --- health and metadata -------------------------------------------------------------
    def _known(self, name: str, version: str) -> bool:
        return name == self.manifest.name and version in ("", VERSION)

    def _check_model(self, name: str, version: str) -> None:
        if not self._known(name, version):
            asked = f"model {shown(name)}" + (f" version {shown(version)}" if version else "")
            raise InferError(Status.NOT_FOUND, f"{asked}: not served here (this server has "
                             f"{self.manifest.name!r} version {VERSION})")

    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.ready)

    def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=self.ready and self._known(request.name, request.version))

    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="mmrt", version=mmrt.__version__,
                                         extensions=["model_configuration", "sequence", "statistics"])

    def _tensors(self):
        m = self.manifest
        inputs = [(input_name(x), WIRE[x][1], [-1, -1] if x == "audio" else [-1, -1, -1, -1, 3]
                   if x == "video" else [-1]) for x in m.modalities]
        outputs = [(SCORES, "FP32", [-1, len(m.classes)]), (EMBEDDING, "FP32", [-1, m.embedding_dim])]
        return inputs, outputs

    def ModelMetadata(self, request, context):
        return self._call(context, self._metadata, request)

    def _metadata(self, request):
        self._check_model(request.name, request.version)
        inputs, outputs = self._tensors()
        meta = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=self.manifest.name, versions=[VERSION], platform=PLATFORM,
            inputs=[meta(name=n, datatype=t, shape=s) for n, t, s in inputs],
            outputs=[meta(name=n, datatype=t, shape=s) for n, t, s in outputs])

    def ModelConfig(self, request, context):
        return self._call(context, self._config, request)

    def _config(self, request):
        self._check_model(request.name, request.version)
        inputs, outputs = self._tensors()
        batching, limits = self.engine.batching, self.engine.limits
        config = mc.ModelConfig(
            name=self.manifest.name, platform=PLATFORM, backend="mmrt", max_batch_size=limits.max_batch,
            input=[mc.ModelInput(name=n, data_type=CONFIG_TYPES[t], dims=s[1:] or [1], optional=True)
                   for n, t, s in inputs],
            output=[mc.ModelOutput(name=n, data_type=CONFIG_TYPES[t], dims=s[1:]) for n, t, s in outputs])
        if batching.enabled:
            config.dynamic_batching.max_queue_delay_microseconds = int(batching.max_delay_s * 1e6)
        m, seq = self.manifest, self.engine.sequences.limits
        reported = {"modalities": "+".join(m.modalities), "classes": ",".join(m.classes), "task": m.task,
                    **limits.to_dict(), "max_sequences": seq.max_sequences,
                    "sequence_idle_s": seq.idle_timeout_s, "max_sequence_mb": seq.max_mb}
        for key, value in reported.items():  # the limits as the server checks them, for clients to read
            config.parameters[key].string_value = f"{value:g}" if isinstance(value, float) else str(value)
        return pb.ModelConfigResponse(config=config)

    def ModelStatistics(self, request, context):
        return self._call(context, self._statistics, request)

    def _statistics(self, request):
        if request.name:
            self._check_model(request.name, request.version)
        s, runners = self.stats, self.engine.runners.values()
        with s.lock:
            success, fail, inferences, last = list(s.success), list(s.fail), s.inferences, s.last_ms
        duration = pb.StatisticDuration
        queue = duration(count=sum(r.stats.runs for r in runners), ns=sum(r.stats.queue_ns for r in runners))
        compute = duration(count=queue.count, ns=sum(r.stats.compute_ns for r in runners))
        stats = pb.ModelStatistics(
            name=self.manifest.name, version=VERSION, last_inference=last, inference_count=inferences,
            execution_count=success[0],
            inference_stats=pb.InferStatistics(success=duration(count=success[0], ns=success[1]),
                                               fail=duration(count=fail[0], ns=fail[1]), queue=queue,
                                               compute_infer=compute))
        return pb.ModelStatisticsResponse(model_stats=[stats])

    # --- inference ------------------------------------------------------------------------
    def _call(self, context, fn, *args):
        try:
            return fn(*args)
        except InferError as e:
            context.abort(GRPC_CODES[e.status], e.message)
        except Exception:  # noqa: BLE001 - a bug answers INTERNAL and the server keeps serving
            warn.exception(fn.__name__, "%s failed", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

    def _infer(self, request, context) -> pb.ModelInferResponse:
        started = time.perf_counter_ns()
        label = "invalid"

        def alive() -> bool:  # False once the answer would go to nobody
            remaining = context.time_remaining()  # None: no deadline
            return context.is_active() and (remaining is None or remaining > 0)

        try:
            self._check_model(request.model_name, request.model_version)
            tensors = decode_inputs(request, self.engine.limits)
            label = "+".join(m for m in self.manifest.modalities if input_name(m) in tensors) or "none"
            wanted = [o.name for o in request.outputs] or [SCORES]
            for name in wanted:
                if name not in (SCORES, EMBEDDING):
                    raise invalid(f"unknown output {shown(name)} (this model gives {[SCORES, EMBEDDING]})")
            result = self.engine.infer(tensors, _sequence(request), alive)
            if not alive():
                raise InferError(Status.CANCELLED, "the client left before the answer was ready")
        except InferError as e:
            outcome = "cancelled" if e.status is Status.CANCELLED else "error"
            self.stats.record(False, time.perf_counter_ns() - started)
            self.metrics.requests.labels(outcome, label).inc()
            raise
        response = self._response(request, result, wanted)
        self.stats.record(True, time.perf_counter_ns() - started, len(result.scores))
        self.metrics.requests.labels("success", label).inc()
        self.metrics.latency.labels(label).observe(result.server_ns / 1e9)
        for m in result.failed:
            self.metrics.degraded.labels(m).inc()
        self.metrics.sequences.set(len(self.engine.sequences))
        return response

    def _response(self, request, result: Result, wanted: list[str]) -> pb.ModelInferResponse:
        response = pb.ModelInferResponse(model_name=self.manifest.name, model_version=VERSION, id=request.id)
        response.parameters["modalities_used"].string_param = "+".join(result.used)
        response.parameters["server_time_ns"].int64_param = result.server_ns
        if result.failed:
            response.parameters["modalities_failed"].string_param = "+".join(
                m for m in self.manifest.modalities if m in result.failed)
        for name in wanted:
            encode_output(response, name, result.scores if name == SCORES else result.embedding)
        return response

    def _flight(self, delta: int) -> None:
        with self.flight_lock:
            self.in_flight += delta
            self.flight_lock.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until no inference call runs (or ``timeout_s`` passes); True if idle."""
        with self.flight_lock:
            return self.flight_lock.wait_for(lambda: self.in_flight == 0, timeout=timeout_s)

    def ModelInfer(self, request, context):
        self._flight(+1)
        try:
            return self._call(context, self._infer, request, context)
        finally:
            self._flight(-1)

    def ModelStreamInfer(self, request_iterator, context):
        for request in request_iterator:
            self._flight(+1)
            try:
                yield pb.ModelStreamInferResponse(infer_response=self._infer(request, context))
            except InferError as e:  # the stream stays open; the error rides in the response
                response = pb.ModelStreamInferResponse(error_message=e.message)
                response.infer_response.id = request.id
                yield response
            except Exception:  # noqa: BLE001 - one bad request must not end the stream
                warn.exception("stream", "stream request %s failed", shown(request.id))
                yield pb.ModelStreamInferResponse(error_message=INTERNAL_MESSAGE)
            finally:
                self._flight(-1)
