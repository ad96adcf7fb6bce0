"""`ferry ui`: the dashboard for the registry alone, without serving models."""

from __future__ import annotations

from typing import Annotated

import typer

from ferry.cli.output import handles_errors
from ferry.serve.defaults import DEFAULT_HOST

DEFAULT_UI_PORT = 8080


@handles_errors
def ui(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="HTTP port.")] = DEFAULT_UI_PORT,
    admin_token: Annotated[str | None, typer.Option(
        envvar="FERRY_ADMIN_TOKEN", help="Token the pages ask for before changing anything"
                                         " (unset: they change nothing).")] = None,
) -> None:
    """Serve the dashboard (models, versions, aliases, reports, drift, batch runs)."""
    import uvicorn

    from ferry.registry import Registry
    from ferry.ui.app import create_ui_app
    from ferry.ui.context import UIContext

    app = create_ui_app(UIContext(Registry(), admin_token=admin_token))
    typer.echo(f"ferry ui on http://{host}:{port}/", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command()(ui)
