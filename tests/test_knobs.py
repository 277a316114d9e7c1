"""One home per knob: every numeric flag of `mmrt serve` and `mmrt export` is built from the
dataclass field it sets (its default, bound and unit declared once); serving caps --max-batch to
a TensorRT engine's batch profile; every preset gets the downstream recipe chosen on validation."""

import dataclasses
import json
import logging
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from mmrt.cli.entry import build_parser
from mmrt.cli.serve import _options
from mmrt.errors import UserError
from mmrt.export.tensorrt import EngineOptions
from mmrt.knobs import from_flags, knobs
from mmrt.runtime.backends.loaded_bundle import open_bundle
from mmrt.runtime.engine.batcher import BatchingOptions
from mmrt.runtime.engine.limits import Limits
from mmrt.runtime.engine.sequences import SequenceLimits
from mmrt.runtime.frontends import server as server_module
from mmrt.runtime.frontends.admission import AdmissionOptions
from mmrt.runtime.frontends.options import ServerOptions
from mmrt.training.model.config import PRESETS, Downstream, load_preset, preset_downstream

SERVE_OPTIONS = (Limits, BatchingOptions, AdmissionOptions, SequenceLimits, ServerOptions)
PORTS = {"--port", "--http-port", "--metrics-port"}


def serve_args(*flags: str):
    return build_parser().parse_args(["serve", "BUNDLE", *flags])


