"""PMML documents from other tools (JPMML for Java and Spark, R, nyoka), through sklearn-pmml-model.

`read_file` parses the XML, checks that the document is one this converter reads faithfully,
and builds sklearn-pmml-model's estimator for it, picked from the PMML model element:

    RegressionModel, regression            PMMLLinearRegression        -> LinearRegression
    RegressionModel, classification        PMMLLogisticRegression      -> LogisticRegression
    TreeModel                              PMMLTree{Classifier,Regressor}
                                                                       -> DecisionTree*
    MiningModel, average / majorityVote    PMMLForest{Classifier,Regressor}
      of TreeModels                                                    -> RandomForest*
    MiningModel, sum of TreeModels         PMMLGradientBoostingRegressor
                                                                       -> GradientBoostingRegressor
    MiningModel, modelChain of sums of     PMMLGradientBoostingClassifier
      TreeModels and a logit / softmax                                 -> GradientBoostingClassifier

`convert` rebuilds the plain scikit-learn estimator on the right from the fitted attributes and
converts it with skl2onnx (the PMML classes subclass those estimators, but registering them with
skl2onnx does not work for trees: sklearn-pmml-model 1.0.8's compiled `Tree` cannot hand out its
node arrays under numpy 2, as it looks up `numpy.NPY_DEFAULT`, which numpy 2 removed; the
converter provides that name while it copies the nodes into scikit-learn's own `Tree`).
The graph takes one float32 `X` tensor whose columns are the PMML DataDictionary's fields other
than the target, in document order, recorded as `feature_names` (sklearn-pmml-model expects every
such field as a column, active in the MiningSchema or not). The reference is the
sklearn-pmml-model estimator's `predict` / `predict_proba`.

Documents it would misread are refused with `UnsupportedModelError` rather than converted wrongly:
categorical or string fields, DerivedFields (preprocessing inside the PMML), regression terms
other than linear `NumericPredictor`s (and tables that leave a field out), tree predicates other
than comparisons of a field with a number, segments whose predicate is not `<True/>`, logistic
regressions whose tables do not line up with the target's classes, and one-vs-rest logistic
regression written as a modelChain (nyoka writes multi-class LogisticRegression so;
sklearn-pmml-model scores it with softmax, not PMML's simplemax). Other model elements
(GeneralRegressionModel, NeuralNetwork, SupportVectorMachineModel, ...) are refused too.

Four readings are repaired so that the estimator computes what the PMML says:
- nyoka writes a boosting segment's learning rate and initial score as an output expression
  (`decisionFunction * factor + constant`); it is rewritten as the equivalent
  `<Targets><Target rescaleFactor rescaleConstant/>`, the only form sklearn-pmml-model reads;
- a multi-class boosting model starts each class at its `rescaleConstant` (sklearn-pmml-model
  sets a prior whose link is not the constants unless they are all equal);
- random-forest leaves holding record counts (JPMML, R) become class probabilities, or one-hot
  votes under `majorityVote`, since scikit-learn >= 1.4 averages stored leaf values as they are;
- split values become float32 values (`<` and `>=` turn into `<=` and `>` on the float32 just
  below), because scikit-learn's trees compare `float32(x)` with the threshold: `x <= 1.6` then
  sends x = 1.6 left, as PMML's doubles do, where the double 1.6 would send it right.

Measured on held-out rows with nyoka-written PMML of scikit-learn models (every kind above but
majorityVote), the ONNX form agrees with the reference within 2e-7 in probabilities and 1e-4
absolute (1e-6 relative) in values, every label equal. The PMML model gives the scikit-learn
model's outputs on every row but those within a float32 step of a split value, which nyoka
writes to float32's shortest digits (4% of rows for a random forest on the diabetes data).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import io
import threading
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier

from ferry.convert.base import (
    Conversion,
    Converter,
    Sample,
    SavedOriginal,
    class_labels,
    signature_from_sample,
)
from ferry.convert.sklearn import TARGET_OPSET, build_signature, estimator_outputs
from ferry.errors import (
    CorruptArtifactError,
    InvalidInputError,
    SampleMismatchError,
    UnsupportedModelError,
    one_line,
)
from ferry.runtime.feeds import as_frame_or_array
from ferry.runtime.predictor import Outputs
from ferry.signature import Layout, Signature, Task

FORMAT = "pmml"

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

_NPY_ARRAY_DEFAULT = 0x0501
"""numpy's NPY_ARRAY_DEFAULT (C-contiguous, aligned, writeable)."""
_numpy_name_lock = threading.Lock()


