"""The `ferry` command line (typer and rich)."""

from ferry.cli import batch, bench, export, gate, monitor, optimize, serve, ui, watch
from ferry.cli.app import app

serve.register(app)
bench.register(app)
optimize.register(app)
monitor.register(app)
watch.register(app)
gate.register(app)
batch.register(app)
export.register(app)
ui.register(app)


def main() -> None:
    app()


__all__ = ["app", "main"]
