"""KServe v2 tensors <-> numpy: both request encodings (typed ``contents`` and
``raw_input_contents``), as Triton accepts them; responses go out as raw bytes, as Triton's do.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from mmrt.runtime.engine.limits import Limits
from mmrt.runtime.engine.status import invalid, shown
from mmrt.runtime.protocol.shm import SharedMemoryRegions

# Triton datatype name -> numpy dtype, and the InferTensorContents field that carries it.
DATATYPES = {
    "BOOL": (np.dtype(np.bool_), "bool_contents"), "UINT8": (np.dtype(np.uint8), "uint_contents"),
    "UINT16": (np.dtype(np.uint16), "uint_contents"), "UINT32": (np.dtype(np.uint32), "uint_contents"),
    "UINT64": (np.dtype(np.uint64), "uint64_contents"), "INT8": (np.dtype(np.int8), "int_contents"),
    "INT16": (np.dtype(np.int16), "int_contents"), "INT32": (np.dtype(np.int32), "int_contents"),
    "INT64": (np.dtype(np.int64), "int64_contents"), "FP16": (np.dtype(np.float16), None),
    "FP32": (np.dtype(np.float32), "fp32_contents"), "FP64": (np.dtype(np.float64), "fp64_contents"),
    "BYTES": (np.dtype(object), "bytes_contents"),
}
MAX_ELEMENTS = 1 << 31  # a shape whose non-zero dims multiply past this is refused (before numpy sees it)
MAX_RANK = 8  # numpy stops at 64 dimensions; no input of any model here has more than 5


def _shape(name: str, dims) -> tuple[int, ...]:
    if len(dims) > MAX_RANK:
        raise invalid(f"input {shown(name)}: {len(dims)} dimensions, at most {MAX_RANK}")
    shape = tuple(int(d) for d in dims)
    if not shape:
        raise invalid(f"input {shown(name)}: no shape given (expected a batch axis first)")
    if any(d < 0 for d in shape):
        raise invalid(f"input {shown(name)}: shape {list(shape)} has a negative dimension")
    if math.prod(d for d in shape if d) > MAX_ELEMENTS:  # even with a zero dim numpy cannot shape it
        raise invalid(f"input {shown(name)}: shape {list(shape)} is too large")
    return shape


def _count(shape: tuple[int, ...]) -> int:
    return math.prod(shape)  # exact: numpy's int64 product could wrap around on hostile shapes


def decode_bytes(name: str, raw: bytes, count: int) -> np.ndarray:
    """Triton's BYTES wire form: each element a 4-byte little-endian length, then its bytes."""
    items, offset = [], 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise invalid(f"input {shown(name)}: raw BYTES content ends before element {i} of {count}")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise invalid(f"input {shown(name)}: BYTES element {i} claims {size} bytes, only "
                          f"{len(raw) - offset} remain")
        items.append(raw[offset:offset + size])
        offset += size
    if offset != len(raw):
        raise invalid(f"input {shown(name)}: {len(raw) - offset} bytes left after {count} BYTES elements")
    out = np.empty(count, dtype=object)
    out[:] = items
    return out


def shared_memory(params, what: str) -> tuple[str, int, int] | None:
    """A tensor's system shared-memory parameters (region, offset, byte size), or None."""
    if "shared_memory_region" not in params:
        return None
    region = params["shared_memory_region"]
    if region.WhichOneof("parameter_choice") != "string_param":
        raise invalid(f"{what}: parameter 'shared_memory_region' must be a string")
    numbers: list[int] = []
    for key, default in (("shared_memory_offset", 0), ("shared_memory_byte_size", None)):
        p = params.get(key)
        kind = p.WhichOneof("parameter_choice") if p is not None else None
        if p is None and default is not None:
            numbers.append(default)
        elif kind in ("int64_param", "uint64_param"):
            numbers.append(int(getattr(p, kind)))
        else:
            raise invalid(f"{what}: parameter {key!r} must be an integer")
    return region.string_param, numbers[0], numbers[1]


