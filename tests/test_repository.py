"""A model repository: several models and versions in one server, the repository calls (index,
load, unload) over gRPC and REST behind the token, and a new version swapped in while clients
send requests and streams, without one failing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from mmrt.benchmarks.client import ServerProcess
from mmrt.cli import main
from mmrt.errors import UserError
from mmrt.runtime.frontends.server import Server, ServerOptions
from mmrt.runtime.protocol.layout import read_layout

pytestmark = pytest.mark.integration

OPTIONS = ServerOptions(port=0, http_port=0, metrics_port=None, threads=1, model_control="explicit")
AUDIO = (np.random.default_rng(0).standard_normal((1, 16_000)) * 0.1).astype(np.float32)


@contextmanager
def serving(path: Path, options: ServerOptions = OPTIONS):
    server = Server(path, options).start()
    try:
        yield server
    finally:
        server.stop(0)


def add_version(repo: Path, model: str, number: int, source: Path) -> Path:
    """Copy a bundle in as a new version, named for its model folder, the way a fleet should: into a
    hidden folder first, renamed when complete."""
    stage = repo / model / f".{number}"
    shutil.copytree(source, stage)
    doc = json.loads((stage / "manifest.json").read_text())
    (stage / "manifest.json").write_text(json.dumps({**doc, "name": model}))  # not a checksummed file
    return stage.rename(repo / model / str(number))


def audio_input():
    x = tc.InferInput("AUDIO", list(AUDIO.shape), "FP32")
    x.set_data_from_numpy(AUDIO)
    return [x]


def answered_by(client, model: str = "mmrt", version: str = "") -> str:
    response = client.infer(model, audio_input(), model_version=version).get_response()
    return response.model_version


@pytest.fixture()
def repo(tmp_path, tiny_bundle) -> Path:
    root = tmp_path / "repo"
    add_version(root, "mmrt", 1, tiny_bundle)
    add_version(root, "alpha", 3, tiny_bundle)
    return root


def test_two_models_each_at_its_newest_version(repo, tiny_bundle):
    add_version(repo, "alpha", 1, tiny_bundle)
    with serving(repo) as server:
        client = tc.InferenceServerClient(server.address)
        assert answered_by(client, "mmrt") == "1" and answered_by(client, "alpha") == "3"
        assert client.get_model_metadata("alpha", as_json=True)["versions"] == ["3"]
        with pytest.raises(InferenceServerException, match=r"version '1': not served \(serving version 3\)"):
            answered_by(client, "alpha", "1")
        with pytest.raises(InferenceServerException, match="not served here"):
            answered_by(client, "beta")
        index = client.get_model_repository_index(as_json=True)["models"]
        states = {(m["name"], m["version"]): m["state"] for m in index}
        assert states == {("alpha", "1"): "UNAVAILABLE", ("alpha", "3"): "READY", ("mmrt", "1"): "READY"}
        stats = client.get_inference_statistics(as_json=True)["model_stats"]
        assert {(s["name"], s["version"]) for s in stats} == {("alpha", "3"), ("mmrt", "1")}


def test_load_swaps_in_a_new_version_and_unload_stops_a_model(repo, tiny_bundle):
    with serving(repo) as server:
        client = tc.InferenceServerClient(server.address)
        http = th.InferenceServerClient(server.http_address)
        add_version(repo, "mmrt", 2, tiny_bundle)
        assert answered_by(client) == "1"  # nothing changes until a load (polling is off)
        http.load_model("mmrt")  # REST, as tritonclient.http sends it
        assert answered_by(client) == "2"
        assert client.get_model_config("mmrt").config.name == "mmrt"
        client.unload_model("alpha")
        with pytest.raises(InferenceServerException, match="not served here"):
            answered_by(client, "alpha")
        assert not client.is_model_ready("alpha") and client.is_model_ready("mmrt")

        def alpha():
            return next(m for m in http.get_model_repository_index() if m["name"] == "alpha")

        wait_for(lambda: alpha()["state"] == "UNAVAILABLE")  # UNLOADING until its last request is done
        assert alpha()["reason"] == "unloaded by a call"
        client.load_model("alpha")
        assert answered_by(client, "alpha") == "3"


def test_a_version_whose_files_change_is_reloaded_in_place_and_the_old_copy_closed(repo, tiny_bundle):
    with serving(repo) as server:
        client = tc.InferenceServerClient(server.address)
        model = server.repository.models["mmrt"]
        first = model.current.api.engine
        manifest = repo / "mmrt" / "1" / "manifest.json"
        manifest.write_text(manifest.read_text())  # same content, new modification time
        client.load_model("mmrt")
        assert model.current.api.engine is not first and answered_by(client) == "1"
        wait_for(lambda: len(model.loaded) == 1)
        assert all(not r.worker.is_alive() for r in first.runners.values())  # its batching threads stopped
        client.load_model("mmrt")  # nothing changed since: a no-op
        assert len(model.loaded) == 1


def test_an_open_sequence_finishes_on_the_version_it_started_on(repo, tiny_bundle):
    with serving(repo) as server:
        client = tc.InferenceServerClient(server.address)

        def step(sequence: int, start: bool = False, end: bool = False) -> str:
            result = client.infer("mmrt", audio_input(), sequence_id=sequence, sequence_start=start,
                                  sequence_end=end)
            return result.get_response().model_version

        assert step(7, start=True) == "1"
        add_version(repo, "mmrt", 2, tiny_bundle)
        client.load_model("mmrt")
        assert step(8, start=True) == "2"  # new sequences and requests go to the new version
        assert answered_by(client) == "2"
        assert step(7) == "1"  # the open one stays where it started, which stays loaded for it
        time.sleep(0.3)
        assert states(client) == {"1": "UNLOADING", "2": "READY"}
        assert step(7, end=True) == "1"
        wait_for(lambda: states(client)["1"] == "UNAVAILABLE")
        assert step(8, end=True) == "2"


def test_a_bad_version_never_serves_and_the_old_one_keeps_on(repo, tiny_bundle):
    with serving(repo) as server:
        client = tc.InferenceServerClient(server.address)
        bad = add_version(repo, "mmrt", 2, tiny_bundle)
        with (bad / "head.onnx").open("ab") as f:
            f.write(b"tampered")
        with pytest.raises(InferenceServerException, match=r"version 2 failed to load .*head.onnx: checksum "
                           r"mismatch.*version 1 keeps serving"):
            client.load_model("mmrt")
        assert answered_by(client) == "1"
        row = next(m for m in index(client) if m["version"] == "2")
        assert row["state"] == "UNAVAILABLE" and "checksum mismatch" in row["reason"]


def test_polling_skips_a_broken_copy_and_swaps_in_the_fixed_one(repo, tiny_bundle):
    with serving(repo, replace(OPTIONS, model_control="poll", poll_s=0.1)) as server:
        client = tc.InferenceServerClient(server.address)
        bad = add_version(repo, "mmrt", 2, tiny_bundle)
        (bad / "audio.onnx").unlink()  # a copy that lost a file
        wait_for(lambda: any(m.get("reason") for m in index(client)))
        assert answered_by(client) == "1"
        shutil.copyfile(tiny_bundle / "audio.onnx", bad / "audio.onnx")  # its files change: tried again
        wait_for(lambda: answered_by(client) == "2")


def index(client) -> list[dict]:
    return client.get_model_repository_index(as_json=True)["models"]


def states(client, model: str = "mmrt") -> dict[str, str]:
    return {m["version"]: m["state"] for m in index(client) if m["name"] == model}


def wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_the_token_guards_the_repository_calls(repo):
    with serving(repo, replace(OPTIONS, token="s3cret")) as server:
        client = tc.InferenceServerClient(server.address)
        for call in (lambda: client.get_model_repository_index(), lambda: client.load_model("mmrt"),
                     lambda: client.unload_model("mmrt")):
            with pytest.raises(InferenceServerException, match="bearer token"):
                call()
        http = th.InferenceServerClient(server.http_address)
        with pytest.raises(InferenceServerException, match="bearer token"):
            http.unload_model("mmrt")
        headers = {"authorization": "Bearer s3cret"}
        assert len(client.get_model_repository_index(headers=headers).models) == 2


def test_one_bundle_is_a_repository_of_one_model_that_cannot_be_reloaded(tiny_bundle):
    with pytest.raises(UserError, match="--model-control explicit: serving one bundle, nothing can be"):
        Server(tiny_bundle, OPTIONS)
    with serving(tiny_bundle, replace(OPTIONS, model_control=None)) as server:
        client = tc.InferenceServerClient(server.address)
        index = client.get_model_repository_index(as_json=True)["models"]
        assert index == [{"name": "mmrt", "version": "1", "state": "READY"}]
        with pytest.raises(InferenceServerException, match="serving one bundle: load and unload calls are "
                           "refused") as refused:
            client.unload_model("mmrt")
        assert refused.value.status() == "StatusCode.FAILED_PRECONDITION"
        assert answered_by(client) == "1"


@pytest.mark.parametrize("make, expected", [
    (lambda r: (r / "notes.txt").write_text("x"), "notes.txt: a file in a model repository"),
    (lambda r: (r / "mmrt" / "latest").mkdir(), "latest: expected a version folder named by a positive "),
    (lambda r: (r / "mmrt" / "0").mkdir(), "0: expected a version folder named by a positive integer"),
    (lambda r: (r / "beta").mkdir() or (r / "beta" / "manifest.json").write_text("{}"),
     "beta: a bundle directly in a model folder (put it in"),
])
def test_a_repository_with_an_unknown_layout_is_one_clear_line(repo, make, expected, capsys):
    make(repo)
    with pytest.raises(UserError, match=expected.replace("(", r"\(")):
        read_layout(repo)
    assert main(["serve", str(repo), "--port", "0", "--http-port", "-1", "--metrics-port", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err


def test_a_bundle_whose_name_is_not_its_folder_is_refused(tmp_path, tiny_bundle, capsys):
    shutil.copytree(tiny_bundle, tmp_path / "repo" / "beta" / "1")
    assert main(["serve", str(tmp_path / "repo"), "--port", "0", "--http-port", "-1",
                 "--metrics-port", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "the bundle is named 'mmrt', its model folder 'beta' (export it with --name beta)" in err, err


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


HOLD = """
import sys
from pathlib import Path
from mmrt.runtime.backends.loaded_bundle import open_bundle
from mmrt.runtime.backends.sessions import SessionOptions
def rss():
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
options = SessionOptions(threads=1)  # as the server under test runs them (--threads 1)
held = [open_bundle(sys.argv[1], options)]
before = rss()
held += [open_bundle(sys.argv[1], options) for _ in range(5)]
print((rss() - before) // 5)
"""


def held_per_version_kb(bundle: Path) -> int:
    """Resident memory one more open copy of a bundle holds, in a fresh process: what each old
    version would keep if unloading leaked it."""
    out = subprocess.run([sys.executable, "-c", HOLD, str(bundle)], capture_output=True, text=True,
                         check=True, timeout=120)
    return int(out.stdout.split()[-1])


def test_twenty_swaps_under_eight_clients_fail_nothing(tmp_path, tiny_bundle):
    """6 clients send requests and 2 send 3-step sequences on streams while versions 2..21 are loaded
    one after another: every answer succeeds, names exactly one version, a sequence's answers all come
    from the version it started on, and resident memory returns after the old versions unload: it
    grows by less than half of what the 20 old versions would hold if kept (the allocator's own
    growth under load is noise of the order of a few versions, so the bound is in versions, not a
    share of the baseline)."""
    per_version = held_per_version_kb(tiny_bundle)
    assert per_version > 256, f"one open bundle measured at {per_version} kB: the bound would mean nothing"
    repo = tmp_path / "repo"
    add_version(repo, "mmrt", 1, tiny_bundle)
    with ServerProcess(repo, threads=1, flags=("--model-control", "explicit", "--grace-s", "5")) as server:
        control = tc.InferenceServerClient(server.url)
        stop, errors, seen, sequences = threading.Event(), [], [], []

        def unary() -> None:
            client = tc.InferenceServerClient(server.url)
            while not stop.is_set():
                try:
                    seen.append(answered_by(client))
                except Exception as e:  # noqa: BLE001 - every failure is counted
                    errors.append(repr(e))

        def streams(worker: int) -> None:
            client, answers = tc.InferenceServerClient(server.url), []
            client.start_stream(lambda result, error: answers.append((result, error)))
            n = 0
            while not stop.is_set():
                n += 1
                first = len(answers)
                for step in range(3):
                    client.async_stream_infer("mmrt", audio_input(), sequence_id=1000 * worker + n,
                                              sequence_start=step == 0, sequence_end=step == 2)
                wait_for(lambda first=first: len(answers) >= first + 3)
                got = answers[first:first + 3]
                errors.extend(str(e) for _, e in got if e is not None)
                sequences.append({r.get_response().model_version for r, e in got if e is None})
            client.stop_stream()

        threads = [threading.Thread(target=unary) for _ in range(6)]
        threads += [threading.Thread(target=streams, args=(w,)) for w in (1, 2)]
        for t in threads:
            t.start()
        wait_for(lambda: len(seen) >= 100 and len(sequences) >= 10)  # the server's threads and buffers grown
        baseline = rss_kb(server.proc.pid)  # under the same load, before any swap
        for number in range(2, 22):
            add_version(repo, "mmrt", number, tiny_bundle)
            control.load_model("mmrt")
            time.sleep(0.1)
        wait_for(lambda: all(m["state"] != "UNLOADING" for m in index(control)))
        after = rss_kb(server.proc.pid)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors[:5]
        assert set(seen) <= {str(n) for n in range(1, 22)} and "21" in seen and len(set(seen)) > 5
        assert sequences and all(len(versions) == 1 for versions in sequences)  # never split across two
        assert answered_by(control) == "21"
        assert after - baseline < 10 * per_version, (after, baseline, per_version)
