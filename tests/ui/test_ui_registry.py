"""The dashboard's registry pages in a real browser (headless Chromium through Playwright),
against `ferry serve` over a registry of real models: the models page, a model's page (its
versions, aliases and history, and moving an alias with and without the admin token), a
version's page (signature, metrics, conversion check, lineage graph, optimization report, gate
report, files), 404 pages for unknown names, and `ferry ui` started as a command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, expect
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression
from ui_fixtures import (  # noqa: F401 (fixtures)
    ADMIN_TOKEN,
    page,
    screenshot,
    ui_registry,
    ui_server,
)

import ferry
from ferry.optimizer import TimingSettings, optimize
from ferry.optimizer.candidates.onnxruntime import OnnxRuntimeAsServed, OnnxRuntimeOffline
from ferry.registry import Registry
from ferry.serve.server import RunningServer
from ferry.ui.pages.formats import Formats
from ferry.ui.pages.version import steps_text

FAST = TimingSettings(repeats=1, max_repeats=1, slices=2, min_slice_s=0.005, min_calls=2,
                      warmup_s=0.0, warmup_calls=1)
"""The optimizer timed briefly: the pages show what it recorded, whatever the figures."""
UI_START_S = 60.0


@pytest.fixture(scope="module")
def registry(ui_registry: Registry) -> Registry:
    """conftest's registry, plus iris:3 (an optimized variant of iris:1, made by the real
    optimizer) and iris-onnx (registered from an ONNX file: another framework to filter)."""
    optimize("iris:1", batch_sizes=(1, 16), threads=1, registry=ui_registry, timing=FAST,
             candidates=[OnnxRuntimeAsServed(), OnnxRuntimeOffline()])
    x, _ = load_iris(return_X_y=True)
    onnx_form = onnx.load_from_string(ui_registry.read_artifact(ui_registry.get("iris:1"),
                                                                "onnx"))
    ferry.register(onnx_form, "iris-onnx", sample=x.astype(np.float32), registry=ui_registry)
    return ui_registry


@pytest.fixture(scope="module")
def url(registry: Registry, ui_server: RunningServer) -> str:
    """The server's address (the registry is complete before it is asked)."""
    return ui_server.http_url


