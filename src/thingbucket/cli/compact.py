"""``thingbucket compact``: pack old samples into cold chunks now (what serve does every
``cold.interval_s``), or with ``--dry-run`` show what would be packed."""

from __future__ import annotations

from typing import Annotated

import typer

from thingbucket.cli.common import DatabaseOpt, DataDirOpt, database_settings, run, runtime
from thingbucket.kit.time import rfc3339, us_to_datetime
from thingbucket.points import cold


def compact(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would be packed; change nothing")
    ] = False,
    property_id: Annotated[
        str | None, typer.Option("--property", help="only this property's series")
    ] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Pack number samples older than cold.after_days into compressed chunks, a day at a time."""
    settings = database_settings(data_dir, database_url)

    async def go() -> cold.Report:
        async with runtime(settings) as rt:
            return await cold.run(rt, dry_run=dry_run, property_id=property_id)

    report = run(go)
    verb = "to pack" if dry_run else "packed"
    typer.echo(f"{'series':>8}  {'day':24}  {verb}")
    for day in report.days:
        note = "" if day.samples else "  (rollups not built yet: left for later)"
        typer.echo(
            f"{day.series_id:>8}  {rfc3339(us_to_datetime(day.start)):24}  {day.samples}{note}"
        )
    typer.echo(
        f"days before {rfc3339(us_to_datetime(report.before_us))}: {len(report.days)}; "
        f"samples {verb}: {report.samples}",
        err=True,
    )
