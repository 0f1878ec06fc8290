"""The audit log (security.md §9).

State-changing events are added to the session of their change, so they commit or roll back with
it. Failures and denials are aggregated per (event, actor, reason) over 10 s windows through a
bounded queue and written by a background flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from thingbucket.access.models import AuditEvent
from thingbucket.access.principal import Principal
from thingbucket.db.base import utcnow
from thingbucket.kit.redact import redact

log = logging.getLogger("thingbucket.audit")
WINDOW_S = 10.0
MAX_PENDING = 10_000


@dataclass(frozen=True, slots=True)
class RequestInfo:
    surface: str = "native"
    source_ip: str | None = None
    request_id: str | None = None


# Set by the HTTP middleware (and the CLI and MQTT paths) for everything done in a request.
SYSTEM_INFO = RequestInfo(surface="system")
request_info: contextvars.ContextVar[RequestInfo] = contextvars.ContextVar(
    "thingbucket_request_info", default=SYSTEM_INFO
)


def _event(
    event: str,
    outcome: str,
    who: Principal | None,
    *,
    org_id: str | None,
    target: tuple[str, str] | None,
    reason: str | None,
    details: dict[str, Any] | None,
    count: int = 1,
    ts: datetime | None = None,
) -> AuditEvent:
    info = request_info.get()
    row = AuditEvent(
        ts=ts or utcnow(),
        event=event,
        outcome=outcome,
        actor_kind=who.kind if who else None,
        actor_id=who.id if who else None,
        credential_prefix=who.credential_prefix if who else None,
        organization_id=org_id,
        target_kind=target[0] if target else None,
        target_id=target[1] if target else None,
        surface=info.surface,
        source_ip=info.source_ip,
        request_id=info.request_id,
        reason=reason,
        count=count,
        details=redact(details) if details else None,
    )
    log.info(
        orjson.dumps(
            {
                "event": row.event,
                "outcome": row.outcome,
                "actor": f"{row.actor_kind}:{row.actor_id}" if row.actor_kind else None,
                "org": row.organization_id,
                "target": f"{row.target_kind}:{row.target_id}" if row.target_kind else None,
                "surface": row.surface,
                "source_ip": row.source_ip,
                "request_id": row.request_id,
                "reason": row.reason,
                "count": row.count,
            }
        ).decode()
    )
    return row


def record(
    session: AsyncSession,
    event: str,
    who: Principal | None,
    *,
    org_id: str | None = None,
    target: tuple[str, str] | None = None,
    outcome: str = "success",
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an event to the caller's unit of work: no change without its record and vice versa."""
    session.add(
        _event(event, outcome, who, org_id=org_id, target=target, reason=reason, details=details)
    )


SessionFactory = Callable[[], Any]
Target = tuple[str, str]
# The organizations of targets, None for those that do not exist.
Resolver = Callable[[list[Target]], Awaitable[dict[Target, str | None]]]
DENIED = "authz.denied"


class AuditAggregator:
    """Failures and denials, counted per (event, actor, reason) and flushed every 10 s."""

    def __init__(self) -> None:
        self._pending: dict[tuple[Any, ...], list[Any]] = {}
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._flush_fn: Callable[[list[AuditEvent]], Awaitable[None]] | None = None
        self._resolve: Resolver | None = None

    def failure(
        self,
        event: str,
        who: Principal | None,
        *,
        outcome: str = "failure",
        reason: str | None = None,
        org_id: str | None = None,
        actor_hint: str | None = None,
        target: Target | None = None,
    ) -> None:
        info = request_info.get()
        key = (
            event,
            outcome,
            who.kind if who else None,
            who.id if who else actor_hint,
            who.credential_prefix if who else None,
            info.source_ip,
            reason,
            org_id,
            info.surface,
            target,
        )
        entry = self._pending.get(key)
        if entry is not None:
            entry[0] += 1
            return
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending[key] = [1, utcnow(), info.request_id]

    def drain(self) -> list[AuditEvent]:
        pending, self._pending = self._pending, {}
        rows = []
        for key, (count, ts, request_id) in pending.items():
            (event, outcome, actor_kind, actor_id, prefix, source_ip, reason, org_id, surface,
             target) = key  # fmt: skip
            token = request_info.set(RequestInfo(surface, source_ip, request_id))
            try:
                row = _event(
                    event,
                    outcome,
                    None,
                    org_id=org_id,
                    target=target,
                    reason=reason,
                    details=None,
                    count=count,
                    ts=ts,
                )
            finally:
                request_info.reset(token)
            row.actor_kind = actor_kind
            row.actor_id = actor_id
            row.credential_prefix = prefix
            rows.append(row)
        return rows

    def denied(
        self, who: Principal, *, reason: str, target: Target | None, org_id: str | None
    ) -> None:
        """An ``authz.denied``: a 403, or a not-found answer about something that may exist but
        is not visible. Without ``org_id`` the target is looked up when flushed, not in the
        request, so that answer takes as long as for an absent one; absent targets are dropped."""
        self.failure(DENIED, who, outcome="denied", reason=reason, org_id=org_id, target=target)

    def start(
        self, flush: Callable[[list[AuditEvent]], Awaitable[None]], resolve: Resolver
    ) -> None:
        self._flush_fn = flush
        self._resolve = resolve
        self._task = asyncio.create_task(self._loop(), name="thingbucket-audit-flush")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(WINDOW_S)
            await self.flush()

    async def _resolved(self, rows: list[AuditEvent]) -> list[AuditEvent]:
        """Denials about a target of unknown organization get the target's, or are dropped."""

        def target(row: AuditEvent) -> Target | None:
            if row.event != DENIED or row.organization_id is not None or not row.target_id:
                return None
            return (row.target_kind or "", row.target_id)

        wanted = {t for t in map(target, rows) if t is not None}
        if not wanted or self._resolve is None:
            return rows
        orgs = await self._resolve(list(wanted))
        kept = []
        for row in rows:
            key = target(row)
            if key is not None:
                row.organization_id = orgs.get(key)
                if row.organization_id is None:
                    continue  # it does not exist: an honest not-found, not a denial
            kept.append(row)
        return kept

    async def flush(self) -> None:
        rows = self.drain()
        if rows and self._flush_fn is not None:
            try:
                await self._flush_fn(await self._resolved(rows))
            except Exception:
                self.dropped += len(rows)
                log.exception("audit flush failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
