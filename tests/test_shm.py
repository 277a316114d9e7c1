"""Triton's system shared-memory extension on a real server, with tritonclient's own shared-memory
helpers over gRPC and REST: inputs read from and outputs written to the client's regions, answers
equal to the engine's in-process, every window bounds-checked, a shrunk object an error and not a
crash, and the token guarding registration."""

from dataclasses import replace

import numpy as np
import pytest
import tritonclient.grpc as tc
import tritonclient.http as th
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from mmrt.runtime.engine.limits import Limits
from mmrt.runtime.engine.status import InferError, Status
from mmrt.runtime.frontends.server import Server, ServerOptions
from mmrt.runtime.protocol.shm import SharedMemoryRegions

pytestmark = pytest.mark.integration

OPTIONS = ServerOptions(port=0, http_port=0, metrics_port=None, threads=1)
AUDIO = (np.random.default_rng(3).standard_normal((2, 9_000)) * 0.1).astype(np.float32)
VIDEO = np.random.default_rng(4).integers(0, 256, (2, 6, 48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def server(tiny_bundle):
    s = Server(tiny_bundle, OPTIONS).start()
    yield s
    s.stop(0)


@pytest.fixture
def region(request):
    """A POSIX shared-memory object as a rig's capture process makes one (unlinked afterwards)."""
    made = []

    def make(name, size):
        handle = shm.create_shared_memory_region(name, f"/mmrt-test-{name}-{request.node.name[-20:]}", size)
        made.append(handle)
        return handle

    yield make
    for handle in made:
        shm.destroy_shared_memory_region(handle)


def _key(handle):
    return handle._shm_key


@pytest.mark.parametrize("protocol", [tc, th], ids=["grpc", "http"])
def test_inputs_and_outputs_through_shared_memory_answer_like_the_engine(server, tiny_engine, region,
                                                                          protocol):
    url = server.address if protocol is tc else server.http_address
    client = protocol.InferenceServerClient(url)
    inputs_region = region("in", AUDIO.nbytes + VIDEO.nbytes)
    outputs_region = region("out", 2 * 10 * 4)
    shm.set_shared_memory_region(inputs_region, [AUDIO, VIDEO])
    client.unregister_system_shared_memory()
    client.register_system_shared_memory("in", _key(inputs_region), AUDIO.nbytes + VIDEO.nbytes)
    client.register_system_shared_memory("out", _key(outputs_region), 80)
    audio, video = protocol.InferInput("AUDIO", list(AUDIO.shape), "FP32"), protocol.InferInput(
        "VIDEO", list(VIDEO.shape), "UINT8")
    audio.set_shared_memory("in", AUDIO.nbytes)
    video.set_shared_memory("in", VIDEO.nbytes, offset=AUDIO.nbytes)
    scores = protocol.InferRequestedOutput("SCORES")
    scores.set_shared_memory("out", 80)
    client.infer("mmrt", [audio, video], outputs=[scores])  # the answer goes to the region
    got = shm.get_contents_as_numpy(outputs_region, np.float32, [2, 10])
    want = tiny_engine.infer({"AUDIO": AUDIO, "VIDEO": VIDEO}).scores
    np.testing.assert_allclose(got, want, atol=1e-5)
    status = client.get_system_shared_memory_status()
    names = {r["name"] for r in (status if protocol is th else
                                 client.get_system_shared_memory_status(as_json=True)["regions"].values())}
    assert names == {"in", "out"}
    client.unregister_system_shared_memory("in")
    with pytest.raises(InferenceServerException) as info:
        client.infer("mmrt", [audio])
    assert "no shared-memory region 'in'" in info.value.message()
    client.unregister_system_shared_memory()


def test_registrations_and_windows_are_bounds_checked(server, region):
    client = tc.InferenceServerClient(server.address)
    handle = region("small", 1024)
    cases = [(("a", "../../etc/passwd", 0, 8), "expected one name"),
             (("a", "/mmrt-no-such-object", 0, 8), "cannot be opened"),
             (("a", _key(handle), 1000, 100), "is outside"),
             (("", _key(handle), 0, 8), "needs a name")]
    for args, expected in cases:
        with pytest.raises(InferenceServerException) as info:
            client.register_system_shared_memory(*args)
        assert "INVALID_ARGUMENT" in str(info.value.status()) and expected in info.value.message(), args
    client.register_system_shared_memory("small", _key(handle), 1024)
    with pytest.raises(InferenceServerException) as info:
        client.register_system_shared_memory("small", _key(handle), 1024)
    assert "ALREADY_EXISTS" in str(info.value.status())
    too_big = tc.InferInput("AUDIO", [1, 1000], "FP32")
    too_big.set_shared_memory("small", 4000)  # more than the 1024-byte window
    wrong_size = tc.InferInput("AUDIO", [1, 100], "FP32")
    wrong_size.set_shared_memory("small", 256)
    for tensor, expected in ((too_big, "do not fit region 'small'"),
                             (wrong_size, "shape [1, 100] of FP32 needs 400")):
        with pytest.raises(InferenceServerException) as info:
            client.infer("mmrt", [tensor])
        assert expected in info.value.message()
    client.unregister_system_shared_memory()


def test_an_object_shrunk_after_registering_is_an_error_not_a_crash(server, region):
    import os

    client = tc.InferenceServerClient(server.address)
    handle = region("shrinking", AUDIO[:1].nbytes)
    shm.set_shared_memory_region(handle, [AUDIO[:1]])
    client.register_system_shared_memory("shrinking", _key(handle), AUDIO[:1].nbytes)
    os.truncate(f"/dev/shm/{_key(handle).lstrip('/')}", 64)  # the client shrinks it behind our back
    audio = tc.InferInput("AUDIO", list(AUDIO[:1].shape), "FP32")
    audio.set_shared_memory("shrinking", AUDIO[:1].nbytes)
    with pytest.raises(InferenceServerException) as info:
        client.infer("mmrt", [audio])
    assert "shrank" in info.value.message()
    assert client.is_server_live()
    client.unregister_system_shared_memory()


def test_the_token_guards_registration_and_max_shm_mb_bounds_a_request(tiny_bundle, region):
    s = Server(tiny_bundle, replace(OPTIONS, token="s3cret", limits=Limits(max_shm_mb=0.01))).start()
    try:
        client = tc.InferenceServerClient(s.address)
        handle = region("guarded", AUDIO.nbytes)
        shm.set_shared_memory_region(handle, [AUDIO])
        with pytest.raises(InferenceServerException) as info:
            client.register_system_shared_memory("guarded", _key(handle), AUDIO.nbytes)
        assert "UNAUTHENTICATED" in str(info.value.status())
        token = {"authorization": "Bearer s3cret"}
        client.register_system_shared_memory("guarded", _key(handle), AUDIO.nbytes, headers=token)
        audio = tc.InferInput("AUDIO", list(AUDIO.shape), "FP32")
        audio.set_shared_memory("guarded", AUDIO.nbytes)  # 72 KB, past 0.01 MB
        with pytest.raises(InferenceServerException) as info:
            client.infer("mmrt", [audio], headers=token)
        assert "--max-shm-mb" in info.value.message()
    finally:
        s.stop(0)


def test_the_number_of_regions_is_capped(tmp_path, region):
    handle = region("capped", 64)
    regions = SharedMemoryRegions(max_regions=2)
    try:
        regions.register("a", _key(handle), 0, 64)
        regions.register("b", _key(handle), 0, 32)
        with pytest.raises(InferError) as info:
            regions.register("c", _key(handle), 0, 16)
        assert info.value.status is Status.RESOURCE_EXHAUSTED
        regions.unregister("a")
        regions.register("c", _key(handle), 0, 16)
        assert [r.name for r in regions.status()] == ["b", "c"]
    finally:
        regions.close()
