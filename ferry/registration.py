"""`ferry.register`: a trained model in, a checked and versioned artifact out.

1. find the converter (named, or recognised from the model's type);
2. convert to ONNX, or, when no converter can and the user forces it, keep it native;
3. check the ONNX form against the original on sample rows; refuse it outside tolerance
   unless forced (and record that it was);
4. write the artifacts (original, ONNX, sample, the steps' source), then commit the
   version's row last.

Python pre/post-processing steps (`preprocess=`, `postprocess=`) are stored as source with the
version (`ferry.steps`); the conversion check concerns the model alone, on `sample=` (the
model's input); `raw_sample=` (the pipeline's input) checks that the steps run and that
preprocess gives what the model takes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ferry.convert import Conversion, Converter, find_converter
from ferry.convert.base import Sample
from ferry.convert.check import ConversionCheck, Tolerance, check_conversion
from ferry.convert.probes import as_served, build_probes
from ferry.data import as_sample, fingerprint, head, sample_rows, sample_to_parquet
from ferry.errors import (
    ConversionCheckError,
    FerryError,
    SampleMismatchError,
    UnsupportedModelError,
    one_line,
)
from ferry.monitor.reference import profile_bytes, profile_of
from ferry.pipelines import Details, register_pipeline
from ferry.registry import ModelVersion, Registry, Runtime, VersionDraft
from ferry.runtime.native import NativePredictor
from ferry.runtime.onnx_runtime import OnnxPredictor
from ferry.runtime.predictor import Outputs, Predictor
from ferry.signature import Signature, Task
from ferry.steps import Steps, StepsPredictor, capture_steps, steps_settings
from ferry.steps.loaded import run_step
from ferry.steps.outer import outer_signature
from ferry.steps.pipeline import Pipeline
from ferry.uri import validate_name

log = logging.getLogger("ferry.registration")

DEFAULT_SAMPLE_ROWS = 1000
"""Rows of the reference sample kept with a version (and used for the check)."""
DEFAULT_SYNTHETIC_ROWS = 256
"""Rows drawn when a numbers-only model is registered without a sample."""
SYNTHETIC_SEED = 0


@dataclass(frozen=True)
class Lineage:
    """Where a version came from, when the user says."""

    training_data: Sample | None = None
    data_start: datetime | None = None
    data_end: datetime | None = None
    run_id: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if self.training_data is not None:
            record["data_fingerprint"] = fingerprint(as_sample(self.training_data))
            record["data_rows"] = sample_rows(as_sample(self.training_data))
        for key in ("data_start", "data_end"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value.isoformat()
        for key in ("run_id", "source"):
            if getattr(self, key) is not None:
                record[key] = getattr(self, key)
        return record


def register(
    model: object,
    name: str,
    *,
    sample: Any = None,
    metrics: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    description: str = "",
    framework: str | None = None,
    example_input: Any = None,
    force: bool = False,
    tolerance: Tolerance | None = None,
    lineage: Lineage | None = None,
    parent_version: int | None = None,
    dynamic_axes: Mapping[int, str] | None = None,
    reference: Any = None,
    preprocess: Callable[[Any], Any] | None = None,
    postprocess: Callable[[Any], Any] | None = None,
    raw_sample: Any = None,
    registry: Registry | None = None,
) -> ModelVersion:
    """Register `model` as the next version of `name` and return that version.

    sample: rows like the training data (a DataFrame, an array, a pyarrow Table) or, for an
        ONNX model with several tensor inputs, one array per input by name
        (`{"INPUT0": a, "INPUT1": b}`); kept with the version and used for the check.
    dynamic_axes: for PyTorch models, input axes besides the batch that take any size,
        `{axis: name}` (e.g. `{1: "sequence"}` for token ids); others stay at the sample's.
    reference: rows the drift monitor compares live traffic with (default: the sample);
        only their profile is kept (`ferry.monitor.reference`).
    preprocess, postprocess: top-level functions run on each whole batch before the model
        (raw input to the model's input) and after it (its outputs by role name to outputs);
        stored as source, so loading the version needs `trust_code=True`.
    raw_sample: rows as the pipeline receives them (before preprocess): the steps are run on
        them to check they fit the model; without `sample`, preprocess(raw_sample) is it.

    `model` may be a `ferry.Pipeline` of steps and registered models (`ferry.pipelines`):
    it is run on `raw_sample` (or `sample`) and registered with the `pipeline` runtime.
    """
    validate_name(name)
    registry = registry or Registry()
    if isinstance(model, Pipeline):
        details = Details(description, dict(metrics or {}), dict(params or {}),
                          dict(tags or {}), lineage.to_dict() if lineage else {})
        return register_pipeline(model, name, sample if raw_sample is None else raw_sample,
                                 registry, details)
    steps = capture_steps(preprocess, postprocess)
    converter = find_converter(model, framework)
    if dynamic_axes:
        converter = converter.with_dynamic_axes(dynamic_axes)
    if sample is None and raw_sample is not None and preprocess is not None:
        sample = run_step("preprocess", preprocess.__name__, preprocess, raw_sample)
    data = _sample(converter, sample if sample is not None else example_input)
    original_outputs = None if data is None else _reference(converter, model, data)
    conversion = _convert(converter, model, data, force)
    task = conversion.task if conversion is not None else converter.task(model)
    signature = (conversion.signature if conversion is not None
                 else converter.native_signature(model, data))
    served = _served(converter, model, conversion, signature, task)
    steps = _check_steps(steps, served, raw_sample)
    check = None
    if conversion is not None:
        check = _check(converter, model, conversion, data, original_outputs, tolerance, served)
        if not check.passed and not force:
            raise _check_failed(name, check)
    forced = force and (check is None or not check.passed)
    artifacts = _store(converter, model, data, conversion, registry)
    profile = _profile(*_profiled(served, steps, data, raw_sample, reference))
    draft = VersionDraft(
        framework=converter.framework, framework_version=converter.framework_version(),
        task=task, runtime=Runtime.ONNX if conversion is not None else Runtime.NATIVE,
        signature=signature,
        profile_sha256=None if profile is None else registry.artifacts.put(profile),
        conversion_check={**(check.to_dict() if check else {"skipped": "native"}),
                          "forced": forced},
        forced=forced, description=description, metrics=dict(metrics or {}),
        params=dict(params or {}), tags=dict(tags or {}),
        lineage=lineage.to_dict() if lineage is not None else {},
        parent_version=parent_version, runtime_settings=steps_settings(steps, registry),
        **artifacts,
    )
    return registry.create_version(name, draft)


def _served(converter: Converter, model: object, conversion: Conversion | None,
            signature: Signature, task: Task) -> Predictor:
    """The version as it will be served: its ONNX form on ONNX Runtime, else the original
    (loaded once; the check and the reference profile both use it)."""
    if conversion is None:
        return NativePredictor(converter, model, signature, task)
    return OnnxPredictor(conversion.onnx_model.SerializeToString(), signature, task).load()


def _check_steps(steps: Steps | None, served: Predictor, raw_sample: Any) -> Steps | None:
    """Run the steps, compiled from what will be stored, around the served model on
    `raw_sample`: a step that fails, or gives what the model cannot take, is refused now.
    Returns the steps with the pipeline's outer signature read from that run."""
    if steps is None or raw_sample is None:
        return steps
    try:
        outputs = StepsPredictor(served, steps).outputs(raw_sample)
    except Exception as exc:
        raise SampleMismatchError(f"the steps do not run on raw_sample: {one_line(exc)}"
                                  ) from exc
    signature = outer_signature(served.signature, raw_sample, outputs,
                                preprocessed=steps.preprocess is not None)
    return dataclasses.replace(steps, signature=signature)


def _profiled(served: Predictor, steps: Steps | None, data: Any, raw_sample: Any,
              reference: Any) -> tuple[Predictor, Any]:
    """What the drift monitor's reference is: the rows a request carries and the outputs the
    server answers (before and after the steps, for a version with them)."""
    if steps is None or steps.signature is None:
        return served, reference if reference is not None else data
    return StepsPredictor(served, steps), reference if reference is not None else raw_sample


def _profile(predictor: Predictor, rows: Any) -> bytes | None:
    """The reference profile (rows and the served form's outputs on them), or None when
    there are no rows or they cannot be profiled (logged; the version is still registered)."""
    if rows is None:
        return None
    try:
        return profile_bytes(profile_of(predictor, as_sample(rows)))
    except (FerryError, ValueError, TypeError) as exc:
        log.warning("no reference profile for drift: %s", one_line(exc))
        return None


def _sample(converter: Converter, data: Any) -> Sample | None:
    if data is None:
        return None
    sample = as_sample(data)
    if isinstance(sample, dict) and not converter.named_inputs:
        raise SampleMismatchError(
            f"a sample of one array per input is for ONNX graphs with several inputs; give"
            f" a {converter.framework} model rows like its training data (a DataFrame or an"
            " array)")
    return head(sample, DEFAULT_SAMPLE_ROWS)


def _convert(converter: Converter, model: object, data: Sample | None,
             force: bool) -> Conversion | None:
    try:
        return converter.convert(model, data)
    except UnsupportedModelError:
        if force:
            return None
        raise


def _synthetic(conversion: Conversion) -> Sample | None:
    """Random rows for a numbers-only model registered without a sample."""
    if len(conversion.signature.inputs) != 1:
        return None
    spec = conversion.signature.inputs[0]
    if spec.dtype not in ("float32", "float64") or len(spec.shape) != 2 or spec.shape[1] < 1:
        return None
    rows = np.random.default_rng(SYNTHETIC_SEED).normal(size=(DEFAULT_SYNTHETIC_ROWS,
                                                              spec.shape[1]))
    names = conversion.signature.feature_names
    return pd.DataFrame(rows, columns=list(names)) if names else rows


def _reference(converter: Converter, model: object, data: Sample) -> Outputs:
    """The original's outputs; a failure here means the sample does not fit the model."""
    try:
        return converter.reference(model, data)
    except FerryError:
        raise
    except Exception as exc:
        raise SampleMismatchError(
            f"the original model cannot predict the sample: {one_line(exc)};"
            " the sample must have the training data's columns and types"
        ) from exc


def _check(converter: Converter, model: object, conversion: Conversion, data: Sample | None,
           reference: Outputs | None, tolerance: Tolerance | None,
           predictor: Predictor) -> ConversionCheck:
    """The ONNX form against the original on the sample as served (float64 values cast to
    float32, as every request is) and on probe rows beyond it (`ferry.convert.probes`)."""
    kind = "sample"
    if data is None:
        data, kind = _synthetic(conversion), "synthetic"
        if data is None:
            raise SampleMismatchError(
                f"cannot check the {converter.framework} conversion without data: pass"
                " sample= (rows like the training data) or example_input="
            )
    rows = as_served(data, conversion.signature)
    return check_conversion(_original(converter, model, data, reference), predictor.outputs,
                            rows, data=kind, probes=build_probes(rows, conversion),
                            tolerance=tolerance)


def _original(converter: Converter, model: object, data: Sample,
              reference: Outputs | None) -> Callable[[Any], Outputs]:
    """The original's outputs, reusing `reference` (its outputs on `data`) when the rows are
    `data` itself (serving casts nothing)."""
    def outputs(rows: Any) -> Outputs:
        if rows is data and reference is not None:
            return reference
        return _reference(converter, model, rows)

    return outputs


def _check_failed(name: str, check: ConversionCheck) -> ConversionCheckError:
    worst = check.worst()
    what = worst.describe() if worst else "no output compared"
    compared = ", ".join(f"{count} {kind}" for kind, count in check.compared.items())
    rows = "; ".join(row.describe() for row in check.worst_rows)
    return ConversionCheckError(
        f"the ONNX form of {name!r} differs from the original beyond tolerance ({what};"
        f" rtol={check.tolerance.rtol}, atol={check.tolerance.atol},"
        f" min label agreement={check.tolerance.min_label_agreement}) on rows compared:"
        f" {compared or f'{check.rows} {check.data}'}"
        f"{f'; worst rows: {rows}' if rows else ''}; pass force=True to register it anyway",
        model=name)


def _store(converter: Converter, model: object, data: Sample | None,
           conversion: Conversion | None, registry: Registry) -> dict[str, Any]:
    """Write the original, the ONNX form and the sample; their fields for the draft."""
    saved = converter.save(model, data)
    store = registry.artifacts
    return {
        "original_sha256": store.put(saved.data),
        "original_format": saved.format,
        "onnx_sha256": (None if conversion is None
                        else store.put(conversion.onnx_model.SerializeToString())),
        "sample_sha256": None if data is None else store.put(sample_to_parquet(data)),
    }
