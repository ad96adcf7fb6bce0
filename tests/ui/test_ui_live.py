"""The dashboard's live pages in a real browser: live traffic matching the server's `/metrics`
and refreshing on its own, the history from the monitoring store (also under `ferry ui`,
which serves no models), drift verdicts as `ferry.monitor` stored them, and batch runs."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import uvicorn
from http_helpers import post_json
from playwright.sync_api import Page, expect
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_diabetes, load_iris
from ui_fixtures import (  # noqa: F401 (fixtures)
    ADMIN_TOKEN,
    page,
    screenshot,
    ui_registry,
    ui_server,
)

import ferry
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.events import MonitorResult
from ferry.monitor.store import open_store
from ferry.registry import Registry
from ferry.serve.server import RunningServer, serve_in_thread
from ferry.serve.settings import ServeSettings
from ferry.ui.app import create_ui_app
from ferry.ui.context import UIContext
from ferry.ui.live import RateKeeper, parse_exposition

SHIFTED = "X[2]"
"""The iris column sent 1.5 cm longer than the reference: the one that drifts."""
REFRESH_WAIT_MS = 10_000
"""Long enough for two of the page's 3-second refreshes."""


@dataclass
class LiveWorld:
    """A server with capture on, what it captured, and `ferry.monitor`'s results of it."""

    registry: Registry
    server: RunningServer
    store_url: str
    performance: dict[str, Any]
    """What `ferry.monitor` said of the labelled rows."""

    @property
    def url(self) -> str:
        return self.server.http_url


def iris_rows() -> tuple[np.ndarray, np.ndarray]:
    """300 iris rows (the data twice), petal length shifted, and their classes."""
    x, y = load_iris(return_X_y=True)
    rows = np.concatenate([x, x]).astype(np.float32)
    rows[:, 2] += 1.5
    return rows, np.concatenate([y, y])


def infer(url: str, uri: str, rows: np.ndarray, request_id: str | None = None) -> None:
    name, version = uri.split(":")
    body: dict[str, Any] = {"inputs": [{"name": "X", "datatype": "FP32",
                                        "shape": list(rows.shape),
                                        "data": rows.ravel().tolist()}]}
    if request_id is not None:
        body["id"] = request_id
    status, answer = post_json(url, f"/v2/models/{name}/versions/{version}/infer", body)
    assert status == 200, answer