def check_accessible(page: Page) -> None:
    """Every table is named (caption or aria-label), every header cell has a scope, every
    form field has a label."""
    assert page.locator("table:not(:has(> caption)):not([aria-label])").count() == 0
    assert page.locator("th:not([scope])").count() == 0
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select')]
        .filter(e => e.type !== 'hidden' && e.labels.length === 0).map(e => e.name)""")
    assert unlabeled == []


def cells(page: Page, row: str) -> list[str]:
    """The text of every cell of the table row `row` (a selector)."""
    return [text.strip() for text in page.locator(f"{row} > th, {row} > td").all_inner_texts()]


# -- the models page ----------------------------------------------------------------------------


def test_models_page_shows_what_the_registry_holds(page: Page, url: str,
                                                   registry: Registry) -> None:
    page.goto(f"{url}/")
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    models = registry.models()
    expect(page.locator("#models-table tbody tr")).to_have_count(len(models))
    for model in models:
        versions = registry.versions(model.name)
        latest = registry.get(f"{model.name}:{model.latest_version}")
        served = "onnx" if latest.onnx_sha256 else "original"
        size = Formats.size(len(registry.read_artifact(latest, served)))
        row = cells(page, f'#models-table tr[data-model="{model.name}"]')
        assert row[:3] == [model.name, str(len(versions)), str(model.latest_version)]
        assert row[3] == ", ".join(f"{a}\xa0→\xa0{v}" for a, v in model.aliases.items())
        assert row[4:8] == [latest.framework, latest.runtime, latest.status, size]
        assert row[9] == model.created_by == "ui-tester"
    check_accessible(page)
    screenshot(page, "models")


def test_search_box_hides_the_rows_that_do_not_match(page: Page, url: str,
                                                    registry: Registry) -> None:
    page.goto(f"{url}/")
    page.get_by_label("Search").fill("diab")
    expect(page.locator('#models-table tr[data-model="diabetes"]')).to_be_visible()
    expect(page.locator('#models-table tr[data-model="iris"]')).to_be_hidden()
    expect(page.locator('#models-table tr[data-model="iris-onnx"]')).to_be_hidden()
    page.get_by_label("Search").fill("production")  # an alias finds its model
    expect(page.locator('#models-table tr[data-model="iris"]')).to_be_visible()
    expect(page.locator('#models-table tr[data-model="diabetes"]')).to_be_hidden()


def test_framework_filter_works_without_javascript(browser: Browser, url: str,
                                                   registry: Registry) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{url}/")
        page.get_by_label("Framework").select_option("onnx")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/?*framework=onnx*")
        expect(page.locator("#models-table tbody tr")).to_have_count(1)
        expect(page.locator('#models-table tr[data-model="iris-onnx"]')).to_be_visible()
        expect(page.locator("#models-count")).to_contain_text(
            f"1 of {len(registry.models())} models")
    finally:
        context.close()


def test_models_come_a_page_at_a_time_with_links_between_pages(page: Page, url: str,
                                                                registry: Registry) -> None:
    names = sorted(model.name for model in registry.models())
    assert len(names) == 3
    page.goto(f"{url}/?per_page=2")
    shown = page.locator("#models-table tbody tr")
    expect(shown).to_have_count(2)
    expect(page.locator("#models-count")).to_contain_text("3 of 3 models; 1 to 2 shown")
    page.get_by_role("link", name="Next").click()
    expect(shown).to_have_count(1)
    expect(page.locator("#models-count")).to_contain_text("3 to 3 shown")
    expect(page.get_by_role("link", name="Next")).to_have_count(0)
    page.get_by_role("link", name="Previous").click()
    expect(shown).to_have_count(2)
    page.goto(f"{url}/?per_page=2&page=99")  # past the last page: the last page
    expect(page.locator("#models-count")).to_contain_text("3 to 3 shown")
    for bad in ("0", "abc", "%C2%B2", "101"):
        response = page.goto(f"{url}/?per_page={bad}")
        assert response is not None and response.status == 400, bad
        expect(page.get_by_role("alert")).to_contain_text("per_page")


def test_unknown_model_or_version_is_a_404_page_naming_it(page: Page, url: str) -> None:
    for path, named in (("/ui/models/nosuchmodel", "nosuchmodel"),
                        ("/ui/models/iris/99", "99"), ("/ui/models/iris/nosuchalias",
                                                       "nosuchalias"),
                        ("/ui/models/bad%20name", "bad name"),
                        ("/ui/models/iris/%C2%B2", "\u00b2")):  # "²": a digit, not a number
        response = page.goto(f"{url}{path}")
        assert response is not None and response.status == 404, path
        expect(page.get_by_role("alert")).to_contain_text(named)
    screenshot(page, "not-found")


# -- a model's page ------------------------------------------------------------------------------


def test_model_page_shows_versions_aliases_and_history(page: Page, url: str,
                                                       registry: Registry) -> None:
    page.goto(f"{url}/ui/models/iris")
    versions = registry.versions("iris")
    expect(page.locator("#versions-table tbody tr")).to_have_count(len(versions))
    for version in versions:
        row = cells(page, f'#versions-table tr[data-version="{version.version}"]')
        assert row[0] == str(version.version)
        assert row[1:3] == [version.status, f"{version.framework} {version.framework_version}"]
        assert row[4:6] == [version.runtime, ", ".join(version.aliases)]
        assert row[6] == ("" if version.parent_version is None else str(version.parent_version))
        assert row[8:] == ["ui-tester", "passed"]
    for alias, number in registry.aliases("iris").items():
        assert cells(page, f'#aliases-table tr[data-alias="{alias}"]')[:2] == [alias,
                                                                              str(number)]
    expect(page.locator("#history-table tbody tr")).to_have_count(len(registry.history("iris")))
    check_accessible(page)
    screenshot(page, "model")


def submit_alias_form(page: Page, alias: str, version: int, token: str, **fields: str) -> int:
    """Fill and send the alias form; the status of the POST's answer."""
    page.get_by_label("Alias", exact=True).fill(alias)
    page.get_by_label("Version", exact=True).select_option(str(version))
    page.get_by_label("Admin token").fill(token)
    if "data" in fields:
        page.get_by_label("Hold-out data (path on the server)").fill(fields["data"])
        page.get_by_label("Label column").fill(fields["label"])
    page.get_by_label("Time both versions (latency, throughput, cost; slower)").set_checked(
        fields.get("timing") == "on")
    if "reason" in fields:
        page.get_by_label("Override: move even if the gate fails or is not run").check()
        page.get_by_label("Reason (kept in the history; needed with an override)").fill(
            fields["reason"])
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Move alias").click()
    page.wait_for_load_state()
    return posted.value.status


