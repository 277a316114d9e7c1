"""The foundation models released with mmrt: pretrained encoders installed with the package, named
for ``--pretrained`` (``mmrt train --pretrained small``) as well as by folder.

Each is a model directory as ``mmrt pretrain`` writes it, plus ``release.json``: the command that
made it, the data it was made from, the machine, date and commit, and the sha256 of each file,
which is checked before the model is used. ``lab/release_foundation.py`` makes one and re-runs
its command to compare.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from mmrt.errors import UserError

RELEASE = "release.json"
RELEASED = ("small",)  # a preset's contrastive encoders, named as the preset


def released_folder(name: str) -> Path:
    return Path(str(resources.files("mmrt.training").joinpath("foundations", name)))


def read_release(folder: Path) -> dict:
    """``folder``'s release record, every file it lists checked against its sha256."""
    path = folder / RELEASE
    try:
        release = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        raise UserError(f"{path}: missing or not JSON (reinstall mmrt)") from None
    for name, digest in release["files"].items():
        file = folder / name
        if not file.is_file() or hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            raise UserError(f"{file}: missing or not the released file (its sha256 differs); reinstall mmrt")
    return release


def resolve_pretrained(value: str | Path, flag: str = "--pretrained") -> Path:
    """A pretrained model directory: ``value`` itself when it is a folder, else the released
    foundation of that name (its files checked)."""
    path = Path(value)
    if path.is_dir():
        return path
    if str(value) in RELEASED:
        folder = released_folder(str(value))
        read_release(folder)
        return folder
    raise UserError(f"{flag} {value}: no such folder, and not a released foundation "
                    f"(released: {', '.join(RELEASED)})")


def describe(name: str) -> str:
    """One line naming a released foundation: what it is, its weights' sha256 prefix, its origin."""
    folder = released_folder(name)
    release = read_release(folder)
    digest = release["files"]["model.safetensors"][:12]
    return (f"the released '{name}' foundation (sha256 {digest}..., pretrained by mmrt on {release['data']}, "
            f"{release['steps']} steps, {release['date']})")
