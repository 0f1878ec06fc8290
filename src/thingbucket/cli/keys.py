"""``thingbucket key create``."""

from __future__ import annotations

from typing import Annotated

import typer

from thingbucket.access.principal import SYSTEM
from thingbucket.buckets import service as buckets
from thingbucket.buckets.schemas import KeyCreate
from thingbucket.cli.common import (
    DatabaseOpt,
    DataDirOpt,
    database_settings,
    fail,
    run,
    runtime,
)

app = typer.Typer(help="API keys.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="a label for the key")],
    role: Annotated[str, typer.Option("--role", help="admin, write or read")] = "read",
    bucket: Annotated[str | None, typer.Option("--bucket", help="bucket id (bucket key)")] = None,
    org: Annotated[str | None, typer.Option("--org", help="organization id (org key)")] = None,
    key_format: Annotated[
        str, typer.Option("--format", help="native, dakkio or bitpool")
    ] = "native",
    public_only: Annotated[bool, typer.Option("--public-only")] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Mint an API key for a bucket or an organization and print its secret (shown once)."""
    if (bucket is None) == (org is None):
        fail("name exactly one of --bucket and --org")
    if role not in ("admin", "write", "read") or key_format not in ("native", "dakkio", "bitpool"):
        fail("--role is admin, write or read; --format is native, dakkio or bitpool")
    settings = database_settings(data_dir, database_url)
    body = KeyCreate(
        name=name,
        role=role,
        format=key_format,
        public_only=public_only,
    )

    async def go() -> tuple[str, str]:
        async with runtime(settings) as rt, rt.db.session() as session:
            key, secret = await buckets.create_key(
                session, rt, SYSTEM, body, org_id=org, bucket_id=bucket
            )
            return key.id, secret

    key_id, secret = run(go)
    typer.echo(f"id:     {key_id}")
    typer.echo(f"secret: {secret}")
    typer.echo("The secret is shown once; store it now.", err=True)