def test_moving_an_alias_without_the_admin_token_is_refused(page: Page, url: str,
                                                            registry: Registry) -> None:
    before, history = registry.aliases("iris"), len(registry.history("iris"))
    page.goto(f"{url}/ui/models/iris")
    status = submit_alias_form(page, "production", 2, "not-the-token", reason="no token")
    assert status == 401
    expect(page.get_by_role("alert")).to_contain_text("admin token")
    assert registry.aliases("iris") == before
    assert len(registry.history("iris")) == history


def test_moving_an_alias_with_an_override_records_the_reason(page: Page, url: str,
                                                             registry: Registry) -> None:
    registry.set_alias("iris", "rollback", 2)
    page.goto(f"{url}/ui/models/iris")
    status = submit_alias_form(page, "rollback", 1, ADMIN_TOKEN, reason="drill: back to LR")
    assert status == 303
    assert "moved=rollback" in page.url
    assert registry.aliases("iris")["rollback"] == 1
    expect(page.get_by_role("status")).to_have_text("rollback now points at version 1"
                                                    " (moved from 2)")
    row = cells(page, '#aliases-table tr[data-alias="rollback"]')
    assert [row[0], row[1], row[4], row[5], row[6]] == ["rollback", "1", "2", "overridden",
                                                        "drill: back to LR"]
    newest = cells(page, "#history-table tbody tr:first-child")
    assert newest[1:8] == ["alias_moved", "1", "rollback", "2", "1", "ui-tester",
                           "overridden"]
    assert newest[8] == "drill: back to LR"
    screenshot(page, "model-alias-moved")


