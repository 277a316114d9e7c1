"""What ``mmrt serve PATH`` serves: one bundle folder, or a model repository laid out as Triton's:

    REPO/<model>/<version>/manifest.json ...   (each version folder a bundle from 'mmrt export')

Model names are folder names (the bundle's own ``--name`` must match); versions are positive
integers. Entries starting with '.' are ignored, so a version can be copied in as ``.7`` and
renamed to ``7`` when complete. Anything else is an error naming the path and what was expected.
No torch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from mmrt.bundle import MANIFEST
from mmrt.errors import UserError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Layout:
    root: Path
    single: bool  # one bundle folder: a repository of one model at version 1
    models: dict[str, dict[int, Path]]  # model -> version -> bundle folder

    def newest(self, model: str) -> int | None:
        versions = self.models.get(model)
        return max(versions) if versions else None


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def bundle_name(folder: Path) -> str:
    """The model name a bundle's manifest gives (read, not verified: loading verifies)."""
    try:
        return str(json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["name"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{folder / MANIFEST}: cannot read the model's name ({e})") from None


def read_layout(root: str | Path) -> Layout:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not found (expected a bundle folder or a model repository)")
    if (root / MANIFEST).is_file():
        return Layout(root, True, {bundle_name(root): {1: root}})
    models: dict[str, dict[int, Path]] = {}
    for entry in _visible(root):
        if not entry.is_dir():
            raise UserError(f"{entry}: a file in a model repository (expected only model folders: "
                            f"REPO/<model>/<version>/ with a bundle in each)")
        if not NAME.fullmatch(entry.name):
            raise UserError(f"{entry}: model folder names are letters, digits, '.', '_' or '-'")
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


def model_versions(root: Path, name: str) -> dict[int, Path]:
    """The versions of one model folder as they are now ({} once it is gone)."""
    folder = root / name
    return _versions(folder) if folder.is_dir() else {}


def fingerprint(folder: Path) -> tuple:
    """Names, sizes and modification times of a version's files: a copy still arriving changes it."""
    try:
        return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()))
    except OSError:
        return ()
