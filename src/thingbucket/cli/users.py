"""``thingbucket user create``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from thingbucket.access.principal import SYSTEM
from thingbucket.accounts import service as accounts
from thingbucket.cli.common import (
    DatabaseOpt,
    DataDirOpt,
    database_settings,
    err,
    fail,
    run,
    runtime,
    stdin_is_tty,
)

app = typer.Typer(help="Persons.", no_args_is_help=True)


def _read_password(given: str | None) -> str:
    if given is not None:
        err.print(
            "warning: a password on the command line is visible to other local users; "
            "pipe it on standard input instead",
            markup=False,
        )
        return given
    if not stdin_is_tty():
        line = sys.stdin.readline()
        if not line:
            fail("no password on standard input")
        return line.rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@app.command("create")
def create(
    email: str,
    password: Annotated[
        str | None, typer.Option("--password", help="prefer standard input or the prompt")
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="make the person an instance admin")
    ] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Create a person (with a personal organization) and print the new person's id."""
    settings = database_settings(data_dir, database_url)
    secret = _read_password(password)

    async def go() -> str:
        async with runtime(settings) as rt, rt.db.session() as session:
            person = await accounts.create_person(
                session, rt, email=email, password=secret, instance_admin=admin, actor=SYSTEM
            )
            return person.id

    typer.echo(run(go))
