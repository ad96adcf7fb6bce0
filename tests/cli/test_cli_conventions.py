"""What every `ferry` command shares: a fast start (no heavy import before a command needs
it), `--version`, shell completion, `--json` on stdout, one flag style, and exit codes (2 for
the command line's mistakes, 1 for other failures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import ferry
import ferry.serve.batching
import ferry.serve.defaults
import ferry.serve.settings
from ferry.cli import app

HEAVY = ("numpy", "pandas", "pyarrow", "onnx", "onnxruntime", "sklearn", "sqlalchemy",
         "ferry.registration", "ferry.registry", "ferry.serve.server", "ferry.loadtest",
         "ferry.optimizer", "ferry.convert")
LIST_HEAVY = f"""
import json, sys
from ferry.cli import main
sys.argv = ["ferry", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}
               or any(m == h or m.startswith(h + ".") for h in {HEAVY!r}))
sys.stderr.write("\\nLOADED " + json.dumps(heavy) + "\\n")
"""


def ferry_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), prog_name="ferry")
    return result.exit_code, result.stdout, result.stderr


def _loaded_by(*args: str) -> list[str]:
    """Heavy modules loaded by `ferry ARGS` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", LIST_HEAVY, json.dumps(args)],
                          capture_output=True, text=True, timeout=120)
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED "))
    loaded: list[str] = json.loads(line.removeprefix("LOADED "))
    return loaded


@pytest.mark.parametrize("args", [["--help"], ["register", "--help"], ["bench", "--help"],
                                  ["serve", "--help"], ["optimize", "--help"], ["--version"]],
                         ids=" ".join)
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    assert _loaded_by(*args) == []


def test_a_command_still_imports_what_it_needs() -> None:
    """The check above can fail: a command that reads the registry loads it."""
    assert "ferry.registry" in _loaded_by("models", "--json")


def test_version() -> None:
    code, out, _ = ferry_cli("--version")

    assert code == 0
    assert out.strip() == f"ferry {ferry.__version__}"


def test_shell_completion_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = ferry_cli("--help")
    assert code == 0
    assert "--install-completion" in out and "--show-completion" in out
    # Typer's own switch: take the shell named, not the one this test runs under (make's sh).
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")

    code, out, err = ferry_cli("--show-completion", "bash")

    assert code == 0, (out, err)
    assert "_FERRY_COMPLETE=complete_bash" in out


def test_usage_errors_exit_2_and_failures_exit_1() -> None:
    assert ferry_cli("show", "nope")[0] == 1
    assert ferry_cli("show", "no pe")[0] == 2
    assert ferry_cli("models", "--no-such-flag")[0] == 2
    code, _, err = ferry_cli("optimize", "nope", "--batch-size", "x")
    assert code == 2 and "--batch-size" in err


def test_booleans_take_a_no_form_everywhere() -> None:
    for command in (["register"], ["models"], ["bench"], ["serve"], ["optimize"]):
        code, out, _ = ferry_cli(*command, "--help")
        assert code == 0
        text = " ".join(out.split())
        for flag in ("--json", "--binary", "--dry-run", "--lossless-only", "--access-log",
                     "--force", "--trust-pickle"):
            if f"{flag} " in text or f"{flag}\n" in out:
                assert f"--no-{flag[2:]}" in text, (command, flag)


@pytest.fixture
def iris() -> str:
    x, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=300).fit(x, y)
    version = ferry.register(model, "iris", sample=x)
    ferry.Registry().set_alias("iris", "production", version.version)
    return "iris@production"


QUICK = ["--warmup", "0", "--duration", "0.3"]


def test_bench_json_prints_the_report_and_output_writes_it(iris: str, tmp_path: Path) -> None:
    report = tmp_path / "bench.json"

    code, out, err = ferry_cli("bench", iris, "--concurrency", "1", "--concurrency", "2",
                               *QUICK, "--json", "--output", str(report))

    assert code == 0, err
    printed = json.loads(out)
    assert [s["level"] for s in printed["steps"]] == [1, 2]
    assert json.loads(report.read_text())["steps"][0]["level"] == 1
    assert all(s["error_count"] == 0 for s in printed["steps"])


def test_bench_keeps_comma_lists(iris: str) -> None:
    code, out, err = ferry_cli("bench", iris, "--concurrency", "1,2", *QUICK, "--json")

    assert code == 0, err
    assert json.loads(out)["settings"]["levels"] == [1, 2]


def test_cli_serving_defaults_match_the_servers() -> None:
    """`ferry serve` shows defaults from a module without imports; they are the server's."""
    defaults = ferry.serve.defaults
    settings, batch = ferry.serve.settings.ServeSettings(), ferry.serve.batching.BatchSettings()
    assert (settings.host, settings.http_port, settings.grpc_port) == (
        defaults.DEFAULT_HOST, defaults.DEFAULT_HTTP_PORT, defaults.DEFAULT_GRPC_PORT)
    assert settings.max_request_bytes == defaults.DEFAULT_MAX_REQUEST_BYTES
    assert settings.request_timeout_s == defaults.DEFAULT_REQUEST_TIMEOUT_S
    assert (batch.max_batch_size, batch.max_queue_delay_s, batch.max_queue_size,
            batch.instances) == (defaults.DEFAULT_MAX_BATCH_SIZE,
                                 defaults.DEFAULT_MAX_QUEUE_DELAY_S,
                                 defaults.DEFAULT_MAX_QUEUE_SIZE, defaults.DEFAULT_INSTANCES)
