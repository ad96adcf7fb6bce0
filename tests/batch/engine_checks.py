"""The check every engine passes: over the same input, its rows equal the local engine's
with one worker (in this process), column for column and row for row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from batch_data import register_classifier, run_rows, write_parts

from ferry.batch import batch


def check_engine_agrees_with_local(tmp_path: Path, engine: str, workers: int) -> None:
    frame = register_classifier()
    data = write_parts(frame, tmp_path / "data", 4)
    reference = run_rows(batch("churn", str(data), str(tmp_path / "local"), key="id",
                               keep=["city"]))
    run = batch("churn", str(data), str(tmp_path / engine), key="id", keep=["city"],
                engine=engine, workers=workers)
    got = run_rows(run)
    assert run.engine == engine and run.rows == len(frame)
    assert list(got.columns) == list(reference.columns)
    for column in reference.columns:
        if column not in ("run_id", "scored_at"):
            np.testing.assert_array_equal(got[column].to_numpy(), reference[column].to_numpy(),
                                          err_msg=column)
