"""Packing old number samples into cold chunks (the rules are in ``points.chunks``).

A background task runs ``run`` every ``cold.interval_s``: for every number series, each UTC day
before ``cold.after_days`` ago that still has samples in the table is packed through the writer,
one day per job (its own transaction), so ingest never waits long behind it. A day whose minute
rollups are not all built yet is left for a later pass. ``thingbucket compact`` runs a pass now.
On PostgreSQL one replica packs at a time (an advisory lock); each day is packed under its
series' chunk lock, so a late write into it either comes first or thaws what was packed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from thingbucket.access.principal import SYSTEM
from thingbucket.db.periodic import PeriodicTask
from thingbucket.kit.time import TS_MIN_US, now_us
from thingbucket.points import repository as repo
from thingbucket.points.chunks import DAY, pack_before
from thingbucket.properties import service as properties
from thingbucket.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Day:
    series_id: int
    start: int  # the UTC day [start, start + DAY)
    samples: int  # packed (or to pack, in a dry run); 0: left for later (rollups pending)


@dataclass(slots=True)
class Report:
    days: list[Day] = field(default_factory=list)
    before_us: int = 0

    @property
    def samples(self) -> int:
        return sum(d.samples for d in self.days)

    @property
    def waiting(self) -> int:
        return sum(1 for d in self.days if not d.samples)


async def run(
    rt: Runtime,
    *,
    dry_run: bool = False,
    now: int | None = None,
    max_days: int | None = None,
    property_id: str | None = None,
) -> Report:
    """One pass: every day before the cold edge that has samples in the table, packed (or, with
    ``dry_run``, counted); of one property's series only, if given. ``max_days`` bounds it."""
    settings = rt.settings.cold
    report = Report(before_us=pack_before(now_us() if now is None else now, settings.after_days))
    async with rt.db.session() as session:
        if property_id is not None:  # an unknown id is an error, not a pass over nothing
            await properties.ref_visible(session, SYSTEM, property_id)
        series = await repo.series_ids(session, "samples_num", property_id)
    for sid in series:
        start = TS_MIN_US
        while max_days is None or len(report.days) < max_days:
            async with rt.db.session() as session:
                first = await repo.first_in(session, sid, start, report.before_us)
                if first is None:
                    break
                day = first - first % DAY
                if dry_run:
                    n = await repo.count_in(session, sid, day, day + DAY)
            if not dry_run:
                n = await rt.writer.pack(sid, day, day + DAY, settings.chunk_samples)
            report.days.append(Day(sid, day, n))
            start = day + DAY
    return report


class ColdTask(PeriodicTask):
    """``run`` every ``cold.interval_s``, first after ``first_run_after_s``; packed days stay
    packed when a pass fails, the next one goes on from there."""

    name = "cold"
    lock_id = 0x7462636F6C64  # one packing pass at a time across replicas

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt.db, rt.settings.cold.first_run_after_s, rt.settings.cold.interval_s)
        self._rt = rt

    async def run_pass(self) -> None:
        report = await run(self._rt)
        if report.samples:
            log.info(
                "packed %d samples of %d series-days into cold chunks",
                report.samples,
                len(report.days) - report.waiting,
            )
