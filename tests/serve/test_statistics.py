"""Per-version statistics: what one batch adds, and a table no client can grow."""

from __future__ import annotations

from ferry.serve.batching import BatchTiming
from ferry.serve.statistics import ModelStatistics, statistics_document


def test_a_batch_adds_its_rows_requests_and_times() -> None:
    stats = ModelStatistics("m", "1", max_batch_size=8)
    stats.record_batch(BatchTiming(rows=5, waits_s=(0.002, 0.001), input_s=0.0001,
                                   infer_s=0.003, output_s=0.0002))
    stats.record_request(True, 0.004)
    stats.record_request(False, 0.001)

    document = statistics_document(stats)
    inference = document["inference_stats"]
    assert (document["inference_count"], document["execution_count"]) == (5, 1)
    assert inference["queue"] == {"count": 2, "ns": 3_000_000}
    assert inference["compute_infer"] == {"count": 2, "ns": 6_000_000}
    assert inference["success"] == {"count": 1, "ns": 4_000_000}
    assert inference["fail"] == {"count": 1, "ns": 1_000_000}
    assert document["batch_stats"] == [{
        "batch_size": 5, "compute_input": {"count": 1, "ns": 100_000},
        "compute_infer": {"count": 1, "ns": 3_000_000},
        "compute_output": {"count": 1, "ns": 200_000}}]


def test_batches_over_the_max_size_get_no_row_of_their_own() -> None:
    stats = ModelStatistics("m", "1", max_batch_size=4)
    for rows in range(5, 500):
        stats.record_batch(BatchTiming(rows, (0.0,), 0.0, 0.001, 0.0))
    assert stats.batches == {}
    assert stats.execution_count == 495
