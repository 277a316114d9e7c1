"""The hostile values every fuzzer of the control plane draws from (docs/reliability.md quotes the
fuzzers' runs).

Used by lab/fuzz.py, lab/fuzz_control.py, lab/fuzz_rest.py."""

from hypothesis import strategies as st

LONG = "L" * 100_000  # echoed fields must come back cut short
NAMES = ["AUDIO", "VIDEO", "TEXT", "audio", "", "EMBEDDING", "X" * 300, "TEXT\x00", LONG]
DATATYPES = ["FP32", "UINT8", "BYTES", "INT64", "FP16", "FP64", "BOOL", "INT8", "", "fp32", "COMPLEX64"]
DIMS = st.one_of(st.integers(0, 4), st.integers(-3, -1),
                 st.sampled_from([1 << 31, 1 << 40, 1 << 62, 17, 400]))
MAX_DETAIL = 1_000  # characters: no message may be longer, whatever the request echoed
