"""The export bundle's contract (DESIGN.md section 5): manifest.json, file names, checksums.

The writer (``mmrt.export``) and the reader (``mmrt.runtime``) share this module, so a
bundle means the same thing to both. No torch, no onnx: the edge runtime imports it.

A bundle folder holds ``manifest.json`` and the files it lists with their sha256:
one ONNX graph per modality encoder (``audio.onnx`` ...), ``head.onnx``, optionally
``fused.onnx`` (the monolithic baseline), INT8 copies of the encoders (``audio.int8.onnx`` ...,
QDQ form) and ``*.plan`` TensorRT engines, and the sentencepiece ``tokenizer.model`` when the
model reads text.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mmrt import atomic
from mmrt.errors import UserError
from mmrt.preprocess import Preprocessing
from mmrt.scores import metric_name
from mmrt.signing import check_signature

# A model's name: what clients put in request paths, and its folder in a model repository.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MODEL_NAME_RULE = "at most 128 letters, digits, '.', '_' or '-', starting with a letter or digit"

FORMAT = "mmrt-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.model"
HEAD, FUSED = "head", "fused"
# The opset bundles are written at unless asked otherwise. GELU is one operator (Gelu) from 20 on:
# 1.05-1.12x faster in ONNX Runtime than the five (Div, Erf, Add, Mul, Mul) it takes at 18, which ONNX
# Runtime does not fuse back; TensorRT's parser runs both.
DEFAULT_OPSET = 20

# Tensor names inside the graphs are the protocol's (DESIGN.md section 6), so the bundle,
# the server and clients all speak of AUDIO, VIDEO, TEXT, EMBEDDING and SCORES.
EMBEDDING, SCORES, PRESENT = "EMBEDDING", "SCORES", "PRESENT"

# What clients send per modality: numpy dtype, Triton datatype name, accepted ranks.
WIRE = {"audio": (np.dtype(np.float32), "FP32", (2,), "[B, samples] PCM at 16 kHz"),
        "video": (np.dtype(np.uint8), "UINT8", (5,), "[B, T, H, W, 3] RGB frames"),
        "text": (np.dtype(object), "BYTES", (1, 2), "[B] or [B, 1] UTF-8 strings")}


def input_name(modality: str) -> str:
    return modality.upper()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: float32, uint8, int64
    shape: tuple[int, ...]  # -1 for the dynamic batch axis

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, doc: dict) -> TensorSpec:
        return cls(doc["name"], doc["dtype"], tuple(int(d) for d in doc["shape"]))


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph of the bundle and, where built, its TensorRT engine, its INT8 copy (same
    inputs and outputs) and that copy's engine."""

    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    engine: str | None = None
    int8: str | None = None
    int8_engine: str | None = None

    @property
    def files(self) -> list[str]:
        return [f for f in (self.file, self.engine, self.int8, self.int8_engine) if f]

    def to_dict(self) -> dict:
        doc = {"file": self.file, "inputs": [t.to_dict() for t in self.inputs],
               "outputs": [t.to_dict() for t in self.outputs]}
        for key in ("engine", "int8", "int8_engine"):
            if getattr(self, key):
                doc[key] = getattr(self, key)
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> GraphSpec:
        return cls(doc["file"], tuple(TensorSpec.from_dict(t) for t in doc["inputs"]),
                   tuple(TensorSpec.from_dict(t) for t in doc["outputs"]), doc.get("engine"),
                   doc.get("int8"), doc.get("int8_engine"))


