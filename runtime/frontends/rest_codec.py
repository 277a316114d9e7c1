"""KServe v2 REST bodies <-> the protocol's protobuf messages, so that REST and gRPC share one
meaning (``runtime.kserve``): the same validation, limits and statistics. Tensors come as JSON
``data`` or, with Triton's binary tensor data extension, as raw bytes after the JSON header
(``Inference-Header-Content-Length``); either way they become ``raw_input_contents``. No torch.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from mmrt.runtime.engine.status import invalid, shown
from mmrt.runtime.protocol import grpc_service_pb2 as pb
from mmrt.runtime.protocol.tensors import DATATYPES

HEADER_LENGTH = "Inference-Header-Content-Length"
# What a JSON value must be for each kind of numeric tensor (bool is an int in Python: kept apart).
JSON_KINDS = {"b": lambda v: isinstance(v, bool),
              "i": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "f": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
JSON_KINDS["u"] = JSON_KINDS["i"]
JSON_WHAT = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers"}


@dataclass
class RestRequest:
    request: pb.ModelInferRequest
    binary: dict[str, bool]  # output name -> answer it as binary data (else JSON)
    binary_default: bool  # for the outputs the request did not name


def json_object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise invalid(f"{what}: expected a JSON object")
    return value


def set_parameters(target, parameters, what: str) -> None:
    """JSON parameters -> a protobuf map of InferParameter."""
    for key, value in json_object(parameters, what).items():
        p = target[key]
        if isinstance(value, bool):
            p.bool_param = value
        elif isinstance(value, int) and -(1 << 63) <= value < 1 << 63:
            p.int64_param = value
        elif isinstance(value, float):
            p.double_param = value
        elif isinstance(value, str):
            p.string_param = value
        else:
            raise invalid(f"{what} {shown(key)}: expected a boolean, a 64-bit integer, a number or a string")


def parameters_json(parameters) -> dict:
    return {k: getattr(v, v.WhichOneof("parameter_choice")) for k, v in parameters.items()
            if v.WhichOneof("parameter_choice")}


def _flat(data) -> list:
    """Triton accepts a tensor's JSON data flat or nested by its shape; row-major either way."""
    if not isinstance(data, list):
        return [data]
    out: list = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def json_tensor_bytes(name: str, datatype: str, data) -> bytes:
    """A tensor's JSON ``data`` in the raw wire form of its datatype (what raw_input_contents holds)."""
    dtype, _ = DATATYPES[datatype]
    values = _flat(data)
    if dtype.kind == "O":
        if not all(isinstance(v, str) for v in values):
            raise invalid(f"input {shown(name)}: BYTES data must be JSON strings")
        encoded = [v.encode("utf-8", "surrogatepass") for v in values]
        return b"".join(struct.pack("<I", len(v)) + v for v in encoded)
    if not all(map(JSON_KINDS[dtype.kind], values)):  # never a float silently cut into an integer
        raise invalid(f"input {shown(name)}: {datatype} data must be JSON {JSON_WHAT[dtype.kind]}")
    try:
        return np.asarray(values, dtype=dtype).astype(dtype.newbyteorder("<"), copy=False).tobytes()
    except (OverflowError, ValueError):
        raise invalid(f"input {shown(name)}: a value is out of range for {datatype}") from None


