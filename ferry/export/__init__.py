"""Export: a registered version as files another team runs without ferry.

    import ferry
    result = ferry.export("churn:3", "churn-bundle/", triton="model_repository/")

    bundle    `export_bundle`: model.onnx, signature.json, golden.json and README.md (and the
              original model.pmml) in one folder, written atomically
    golden    the golden cases: input tensors from the reference sample, ONNX Runtime's outputs
    document  signature.json, and tensors as JSON
    readme    the bundle's README.md, written from the signature
    triton    a Triton model repository: NAME/VERSION/model.onnx and NAME/config.pbtxt
    staging   folders written beside their target and renamed into place

The bundle's format is shared with the consumers in `examples/` (Node.js, the browser, Java).
The package is callable (`ferry.export(uri, directory, ...)` is `export_bundle`) and light to
import: ONNX Runtime and the registry load when an export starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferry.lazy import callable_package, lazy_names

if TYPE_CHECKING:
    from ferry.export.bundle import ExportResult, export_bundle
    from ferry.export.triton import TritonExport

_HOMES = {"export_bundle": "ferry.export.bundle", "ExportResult": "ferry.export.bundle",
          "TritonExport": "ferry.export.triton"}

__getattr__ = lazy_names(__name__, _HOMES)

callable_package(__name__, "ferry.export.bundle:export_bundle")
__all__ = ["ExportResult", "TritonExport", "export_bundle"]
