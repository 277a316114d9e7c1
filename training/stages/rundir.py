"""Output folders of training runs: refuse to clobber, allow resuming, name what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

from mmrt.errors import UserError

STATE = "resume.safetensors"  # a stage's weights, AdamW moments and step, while it runs


def prepare_out(out: str | Path, resume: bool, overwrite: bool) -> Path:
    """Create ``out`` for a new run, or keep it for ``resume``; never mix two runs in one folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if overwrite:
            shutil.rmtree(out)
        elif not resume:
            raise UserError(f"--out {out}: folder exists and is not empty "
                            "(pass --resume to continue a run, or --overwrite to replace it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    return out
