"""A verified bundle with a session per graph: what the server and the bench load. No torch."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mmrt.bundle import FUSED, HEAD, Manifest, read_bundle
from mmrt.errors import UserError
from mmrt.runtime.sessions import SessionOptions, open_graph

log = logging.getLogger(__name__)


@dataclass
class Bundle:
    folder: Path
    manifest: Manifest
    graphs: dict  # graph name (modality, "head", "fused") -> OrtGraph or TensorrtGraph
    tokenizer: bytes | None = None  # the sentencepiece model, as verified

    @property
    def encoders(self) -> dict:
        return {m: self.graphs[m] for m in self.manifest.modalities}

    @property
    def head(self):
        return self.graphs[HEAD]

    @property
    def fused(self):
        return self.graphs.get(FUSED)


def open_bundle(folder: str | Path, options: SessionOptions | None = None, baseline: bool = False,
                verify_key: Path | None = None) -> Bundle:
    """Verify ``folder`` (format version, every checksum; its signature with ``verify_key``) and
    open its graphs from the bytes that were verified.

    The monolithic ``fused`` graph is opened only with ``baseline`` (the bench asks for it).
    """
    folder = Path(folder)
    manifest, blobs = read_bundle(folder, verify_key)
    options = options or SessionOptions()
    if baseline and FUSED not in manifest.graphs:
        raise UserError(f"{folder}: the bundle has no {FUSED}.onnx baseline (export with --baseline)")
    names = [*manifest.modalities, HEAD] + ([FUSED] if baseline else [])
    graphs = {name: open_graph(folder, manifest.graphs[name], options, blobs) for name in names}
    first = graphs[manifest.modalities[0]]
    log.info("%s: %s (%s), graphs %s on %s", folder, manifest.name, "+".join(manifest.modalities),
             ", ".join(names), ", ".join(first.providers))
    return Bundle(folder, manifest, graphs, blobs.get(manifest.preprocessing.get("tokenizer", "")))
