"""``thingbucket retention``: one retention pass now, or with ``--dry-run`` what it would delete."""

from __future__ import annotations

from typing import Annotated

import typer

from thingbucket.cli.common import (
    DatabaseOpt,
    DataDirOpt,
    database_settings,
    run,
    runtime,
)
from thingbucket.kit.time import rfc3339, us_to_datetime
from thingbucket.points import retention


def retention_(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would be deleted; delete nothing")
    ] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Delete samples older than their property's or bucket's retention (what serve does hourly)."""
    settings = database_settings(data_dir, database_url)

    async def go() -> retention.Report:
        async with runtime(settings) as rt:
            return await retention.run(rt, dry_run=dry_run)

    report = run(go)
    verb = "to delete" if dry_run else "deleted"
    typer.echo(f"{'property':36}  {'bucket':36}  {'days':>5}  {'before':24}  {verb}")
    for e in report.properties:
        before = rfc3339(us_to_datetime(e.cutoff_us))
        typer.echo(f"{e.property_id:36}  {e.bucket_id:36}  {e.days:>5}  {before:24}  {e.samples}")
    for name in report.partitions_dropped:
        typer.echo(f"dropped partition {name} (every sample in it had expired)")
    typer.echo(
        f"{len(report.properties)} properties with a retention; samples {verb}: {report.samples}",
        err=True,
    )
