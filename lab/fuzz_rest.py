"""Hostile input for `mmrt serve`'s REST side: hypothesis-generated inference bodies (broken JSON,
wrong types, nesting, datatypes, shapes and data that disagree, binary tensor data whose sizes
lie, header lengths past the body, shared-memory parameters naming nothing, random paths and
versions), sent over one keep-alive connection. Pass: every answer is a 2xx or 4xx with a short
JSON ``error`` (never a 5xx, never a dropped connection). Used by ``lab/fuzz.py``.

Quoted in docs/reliability.md."""

from __future__ import annotations

import collections
import http.client
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.fuzz_inputs import DATATYPES, DIMS, LONG, MAX_DETAIL, NAMES

EXPECTED = {200, 400, 401, 404, 408, 409, 413, 429}
JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70),
                                     st.floats(allow_nan=False), st.text(max_size=8)),
                           lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=12)


@st.composite
def tensor(draw, binary: list[bytes]) -> dict:
    t = {"name": draw(st.sampled_from(NAMES + [7, None])),
         "datatype": draw(st.sampled_from(DATATYPES + [3])),
         "shape": draw(st.one_of(st.lists(DIMS, max_size=draw(st.sampled_from([6] * 9 + [70]))),
                                 JSON_VALUES))}
    kind = draw(st.sampled_from(["data", "nested", "binary", "shm", "none", "junk"]))
    if kind == "data":
        values = st.one_of(st.floats(width=32), st.integers(-300, 300), st.text(max_size=6))
        t["data"] = draw(st.lists(values, max_size=64))
    elif kind == "nested":
        t["data"] = draw(st.lists(st.lists(st.integers(0, 255), max_size=8), max_size=8))
    elif kind == "binary":
        blob = draw(st.binary(max_size=2048))
        binary.append(blob)
        sizes = [len(blob)] * 4 + [len(blob) + 9, -1, "x"]
        t["parameters"] = {"binary_data_size": draw(st.sampled_from(sizes))}
    elif kind == "shm":
        t["parameters"] = {"shared_memory_region": draw(st.sampled_from(["in", "", LONG])),
                           "shared_memory_byte_size": draw(st.integers(-8, 1 << 40))}
    elif kind == "junk":
        t["parameters"] = draw(JSON_VALUES)
    return t


@st.composite
def bodies(draw) -> tuple[str, bytes, dict]:
    """(path, body, headers) of one inference request."""
    model = draw(st.sampled_from(["mmrt"] * 8 + ["other", "", LONG[:300]]))
    version = draw(st.sampled_from([None] * 6 + ["1", "2", LONG[:300]]))
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    kind = draw(st.sampled_from(["request"] * 8 + ["json", "bytes", "deep"]))
    headers: dict = {}
    if kind == "json":
        return path, json.dumps(draw(JSON_VALUES)).encode(), headers
    if kind == "bytes":
        return path, draw(st.binary(max_size=512)), headers
    if kind == "deep":
        return path, b"[" * draw(st.integers(500, 200_000)), headers
    binary: list[bytes] = []
    doc = {"id": draw(st.one_of(st.text(max_size=8), st.just(LONG), st.integers())),
           "inputs": draw(st.lists(tensor(binary), max_size=4)),
           "parameters": draw(st.one_of(st.just({}), st.dictionaries(
               st.sampled_from(["sequence_id", "sequence_start", "binary_data_output", LONG]), JSON_VALUES,
               max_size=3)))}
    if draw(st.booleans()):
        doc["outputs"] = draw(st.lists(st.fixed_dictionaries(
            {"name": st.sampled_from(["SCORES", "EMBEDDING", "PROBS", LONG, 5])},
            optional={"parameters": st.one_of(JSON_VALUES, st.just({"binary_data": True}))}), max_size=3))
    header = json.dumps(doc).encode()
    body = header + b"".join(binary)
    if binary or draw(st.integers(0, 5)) == 0:
        headers["Inference-Header-Content-Length"] = draw(st.sampled_from(
            [str(len(header))] * 6 + [str(len(body) + 5), "-1", "lots", str(len(header) - 1)]))
    return path, body, headers


def fuzz_rest(address: str, count: int) -> tuple[collections.Counter, list[str]]:
    """Send ``count`` hostile REST bodies; the status tally and what was unexpected."""
    host, port = address.rsplit(":", 1)
    state = {"connection": http.client.HTTPConnection(host, int(port), timeout=60)}
    codes: collections.Counter = collections.Counter()
    unexpected: list[str] = []

    def send(path: str, body: bytes, headers: dict) -> None:
        connection = state["connection"]
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            status, text = response.status, response.read()
        except (OSError, http.client.HTTPException) as e:  # a dropped connection fails the run
            codes["DROPPED"] += 1
            unexpected.append(f"connection dropped: {type(e).__name__}: {e}")
            state["connection"] = http.client.HTTPConnection(host, int(port), timeout=60)
            return
        codes[status] += 1
        if status not in EXPECTED:
            unexpected.append(f"{status}: {text[:200]!r}")
        elif status != 200 and (len(text) > MAX_DETAIL or "error" not in json.loads(text)):
            unexpected.append(f"{status} with a {len(text)}-byte answer: {text[:200]!r}")

    @settings(max_examples=count, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(bodies())
    def run(case):
        send(*case)

    run()
    state["connection"].close()
    return codes, unexpected