@dataclass(frozen=True)
class PmmlDocument:
    """A PMML document's text and sklearn-pmml-model's estimator for it."""

    text: str
    model: object = field(compare=False, repr=False)


@dataclass(frozen=True)
class _Kind:
    """A PMML model shape this converter reads, and sklearn-pmml-model's class for it."""

    description: str
    module: str
    reader: str


LINEAR = _Kind("linear regression", "sklearn_pmml_model.linear_model", "PMMLLinearRegression")
LOGISTIC = _Kind("logistic regression", "sklearn_pmml_model.linear_model",
                 "PMMLLogisticRegression")
TREE_CLASSIFIER = _Kind("decision tree", "sklearn_pmml_model.tree", "PMMLTreeClassifier")
TREE_REGRESSOR = _Kind("regression tree", "sklearn_pmml_model.tree", "PMMLTreeRegressor")
FOREST_CLASSIFIER = _Kind("random forest classifier", "sklearn_pmml_model.ensemble",
                          "PMMLForestClassifier")
FOREST_REGRESSOR = _Kind("random forest regressor", "sklearn_pmml_model.ensemble",
                         "PMMLForestRegressor")
BOOSTING_CLASSIFIER = _Kind("gradient boosting classifier", "sklearn_pmml_model.ensemble",
                            "PMMLGradientBoostingClassifier")
BOOSTING_REGRESSOR = _Kind("gradient boosting regressor", "sklearn_pmml_model.ensemble",
                           "PMMLGradientBoostingRegressor")


class PmmlConverter(Converter):
    framework = "pmml"
    file_suffixes = (".pmml", ".xml")

    def matches(self, model: object) -> bool:
        return isinstance(model, PmmlDocument)

    def framework_version(self) -> str:
        return importlib.metadata.version("sklearn-pmml-model")

    def task(self, model: object) -> Task:
        estimator = _document(model).model
        return Task.CLASSIFICATION if is_classifier(estimator) else Task.REGRESSION

    def convert(self, model: object, sample: Sample | None) -> Conversion:
        document = _document(model)
        names = feature_names(document)
        if sample is not None:
            _rows(sample, names)
        onnx_model = _to_onnx(plain_estimator(document.model), len(names))
        task = self.task(document)
        signature = build_signature(onnx_model, task, Layout.TENSOR, names,
                                    class_labels(document.model))
        return Conversion(onnx_model=onnx_model, signature=signature, task=task)

    def reference(self, model: object, data: Sample) -> Outputs:
        document = _document(model)
        rows = _rows(data, feature_names(document))
        return estimator_outputs(document.model, rows, self.task(document))

    def save(self, model: object, sample: Sample | None = None) -> SavedOriginal:
        return SavedOriginal(_document(model).text.encode("utf-8"), FORMAT)

    def load(self, saved: SavedOriginal) -> object:
        if saved.format != FORMAT:
            raise CorruptArtifactError(f"a PMML original has format {FORMAT!r}, not"
                                       f" {saved.format!r}")
        try:
            text = saved.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptArtifactError(f"the stored PMML original is not UTF-8: {exc}") from exc
        return parse_pmml(text, "the stored PMML original")

    def read_file(self, path: Path) -> object:
        if path.suffix.lower() not in self.file_suffixes:
            return super().read_file(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path.name} is not UTF-8 text: {exc}") from exc
        return parse_pmml(text, path.name)

    def native_signature(self, model: object, sample: Sample | None) -> Signature:
        document = _document(model)
        columns = pd.DataFrame(columns=list(feature_names(document)))
        return signature_from_sample(columns, self.task(document), class_labels(document.model))


# Reading a document