def wait_for(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def captured(store_url: str, model: str, version: int) -> tuple[int, int]:
    """(events, sampled rows) the store holds for the version."""
    with open_store(store_url) as store:
        return (store.events(model, version).num_rows,
                store.samples(model, version).num_rows)


@pytest.fixture(scope="module")
def live_world(ui_registry: Registry,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveWorld]:
    """iris:1 answered three requests of 100 shifted rows, captured and labelled with their
    true classes; `ferry.monitor` judged the last hour in 10-minute windows."""
    store_url = f"sqlite:///{tmp_path_factory.mktemp('ui-live') / 'monitoring.db'}"
    capture = CaptureSettings(enabled=True, store_url=store_url, flush_interval_s=0.05,
                              sample_rows_per_s=100_000)
    settings = ServeSettings(capture=capture, drift_every_s=0, access_log=False,
                             admin_token=ADMIN_TOKEN)
    running = serve_in_thread([], grpc_port=None, registry=ui_registry, settings=settings)
    rows, classes = iris_rows()
    for part in range(3):
        infer(running.http_url, "iris:1", rows[part * 100:(part + 1) * 100], f"part-{part}")
    wait_for(lambda: captured(store_url, "iris", 1) == (3, 300))
    with open_store(store_url) as store:
        store.attach_labels("iris", [(f"part-{i // 100}", i % 100, int(label))
                                     for i, label in enumerate(classes)])
        report = ferry.monitor("iris:1", since="1h", window="10m", store=store,
                               registry=ui_registry)
    assert report.performance is not None
    yield LiveWorld(ui_registry, running, store_url, report.performance)
    running.stop()


def metric_requests(url: str, model: str, version: str) -> int:
    """The server's `ferry_inference_requests_total` of one version, every status summed."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return round(sum(sample.value for family in text_string_to_metric_families(text)
                     for sample in family.samples
                     if sample.name == "ferry_inference_requests_total"
                     and sample.labels["model"] == model
                     and sample.labels["version"] == version))


def latest_results(store_url: str, model: str, version: int) -> list[MonitorResult]:
    """The stored results of the version's newest judged window."""
    with open_store(store_url) as store:
        results = store.results(model, version)
    end = max(r.window_end for r in results)
    return [r for r in results if r.window_end == end]


def test_live_traffic_matches_metrics_and_refreshes(live_world: LiveWorld, page: Page) -> None:
    page.goto(f"{live_world.url}/ui/traffic")
    row = page.locator('#live-traffic tr[data-series="iris:1"]')
    requests = row.locator('[data-measure="requests"]')
    before = metric_requests(live_world.url, "iris", "1")
    assert before == 3
    expect(requests).to_have_text(str(before))
    expect(page.get_by_role("table", name="Per model version")).to_be_visible()

    x, _ = load_iris(return_X_y=True)
    for i in range(4):
        infer(live_world.url, "iris:1", x[i:i + 2].astype(np.float32))
    after = metric_requests(live_world.url, "iris", "1")
    assert after == before + 4

    expect(requests).to_have_text(str(after), timeout=REFRESH_WAIT_MS)  # no reload
    rate = row.locator('[data-measure="per-second"]')
    expect(rate).not_to_have_text("\u2013", timeout=REFRESH_WAIT_MS)
    assert float(rate.inner_text()) >= 0
    screenshot(page, "traffic")


def test_traffic_history_counts_the_captured_requests(live_world: LiveWorld,
                                                      page: Page) -> None:
    events = captured(live_world.store_url, "iris", 1)[0]
    page.goto(f"{live_world.url}/ui/traffic")
    page.get_by_label("Model").select_option("iris")
    page.get_by_label("Span").select_option("15m")
    page.get_by_role("button", name="Show").click()

    history = page.get_by_role("table", name="iris: captured requests")
    row = history.locator('tr[data-version="1"]')
    expect(row.locator('[data-measure="requests"]')).to_have_text(str(events))
    expect(row.locator('[data-measure="datatypes"]')).to_have_text(f"FP32 {events}")
    chart = page.get_by_role("img", name="Requests to iris per 15s")
    expect(chart).to_be_visible()
    assert "since=15m" in page.url
    screenshot(page, "traffic-history")


@pytest.fixture(scope="module")
def ui_only(live_world: LiveWorld) -> Iterator[str]:
    """`ferry ui`'s app (no models served) over the same registry and store, on uvicorn."""
    app = create_ui_app(UIContext(live_world.registry, monitoring_url=live_world.store_url))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_without_a_live_server_the_page_says_so_and_shows_history(
        ui_only: str, live_world: LiveWorld, page: Page) -> None:
    page.goto(f"{ui_only}/ui/traffic?model=iris")

    expect(page.locator("#no-live-server")).to_contain_text("No live server")
    assert page.locator("[data-refresh]").count() == 0
    events = captured(live_world.store_url, "iris", 1)[0]
    expect(page.locator('#traffic-history tr[data-version="1"] [data-measure="requests"]')
           ).to_have_text(str(events))
    screenshot(page, "traffic-ferry-ui")


def test_drift_pages_show_the_stored_verdicts(live_world: LiveWorld, page: Page) -> None:
    latest = latest_results(live_world.store_url, "iris", 1)
    dataset = next(r for r in latest if r.kind == "dataset")
    page.goto(f"{live_world.url}/ui/drift")
    row = page.locator('#drift-models tr[data-series="iris:1"]')
    expect(row.locator('[data-measure="verdict"]')).to_have_text(dataset.verdict)
    expect(row).to_contain_text(SHIFTED)
    screenshot(page, "drift-index")

    row.get_by_role("link", name="iris:1").click()
    expect(page.get_by_role("heading", name="Drift of iris:1")).to_be_visible()
    columns = [r for r in latest if r.kind in ("feature", "prediction")]
    assert len(columns) > 4 and any(r.verdict == "drift" for r in columns)
    for result in columns:
        cell = page.locator(f'#drift-latest tr[data-column="{result.column}"]'
                            ' [data-measure="verdict"]')
        expect(cell).to_have_text(result.verdict)
    expect(page.get_by_role("img", name="Verdict per column of iris:1")).to_be_visible()
    over_time = page.get_by_role("table", name="Verdict and statistic per column")
    expect(over_time.get_by_role("row", name=SHIFTED)).to_contain_text("drift")
    expect(page.locator("#drift-staleness")).to_contain_text("ok")
    performance = page.get_by_role("table", name="Live performance on 300 labelled rows")
    accuracy = live_world.performance["metrics"]["accuracy"]
    expect(performance.get_by_role("row", name="accuracy")).to_contain_text(f"{accuracy:.4g}")
    screenshot(page, "drift-model")


def test_drift_distribution_sets_reference_beside_current(live_world: LiveWorld,
                                                          page: Page) -> None:
    page.goto(f"{live_world.url}/ui/drift/iris?version=1")
    expect(page.get_by_label("Distribution of")).to_have_value(SHIFTED)  # the drifting one
    page.get_by_label("Distribution of").select_option("X[0]")
    page.get_by_role("button", name="Show").click()

    table = page.get_by_role("table", name="Share of rows of X[0]")
    shares = [[float(cell.rstrip("%")) for cell in row.locator("td").all_inner_texts()]
              for row in table.locator("tbody tr").all()]
    assert len(shares) == 20
    assert sum(r for r, _ in shares) == pytest.approx(100, abs=0.5)
    assert sum(c for _, c in shares) == pytest.approx(100, abs=0.5)
    expect(page.get_by_role("img", name="Share of rows per bin of X[0]")).to_be_visible()
    screenshot(page, "drift-distribution")


def test_bad_values_answer_a_page_naming_them(live_world: LiveWorld, page: Page) -> None:
    for path, status, named in [("/ui/drift/nosuch", 404, "nosuch"),
                                ("/ui/drift/iris?version=9", 404, "no version 9"),
                                ("/ui/drift/iris?column=nosuch", 400, "nosuch"),
                                ("/ui/drift/iris?version=99999999999999999999", 400,
                                 "not a version number"),
                                (f"/ui/drift/iris?version={'9' * 5000}", 400,
                                 "not a version number"),  # past int()'s 4,300 digits
                                ("/ui/traffic?model=nosuch", 404, "nosuch"),
                                ("/ui/traffic?since=99d", 400, "99d"),
                                ("/ui/batch?model=nosuch", 404, "nosuch")]:
        response = page.goto(f"{live_world.url}{path}")
        assert response is not None and response.status == status, path
        expect(page.get_by_role("alert")).to_contain_text(named)


def test_batch_page_lists_a_run_with_its_rows(live_world: LiveWorld, page: Page,
                                              tmp_path: Path) -> None:
    d, _ = load_diabetes(return_X_y=True)
    data = tmp_path / "diabetes.parquet"
    pd.DataFrame(d, columns=[f"f{i}" for i in range(d.shape[1])]).to_parquet(data)
    run = ferry.batch("diabetes:1", str(data), registry=live_world.registry)

    page.goto(f"{live_world.url}/ui/batch")
    row = page.locator(f'#batch-runs tr[data-run="{run.id}"]')
    expect(row.locator('[data-measure="rows"]')).to_have_text(f"{len(d):,}")
    expect(row.locator('[data-measure="status"]')).to_have_text("completed")
    expect(row).to_contain_text("diabetes:1")
    expect(row).to_contain_text(str(data))
    screenshot(page, "batch")

    page.get_by_label("Model").select_option("iris")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#no-runs")).to_contain_text("No batch runs of iris")
    page.get_by_label("Model").select_option("diabetes")
    page.get_by_role("button", name="Show").click()
    expect(page.locator(f'tr[data-run="{run.id}"]')).to_be_visible()


EXPOSITION = """\
# TYPE ferry_inference_requests_total counter
ferry_inference_requests_total{model="m",protocol="http",status="200",version="1"} 8.0
ferry_inference_requests_total{model="m",protocol="grpc",status="OK",version="1"} 1.0
ferry_inference_requests_total{model="m",protocol="http",status="400",version="1"} 1.0
# TYPE ferry_request_duration_seconds histogram
ferry_request_duration_seconds_bucket{le="0.1",model="m",protocol="http",version="1"} 4.0
ferry_request_duration_seconds_bucket{le="0.2",model="m",protocol="http",version="1"} 8.0
ferry_request_duration_seconds_bucket{le="+Inf",model="m",protocol="http",version="1"} 8.0
ferry_request_duration_seconds_count{model="m",protocol="http",version="1"} 8.0
ferry_request_duration_seconds_sum{model="m",protocol="http",version="1"} 0.8
ferry_request_duration_seconds_bucket{le="0.1",model="m",protocol="grpc",version="1"} 0.0
ferry_request_duration_seconds_bucket{le="0.2",model="m",protocol="grpc",version="1"} 0.0
ferry_request_duration_seconds_bucket{le="+Inf",model="m",protocol="grpc",version="1"} 2.0
ferry_request_duration_seconds_count{model="m",protocol="grpc",version="1"} 2.0
ferry_request_duration_seconds_sum{model="m",protocol="grpc",version="1"} 1.0
"""


def test_the_exposition_is_read_per_version_with_prometheus_quantiles() -> None:
    numbers = parse_exposition(EXPOSITION).versions[("m", "1")]

    assert (numbers.requests, numbers.errors) == (10, 1)  # "200" and "OK" are answers
    latency = numbers.latency  # both protocols' buckets summed: 4, 8, 10 of 10
    assert latency.count == 10 and latency.mean == pytest.approx(0.18)
    assert latency.quantile(0.2) == pytest.approx(0.05)  # halfway into the first bucket
    assert latency.quantile(0.6) == pytest.approx(0.15)
    assert latency.quantile(0.99) == pytest.approx(0.2)  # in +Inf: the highest finite bound


def test_rates_come_from_two_scrapes_and_only_the_last_is_kept() -> None:
    now = [100.0]
    keeper = RateKeeper(min_interval_s=1.0, clock=lambda: now[0])
    assert keeper.rates({("m", "1"): 10}) == {("m", "1"): None}
    now[0] = 102.0
    assert keeper.rates({("m", "1"): 30, ("m", "2"): 5}) == {("m", "1"): 10.0, ("m", "2"): None}
    now[0] = 102.5  # too soon: the last rate again
    assert keeper.rates({("m", "1"): 31}) == {("m", "1"): 10.0}
    now[0] = 104.0  # m:2 went away and is forgotten; a restart counts from zero
    assert keeper.rates({("m", "1"): 4}) == {("m", "1"): 2.0}
    assert len(keeper) == 1
