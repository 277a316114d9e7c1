"""The dataset contract (DESIGN.md section 2): classes.txt plus one JSONL split file per split
(``pretrain.jsonl``, ``train.jsonl``, ...; a bundle's ``manifest.json`` is another thing,
``mmrt.bundle``).

One example a line: ``{"id", "audio": path, "video": path, "text": str, "labels": [names]}``,
paths relative to the dataset folder, any modality null or absent. The reader
validates everything and names the file, line and field of the first problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mmrt.errors import UserError

# How each known modality is stored in a split file's line: a file path or inline text.
FILE_MODALITIES = ("audio", "video")
INLINE_MODALITIES = ("text",)
SPLITS = ("pretrain", "train", "eval", "distill")
LABELED_SPLITS = ("train", "eval")


@dataclass(frozen=True)
class Example:
    id: str
    labels: tuple[str, ...]
    # modality -> absolute file path (audio, video) or the inline value (text)
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset(self.inputs)


def read_classes(root: str | Path) -> list[str]:
    path = Path(root) / "classes.txt"
    if not path.is_file():
        raise UserError(f"{path}: not found (a dataset folder needs classes.txt, one class a line)")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise UserError(f"{path}: no class names (expected one class name a line)")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise UserError(f"{path}: class {sorted(dup)[0]!r} is listed twice")
    return names


def read_split(root: str | Path, split: str, classes: list[str] | None = None,
                  labeled: bool | None = None) -> list[Example]:
    """Read ``<root>/<split>.jsonl``. Labels are required (and checked) for labeled splits."""
    root = Path(root)
    path = root / f"{split}.jsonl"
    if not path.is_file():
        raise UserError(f"{path}: split file not found")
    labeled = split in LABELED_SPLITS if labeled is None else labeled
    known = set(classes if classes is not None else read_classes(root))
    examples: list[Example] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path} line {n}"
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            ex = _parse_example(doc, where, root, known, labeled)
            if ex.id in seen:
                raise UserError(f"{where}: field 'id': {ex.id!r} already used on line {seen[ex.id]}")
            seen[ex.id] = n
            examples.append(ex)
    if not examples:
        raise UserError(f"{path}: empty split file (expected one JSON example a line)")
    return examples


def _parse_example(doc: object, where: str, root: Path, known: set[str], labeled: bool) -> Example:
    if not isinstance(doc, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    ex_id = doc.get("id")
    if not isinstance(ex_id, str) or not ex_id:
        raise UserError(f"{where}: field 'id': expected a non-empty string")
    inputs: dict[str, str] = {}
    for m in FILE_MODALITIES:
        rel = doc.get(m)
        if rel is None:
            continue
        if not isinstance(rel, str) or not rel:
            raise UserError(f"{where}: field {m!r}: expected a file path or null")
        p = root / rel
        if not p.is_file():
            raise UserError(f"{where}: field {m!r}: file not found: {p}")
        inputs[m] = str(p)
    for m in INLINE_MODALITIES:
        value = doc.get(m)
        if value is None:
            continue
        if not isinstance(value, str):
            raise UserError(f"{where}: field {m!r}: expected a string or null")
        inputs[m] = value
    if not inputs:
        raise UserError(f"{where}: no modality present (expected at least one of "
                        f"{list(FILE_MODALITIES + INLINE_MODALITIES)})")
    labels = doc.get("labels")
    if labeled:
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise UserError(f"{where}: field 'labels': expected a non-empty list of class names")
        for name in labels:
            if name not in known:
                raise UserError(f"{where}: field 'labels': unknown class {name!r} "
                                f"(expected one of classes.txt)")
    elif labels is not None and not isinstance(labels, list):
        raise UserError(f"{where}: field 'labels': expected a list or null")
    return Example(id=ex_id, labels=tuple(labels or ()) if labeled else (), inputs=inputs)


def multi_hot(examples: list[Example], classes: list[str]):
    """Labels as a float32 matrix [N, C] in the order of ``classes``."""
    import numpy as np

    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(examples), len(classes)), dtype=np.float32)
    for row, ex in enumerate(examples):
        for name in ex.labels:
            y[row, index[name]] = 1.0
    return y