def numeric_flags(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {a.option_strings[0] for a in sub._actions if a.type in (int, float)}


def test_every_numeric_serve_flag_is_a_field_s_knob_and_its_default_is_the_field_s():
    declared = {k.flag for cls in SERVE_OPTIONS for _, k in knobs(cls)}
    assert numeric_flags("serve") == declared | PORTS
    options = _options(serve_args())
    for got, default in ((options, ServerOptions()), (options.limits, Limits()),
                         (options.admission, AdmissionOptions()), (options.sequences, SequenceLimits()),
                         (options.batching, BatchingOptions())):
        for f, _ in knobs(type(default)):
            assert getattr(got, f.name) == getattr(default, f.name), f.name


# What the flags defaulted to before they were built from the fields.
SERVE_DEFAULTS = {
    "--max-batch": 32, "--max-audio-s": 60.0, "--max-video-frames": 1024, "--max-video-side": 4096,
    "--max-video-aspect": 16.0, "--max-text-bytes": 4096, "--max-shm-mb": 64.0, "--max-calls": 64,
    "--max-streams": 64, "--stream-idle-s": 120.0, "--max-uploads": 64, "--max-sequences": 1024,
    "--sequence-idle-s": 60.0, "--max-sequence-mb": 64.0, "--max-message-mb": 4, "--keepalive-s": 60.0,
    "--max-connection-idle-s": 300.0, "--max-connection-age-s": 0.0, "--grace-s": 30.0,
    "--drain-delay-s": 1.0, "--threads": 0, "--max-queue-delay-ms": 0.0, "--poll-s": 5.0, "--port": 8001,
    "--http-port": 8000, "--metrics-port": 8002}


def test_the_serve_defaults_are_what_they_were():
    args = vars(serve_args())
    assert {flag: args[flag[2:].replace("-", "_")] for flag in SERVE_DEFAULTS} == SERVE_DEFAULTS
    assert {flag: type(args[flag[2:].replace("-", "_")]) for flag in SERVE_DEFAULTS} == {
        flag: type(v) for flag, v in SERVE_DEFAULTS.items()}


def test_flags_in_their_own_units_reach_the_field_in_its_units():
    o = _options(serve_args("--max-audio-s", "2.5", "--max-queue-delay-ms", "5", "--max-batch", "8"))
    assert o.limits.max_audio_samples == 40_000 and o.batching.max_delay_s == pytest.approx(0.005)
    assert o.limits.max_batch == 8


@pytest.mark.parametrize("flag, value, message", [("--max-batch", "0", "--max-batch 0: expected 1 or more"),
                                                  ("--grace-s", "-1", "--grace-s -1: expected 0 or more"),
                                                  ("--poll-s", "-1", "--poll-s -1: expected 0 or more"),
                                                  ("--port", "-2", "--port -2: expected 0 or more")])
def test_a_value_under_its_bound_is_refused_naming_the_flag(flag, value, message):
    with pytest.raises(UserError, match=message):
        _options(serve_args(flag, value))


def test_export_s_tensorrt_profile_flags_come_from_its_options():
    assert {"--min-batch", "--opt-batch", "--max-batch"} <= numeric_flags("export")
    args = build_parser().parse_args(["export", "M", "--out", "B"])
    assert from_flags(EngineOptions, args) == EngineOptions()
    args = build_parser().parse_args(["export", "M", "--out", "B", "--max-batch", "64"])
    assert from_flags(EngineOptions, args).max_batch == 64


def test_limits_are_capped_to_a_smaller_batch_and_say_so(caplog):
    limits = Limits(max_batch=32)
    assert limits.capped(None, "no engine") is limits and limits.capped(64, "bigger") is limits
    with caplog.at_level(logging.WARNING):
        capped = limits.capped(16, "the engines")
    assert capped == replace(limits, max_batch=16)
    assert "--max-batch 32 capped to 16: the engines" in caplog.text


class TensorrtLike:
    """A graph that reports itself as a TensorRT engine and runs as the ONNX Runtime graph it wraps."""

    kind = "tensorrt"

    def __init__(self, graph):
        self.graph = graph

    def __getattr__(self, name):
        return getattr(self.graph, name)


def as_tensorrt(bundle, max_rows: int):
    manifest = replace(bundle.manifest, tensorrt={"precision": "fp32", "profile": {"min": 1, "opt": 1,
                                                                                     "max": max_rows}})
    return replace(bundle, manifest=manifest, graphs={k: TensorrtLike(g) for k, g in bundle.graphs.items()})


def test_a_bundle_knows_the_rows_its_tensorrt_engines_take(tiny_bundle):
    bundle = open_bundle(tiny_bundle)
    assert bundle.max_rows is None  # ONNX Runtime runs any batch
    assert as_tensorrt(bundle, 4).max_rows == 4


def test_serve_caps_max_batch_to_the_engines_profile(tiny_bundle, monkeypatch, caplog):
    monkeypatch.setattr(server_module, "open_bundle",
                        lambda *a, **k: as_tensorrt(open_bundle(*a, **k), max_rows=2))
    with caplog.at_level(logging.WARNING):
        options = ServerOptions(port=0, metrics_port=None, threads=1)
        server = server_module.Server(tiny_bundle, options).start()
    try:
        assert "--max-batch 32 capped to 2" in caplog.text
        assert server.engine.limits.max_batch == 2 and server.engine.batching.max_batch == 2
        client = tc.InferenceServerClient(server.address)
        assert client.get_model_config("mmrt").config.max_batch_size == 2
        audio = tc.InferInput("AUDIO", [3, 16000], "FP32")
        audio.set_data_from_numpy(np.zeros((3, 16000), np.float32))
        with pytest.raises(InferenceServerException, match="batch size 3, this server takes at most 2 rows"):
            client.infer("mmrt", [audio])
    finally:
        server.stop(0)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_gets_the_chosen_downstream_recipe_but_what_it_changes_saying_why(name):
    section = json.loads((resources.files("mmrt.training") / "presets" / f"{name}.json").read_text())
    changes = {k: v for k, v in section.get("downstream", {}).items() if k != "why"}
    assert load_preset(name).downstream == replace(Downstream(), **changes)


def test_a_preset_changes_the_recipe_only_saying_why():
    with pytest.raises(UserError, match="changes the chosen recipe .distill_temperature. without saying why"):
        preset_downstream("p", {"distill_temperature": 1.0})
    assert preset_downstream("p", {"distill_temperature": 1.0, "why": "a test"}).distill_temperature == 1.0
    assert preset_downstream("p", {}) == Downstream()


def test_one_resolver_applies_every_override():
    preset = load_preset("small")
    schedule, downstream = preset.downstream_settings(lr=1e-4, batch_size=16, steps=99,
                                                      overrides={"mixup": 0.5, "distill_weight": None})
    assert (schedule.lr, schedule.batch_size, schedule.steps) == (1e-4, 16, 99)
    assert downstream == dataclasses.replace(preset.downstream, mixup=0.5)

