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

The package: `document` (parsing, model kinds), `checks` (refusals), `repairs`, `estimators`
(plain scikit-learn estimators, ONNX), `reading` (`parse_pmml`) and `converter`.
"""

from __future__ import annotations

from ferry.convert.pmml.converter import FORMAT, PmmlConverter
from ferry.convert.pmml.document import MODEL_ELEMENTS, SUPPORTED, PmmlDocument, feature_names
from ferry.convert.pmml.estimators import plain_estimator
from ferry.convert.pmml.reading import parse_pmml

__all__ = [
    "FORMAT",
    "MODEL_ELEMENTS",
    "SUPPORTED",
    "PmmlConverter",
    "PmmlDocument",
    "feature_names",
    "parse_pmml",
    "plain_estimator",
]
