"""Signed bundles end to end: `mmrt export --sign` and `mmrt serve --verify-key`, refusals that say
why, and graphs loaded from the very bytes that were verified."""

import json
import shutil

import numpy as np
import pytest
import tritonclient.grpc as tc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tritonclient.utils import InferenceServerException

import mmrt.runtime.backends.loaded_bundle as runtime_bundle
from mmrt.cli import main
from mmrt.errors import UserError
from mmrt.runtime.backends.loaded_bundle import open_bundle
from mmrt.runtime.engine.engine import Engine
from mmrt.runtime.frontends.server import Server, ServerOptions

pytestmark = pytest.mark.integration

TEXT = {"TEXT": np.array([b"counting to seven"], dtype=object)}


def keypair(folder, name):
    key = Ed25519PrivateKey.generate()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="module")
def signed(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("signed")
    private, public = keypair(folder, "release")
    bundle = folder / "bundle"
    assert main(["export", str(tiny_model), "--out", str(bundle), "--sign", str(private)]) == 0
    return bundle, public


def test_a_signed_bundle_serves_with_its_key(signed):
    bundle, public = signed
    assert (bundle / "manifest.sig").is_file()
    scores = Engine(open_bundle(bundle, verify_key=public)).infer(TEXT).scores
    assert scores.shape == (1, 10)


def test_a_changed_manifest_or_another_key_is_refused(signed, tmp_path):
    bundle, public = signed
    _, stranger = keypair(tmp_path, "stranger")
    with pytest.raises(UserError, match="does not verify with .*stranger.pub"):
        open_bundle(bundle, verify_key=stranger)
    changed = tmp_path / "changed"
    shutil.copytree(bundle, changed)
    doc = json.loads((changed / "manifest.json").read_text())
    doc["classes"][0] = "renamed"  # every checksum still holds: only the signature catches it
    (changed / "manifest.json").write_text(json.dumps(doc, indent=2) + "\n")
    open_bundle(changed)  # without a key, nothing notices
    with pytest.raises(UserError, match="the manifest was changed after signing"):
        open_bundle(changed, verify_key=public)


def test_an_unsigned_bundle_is_refused_when_a_key_is_given(tiny_bundle, signed):
    with pytest.raises(UserError, match="unsigned bundle"):
        open_bundle(tiny_bundle, verify_key=signed[1])


def test_a_bad_signing_key_fails_before_any_work(tiny_model, tmp_path, capsys):
    (tmp_path / "key.pem").write_text("not a key\n")
    key = tmp_path / "key.pem"
    code = main(["export", str(tiny_model), "--out", str(tmp_path / "b"), "--sign", str(key)])
    assert code != 0 and "not an unencrypted PEM private key" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_graphs_are_loaded_from_the_bytes_that_were_verified(tiny_bundle, tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    expected = Engine(open_bundle(bundle)).infer(TEXT).scores
    verified = runtime_bundle.read_bundle

    def swap_after_check(folder, verify_key=None):
        result = verified(folder, verify_key)
        (bundle / "text.onnx").write_bytes(b"swapped after the check")  # a file replaced in between
        (bundle / "tokenizer.model").write_bytes(b"swapped too")
        return result

    monkeypatch.setattr(runtime_bundle, "read_bundle", swap_after_check)
    np.testing.assert_array_equal(Engine(open_bundle(bundle)).infer(TEXT).scores, expected)


def test_mmrt_serve_refuses_an_unsigned_bundle_in_one_line(tiny_bundle, signed, capsys):
    code = main(["serve", str(tiny_bundle), "--port", "0", "--http-port", "-1", "--metrics-port", "-1",
                 "--verify-key", str(signed[1])])
    err = capsys.readouterr().err
    assert code != 0 and "unsigned bundle" in err and "Traceback" not in err


def test_a_signature_covers_the_model_name_and_version(signed, tmp_path, capsys):
    """An old signed version copied in under a new number, or a signed bundle of another model, is
    refused: the signed manifest names the model and the version it was exported as."""
    bundle, public = signed
    assert json.loads((bundle / "manifest.json").read_text())["version"] == 1  # export's default
    repo = tmp_path / "repo"
    shutil.copytree(bundle, repo / "mmrt" / "1")
    options = ServerOptions(port=0, metrics_port=None, threads=1, verify_key=public, model_control="explicit")
    server = Server(repo, options).start()
    try:
        client = tc.InferenceServerClient(server.address)
        shutil.copytree(bundle, repo / "mmrt" / "2")  # version 1, replayed as version 2
        with pytest.raises(InferenceServerException, match="signed as version 1, found as version 2"):
            client.load_model("mmrt")
        assert client.infer("mmrt", text_input()).get_response().model_version == "1"
        shutil.copytree(bundle, repo / "alpha" / "1")  # another model's signed bundle
        with pytest.raises(InferenceServerException, match="the bundle is named 'mmrt', its model folder "
                           "'alpha'"):
            client.load_model("alpha")
    finally:
        server.stop(0)
    code = main(["export", str(bundle), "--out", str(tmp_path / "b"), "--model-version", "0"])
    assert code != 0 and "--model-version 0: expected 1 or more" in capsys.readouterr().err


def text_input():
    x = tc.InferInput("TEXT", [1], "BYTES")
    x.set_data_from_numpy(TEXT["TEXT"])
    return [x]
