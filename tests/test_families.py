"""Every supported family registered and reloaded: `ferry.load(uri).predict` matches the
original on held-out rows within the tolerance recorded on the version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zoo

import ferry
from ferry.registry import Registry

CASES = [*zoo.IN_MEMORY, *zoo.FROM_FILES]


def build(case_name: str, directory: Path) -> zoo.Case:
    if case_name in zoo.FROM_FILES:
        return zoo.FROM_FILES[case_name](directory)
    return zoo.IN_MEMORY[case_name]()


def assert_close(got: np.ndarray, want: np.ndarray, tolerance: dict[str, float]) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64).reshape(want.shape),
                               want.astype(np.float64), rtol=tolerance["rtol"],
                               atol=tolerance["atol"])


@pytest.mark.parametrize("case_name", CASES)
def test_family_registers_and_predicts_like_the_original(case_name: str, tmp_path: Path,
                                                         sqlite_registry: Registry) -> None:
    case = build(case_name, tmp_path)

    version = ferry.register(case.model, case_name, registry=sqlite_registry,
                             **case.register_kwargs)
    predictor = ferry.load(f"{case_name}:{version.version}", registry=sqlite_registry)
    check = version.conversion_check

    assert version.runtime == "onnx"
    assert check["passed"] is True and check["forced"] is False
    tolerance = check["tolerance"]
    predicted = predictor.predict(case.held_out)
    if case.expected.dtype.kind in "fc" and case.expected_proba is None:
        assert_close(predicted, case.expected, tolerance)
    else:
        agreement = np.mean(np.asarray(predicted).astype(str) == case.expected.astype(str))
        assert agreement >= tolerance["min_label_agreement"]
    if case.expected_proba is not None:
        assert_close(predictor.predict_proba(case.held_out), case.expected_proba, tolerance)