@dataclass(frozen=True)
class Manifest:
    name: str
    modalities: tuple[str, ...]
    embedding_dim: int
    classes: tuple[str, ...]
    task: str  # "multi-label" (sigmoid scores, mAP) or "single-label" (softmax scores, top-1)
    preprocessing: dict  # sample_rate, clip_samples, mel{...}, frames, frame_size, max_tokens, tokenizer
    graphs: dict[str, GraphSpec]  # modality names, "head" and optionally "fused"
    opset: int
    producer: dict  # versions of mmrt, torch, onnx, onnxruntime (and tensorrt)
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    parity: dict = field(default_factory=dict)  # what export checked, and the errors it saw
    tensorrt: dict | None = None  # precision, batch profile and version, where engines were built
    int8: dict | None = None  # calibration, what stayed in float, score per subset FP32 vs INT8
    model: dict = field(default_factory=dict)  # preset and training history, for provenance
    version: int = 0  # the model version it was exported as, which a signature covers (0: none given)

    @property
    def metric(self) -> str:
        return metric_name(self.task)

    @property
    def inputs(self) -> Preprocessing:
        """What the encoders take: clip length, frames, frame size, tokens (typed)."""
        return Preprocessing.from_dict(self.preprocessing)

    @property
    def tokenizer_file(self) -> str | None:
        """The sentencepiece model's file name in the bundle, when the model reads text."""
        return self.preprocessing.get("tokenizer") or None

    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name,
                "version": self.version,
                "modalities": list(self.modalities), "embedding_dim": self.embedding_dim,
                "classes": list(self.classes), "task": self.task, "metric": self.metric,
                "preprocessing": self.preprocessing,
                "graphs": {k: g.to_dict() for k, g in self.graphs.items()}, "opset": self.opset,
                "producer": self.producer, "parity": self.parity, "tensorrt": self.tensorrt,
                "int8": self.int8, "model": self.model, "files": self.files}

    @classmethod
    def from_dict(cls, doc: dict, source: str) -> Manifest:
        if doc.get("format") != FORMAT:
            raise UserError(f"{source}: not an mmrt bundle manifest (field 'format' is "
                            f"{doc.get('format')!r}, expected {FORMAT!r})")
        version = doc.get("format_version")
        if version != FORMAT_VERSION:
            raise UserError(f"{source}: bundle format version {version!r}; this mmrt reads version "
                            f"{FORMAT_VERSION} (re-export the model with this mmrt)")
        try:
            Preprocessing.from_dict(doc["preprocessing"])  # every field the runtime needs, as numbers
            return cls(name=doc["name"], modalities=tuple(doc["modalities"]),
                       embedding_dim=int(doc["embedding_dim"]), classes=tuple(doc["classes"]),
                       task=doc["task"], preprocessing=doc["preprocessing"],
                       graphs={k: GraphSpec.from_dict(g) for k, g in doc["graphs"].items()},
                       opset=int(doc["opset"]), producer=doc["producer"], files=doc["files"],
                       parity=doc.get("parity", {}), tensorrt=doc.get("tensorrt"),
                       int8=doc.get("int8"), model=doc.get("model", {}), version=int(doc.get("version", 0)))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UserError(f"{source}: malformed manifest", f"{type(e).__name__}: {e}") from None


def write_manifest(folder: Path, manifest: Manifest) -> Manifest:
    """Checksum every other file in ``folder`` into the manifest and write it; returns it."""
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = replace(manifest, files=files)
    atomic.write_text(folder / MANIFEST, json.dumps(manifest.to_dict(), indent=2) + "\n")
    return manifest


def verify_bundle(folder: str | Path, verify_key: Path | None = None) -> Manifest:
    """Read and check a bundle: format version, every listed file present with its checksum,
    every referenced file listed, and with ``verify_key`` its signature. Refuses a tampered or
    incomplete bundle, naming the file."""
    return read_bundle(folder, verify_key)[0]


def read_bundle(folder: str | Path, verify_key: Path | None = None) -> tuple[Manifest, dict[str, bytes]]:
    """As ``verify_bundle``, also returning each listed file's bytes: the very bytes that were
    hashed, so a file swapped on disk after the check is never the one loaded."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise UserError(f"{folder}: bundle folder not found")
    if not path.is_file():
        raise UserError(f"{path}: not found (is {folder} a bundle from 'mmrt export'?)")
    raw = path.read_bytes()
    if verify_key is not None:
        check_signature(folder, raw, verify_key)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON", str(e)) from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: expected a JSON object")
    manifest = Manifest.from_dict(doc, str(path))
    blobs = {}
    for name, expected in manifest.files.items():
        if Path(name).name != name:
            raise UserError(f"{path}: file entry {name!r} is not a plain file name")
        file = folder / name
        if not file.is_file():
            raise UserError(f"{file}: missing from the bundle (listed in {MANIFEST})")
        blobs[name] = file.read_bytes()
        if hashlib.sha256(blobs[name]).hexdigest() != expected:
            raise UserError(f"{file}: checksum mismatch (the file was changed after export; "
                            f"re-export the bundle)")
    referenced = [f for g in manifest.graphs.values() for f in g.files]
    if manifest.tokenizer_file:
        referenced.append(manifest.tokenizer_file)
    for name in referenced:
        if name not in manifest.files:
            raise UserError(f"{folder / name}: used by the manifest but has no checksum in 'files'")
    for m in (*manifest.modalities, HEAD):
        if m not in manifest.graphs:
            raise UserError(f"{path}: no graph for {m!r} (expected one per modality and a head)")
    return manifest, blobs
