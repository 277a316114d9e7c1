"""A verified bundle with a session per graph: what the server and the bench load. No torch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmrt.bundle import FUSED, HEAD, Manifest, read_bundle
from mmrt.errors import UserError
from mmrt.runtime.backends.graph import Graph
from mmrt.runtime.backends.precision import PRECISIONS, as_int8, faster_int8, has_int8
from mmrt.runtime.backends.sessions import SessionOptions, open_graph

log = logging.getLogger(__name__)


@dataclass
class Bundle:
    folder: Path
    manifest: Manifest
    graphs: dict[str, Graph]  # graph name (modality, "head", "fused") -> its session or engine
    tokenizer: bytes | None = None  # the sentencepiece model, as verified
    precision: str = "fp32"  # what the encoders run in: "fp32", "int8", or a TensorRT engine's "fp16"

    @property
    def encoders(self) -> dict[str, Graph]:
        return {m: self.graphs[m] for m in self.manifest.modalities}

    @property
    def head(self) -> Graph:
        return self.graphs[HEAD]

    @property
    def fused(self) -> Graph | None:
        return self.graphs.get(FUSED)

    @property
    def max_rows(self) -> int | None:
        """The most rows one run of its graphs may take: a TensorRT engine's batch profile, as the
        manifest records it (None: any, as ONNX Runtime runs)."""
        if not any(g.kind == "tensorrt" for g in self.graphs.values()):
            return None
        rows = ((self.manifest.tensorrt or {}).get("profile") or {}).get("max")
        if not isinstance(rows, int) or rows < 1:
            raise UserError(f"{self.folder}: its TensorRT engines' batch profile is not in the manifest "
                            f"(re-export it with 'mmrt export --tensorrt')")
        return rows


def open_bundle(folder: str | Path, options: SessionOptions | None = None, baseline: bool = False,
                verify_key: Path | None = None, precision: str = "fp32",
                check: Callable[[Manifest], None] | None = None) -> Bundle:
    """Verify ``folder`` (format version, every checksum; its signature with ``verify_key``) and
    open its graphs from the bytes that were verified.

    The monolithic ``fused`` graph is opened only with ``baseline`` (the bench asks for it).
    ``precision``: "fp32", "int8" (the bundle's INT8 encoders; an error if it has none) or
    "auto" (INT8 where the bundle has it and it is faster here: ``runtime.precision``).
    ``check``: called with the verified manifest before any graph is opened (raises to refuse).
    """
    folder = Path(folder)
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision}: expected one of {', '.join(PRECISIONS)}")
    manifest, blobs = read_bundle(folder, verify_key)
    if check is not None:
        check(manifest)
    options = options or SessionOptions()
    if baseline and FUSED not in manifest.graphs:
        raise UserError(f"{folder}: the bundle has no {FUSED}.onnx baseline (export with --baseline)")
    if precision == "int8" and (baseline or not has_int8(manifest)):
        raise UserError(f"--precision int8: {folder} has no INT8 graphs (export it with 'mmrt export --int8')"
                        if not baseline else "--precision int8: the monolithic baseline is FP32 only")
    names = [*manifest.modalities, HEAD] + ([FUSED] if baseline else [])
    graphs = {name: open_graph(folder, manifest.graphs[name], options, blobs) for name in names}
    int8 = precision == "int8" or (precision == "auto" and not baseline and has_int8(manifest))
    if int8:
        specs = {m: as_int8(manifest.graphs[m]) for m in manifest.modalities}
        quantized = {m: open_graph(folder, specs[m], options, blobs) for m in manifest.modalities}
        int8 = precision == "int8" or faster_int8({m: graphs[m] for m in specs}, quantized, specs)
        if int8:
            graphs.update(quantized)
    first = graphs[manifest.modalities[0]]
    engines = (manifest.tensorrt or {}).get("precision", "fp32")
    ran = "int8" if int8 else engines if first.kind == "tensorrt" else "fp32"
    log.info("%s: %s (%s), graphs %s on %s, encoders in %s", folder, manifest.name,
             "+".join(manifest.modalities), ", ".join(names), ", ".join(first.providers), ran.upper())
    return Bundle(folder, manifest, graphs, blobs.get(manifest.tokenizer_file or ""), ran)