def decode_inputs(request, limits: Limits | None = None, regions: SharedMemoryRegions | None = None
                  ) -> dict[str, np.ndarray]:
    """A ModelInferRequest's inputs as arrays by name, every size and type checked; with ``limits``,
    a batch over the limit is refused before its bytes are decoded. An input may come from a
    shared-memory region (``regions``) instead of the message."""
    limits = limits or Limits()
    located = [shared_memory(t.parameters, f"input {shown(t.name)}") for t in request.inputs]
    raw = iter(request.raw_input_contents)
    carried = sum(where is None for where in located)
    if request.raw_input_contents and len(request.raw_input_contents) != carried:
        raise invalid(f"raw_input_contents has {len(request.raw_input_contents)} entries for {carried} "
                      f"inputs not in shared memory (expected one per input, in order)")
    tensors: dict[str, np.ndarray] = {}
    from_shm = 0
    for tensor, where in zip(request.inputs, located, strict=True):
        name = tensor.name
        if name in tensors:
            raise invalid(f"input {shown(name)} is given twice")
        if tensor.datatype not in DATATYPES:
            raise invalid(f"input {shown(name)}: unknown datatype {shown(tensor.datatype)} "
                          f"(expected one of {sorted(DATATYPES)})")
        dtype, field = DATATYPES[tensor.datatype]
        shape = _shape(name, tensor.shape)
        limits.check_rows(name, shape[0])
        count = _count(shape)
        if dtype.kind == "O" and count > limits.max_batch:  # strings, one per row
            raise invalid(f"input {shown(name)}: {count} BYTES elements, at most {limits.max_batch} "
                          f"(one per row)")
        if where is not None:
            if regions is None:
                raise invalid(f"input {shown(name)}: this server takes no shared-memory inputs")
            if tensor.HasField("contents"):
                raise invalid(f"input {shown(name)}: both contents and a shared-memory region are set")
            from_shm += where[2]
            if from_shm > limits.max_shm_mb * (1 << 20):
                raise invalid(f"input {shown(name)}: the request's shared-memory inputs pass "
                              f"{limits.max_shm_mb:g} MB (the server's --max-shm-mb)")
            array = _from_bytes(name, tensor.datatype, shape, count,
                                regions.read(where[0], where[1], where[2], f"input {shown(name)}"))
        elif request.raw_input_contents:
            if tensor.HasField("contents"):
                raise invalid(f"input {shown(name)}: both contents and raw_input_contents are set")
            array = _from_bytes(name, tensor.datatype, shape, count, next(raw))
        else:
            array = _from_contents(name, tensor, field, dtype, shape, count)
        tensors[name] = array.reshape(shape)
    return tensors


def _from_bytes(name: str, datatype: str, shape, count: int, data) -> np.ndarray:
    dtype = DATATYPES[datatype][0]
    if dtype.kind == "O":
        return decode_bytes(name, bytes(data), count)
    if len(data) != count * dtype.itemsize:
        raise invalid(f"input {shown(name)}: {len(data)} raw bytes, shape {list(shape)} of "
                      f"{datatype} needs {count * dtype.itemsize}")
    return np.frombuffer(data, dtype=dtype.newbyteorder("<"))


def _from_contents(name: str, tensor, field: str | None, dtype, shape, count: int) -> np.ndarray:
    if field is None:
        raise invalid(f"input {shown(name)}: {tensor.datatype} must be sent as raw_input_contents")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise invalid(f"input {shown(name)}: {len(values)} values in contents.{field}, shape "
                      f"{list(shape)} needs {count}")
    if dtype.kind == "O":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array
    try:
        return np.asarray(values, dtype=dtype)
    except OverflowError:
        raise invalid(f"input {shown(name)}: a value is out of range for {tensor.datatype}") from None


def encode_output(response, name: str, array: np.ndarray) -> None:
    """Append an FP32 output to a ModelInferResponse as raw little-endian bytes."""
    response.outputs.add(name=name, datatype="FP32", shape=list(array.shape))
    response.raw_output_contents.append(np.ascontiguousarray(array, dtype="<f4").tobytes())
