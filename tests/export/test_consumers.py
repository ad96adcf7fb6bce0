"""The export bundle's consumers in `examples/` run every family's golden cases: Node.js
(`examples/node/check.mjs`, onnxruntime-node) and the browser (`examples/web`, onnxruntime-web
in headless Chromium driven by Playwright). Each passes every case of every family's bundle and
fails on a bundle whose golden.json was changed beyond the tolerance, naming the case.

Needs `make examples` (npm ci in examples/node and examples/web) and Chromium (`make
check-system`); the tests are skipped only when node/npm or Chromium are not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from bundles import FAMILIES, family_bundles

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PAGE_TIMEOUT_MS = 30_000
MIME_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
              ".json": "application/json"}
TAMPERED = [("xgboost", "floating"), ("sklearn", "exact")]
"""Bundles to tamper with: a floating output (XGBoost's probabilities) and an exactly compared
one (the scikit-learn pipeline's string labels)."""


@dataclass(frozen=True)
class Tampered:
    """A copy of a bundle with one expected value changed, and where."""

    path: Path
    case: str
    output: str
    index: int


def _installed(project: str) -> Path:
    """The folder of the example `project`, its npm packages installed (skips without npm)."""
    folder = EXAMPLES / project
    if not (folder / "node_modules").is_dir():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed (make check-system installs Debian's nodejs, npm)")
        pytest.fail(f"examples/{project}/node_modules is missing: run `make examples` (npm ci)")
    return folder


def _case_count(bundle: Path) -> int:
    return len(json.loads((bundle / "golden.json").read_text())["cases"])


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every family's bundle, exported from a registry of the module's own."""
    root = tmp_path_factory.mktemp("bundles")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FERRY_HOME", str(root / ".ferry-home"))
        return family_bundles(root)


def _changed(value: Any) -> Any:
    """`value` changed beyond any tolerance, keeping its JSON type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return value + "-tampered"
    if isinstance(value, int):
        return value + 1
    return value + 1.0 + 2.0 * abs(value)


def _tamper(bundle: Path, kind: str) -> Tampered:
    """A copy of `bundle` whose last case expects a different first value of its first
    floating (`kind` "floating") or non-floating ("exact") output."""
    target = bundle.with_name(f"{bundle.name}-tampered-{kind}")
    shutil.copytree(bundle, target, dirs_exist_ok=True)
    golden = json.loads((bundle / "golden.json").read_text())
    case = golden["cases"][-1]
    name, output = next((name, output) for name, output in case["outputs"].items()
                        if output["dtype"].startswith("float") == (kind == "floating"))
    output["data"][0] = _changed(output["data"][0])
    (target / "golden.json").write_text(json.dumps(golden))
    return Tampered(target, case["name"], name, 0)


@pytest.fixture(scope="module")
def check_node() -> list[str]:
    """The command running examples/node/check.mjs (skips without node)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (make check-system installs Debian's nodejs)")
    return [node, str(_installed("node") / "check.mjs")]


def _run(command: list[str], bundle: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, str(bundle)], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_node_passes_every_golden_case(check_node: list[str], family_dirs: dict[str, Path],
                                       family: str) -> None:
    bundle = family_dirs[family]
    result = _run(check_node, bundle)
    cases = _case_count(bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{cases}/{cases} golden cases passed (all passed)" in result.stdout


@pytest.mark.parametrize(("family", "kind"), TAMPERED)
def test_node_fails_a_tampered_bundle(check_node: list[str], family_dirs: dict[str, Path],
                                      family: str, kind: str) -> None:
    tampered = _tamper(family_dirs[family], kind)
    result = _run(check_node, tampered.path)
    cases = _case_count(tampered.path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"FAIL case {tampered.case} output {tampered.output} index {tampered.index}:"
            in result.stdout)
    assert f"{cases - 1}/{cases} golden cases passed (1 failed)" in result.stdout


def test_node_refuses_a_missing_bundle(check_node: list[str], tmp_path: Path) -> None:
    result = _run(check_node, tmp_path / "absent")
    assert result.returncode == 2
    assert "signature.json" in result.stderr


class _StaticFiles(SimpleHTTPRequestHandler):
    """Static files with the MIME types ES modules and WebAssembly need, quietly."""

    def guess_type(self, path: str | PathLike[str]) -> str:
        """ES modules as JavaScript and WebAssembly as application/wasm, whatever the
        machine's mime.types says."""
        return MIME_TYPES.get(Path(path).suffix) or super().guess_type(path)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output free of request lines."""


def _site(root: Path, bundles: Path) -> Path:
    """A folder serving examples/web (page, script, node_modules) and the bundles under
    /bundles/, by symbolic links."""
    site = root / "site"
    site.mkdir()
    for entry in _installed("web").iterdir():
        (site / entry.name).symlink_to(entry)
    (site / "bundles").symlink_to(bundles)
    return site


@pytest.fixture(scope="module")
def site_url(family_dirs: dict[str, Path],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The static server's address: /index.html is the page, /bundles/<name>/ a bundle."""
    bundles = next(iter(family_dirs.values())).parent
    site = _site(tmp_path_factory.mktemp("web"), bundles)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_StaticFiles, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def chromium(browser: Browser) -> Iterator[BrowserContext]:
    """One context for the module: the wasm file is fetched once."""
    context = browser.new_context()
    yield context
    context.close()


def _page_result(chromium: BrowserContext, site_url: str, bundle: Path) -> dict[str, Any]:
    """`window.ferryResult` of the page run on `bundle`, checked against the page's text."""
    page = chromium.new_page()
    try:
        page.goto(f"{site_url}/index.html?bundle=/bundles/{bundle.name}/")
        page.wait_for_function("window.ferryResult !== undefined", timeout=PAGE_TIMEOUT_MS)
        result: dict[str, Any] = page.evaluate("window.ferryResult")
        assert page.inner_text("#summary") == result["summary"]
        return result
    finally:
        page.close()


@pytest.mark.parametrize("family", FAMILIES)
def test_browser_passes_every_golden_case(chromium: BrowserContext, site_url: str,
                                          family_dirs: dict[str, Path], family: str) -> None:
    """Every family passes, the scikit-learn pipeline's string inputs and labels included:
    onnxruntime-web's WebAssembly build takes string tensors (see the next test), so no case
    is reported unsupported."""
    bundle = family_dirs[family]
    result = _page_result(chromium, site_url, bundle)
    cases = _case_count(bundle)
    assert "error" not in result, result["details"]
    assert (result["passed"], result["failed"], result["details"]) == (cases, 0, [])
    assert f"{cases}/{cases} golden cases passed (all passed)" in result["summary"]


def test_browser_feeds_string_inputs(chromium: BrowserContext, site_url: str,
                                     family_dirs: dict[str, Path]) -> None:
    """A golden case whose string input was changed (an unknown category) fails: the page
    hands the model the strings it is given, it does not drop or blank them."""
    bundle = family_dirs["sklearn"]
    target = bundle.with_name(f"{bundle.name}-string-input")
    shutil.copytree(bundle, target, dirs_exist_ok=True)
    golden = json.loads((bundle / "golden.json").read_text())
    case = golden["cases"][1]
    tensor = next(spec for spec in case["inputs"].values() if spec["dtype"] == "string")
    tensor["data"][0] = "an-unseen-category"
    (target / "golden.json").write_text(json.dumps(golden))
    result = _page_result(chromium, site_url, target)
    assert result["failed"] == 1
    assert result["details"][0].startswith(f"FAIL case {case['name']} output ")


@pytest.mark.parametrize(("family", "kind"), TAMPERED)
def test_browser_fails_a_tampered_bundle(chromium: BrowserContext, site_url: str,
                                         family_dirs: dict[str, Path], family: str,
                                         kind: str) -> None:
    tampered = _tamper(family_dirs[family], kind)
    result = _page_result(chromium, site_url, tampered.path)
    cases = _case_count(tampered.path)
    assert (result["passed"], result["failed"]) == (cases - 1, 1)
    assert result["details"][0].startswith(
        f"FAIL case {tampered.case} output {tampered.output} index {tampered.index}:")


def test_browser_reports_a_missing_bundle(chromium: BrowserContext, site_url: str,
                                          family_dirs: dict[str, Path]) -> None:
    result = _page_result(chromium, site_url, family_dirs["sklearn"].with_name("absent"))
    assert (result["passed"], result["failed"]) == (0, 0)
    assert result["error"] == "GET signature.json: HTTP 404"
