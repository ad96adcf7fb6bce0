"""The `ferry` command line (typer and rich)."""

from ferry.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
