"""Signed bundles: an Ed25519 signature of ``manifest.json``, which holds every other file's sha256,
so one signature covers the whole bundle. ``mmrt export --sign KEY`` writes it and
``mmrt serve --verify-key PUB`` refuses a bundle whose signature does not verify. No torch.

Keys are PEM files, as OpenSSL writes them::

    openssl genpkey -algorithm ed25519 -out bundle-signing.pem
    openssl pkey -in bundle-signing.pem -pubout -out bundle-signing.pub
"""

from __future__ import annotations

import base64
from pathlib import Path

from mmrt import atomic
from mmrt.errors import UserError

SIGNATURE = "manifest.sig"  # base64 of the 64-byte Ed25519 signature of manifest.json's bytes


def _serialization():
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise UserError("signed bundles need the 'cryptography' package (pip install cryptography)") from None
    return serialization


def _load(flag: str, path: Path, load, kind, what: str):
    try:
        key = load(Path(path).read_bytes())
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot read it ({e.strerror})") from None
    except (ValueError, TypeError) as e:
        raise UserError(f"{flag} {path}: not {what}", str(e)) from None
    if not isinstance(key, kind):
        raise UserError(f"{flag} {path}: expected an Ed25519 key (openssl genpkey -algorithm ed25519)")
    return key


def load_private_key(path: Path):
    """The Ed25519 private key in PEM file ``path`` (checked before any long work uses it)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    load = _serialization().load_pem_private_key
    return _load("--sign", path, lambda data: load(data, password=None), Ed25519PrivateKey,
                 "an unencrypted PEM private key")


def load_public_key(path: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return _load("--verify-key", path, _serialization().load_pem_public_key, Ed25519PublicKey,
                 "a PEM public key")


def sign_manifest(manifest: Path, key) -> None:
    """Write ``manifest.sig`` beside the manifest file ``manifest``, already written."""
    signature = key.sign(manifest.read_bytes())
    atomic.write_text(manifest.with_name(SIGNATURE), base64.b64encode(signature).decode() + "\n")


def check_signature(folder: Path, manifest: bytes, public_key_path: Path) -> None:
    """Refuse (UserError naming why) unless ``manifest`` carries a valid signature by the key."""
    from cryptography.exceptions import InvalidSignature

    key = load_public_key(public_key_path)
    path = folder / SIGNATURE
    if not path.is_file():
        raise UserError(f"{folder}: unsigned bundle (no {SIGNATURE}), and --verify-key asks for a signed one "
                        f"(export with --sign)")
    try:
        signature = base64.b64decode(path.read_text("ascii").strip(), validate=True)
        key.verify(signature, manifest)
    except (ValueError, UnicodeDecodeError, InvalidSignature):
        raise UserError(f"{path}: the signature does not verify with {public_key_path} (the manifest was "
                        f"changed after signing, or signed with another key)") from None
