"""Reading a PMML document: parse, refuse what would be misread, repair, build the estimator."""

from __future__ import annotations

import importlib
import io
import warnings
import xml.etree.ElementTree as ET
from typing import Any

from ferry.convert.pmml.checks import check_coefficients, check_model
from ferry.convert.pmml.document import (
    BOOSTING_CLASSIFIER,
    FOREST_CLASSIFIER,
    LINEAR,
    LOGISTIC,
    Kind,
    PmmlDocument,
    model_element,
    model_kind,
    parse_xml,
    parsed_document,
    segmentation,
)
from ferry.convert.pmml.repairs import (
    float32_thresholds,
    normalise_forest_leaves,
    rescale_targets,
    set_initial_scores,
)
from ferry.errors import UnsupportedModelError, one_line


def parse_pmml(text: str, source: str) -> PmmlDocument:
    """The document in `text` (`source` names it in errors), once it is known to read right."""
    root = parse_xml(text, source)
    element = model_element(root, source)
    kind = model_kind(element, source)
    parsed = parsed_document(root, element, source)
    check_model(kind, parsed)
    if kind is BOOSTING_CLASSIFIER:
        rescale_targets(parsed)
    if kind not in (LINEAR, LOGISTIC):
        float32_thresholds(parsed)
    estimator = _read_estimator(kind, ET.tostring(root, encoding="unicode"), source)
    check_coefficients(kind, estimator, parsed)
    if kind is FOREST_CLASSIFIER:
        majority = segmentation(element).get("multipleModelMethod") == "majorityVote"
        normalise_forest_leaves(estimator, majority)
    if kind is BOOSTING_CLASSIFIER and len(parsed.classes) > 2:
        set_initial_scores(estimator, parsed)
    return PmmlDocument(text, estimator)


def _read_estimator(kind: Kind, xml: str, source: str) -> Any:
    try:
        reader = getattr(importlib.import_module(kind.module), kind.reader)
    except ImportError as exc:
        raise UnsupportedModelError(
            f"reading PMML needs an extra: pip install 'ferry-ml[pmml]' ({exc})"
        ) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return reader(io.StringIO(xml))
    except Exception as exc:
        raise UnsupportedModelError(
            f"{source}: sklearn-pmml-model cannot read the {kind.description}: {one_line(exc)}"
        ) from exc
