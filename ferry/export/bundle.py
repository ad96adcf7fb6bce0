"""`export_bundle`: a registered version as a folder another team runs without ferry.

    DIR/model.onnx       the version's ONNX form, the registered bytes
    DIR/model.pmml       the original PMML, for versions registered from PMML
    DIR/signature.json   what the model takes and gives (`ferry.export.document`)
    DIR/golden.json      golden cases and the outputs they must give (`ferry.export.golden`)
    DIR/README.md        a short page for the consuming team (`ferry.export.readme`)

Everything is computed first, then written into a folder beside DIR and renamed into place
(`ferry.export.staging`). Versions that run natively have no ONNX form and are refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import onnx

from ferry.errors import MissingArtifactError, UnsupportedModelError
from ferry.export.document import json_bytes, signature_document
from ferry.export.golden import golden_cases, golden_document
from ferry.export.readme import readme_text
from ferry.export.staging import check_target, write_directory
from ferry.export.triton import TritonExport, check_repository, write_repository
from ferry.loading import load_sample
from ferry.registry import ModelVersion, Registry, Runtime
from ferry.serve.batching import BatchSettings
from ferry.steps.stored import require_one_model

MARKER = "signature.json"
"""The file that says a folder holds a bundle (what `force` may replace)."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    uri: str
    model: str
    version: int
    directory: str
    files: tuple[str, ...]
    cases: tuple[str, ...]
    """The golden cases, by name."""
    triton: TritonExport | None = None


def export_bundle(uri: str, directory: str | Path, *, registry: Registry | None = None,
                  triton: str | Path | None = None, force: bool = False,
                  batching: BatchSettings | None = None) -> ExportResult:
    """Export the version `uri` (`name`, `name:3`, `name@production`) into `directory`, and,
    given `triton`, into that Triton model repository as `NAME/VERSION/model.onnx` with
    `NAME/config.pbtxt` (`batching`: its dynamic batching, by default the server's).

    force: replace an earlier export in `directory` (and the version's folder in `triton`);
        any other non-empty folder is refused.
    """
    registry = registry or Registry()
    target = Path(directory)
    check_target(target, force=force, marker=MARKER)
    version = registry.get(uri)
    model_bytes = onnx_form(version, registry)
    if triton is not None:
        check_repository(Path(triton), version, force=force)
    files, cases = bundle_files(version, registry, model_bytes)
    write_directory(target, files, force=force, marker=MARKER)
    written = None if triton is None else write_repository(
        Path(triton), version, model_bytes, batching or BatchSettings(), force=force)
    return ExportResult(version.uri, version.name, version.version, str(target),
                        tuple(files), tuple(cases), written)


def onnx_form(version: ModelVersion, registry: Registry) -> bytes:
    """The version's registered ONNX bytes; a native version has none and is refused."""
    require_one_model(version, "export")
    if version.runtime == Runtime.NATIVE or version.onnx_sha256 is None:
        raise UnsupportedModelError(
            f"{version.uri} runs natively in {version.framework} (it was registered without an"
            " ONNX form), so it has no model.onnx to export: register a version ferry can"
            " convert to ONNX", model=version.name, version=version.version)
    return registry.read_artifact(version, "onnx")


def bundle_files(version: ModelVersion, registry: Registry,
                 model_bytes: bytes) -> tuple[dict[str, bytes], list[str]]:
    """The bundle's files by name, and the names of its golden cases."""
    signature = signature_document(version, onnx.load_model_from_string(model_bytes))
    if version.sample_sha256 is None:
        raise MissingArtifactError(f"{version.uri} has no reference sample to draw golden cases"
                                   " from: register it with sample=", model=version.name,
                                   version=version.version)
    sample = load_sample(version.uri, registry=registry)
    cases = golden_cases(model_bytes, version.signature, sample)
    files = {"model.onnx": model_bytes}
    if version.original_format == "pmml":
        files["model.pmml"] = registry.read_artifact(version, "original")
    files |= {"signature.json": json_bytes(signature), "golden.json": golden_document(cases)}
    names = [case.name for case in cases]
    files["README.md"] = readme_text(json.loads(files["signature.json"]), names,
                                     [*files, "README.md"]).encode()
    return files, names