def test_moving_an_alias_through_the_gate_keeps_its_report(page: Page, url: str,
                                                           registry: Registry,
                                                           tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    holdout = pd.DataFrame(x.astype(np.float32), columns=[f"f{i}" for i in range(4)])
    holdout.assign(species=y).to_parquet(tmp_path / "holdout.parquet")
    registry.set_alias("iris", "canary", 1)
    page.goto(f"{url}/ui/models/iris")
    status = submit_alias_form(page, "canary", 3, ADMIN_TOKEN,
                               data=str(tmp_path / "holdout.parquet"), label="species")
    assert status == 303
    assert registry.aliases("iris")["canary"] == 3
    report = registry.reports("iris", 3, "gate")[-1]
    assert report.status == "passed"
    newest = cells(page, "#history-table tbody tr:first-child")
    assert newest[1:8] == ["alias_moved", "3", "canary", "1", "3", "ui-tester",
                           f"passed (report {report.id})"]
    page.goto(f"{url}/ui/models/iris/3#reports")
    row = cells(page, f'#reports-table tr[data-report="{report.id}"]')
    assert row[:4] == [str(report.id), "gate", "passed", "1"]
    assert row[6] == "150"
    checks = page.locator(f"#report-{report.id}-checks tbody tr")
    expect(checks).to_have_count(len(json.loads(registry.read_report(report))["checks"]))


def test_a_bad_form_value_answers_400_and_keeps_the_alias(page: Page, url: str,
                                                          registry: Registry) -> None:
    before = registry.aliases("iris")
    page.goto(f"{url}/ui/models/iris")
    status = submit_alias_form(page, "production", 2, ADMIN_TOKEN)  # no data, no override
    assert status == 400
    expect(page.get_by_role("alert")).to_contain_text("give data and a label column")
    assert registry.aliases("iris") == before


# -- a version's page -----------------------------------------------------------------------------


def test_version_page_shows_signature_metrics_and_lineage(page: Page, url: str,
                                                          registry: Registry) -> None:
    version = registry.get("iris:1")
    page.goto(f"{url}/ui/models/iris/1")
    signature = page.locator("#signature-table tbody th").all_inner_texts()
    assert signature == [s.name for s in (*version.signature.inputs,
                                          *version.signature.outputs)]
    expect(page.locator("#class-labels")).to_have_text("Classes: 0, 1, 2")
    assert cells(page, "#metrics-table tbody tr") == ["accuracy", "0.96"]
    assert cells(page, "#tags-table tbody tr") == ["team", "flowers"]
    expect(page.locator('svg.lineage a[href="/ui/models/iris/3"]')).to_have_count(1)
    check_accessible(page)
    screenshot(page, "version")


def test_an_alias_in_place_of_the_version_opens_its_version(page: Page, url: str,
                                                            registry: Registry) -> None:
    page.goto(f"{url}/ui/models/iris/staging")
    assert page.url == f"{url}/ui/models/iris/{registry.aliases('iris')['staging']}"
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Version iris:{registry.aliases('iris')['staging']}")


def test_version_page_shows_the_conversion_check_and_files(page: Page, url: str,
                                                           registry: Registry) -> None:
    version = registry.get("iris:1")
    check = version.conversion_check
    page.goto(f"{url}/ui/models/iris/1#check")
    for output in check["outputs"]:
        row = cells(page, f'#check-table tr:has(th:text-is("{output["role"]}"))')
        assert row[1] == "passed"
        if output["max_abs_error"] is not None:
            assert row[2] == f'{output["max_abs_error"]:.4g}'
    expect(page.locator("#worst-rows tbody tr")).to_have_count(len(check["worst_rows"]))
    worst = cells(page, "#worst-rows tbody tr:first-child")
    assert worst[2] == ", ".join(f"{k}={v:.4g}"
                                 for k, v in check["worst_rows"][0]["values"].items())
    files = dict(zip(page.locator("#files-table tbody th").all_inner_texts(),
                     page.locator("#files-table tbody td.sha").all_inner_texts(), strict=True))
    assert files["onnx"] == version.onnx_sha256
    assert files["original (joblib)"] == version.original_sha256


def test_optimized_version_shows_its_report_chart_and_parent(page: Page, url: str,
                                                             registry: Registry) -> None:
    version = registry.get("iris:3")
    record = version.lineage["optimization"]
    page.goto(f"{url}/ui/models/iris/3")
    expect(page.locator('svg.lineage a[href="/ui/models/iris/1"]')).to_have_count(1)
    chosen = cells(page, "#optimization-table-3 tr.chosen")
    assert chosen[0] == f"{record['candidate']} [{record['threads']}] chosen"
    for index, size in enumerate((1, 16)):
        assert chosen[2 + 2 * index] == f"{record['median_s'][str(size)] * 1e6:,.1f}"
        assert chosen[3 + 2 * index] == f"{record['speedup'][str(size)]:.2f}x"
    baseline = cells(page, "#optimization-table-3 tbody tr:first-child")
    assert baseline[2] == f"{record['baseline_median_s']['1'] * 1e6:,.1f}"
    charts = page.locator("section.optimization svg.bars")
    expect(charts).to_have_count(2)
    expect(charts.first.locator("rect")).to_have_count(2)  # the original and the candidate
    expect(page.locator("#check-summary")).to_contain_text("Equivalence gate")
    check_accessible(page)
    screenshot(page, "version-optimized")
    page.goto(f"{url}/ui/models/iris/1#optimization")  # the source shows the run too
    expect(page.locator("#optimization-table-3 tr.chosen")).to_have_count(1)


def class_names(outputs: dict[str, Any]) -> dict[str, Any]:
    """A postprocess step kept with a version: its page describes it and never runs it."""
    raise AssertionError("the dashboard ran a stored step")


def test_version_steps_are_described_not_run(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}",
                        artifacts_url=str(tmp_path / "art"))
    x, y = load_iris(return_X_y=True)
    model = LinearRegression().fit(x, y)
    version = ferry.register(model, "stepped", sample=x.astype(np.float32),
                             postprocess=class_names, registry=registry)
    assert steps_text(registry, version)[0].startswith("steps: postprocess class_names")


# -- `ferry ui` ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def ui_command(tmp_path: Path) -> Iterator[str]:
    """`ferry ui` in a subprocess, on a free port, over a registry under FERRY_HOME."""
    home = tmp_path / "home"
    registry = Registry(f"sqlite:///{home / 'registry.db'}",
                        artifacts_url=str(home / "artifacts"))
    d, t = load_diabetes(return_X_y=True)
    ferry.register(LinearRegression().fit(d, t), "sugar", sample=d[:50].astype(np.float32),
                   registry=registry)
    registry.close()
    port = free_port()
    env = {**os.environ, "FERRY_HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-m", "ferry", "ui", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_ferry_ui_command_serves_the_registry(ui_command: str) -> None:
    deadline = time.monotonic() + UI_START_S
    while True:
        try:
            with urllib.request.urlopen(f"{ui_command}/", timeout=5) as answer:
                assert answer.status == 200
                assert 'data-model="sugar"' in answer.read().decode()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
