"""Repairs before and after sklearn-pmml-model reads a document.

They make its estimator compute what the PMML says: nyoka's boosting output expressions become
`<Targets>`, multi-class boosting starts at each class's initial score, forest leaves become
class probabilities (or votes) and split values become float32 values.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from ferry.convert.pmml.document import Parsed, number, segment_model, segmentation
from ferry.convert.pmml.estimators import leaf_fractions, node_arrays_readable

_STRICT = {"lessThan": "lessOrEqual", "greaterOrEqual": "greaterThan"}
"""Strict comparisons, and their non-strict forms on the float32 just below the value."""


def float32_thresholds(parsed: Parsed) -> None:
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


def rescale_targets(parsed: Parsed) -> None:
    """Write nyoka's boosting output expression as the `<Targets>` sklearn-pmml-model reads.

    nyoka gives each boosting segment `transformedValue = decisionFunction * factor + constant`
    (learning rate and initial score); JPMML writes the same as `<Target rescaleFactor
    rescaleConstant>`, the only form sklearn-pmml-model reads (it ignores Output fields).
    """
    for segment in segmentation(parsed.element).findall("Segment"):
        inner = segment_model(segment)
        if inner.tag != "MiningModel" or inner.find("Targets") is not None:
            continue
        rescale = _output_rescale(inner, parsed)
        if rescale is not None:
            targets = ET.Element("Targets")
            ET.SubElement(targets, "Target", rescaleFactor=rescale[0], rescaleConstant=rescale[1])
            inner.insert(1, targets)


def _output_rescale(model: ET.Element, parsed: Parsed) -> tuple[str, str] | None:
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
    factor_value, constant_value = number(factor.text), number(constant.text)
    if factor_value is None or constant_value is None:
        return None
    return repr(factor_value), repr(constant_value)


def _child(parent: ET.Element, tag: str) -> ET.Element | None:
    children = parent.findall(tag)
    return children[0] if len(children) == 1 else None


def set_initial_scores(estimator: Any, parsed: Parsed) -> None:
    """Start each class's score at its sum's `rescaleConstant`, as the PMML says.

    sklearn-pmml-model sets the multi-class prior to `expit(-constant)` per class, whose
    multinomial link is not the constants (it only is when they are all equal). A prior of
    `softmax(constants)` gives back the constants less their mean, which softmax ignores.
    """
    *sums, _ = segmentation(parsed.element).findall("Segment")
    constants = np.array([_rescale_constant(segment_model(s)) for s in sums])
    prior = np.exp(constants - constants.max())
    estimator.init_.class_prior_ = prior / prior.sum()


def _rescale_constant(model: ET.Element) -> float:
    target = model.find("Targets/Target")
    return 0.0 if target is None else float(target.get("rescaleConstant", "0"))


def normalise_forest_leaves(estimator: Any, majority_vote: bool) -> None:
    """Leaves as class probabilities (one-hot votes under majorityVote).

    sklearn-pmml-model stores a forest's leaves as their ScoreDistribution record counts, and
    scikit-learn >= 1.4 averages stored leaf values without normalising them.
    """
    with node_arrays_readable():
        for tree in estimator.estimators_:
            state = dict(tree.tree_.__getstate__())
            values = np.array(state["values"], dtype=np.float64)
            state["nodes"] = np.array(state["nodes"])
            state["values"] = _one_hot(values) if majority_vote else leaf_fractions(values)
            tree.tree_.__setstate__(state)


def _one_hot(values: np.ndarray) -> np.ndarray:
    votes = np.zeros_like(values)
    np.put_along_axis(votes, values.argmax(axis=-1)[..., np.newaxis], 1.0, axis=-1)
    return np.ascontiguousarray(votes)