def parse_infer(body: bytes, header_length: str | None, model: str, version: str,
                max_json_bytes: int) -> RestRequest:
    """An inference request body (JSON, or a JSON header then binary tensor data)."""
    binary: bytes | memoryview
    if header_length is None:
        header, binary = body, b""
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise invalid(f"{HEADER_LENGTH} {shown(header_length)}: expected a byte count") from None
        if not 0 <= n <= len(body):
            raise invalid(f"{HEADER_LENGTH} {n}: the body has {len(body)} bytes")
        header, binary = body[:n], memoryview(body)[n:]
    if len(header) > max_json_bytes:
        raise invalid(f"the request's JSON is {len(header)} bytes, at most {max_json_bytes} (send large "
                      f"tensors as binary data: Triton's binary tensor data extension, or shared memory)")
    try:
        doc = json_object(json.loads(header), "the request body")
    except RecursionError:
        raise invalid("the request body nests too deeply") from None
    except UnicodeDecodeError as e:
        raise invalid(f"the request body is not JSON (not UTF-8 at byte {e.start})") from None
    except json.JSONDecodeError as e:  # where, not the parser's own words
        raise invalid(f"the request body is not JSON (at line {e.lineno}, column {e.colno})") from None
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=str(doc.get("id", ""))[:256])
    set_parameters(request.parameters, doc.get("parameters", {}), "parameter")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise invalid("'inputs': expected a non-empty list of tensors")
    offset = 0
    for tensor in inputs:
        t = json_object(tensor, "an input")
        name, datatype, shape = t.get("name"), t.get("datatype"), t.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise invalid("an input: expected 'name' and 'datatype' strings")
        if not isinstance(shape, list) or not all(type(d) is int and abs(d) < 1 << 63 for d in shape):
            raise invalid(f"input {shown(name)}: 'shape' must be a list of 64-bit integers")
        if datatype not in DATATYPES:
            raise invalid(f"input {shown(name)}: unknown datatype {shown(datatype)} "
                          f"(expected one of {sorted(DATATYPES)})")
        added = request.inputs.add(name=name, datatype=datatype, shape=shape)
        params = json_object(t.get("parameters", {}), f"input {shown(name)}: 'parameters'")
        size = params.get("binary_data_size")
        if "shared_memory_region" in params:  # the bytes are in the region, not in the body
            set_parameters(added.parameters, params, f"input {shown(name)}: parameter")
        elif size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise invalid(f"input {shown(name)}: binary_data_size {shown(str(size))}, but "
                              f"{len(binary) - offset} bytes of binary data remain")
            request.raw_input_contents.append(bytes(binary[offset:offset + size]))
            offset += size
        elif "data" in t:
            request.raw_input_contents.append(json_tensor_bytes(name, datatype, t["data"]))
        else:
            raise invalid(f"input {shown(name)}: neither 'data' nor a binary_data_size parameter")
    if offset != len(binary):
        raise invalid(f"{len(binary) - offset} bytes of binary data follow the last input")
    default = doc.get("parameters", {}).get("binary_data_output", False) is True
    binary_outputs = {}
    for tensor in doc.get("outputs") or []:
        t = json_object(tensor, "an output")
        if not isinstance(t.get("name"), str):
            raise invalid("an output: expected a 'name' string")
        wanted = json_object(t.get("parameters", {}), f"output {shown(t['name'])}: 'parameters'")
        binary_outputs[t["name"]] = wanted.get("binary_data", default) is True
        added = request.outputs.add(name=t["name"])
        if "shared_memory_region" in wanted:
            set_parameters(added.parameters, wanted, f"output {shown(t['name'])}: parameter")
    return RestRequest(request, binary_outputs, default)


def render_infer(response: pb.ModelInferResponse, wanted: RestRequest) -> tuple[bytes, int | None]:
    """An inference response as a body, and its JSON header's length if binary data follows."""
    doc: dict = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id:
        doc["id"] = response.id
    doc["parameters"] = parameters_json(response.parameters)
    doc["outputs"], binary = [], []
    raw_contents = iter(response.raw_output_contents)
    for tensor in response.outputs:
        entry: dict = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        if "shared_memory_region" in tensor.parameters:  # written into the client's region
            entry["parameters"] = parameters_json(tensor.parameters)
            doc["outputs"].append(entry)
            continue
        raw = next(raw_contents)
        if wanted.binary.get(tensor.name, wanted.binary_default):
            entry["parameters"] = {"binary_data_size": len(raw)}
            binary.append(raw)
        else:
            entry["data"] = np.frombuffer(raw, dtype=DATATYPES[tensor.datatype][0].newbyteorder("<")).tolist()
        doc["outputs"].append(entry)
    header = json.dumps(doc, separators=(",", ":")).encode()
    return (header + b"".join(binary), len(header)) if binary else (header, None)


def message_json(message) -> dict:
    """A protobuf message as Triton's REST API writes it: proto field names, enums by name, 64-bit
    integers as JSON numbers (protobuf's own JSON form quotes them), zeros and empty lists written
    out; sub-messages and oneof members only where set."""
    out = {}
    for field in message.DESCRIPTOR.fields:
        set_here = field.is_repeated or (field.message_type is None and field.containing_oneof is None)
        if set_here or message.HasField(field.name):
            out[field.name] = _field(field, getattr(message, field.name))
    return out


def _field(field, value):
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        item = entry.fields_by_name["value"]
        return {k: _value(item, v) for k, v in value.items()}
    if field.is_repeated:
        return [_value(field, v) for v in value]
    return _value(field, value)


def _value(field, value):
    if field.message_type is not None:
        return message_json(value)
    if field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
