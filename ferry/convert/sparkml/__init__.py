"""Fitted Spark ML pipelines (`pyspark.ml.PipelineModel`), through onnxmltools' Spark ML
converter.

Conversion path: `onnxmltools.convert_sparkml(pipeline, initial_types, spark_session=...)`
with one `[N, 1]` input per raw column the pipeline reads (float32 for numbers, string for
text and for the columns a `StringIndexer` reads): the `columns` layout, as for a
scikit-learn pipeline with a ColumnTransformer. Before converting, the stages are walked
(`ferry.convert.sparkml.stages`, nested pipelines flattened) and the first one onnxmltools has
no converter for is refused by position and class: `stage 1 (pyspark.ml.feature.HashingTF) has
no ONNX converter in onnxmltools; supported: ...`. A stage whose converter exists but fails
(a `OneHotEncoder` with `dropLast=True` and `handleInvalid="error"`, a `VectorIndexer`) is
named the same way, found by converting the pipeline up to each stage in turn. Registering
with `force=True` then serves the pipeline natively, with Spark's own `transform`.

The StringIndexer that indexed the training label is left out of the graph (Spark skips it
too when the label column is absent), as is an IndexToString of the prediction; their labels
become the version's class labels, which the graph predicts (a `LabelEncoder` from Spark's
index); without them the classes are Spark's indices `0..k-1`. Probabilities are Spark's
`probability` column. Faults of onnxmltools 1.16 found against Spark are mended in the graph
(`ferry.convert.sparkml.graph`: mixed-type VectorAssembler, GBT regressors, multinomial
logistic regression, unseen categories kept by a StringIndexer, NaiveBayes' domain, split
thresholds) and in its tree reader (`ferry.convert.sparkml.patches`: categorical splits).

The conversion check compares the graph with Spark's `transform` of the sample (and of the
probe rows), in the sample's row order (`ferry.convert.sparkml.original`). The original is
saved as a zip of the folder `PipelineModel.write().save()` writes (format `sparkml-zip`;
JSON and Parquet, no pickle) and loaded with `PipelineModel.load`; `read_file` opens such a
folder. Converting, checking and loading need a SparkSession: the caller's, else a local one
(`ferry.sparksession`). Saving, loading and onnxmltools' reading of each tree (about a second
a tree on `local[2]`) go through temporary folders on this machine, so they need a session
whose files land here (local mode).
"""

from ferry.convert.sparkml.converter import SparkMLConverter

__all__ = ["SparkMLConverter"]
