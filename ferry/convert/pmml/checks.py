"""Refusals of PMML documents that sklearn-pmml-model would misread.

Regression terms other than linear `NumericPredictor`s (and tables that leave a field out),
tree predicates other than comparisons of a field with a number, logistic regressions whose
tables do not line up with the target's classes, and boosting chains of the wrong shape.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from ferry.convert.pmml.document import (
    BOOSTING_CLASSIFIER,
    LINEAR,
    LOGISTIC,
    NUMERIC_PREDICTOR,
    TREE_OPERATORS,
    Kind,
    Parsed,
    number,
    segment_model,
    segmentation,
)
from ferry.convert.pmml.estimators import feature_count


def check_model(kind: Kind, parsed: Parsed) -> None:
    if kind is LINEAR:
        _check_linear(parsed)
    elif kind is LOGISTIC:
        _check_logistic(parsed)
    else:
        _check_predicates(parsed)
    if kind is BOOSTING_CLASSIFIER:
        _check_chain(parsed)


def _check_linear(parsed: Parsed) -> None:
    tables = parsed.element.findall("RegressionTable")
    if len(tables) != 1:
        raise parsed.unsupported(f"a regression needs one RegressionTable, it has {len(tables)}")
    method = parsed.element.get("normalizationMethod", "none")
    if method != "none":
        raise parsed.unsupported(f"normalizationMethod={method!r} on a regression is not"
                                 " supported")
    _check_terms(tables[0], parsed)


def _check_logistic(parsed: Parsed) -> None:
    tables = parsed.element.findall("RegressionTable")
    for table in tables:
        _check_terms(table, parsed)
    fitted = [t for t in tables if t.find(NUMERIC_PREDICTOR) is not None]
    method = parsed.element.get("normalizationMethod", "none")
    if len(parsed.classes) == 2:
        ok = (method in ("logit", "softmax") and len(fitted) == 1
              and fitted[0].get("targetCategory") == parsed.classes[1])
    else:
        ok = (method == "softmax" and len(fitted) == len(tables) == len(parsed.classes)
              and [t.get("targetCategory") for t in tables] == parsed.classes)
    if not ok:
        raise parsed.unsupported(
            f"the logistic regression's tables ({method}, with coefficients for"
            f" {[t.get('targetCategory') for t in fitted]}) do not line up with the classes"
            f" {parsed.classes} as sklearn-pmml-model reads them"
        )


def _check_terms(table: ET.Element, parsed: Parsed) -> None:
    for term in table:
        if term.tag != NUMERIC_PREDICTOR or number(term.get("exponent", "1")) != 1.0:
            raise parsed.unsupported(
                f"regression term <{term.tag}> on {term.get('name')!r} is not supported:"
                " ferry converts linear NumericPredictors only"
            )


def _check_predicates(parsed: Parsed) -> None:
    for tag in ("CompoundPredicate", "SimpleSetPredicate"):
        if next(parsed.element.iter(tag), None) is not None:
            raise parsed.unsupported(
                f"tree predicate <{tag}> is not supported: ferry converts trees that split"
                " numeric fields with comparisons"
            )
    for predicate in parsed.element.iter("SimplePredicate"):
        if predicate.get("operator") not in TREE_OPERATORS:
            raise parsed.unsupported(
                f"tree predicate operator {predicate.get('operator')!r} on"
                f" {predicate.get('field')!r} is not supported"
            )
        if number(predicate.get("value")) is None:
            raise parsed.unsupported(
                f"tree predicate on {predicate.get('field')!r} compares with"
                f" {predicate.get('value')!r}, which is not a number"
            )


def _check_chain(parsed: Parsed) -> None:
    """One sum of trees for two classes (else one per class), then a logit / softmax link."""
    *sums, link = segmentation(parsed.element).findall("Segment")
    n_classes = len(parsed.classes)
    want_sums, want_link = (1, "logit") if n_classes == 2 else (n_classes, "softmax")
    method = segment_model(link).get("normalizationMethod")
    if len(sums) != want_sums or method != want_link:
        raise parsed.unsupported(
            f"a boosted classifier of {n_classes} classes must chain {want_sums} sums of trees"
            f" and a {want_link} RegressionModel; this one chains {len(sums)} and {method!r}"
        )


def check_coefficients(kind: Kind, estimator: Any, parsed: Parsed) -> None:
    """sklearn-pmml-model skips the fields a RegressionTable leaves out, shifting the rest."""
    if kind not in (LINEAR, LOGISTIC):
        return
    n_features = feature_count(estimator)
    n_coefficients = np.atleast_2d(np.asarray(estimator.coef_)).shape[1]
    if n_coefficients != n_features:
        raise parsed.unsupported(
            f"the RegressionTable has coefficients for {n_coefficients} of the {n_features}"
            " input fields; give every field a NumericPredictor (0 for those it does not use)"
        )
