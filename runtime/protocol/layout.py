"""What ``mmrt serve PATH`` serves: one bundle folder, or a model repository laid out as Triton's:

    REPO/<model>/<version>/manifest.json ...   (each version folder a bundle from 'mmrt export')

Model names are folder names (the bundle's own ``--name`` must match); versions are positive
integers (a bundle served alone: the version its manifest gives, else 1). Entries starting with
'.' are ignored, so a version can be copied in as ``.7`` and renamed to ``7`` when complete.
Anything else is an error naming the path and what was expected. No torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mmrt.bundle import MANIFEST, MODEL_NAME, MODEL_NAME_RULE
from mmrt.errors import UserError
from mmrt.runtime.engine.status import InferError, Status, invalid, shown


@dataclass(frozen=True)
class Layout:
    root: Path
    single: bool  # one bundle folder: a repository of one model at version 1
    models: dict[str, dict[int, Path]]  # model -> version -> bundle folder


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def bundle_identity(folder: Path) -> tuple[str, int]:
    """The model name and version a bundle's manifest gives (read, not verified: loading verifies);
    version 0 where it gives none."""
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return str(doc["name"]), int(doc.get("version", 0))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{folder / MANIFEST}: cannot read the model's name", str(e)) from None


def read_layout(root: str | Path) -> Layout:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not found (expected a bundle folder or a model repository)")
    if (root / MANIFEST).is_file():
        name, version = bundle_identity(root)
        return Layout(root, True, {name: {version or 1: root}})
    models: dict[str, dict[int, Path]] = {}
    for entry in _visible(root):
        if not entry.is_dir():
            raise UserError(f"{entry}: a file in a model repository (expected only model folders: "
                            f"REPO/<model>/<version>/ with a bundle in each)")
        if not MODEL_NAME.fullmatch(entry.name):
            raise UserError(f"{entry}: a model folder's name is {MODEL_NAME_RULE}")
        models[entry.name] = _versions(entry)
    if not models:
        raise UserError(f"{root}: neither a bundle ({MANIFEST} not found) nor a model repository (no "
                        f"model folders: expected {root}/<model>/<version>/)")
    return Layout(root, False, models)


def _versions(model: Path) -> dict[int, Path]:
    if (model / MANIFEST).is_file():
        raise UserError(f"{model}: a bundle directly in a model folder (put it in {model}/1/)")
    versions = {}
    for entry in _visible(model):
        if not entry.is_dir() or not entry.name.isdigit() or int(entry.name) < 1:
            raise UserError(f"{entry}: expected a version folder named by a positive integer "
                            f"({model}/1/, {model}/2/ ...)")
        versions[int(entry.name)] = entry
    return versions


def model_folder(root: Path, name: str) -> Path:
    """The folder of model ``name``, a client's string: a model name, directly in ``root`` once
    resolved (no path, no link out of the repository); else InferError (never echoing ``root``)."""
    if not MODEL_NAME.fullmatch(name):
        raise invalid(f"model name {shown(name)}: expected {MODEL_NAME_RULE}")
    folder = root / name
    try:
        inside = folder.resolve().parent == root.resolve()
    except (OSError, RuntimeError):  # a link loop
        inside = False
    if not inside:
        raise InferError(Status.NOT_FOUND, f"model {shown(name)}: not a model folder of the repository")
    return folder


def model_versions(folder: Path) -> dict[int, Path]:
    """The versions of one model folder as they are now ({} once it is gone)."""
    return _versions(folder) if folder.is_dir() else {}


def fingerprint(folder: Path) -> tuple:
    """Names, sizes and modification times of a version's files: a copy still arriving changes it."""
    try:
        return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()))
    except OSError:
        return ()
