"""What a PMML document says: its XML, model element, target, classes and model kind.

`PmmlDocument` pairs a document's text with sklearn-pmml-model's estimator for it. The rest
reads the XML (namespaces dropped), finds the model element and its target, refuses inputs
that are not continuous numbers or that a DerivedField transforms, and picks the `Kind` of
model (and so sklearn-pmml-model's class) from the model element and its segments.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ferry.errors import InvalidInputError, UnsupportedModelError

MODEL_ELEMENTS = frozenset({
    "AnomalyDetectionModel", "AssociationModel", "BaselineModel", "BayesianNetworkModel",
    "ClusteringModel", "GaussianProcessModel", "GeneralRegressionModel", "MiningModel",
    "NaiveBayesModel", "NearestNeighborModel", "NeuralNetwork", "RegressionModel",
    "RuleSetModel", "Scorecard", "SequenceModel", "SupportVectorMachineModel", "TextModel",
    "TimeSeriesModel", "TreeModel",
})
"""The model elements of PMML 4.4 (a document's first one is its model)."""

SUPPORTED = ("RegressionModel, TreeModel and MiningModel (random forest, gradient boosting"
             " of trees)")

NUMERIC_TYPES = frozenset({"integer", "float", "double"})
TREE_OPERATORS = frozenset({"lessThan", "lessOrEqual", "greaterThan", "greaterOrEqual"})
NUMERIC_PREDICTOR = "NumericPredictor"


@dataclass(frozen=True)
class PmmlDocument:
    """A PMML document's text and sklearn-pmml-model's estimator for it."""

    text: str
    model: object = field(compare=False, repr=False)


@dataclass(frozen=True)
class Kind:
    """A PMML model shape this converter reads, and sklearn-pmml-model's class for it."""

    description: str
    module: str
    reader: str


LINEAR = Kind("linear regression", "sklearn_pmml_model.linear_model", "PMMLLinearRegression")
LOGISTIC = Kind("logistic regression", "sklearn_pmml_model.linear_model",
                "PMMLLogisticRegression")
TREE_CLASSIFIER = Kind("decision tree", "sklearn_pmml_model.tree", "PMMLTreeClassifier")
TREE_REGRESSOR = Kind("regression tree", "sklearn_pmml_model.tree", "PMMLTreeRegressor")
FOREST_CLASSIFIER = Kind("random forest classifier", "sklearn_pmml_model.ensemble",
                         "PMMLForestClassifier")
FOREST_REGRESSOR = Kind("random forest regressor", "sklearn_pmml_model.ensemble",
                        "PMMLForestRegressor")
BOOSTING_CLASSIFIER = Kind("gradient boosting classifier", "sklearn_pmml_model.ensemble",
                           "PMMLGradientBoostingClassifier")
BOOSTING_REGRESSOR = Kind("gradient boosting regressor", "sklearn_pmml_model.ensemble",
                          "PMMLGradientBoostingRegressor")


@dataclass(frozen=True)
class Parsed:
    """A parsed PMML document: its model element, target and the target's classes."""

    root: ET.Element
    element: ET.Element
    source: str
    target: str
    classes: list[str | None]

    def unsupported(self, message: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{self.source}: {message}")


def feature_names(document: PmmlDocument) -> tuple[str, ...]:
    """The columns the model takes: the DataFields other than the target, in document order."""
    estimator: Any = document.model
    target = estimator.target_field
    return tuple(str(name) for name, element in estimator.fields.items()
                 if element is not target and element.tag == "DataField")


def parse_xml(text: str, source: str) -> ET.Element:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InvalidInputError(f"{source} is not well-formed XML: {exc}") from exc
    for element in root.iter():
        if isinstance(element.tag, str):
            element.tag = element.tag.rpartition("}")[2]
    if root.tag != "PMML":
        raise InvalidInputError(f"{source} is XML but not PMML (its root is <{root.tag}>)")
    return root


def model_element(root: ET.Element, source: str) -> ET.Element:
    element = next((e for e in root if e.tag in MODEL_ELEMENTS), None)
    if element is None:
        raise InvalidInputError(f"{source} holds no PMML model element")
    return element


def parsed_document(root: ET.Element, element: ET.Element, source: str) -> Parsed:
    dictionary = root.find("DataDictionary")
    if dictionary is None:
        raise InvalidInputError(f"{source} has no DataDictionary")
    target = _target_name(element, source)
    fields = {f.get("name"): f for f in dictionary.findall("DataField")}
    if target not in fields:
        raise InvalidInputError(f"{source}: the target {target!r} is not in the DataDictionary")
    for name, data_field in fields.items():
        if name != target:
            _check_numeric(name, data_field, source)
    derived = next(root.iter("DerivedField"), None)
    if derived is not None:
        raise UnsupportedModelError(
            f"{source}: DerivedField {derived.get('name')!r} transforms the inputs inside the"
            " PMML, which ferry does not convert; export the model on its raw numeric fields"
        )
    classes = [v.get("value") for v in fields[target].findall("Value")]
    return Parsed(root, element, source, target, classes)


def _target_name(element: ET.Element, source: str) -> str:
    schema = element.find("MiningSchema")
    fields = [] if schema is None else schema.findall("MiningField")
    targets = [f.get("name") for f in fields if f.get("usageType") in ("target", "predicted")]
    if len(targets) != 1 or targets[0] is None:
        raise UnsupportedModelError(
            f"{source}: the MiningSchema must name exactly one target field, it names"
            f" {len(targets)}"
        )
    return str(targets[0])


def _check_numeric(name: str | None, data_field: ET.Element, source: str) -> None:
    optype, data_type = data_field.get("optype"), data_field.get("dataType")
    if optype != "continuous" or data_type not in NUMERIC_TYPES:
        raise UnsupportedModelError(
            f"{source}: field {name!r} is {optype or 'untyped'} ({data_type}); ferry converts"
            " PMML models whose input fields are all continuous numbers"
        )


def model_kind(element: ET.Element, source: str) -> Kind:
    function = element.get("functionName")
    if element.tag not in ("RegressionModel", "TreeModel", "MiningModel"):
        raise UnsupportedModelError(
            f"{source}: PMML {element.tag} is not supported: ferry converts {SUPPORTED}"
        )
    if function not in ("regression", "classification"):
        raise UnsupportedModelError(
            f"{source}: ferry converts PMML regression and classification models,"
            f" not functionName={function!r}"
        )
    classification = function == "classification"
    if element.tag == "RegressionModel":
        return LOGISTIC if classification else LINEAR
    if element.tag == "TreeModel":
        return TREE_CLASSIFIER if classification else TREE_REGRESSOR
    return _ensemble_kind(element, classification, source)


def _ensemble_kind(element: ET.Element, classification: bool, source: str) -> Kind:
    method = segmentation(element, source).get("multipleModelMethod")
    segments = _segments(element, source)
    inner = [segment_model(s).tag for s in segments]
    trees = bool(inner) and all(tag == "TreeModel" for tag in inner)
    if trees and (method == "average" or (method == "majorityVote" and classification)):
        return FOREST_CLASSIFIER if classification else FOREST_REGRESSOR
    if trees and method == "sum" and not classification:
        return BOOSTING_REGRESSOR
    if method == "modelChain" and classification and _is_boosting_chain(segments, source):
        return BOOSTING_CLASSIFIER
    if method == "modelChain" and inner and all(tag == "RegressionModel" for tag in inner):
        raise UnsupportedModelError(
            f"{source}: one-vs-rest logistic regression written as a modelChain is not"
            " supported (sklearn-pmml-model scores it with softmax, not simplemax); export a"
            " multinomial RegressionModel instead"
        )
    raise UnsupportedModelError(
        f"{source}: a MiningModel combining {sorted(set(inner))} by {method!r} is not"
        f" supported: ferry converts {SUPPORTED}"
    )


def segmentation(element: ET.Element, source: str = "the PMML") -> ET.Element:
    found = element.find("Segmentation")
    if found is None:
        raise UnsupportedModelError(f"{source}: a MiningModel without a Segmentation is not"
                                    " supported")
    return found


def _segments(element: ET.Element, source: str) -> list[ET.Element]:
    """The segments of `element`, all of which must apply to every row (`<True/>`)."""
    segments = segmentation(element, source).findall("Segment")
    for segment in segments:
        if segment.find("True") is None:
            raise UnsupportedModelError(
                f"{source}: segment {segment.get('id', '?')} has a predicate other than <True/>,"
                " which sklearn-pmml-model would ignore"
            )
    return segments


def segment_model(segment: ET.Element) -> ET.Element:
    element = next((e for e in segment if e.tag in MODEL_ELEMENTS), None)
    return element if element is not None else ET.Element("none")


def _is_boosting_chain(segments: list[ET.Element], source: str) -> bool:
    """Sums of trees (one per class, or one for two classes), then the link function."""
    if len(segments) < 2:
        return False
    *sums, last = (segment_model(s) for s in segments)
    if last.tag != "RegressionModel" or any(s.tag != "MiningModel" for s in sums):
        return False
    return all(segmentation(s, source).get("multipleModelMethod") == "sum"
               and all(segment_model(t).tag == "TreeModel" for t in _segments(s, source))
               for s in sums)


def number(text: str | None) -> float | None:
    """The finite number `text` spells, else None."""
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return value if np.isfinite(value) else None
