"""KServe v2 tensors <-> numpy: both request encodings (typed ``contents`` and
``raw_input_contents``), as Triton accepts them; responses go out as raw bytes, as Triton's do.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from mmrt.runtime.errors import invalid, shown
from mmrt.runtime.limits import Limits

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


def decode_inputs(request, limits: Limits | None = None) -> dict[str, np.ndarray]:
    """A ModelInferRequest's inputs as arrays by name, every size and type checked; with ``limits``,
    a batch over the limit is refused before its bytes are decoded."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise invalid(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs "
                      f"(expected one per input, in order)")
    tensors: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(request.inputs):
        name = tensor.name
        if name in tensors:
            raise invalid(f"input {shown(name)} is given twice")
        if tensor.datatype not in DATATYPES:
            raise invalid(f"input {shown(name)}: unknown datatype {shown(tensor.datatype)} "
                          f"(expected one of {sorted(DATATYPES)})")
        dtype, field = DATATYPES[tensor.datatype]
        shape = _shape(name, tensor.shape)
        if limits is not None:
            limits.check_rows(name, shape[0])
        count = _count(shape)
        if limits is not None and dtype.kind == "O" and count > limits.max_batch:  # strings, one per row
            raise invalid(f"input {shown(name)}: {count} BYTES elements, at most {limits.max_batch} "
                          f"(one per row)")
        if raw:
            if tensor.HasField("contents"):
                raise invalid(f"input {shown(name)}: both contents and raw_input_contents are set")
            if dtype.kind == "O":
                array = decode_bytes(name, raw[i], count)
            else:
                if len(raw[i]) != count * dtype.itemsize:
                    raise invalid(f"input {shown(name)}: {len(raw[i])} raw bytes, shape {list(shape)} of "
                                  f"{tensor.datatype} needs {count * dtype.itemsize}")
                array = np.frombuffer(raw[i], dtype=dtype.newbyteorder("<"))
        else:
            if field is None:
                raise invalid(f"input {shown(name)}: {tensor.datatype} must be sent as raw_input_contents")
            values = getattr(tensor.contents, field)
            if len(values) != count:
                raise invalid(f"input {shown(name)}: {len(values)} values in contents.{field}, shape "
                              f"{list(shape)} needs {count}")
            if dtype.kind == "O":
                array = np.empty(count, dtype=object)
                array[:] = list(values)
            else:
                try:
                    array = np.asarray(values, dtype=dtype)
                except OverflowError:
                    raise invalid(f"input {shown(name)}: a value is out of range for "
                                  f"{tensor.datatype}") from None
        tensors[name] = array.reshape(shape)
    return tensors


def encode_output(response, name: str, array: np.ndarray) -> None:
    """Append an FP32 output to a ModelInferResponse as raw little-endian bytes."""
    response.outputs.add(name=name, datatype="FP32", shape=list(array.shape))
    response.raw_output_contents.append(np.ascontiguousarray(array, dtype="<f4").tobytes())