@dataclass(frozen=True)
class _Parsed:
    """A parsed PMML document: its model element, target and the target's classes."""

    root: ET.Element
    element: ET.Element
    source: str
    target: str
    classes: list[str | None]

    def unsupported(self, message: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{self.source}: {message}")


def parse_pmml(text: str, source: str) -> PmmlDocument:
    """The document in `text` (`source` names it in errors), once it is known to read right."""
    root = _parse_xml(text, source)
    element = _model_element(root, source)
    kind = _kind(element, source)
    parsed = _parsed(root, element, source)
    _check_model(kind, parsed)
    if kind is BOOSTING_CLASSIFIER:
        _rescale_targets(parsed)
    if kind not in (LINEAR, LOGISTIC):
        _float32_thresholds(parsed)
    estimator = _read_estimator(kind, ET.tostring(root, encoding="unicode"), source)
    _check_coefficients(kind, estimator, parsed)
    if kind is FOREST_CLASSIFIER:
        majority = _segmentation(element).get("multipleModelMethod") == "majorityVote"
        _normalise_forest_leaves(estimator, majority)
    if kind is BOOSTING_CLASSIFIER and len(parsed.classes) > 2:
        _set_initial_scores(estimator, parsed)
    return PmmlDocument(text, estimator)


def feature_names(document: PmmlDocument) -> tuple[str, ...]:
    """The columns the model takes: the DataFields other than the target, in document order."""
    estimator: Any = document.model
    target = estimator.target_field
    return tuple(str(name) for name, element in estimator.fields.items()
                 if element is not target and element.tag == "DataField")


def _parse_xml(text: str, source: str) -> ET.Element:
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


def _model_element(root: ET.Element, source: str) -> ET.Element:
    element = next((e for e in root if e.tag in MODEL_ELEMENTS), None)
    if element is None:
        raise InvalidInputError(f"{source} holds no PMML model element")
    return element


def _parsed(root: ET.Element, element: ET.Element, source: str) -> _Parsed:
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
    return _Parsed(root, element, source, target, classes)


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


def _kind(element: ET.Element, source: str) -> _Kind:
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


def _ensemble_kind(element: ET.Element, classification: bool, source: str) -> _Kind:
    method = _segmentation(element, source).get("multipleModelMethod")
    segments = _segments(element, source)
    inner = [_segment_model(s).tag for s in segments]
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


def _segmentation(element: ET.Element, source: str = "the PMML") -> ET.Element:
    segmentation = element.find("Segmentation")
    if segmentation is None:
        raise UnsupportedModelError(f"{source}: a MiningModel without a Segmentation is not"
                                    " supported")
    return segmentation


def _segments(element: ET.Element, source: str) -> list[ET.Element]:
    """The segments of `element`, all of which must apply to every row (`<True/>`)."""
    segments = _segmentation(element, source).findall("Segment")
    for segment in segments:
        if segment.find("True") is None:
            raise UnsupportedModelError(
                f"{source}: segment {segment.get('id', '?')} has a predicate other than <True/>,"
                " which sklearn-pmml-model would ignore"
            )
    return segments


def _segment_model(segment: ET.Element) -> ET.Element:
    element = next((e for e in segment if e.tag in MODEL_ELEMENTS), None)
    return element if element is not None else ET.Element("none")


def _is_boosting_chain(segments: list[ET.Element], source: str) -> bool:
    """Sums of trees (one per class, or one for two classes), then the link function."""
    if len(segments) < 2:
        return False
    *sums, last = (_segment_model(s) for s in segments)
    if last.tag != "RegressionModel" or any(s.tag != "MiningModel" for s in sums):
        return False
    return all(_segmentation(s, source).get("multipleModelMethod") == "sum"
               and all(_segment_model(t).tag == "TreeModel" for t in _segments(s, source))
               for s in sums)


# Checks of what sklearn-pmml-model would misread


def _check_model(kind: _Kind, parsed: _Parsed) -> None:
    if kind is LINEAR:
        _check_linear(parsed)
    elif kind is LOGISTIC:
        _check_logistic(parsed)
    else:
        _check_predicates(parsed)
    if kind is BOOSTING_CLASSIFIER:
        _check_chain(parsed)


def _check_linear(parsed: _Parsed) -> None:
    tables = parsed.element.findall("RegressionTable")
    if len(tables) != 1:
        raise parsed.unsupported(f"a regression needs one RegressionTable, it has {len(tables)}")
    method = parsed.element.get("normalizationMethod", "none")
    if method != "none":
        raise parsed.unsupported(f"normalizationMethod={method!r} on a regression is not"
                                 " supported")
    _check_terms(tables[0], parsed)


def _check_logistic(parsed: _Parsed) -> None:
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


def _check_terms(table: ET.Element, parsed: _Parsed) -> None:
    for term in table:
        if term.tag != NUMERIC_PREDICTOR or _number(term.get("exponent", "1")) != 1.0:
            raise parsed.unsupported(
                f"regression term <{term.tag}> on {term.get('name')!r} is not supported:"
                " ferry converts linear NumericPredictors only"
            )


def _check_predicates(parsed: _Parsed) -> None:
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
        if _number(predicate.get("value")) is None:
            raise parsed.unsupported(
                f"tree predicate on {predicate.get('field')!r} compares with"
                f" {predicate.get('value')!r}, which is not a number"
            )


def _check_chain(parsed: _Parsed) -> None:
    """One sum of trees for two classes (else one per class), then a logit / softmax link."""
    *sums, link = _segmentation(parsed.element).findall("Segment")
    n_classes = len(parsed.classes)
    want_sums, want_link = (1, "logit") if n_classes == 2 else (n_classes, "softmax")
    method = _segment_model(link).get("normalizationMethod")
    if len(sums) != want_sums or method != want_link:
        raise parsed.unsupported(
            f"a boosted classifier of {n_classes} classes must chain {want_sums} sums of trees"
            f" and a {want_link} RegressionModel; this one chains {len(sums)} and {method!r}"
        )


def _check_coefficients(kind: _Kind, estimator: Any, parsed: _Parsed) -> None:
    """sklearn-pmml-model skips the fields a RegressionTable leaves out, shifting the rest."""
    if kind not in (LINEAR, LOGISTIC):
        return
    n_features = _n_features(estimator)
    n_coefficients = np.atleast_2d(np.asarray(estimator.coef_)).shape[1]
    if n_coefficients != n_features:
        raise parsed.unsupported(
            f"the RegressionTable has coefficients for {n_coefficients} of the {n_features}"
            " input fields; give every field a NumericPredictor (0 for those it does not use)"
        )


# Repairs before and after sklearn-pmml-model reads the document


_STRICT = {"lessThan": "lessOrEqual", "greaterOrEqual": "greaterThan"}
"""Strict comparisons, and their non-strict forms on the float32 just below the value."""


def _float32_thresholds(parsed: _Parsed) -> None:
    """Split values that float32 inputs compare the way PMML's doubles do.

    scikit-learn's trees (and so sklearn-pmml-model's) compare `float32(x)` with a double
    threshold, so an input equal to a split value that float32 cannot hold (`x <= 1.6` with
    x = 1.6, held as 1.60000002) goes the wrong way. On the float32 nearest the value, `<=`
    and `>` agree with PMML for every input float32 tells apart from the value; `<` and `>=`
    become `<=` and `>` on the float32 just below it.
    """
    for predicate in parsed.element.iter("SimplePredicate"):
        operator, value = predicate.get("operator", ""), np.float32(predicate.get("value"))
        if operator in _STRICT:
            operator, value = _STRICT[operator], np.nextafter(value, np.float32(-np.inf))
        predicate.set("operator", operator)
        predicate.set("value", repr(float(value)))


def _rescale_targets(parsed: _Parsed) -> None:
    """Write nyoka's boosting output expression as the `<Targets>` sklearn-pmml-model reads.

    nyoka gives each boosting segment `transformedValue = decisionFunction * factor + constant`
    (learning rate and initial score); JPMML writes the same as `<Target rescaleFactor
    rescaleConstant>`, the only form sklearn-pmml-model reads (it ignores Output fields).
    """
    for segment in _segmentation(parsed.element).findall("Segment"):
        inner = _segment_model(segment)
        if inner.tag != "MiningModel" or inner.find("Targets") is not None:
            continue
        rescale = _output_rescale(inner, parsed)
        if rescale is not None:
            targets = ET.Element("Targets")
            ET.SubElement(targets, "Target", rescaleFactor=rescale[0], rescaleConstant=rescale[1])
            inner.insert(1, targets)


def _output_rescale(model: ET.Element, parsed: _Parsed) -> tuple[str, str] | None:
    output = model.find("Output")
    fields = [] if output is None else [
        f for f in output.findall("OutputField") if f.get("feature") == "transformedValue"]
    if not fields:
        return None
    rescale = _affine(fields[0].find("Apply")) if len(fields) == 1 else None
    if rescale is None:
        raise parsed.unsupported(
            "a boosting segment transforms its score with an output expression other than"
            " `score * factor + constant`"
        )
    return rescale


def _affine(apply: ET.Element | None) -> tuple[str, str] | None:
    """(factor, constant) of `Apply(+, Apply(*, FieldRef, Constant), Constant)`, else None."""
    if apply is None or apply.get("function") != "+" or len(apply) != 2:
        return None
    product, constant = _child(apply, "Apply"), _child(apply, "Constant")
    if product is None or constant is None or product.get("function") != "*" or len(product) != 2:
        return None
    factor = _child(product, "Constant")
    if factor is None or _child(product, "FieldRef") is None:
        return None
    factor_value, constant_value = _number(factor.text), _number(constant.text)
    if factor_value is None or constant_value is None:
        return None
    return repr(factor_value), repr(constant_value)


def _child(parent: ET.Element, tag: str) -> ET.Element | None:
    children = parent.findall(tag)
    return children[0] if len(children) == 1 else None


def _number(text: str | None) -> float | None:
    """The finite number `text` spells, else None."""
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _set_initial_scores(estimator: Any, parsed: _Parsed) -> None:
    """Start each class's score at its sum's `rescaleConstant`, as the PMML says.

    sklearn-pmml-model sets the multi-class prior to `expit(-constant)` per class, whose
    multinomial link is not the constants (it only is when they are all equal). A prior of
    `softmax(constants)` gives back the constants less their mean, which softmax ignores.
    """
    *sums, _ = _segmentation(parsed.element).findall("Segment")
    constants = np.array([_rescale_constant(_segment_model(s)) for s in sums])
    prior = np.exp(constants - constants.max())
    estimator.init_.class_prior_ = prior / prior.sum()


def _rescale_constant(model: ET.Element) -> float:
    target = model.find("Targets/Target")
    return 0.0 if target is None else float(target.get("rescaleConstant", "0"))


def _normalise_forest_leaves(estimator: Any, majority_vote: bool) -> None:
    """Leaves as class probabilities (one-hot votes under majorityVote).

    sklearn-pmml-model stores a forest's leaves as their ScoreDistribution record counts, and
    scikit-learn >= 1.4 averages stored leaf values without normalising them.
    """
    with _node_arrays_readable():
        for tree in estimator.estimators_:
            state = dict(tree.tree_.__getstate__())
            values = np.array(state["values"], dtype=np.float64)
            state["nodes"] = np.array(state["nodes"])
            state["values"] = _one_hot(values) if majority_vote else _fractions(values)
            tree.tree_.__setstate__(state)


def _fractions(values: np.ndarray) -> np.ndarray:
    totals = values.sum(axis=-1, keepdims=True)
    return np.ascontiguousarray(
        np.divide(values, totals, out=np.zeros_like(values), where=totals > 0))


def _one_hot(values: np.ndarray) -> np.ndarray:
    votes = np.zeros_like(values)
    np.put_along_axis(votes, values.argmax(axis=-1)[..., np.newaxis], 1.0, axis=-1)
    return np.ascontiguousarray(votes)


@contextmanager
def _node_arrays_readable() -> Iterator[None]:
    """Let sklearn-pmml-model 1.0.8's compiled `Tree` hand out its node arrays under numpy 2.

    Its `_get_node_ndarray`, behind `__getstate__` and every node property, looks up
    `numpy.NPY_DEFAULT`, a name numpy 2 removed. The name (numpy's NPY_ARRAY_DEFAULT flags)
    is provided only while the nodes are read.
    """
    with _numpy_name_lock:
        added = not hasattr(np, "NPY_DEFAULT")
        if added:
            setattr(np, "NPY_DEFAULT", _NPY_ARRAY_DEFAULT)  # noqa: B010
        try:
            yield
        finally:
            if added:
                delattr(np, "NPY_DEFAULT")


def _read_estimator(kind: _Kind, xml: str, source: str) -> Any:
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


# Plain scikit-learn estimators for skl2onnx


def plain_estimator(estimator: object) -> Any:
    """The scikit-learn estimator equal to sklearn-pmml-model's `estimator`."""
    builder = _BUILDERS.get(type(estimator).__name__)
    if builder is None:
        raise UnsupportedModelError(
            f"no ONNX conversion for sklearn-pmml-model's {type(estimator).__name__}:"
            f" ferry converts {SUPPORTED}"
        )
    with _node_arrays_readable():
        return builder(estimator)


def _linear_regression(source: Any) -> Any:
    from sklearn.linear_model import LinearRegression

    model = LinearRegression()
    model.coef_ = np.asarray(source.coef_, dtype=np.float64).reshape(-1)
    model.intercept_ = float(np.asarray(source.intercept_, dtype=np.float64).reshape(-1)[0])
    model.n_features_in_ = model.coef_.size
    return model


def _logistic_regression(source: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression()
    model.coef_ = np.atleast_2d(np.asarray(source.coef_, dtype=np.float64))
    model.intercept_ = np.asarray(source.intercept_, dtype=np.float64).reshape(-1)
    model.classes_ = np.asarray(source.classes_)
    model.n_features_in_ = model.coef_.shape[1]
    return model


def _tree_classifier(source: Any) -> Any:
    return _decision_tree(source, _n_features(source), source.classes_)


def _tree_regressor(source: Any) -> Any:
    return _decision_tree(source, _n_features(source))


def _forest_classifier(source: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    n_features = _n_features(source)
    model = RandomForestClassifier(n_estimators=len(source.estimators_))
    model.estimators_ = [_decision_tree(t, n_features, source.classes_)
                         for t in source.estimators_]
    model.classes_ = np.asarray(source.classes_)
    model.n_classes_ = len(model.classes_)
    model.n_outputs_ = 1
    model.n_features_in_ = n_features
    return model


def _forest_regressor(source: Any) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    n_features = _n_features(source)
    model = RandomForestRegressor(n_estimators=len(source.estimators_))
    model.estimators_ = [_decision_tree(t, n_features) for t in source.estimators_]
    model.n_outputs_ = 1
    model.n_features_in_ = n_features
    return model


def _boosting_regressor(source: Any) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor

    return _boosting(source, GradientBoostingRegressor(learning_rate=source.learning_rate))


def _boosting_classifier(source: Any) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    model = _boosting(source, GradientBoostingClassifier(learning_rate=source.learning_rate))
    model.classes_ = np.asarray(source.classes_)
    model.n_classes_ = len(model.classes_)
    return model


def _boosting(source: Any, model: Any) -> Any:
    """`model` with `source`'s stages, initial estimator and loss."""
    n_features = _n_features(source)
    stages = np.empty(source.estimators_.shape, dtype=object)
    for index in np.ndindex(stages.shape):
        stages[index] = _decision_tree(source.estimators_[index], n_features)
    model.estimators_ = stages
    model.n_estimators = model.n_estimators_ = stages.shape[0]
    model.n_trees_per_iteration_ = stages.shape[1]
    model.init_ = source.init_
    model._loss = source._loss
    model.n_features_in_ = n_features
    return model


def _decision_tree(source: Any, n_features: int, classes: Any = None) -> Any:
    """A scikit-learn tree with the nodes of sklearn-pmml-model's tree `source`."""
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    classifier = classes is not None
    model = DecisionTreeClassifier() if classifier else DecisionTreeRegressor()
    model.tree_ = _sklearn_tree(source.tree_, n_features, len(classes) if classifier else 1,
                                classifier)
    model.n_outputs_ = 1
    model.n_features_in_ = model.max_features_ = n_features
    if classifier:
        model.classes_ = np.asarray(classes)
        model.n_classes_ = len(classes)
    return model


_NODE_FIELDS = ("left_child", "right_child", "feature", "impurity", "n_node_samples",
                "weighted_n_node_samples")


def _sklearn_tree(tree: Any, n_features: int, n_classes: int, classifier: bool) -> Any:
    from sklearn.tree._tree import NODE_DTYPE, Tree

    state = tree.__getstate__()
    nodes = np.array(state["nodes"])
    converted = np.zeros(len(nodes), dtype=NODE_DTYPE)
    for name in _NODE_FIELDS:
        converted[name] = nodes[name]
    converted["threshold"] = np.ascontiguousarray(nodes["split_value"]).view(np.float64)
    values = np.array(state["values"], dtype=np.float64)
    result = Tree(n_features, np.array([n_classes], dtype=np.intp), 1)
    result.__setstate__({"max_depth": _depth(converted), "node_count": len(converted),
                         "nodes": converted,
                         "values": _fractions(values) if classifier else values})
    return result


def _depth(nodes: np.ndarray) -> int:
    """The number of splits on the longest path from the root (node 0) to a leaf."""
    level, depth = np.array([0]), 0
    while True:
        children = np.concatenate([nodes["left_child"][level], nodes["right_child"][level]])
        level = children[children >= 0]
        if level.size == 0:
            return depth
        depth += 1


def _n_features(source: Any) -> int:
    """sklearn-pmml-model sets `n_features_` (read-only `n_features_in_` on old scikit-learn)."""
    count = getattr(source, "n_features_in_", None)
    return int(source.n_features_ if count is None else count)


_BUILDERS: dict[str, Callable[[Any], Any]] = {
    "PMMLLinearRegression": _linear_regression,
    "PMMLLogisticRegression": _logistic_regression,
    "PMMLTreeClassifier": _tree_classifier,
    "PMMLTreeRegressor": _tree_regressor,
    "PMMLForestClassifier": _forest_classifier,
    "PMMLForestRegressor": _forest_regressor,
    "PMMLGradientBoostingClassifier": _boosting_classifier,
    "PMMLGradientBoostingRegressor": _boosting_regressor,
}
"""sklearn-pmml-model's class -> the scikit-learn estimator skl2onnx converts."""


# Conversion and data


def _to_onnx(estimator: Any, n_features: int) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    options = {"zipmap": False} if is_classifier(estimator) else None
    initial_types = [("X", FloatTensorType([None, n_features]))]
    try:
        with warnings.catch_warnings():
            # skl2onnx lists the estimator's attributes, so the forest's feature_importances_
            # divides the (unknown, zero) impurity decreases by their zero sum.
            warnings.filterwarnings("ignore", category=RuntimeWarning,
                                    module="sklearn.ensemble._forest")
            return convert_sklearn(estimator, initial_types=initial_types, options=options,
                                   target_opset=TARGET_OPSET)
    except Exception as exc:
        raise UnsupportedModelError(
            f"skl2onnx cannot convert the PMML's {type(estimator).__name__}: {one_line(exc)}"
        ) from exc


def _rows(data: Any, names: tuple[str, ...]) -> np.ndarray:
    """`data` as float64 rows whose columns are `names`, in order."""
    frame = as_frame_or_array(data)
    if isinstance(frame, pd.DataFrame):
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise SampleMismatchError(
                f"the data lacks the PMML fields {missing[:5]}"
                f"{' and more' if len(missing) > 5 else ''}: the model takes {list(names)[:10]}"
            )
        frame = frame[list(names)]
    array = np.asarray(frame)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[1] != len(names):
        raise SampleMismatchError(
            f"the data has shape {list(array.shape)}; the PMML model takes {len(names)}"
            f" columns: {list(names)[:10]}"
        )
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise SampleMismatchError(f"the PMML model takes numbers: {one_line(exc)}") from exc


def _document(model: object) -> PmmlDocument:
    if not isinstance(model, PmmlDocument):
        raise UnsupportedModelError(f"{type(model).__name__} is not a PmmlDocument")
    return model
