"""Retention: samples older than their property's (else their bucket's) retention are deleted.

A background task runs ``run`` every ``retention.interval_s``. Deletes go through the writer in
bounded batches, each its own short transaction, so ingest never waits behind a long delete.
Cold chunks (``points.chunks``) go whole, once every sample in them has expired.
On PostgreSQL a monthly partition in which every sample has expired is dropped whole first
(cheaper than deleting its rows, and it gives the space back at once). On PostgreSQL an advisory
lock makes one replica run each pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from thingbucket.access import service as access
from thingbucket.access.principal import SYSTEM
from thingbucket.db.periodic import PeriodicTask
from thingbucket.kit.time import TS_MIN_US, now_us
from thingbucket.points import repository as repo
from thingbucket.points.batch import RangeDelete, table_for
from thingbucket.runtime import Runtime

log = logging.getLogger(__name__)
DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class Expired:
    property_id: str
    bucket_id: str
    days: int
    cutoff_us: int  # samples before this go
    samples: int  # deleted (in batches or with their partition), or to delete (dry run)


@dataclass(slots=True)
class Report:
    properties: list[Expired] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(e.samples for e in self.properties)


async def run(
    rt: Runtime, *, dry_run: bool = False, now: int | None = None, batch: int | None = None
) -> Report:
    """One pass over every property with a retention; ``dry_run`` only counts."""
    now = now_us() if now is None else now
    batch = batch or rt.settings.retention.batch_samples
    async with rt.db.session() as session:
        plans = await repo.expiring(session)
    report = Report()
    dropped: dict[int, int] = {}
    if not dry_run and not rt.db.is_sqlite:
        report.partitions_dropped = await _drop_expired_partitions(rt, plans, now, dropped)
    for plan in plans:
        cutoff = now - plan.days * DAY_US
        if dry_run:
            async with rt.db.session() as session:
                n = 0
                for sid, kind in plan.series:
                    n += await repo.count_before(session, table_for(kind), sid, cutoff)
        else:
            n = await _delete_before(rt, plan.series, cutoff, batch)
            n += sum(dropped.get(sid, 0) for sid, _ in plan.series)
            if n:
                async with rt.db.session() as session:
                    access.record(
                        session,
                        "samples.deleted",
                        SYSTEM,
                        org_id=plan.organization_id,
                        target=("property", plan.property_id),
                        reason="retention",
                        details={"before_us": cutoff, "samples": n},
                    )
        report.properties.append(Expired(plan.property_id, plan.bucket_id, plan.days, cutoff, n))
    return report


async def _delete_before(
    rt: Runtime, series: tuple[tuple[int, str], ...], cutoff: int, batch: int
) -> int:
    deleted = 0
    for sid, kind in series:
        while True:
            async with rt.db.session() as session:
                edge = await repo.nth_oldest_before(session, table_for(kind), sid, cutoff, batch)
            end = cutoff if edge is None else edge + 1
            spec = RangeDelete(((sid, kind),), TS_MIN_US, end, whole_chunks=True)
            result = await rt.writer.delete(spec)
            deleted += result.deleted
            if end == cutoff:
                break
    return deleted


async def _drop_expired_partitions(
    rt: Runtime, plans: list[repo.Expiring], now: int, gone: dict[int, int]
) -> list[str]:
    cutoffs = {sid: now - p.days * DAY_US for p in plans for sid, _ in p.series}
    dropped: list[str] = []
    async with rt.db.session() as session:
        parts = await repo.partitions(session)
        every = {t: await repo.series_ids(session, t) for t in {p[0] for p in parts}}
    for table, name, start, end in parts:
        if end > now:
            continue
        # Series that keep a sample in this month: no retention, or a cutoff before its end.
        keep = [sid for sid in every[table] if cutoffs.get(sid, TS_MIN_US) < end]
        async with rt.db.session() as session:
            counts = await repo.drop_partition_unless_held(session, name, (start, end), keep)
        if counts is not None:
            dropped.append(name)
            for sid, n in counts.items():
                gone[sid] = gone.get(sid, 0) + n
    if dropped:
        rt.writer.forget_partitions()
        log.info("retention dropped %d expired partitions: %s", len(dropped), ", ".join(dropped))
    return dropped


class RetentionTask(PeriodicTask):
    """``run`` every ``retention.interval_s``, first after ``first_run_after_s``; a failed pass
    deleted only whole batches, the next one tries again."""

    name = "retention"
    lock_id = 0x74627265746E  # one retention pass at a time across replicas

    def __init__(self, rt: Runtime) -> None:
        settings = rt.settings.retention
        super().__init__(rt.db, settings.first_run_after_s, settings.interval_s)
        self._rt = rt

    async def run_pass(self) -> None:
        report = await run(self._rt)
        if report.samples or report.partitions_dropped:
            log.info(
                "retention deleted %d samples and %d partitions",
                report.samples,
                len(report.partitions_dropped),
            )
