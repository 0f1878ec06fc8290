"""The ``thingbucket`` command: one module per command group, calling services, never HTTP."""

from __future__ import annotations

import typer

from thingbucket.cli import compact, keys, retention, serve, transfer, users

app = typer.Typer(
    name="thingbucket",
    help="A self-hosted data bucket for connected devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.command("migrate")(serve.migrate)
app.add_typer(users.app, name="user")
app.command("export")(transfer.export)
app.command("import")(transfer.import_)
app.add_typer(keys.app, name="key")
app.command("retention")(retention.retention_)
app.command("compact")(compact.compact)


def main() -> None:
    app()
