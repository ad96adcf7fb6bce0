"""`POST .../predict`: rows as records or MLflow's `dataframe_split`, answers as labels and
probabilities, mapped through the version's signature (for people and scripts that do not
speak tensors)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ferry.errors import InvalidInputError
from ferry.serve.batching import Arrays
from ferry.serve.model import ServedModel
from ferry.signature import Role


def decode_rows(document: Any) -> pd.DataFrame:
    """A DataFrame from `{"instances": [...]}`, `{"dataframe_records": [...]}` or
    `{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`."""
    if not isinstance(document, dict):
        raise InvalidInputError("the body must be a JSON object with 'instances' or"
                                " 'dataframe_split'")
    try:
        if "dataframe_split" in document:
            return _split_frame(document["dataframe_split"])
        rows = document.get("instances", document.get("dataframe_records"))
        if isinstance(rows, list) and rows:
            return pd.DataFrame(rows) if isinstance(rows[0], dict) else pd.DataFrame(
                np.asarray(rows))
    except (KeyError, TypeError, ValueError, pd.errors.InvalidIndexError) as exc:
        raise InvalidInputError(f"cannot read the rows: {exc}") from exc
    raise InvalidInputError("give rows as {\"instances\": [{...}, ...]} or"
                            " {\"dataframe_split\": {\"columns\": [...], \"data\": [[...]]}}")


def _split_frame(split: Any) -> pd.DataFrame:
    data, columns = split["data"], split.get("columns")
    if isinstance(data, list) and isinstance(columns, list) and any(
            not isinstance(row, list) or len(row) != len(columns) for row in data):
        raise InvalidInputError(f"dataframe_split.data: every row must hold {len(columns)}"
                                " values, one per column")
    return pd.DataFrame(data, columns=columns)


def encode_predictions(served: ServedModel, results: Arrays) -> dict[str, Any]:
    signature = served.signature
    by_role = {spec.role: results[spec.name] for spec in signature.outputs
               if spec.role is not None and spec.name in results}
    main = by_role.get(Role.LABEL, by_role.get(Role.VALUE))
    if main is None:
        main = next(iter(results.values()))
    answer: dict[str, Any] = {"model_name": served.name, "model_version": served.version_label,
                              "predictions": _plain(np.asarray(main).reshape(len(main), -1)
                                                    if np.asarray(main).ndim > 1 else main)}
    if Role.PROBABILITIES in by_role:
        answer["probabilities"] = _plain(by_role[Role.PROBABILITIES])
        answer["classes"] = list(signature.class_labels or [])
    return answer


def _plain(values: np.ndarray) -> list[Any]:
    return [v.decode() if isinstance(v, bytes) else v for v in np.asarray(values).tolist()]
