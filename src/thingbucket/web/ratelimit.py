"""Rate limits on HTTP requests (security.md §5.5), shared by the guard middleware and the
principal dependency of every surface.

Requests that present no credential are decided by the middleware on their source address before
anything else is read. Requests that present one are decided once their principal is known (the
principal dependency), before the handler runs; a credential that fails takes from its address's
bucket instead. The decision is kept in the ASGI scope, and the middleware adds its
``X-RateLimit-*`` headers to the answer of an authenticated request, errors included, and to every
429 (a 401 carries none).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from thingbucket.access.audit import request_info
from thingbucket.access.principal import Principal
from thingbucket.access.ratelimit import Decision
from thingbucket.errors import Throttled

if TYPE_CHECKING:
    from thingbucket.runtime import Runtime

DECISION = "thingbucket.ratelimit"  # the Decision of this request, once made
CHARGED = "thingbucket.ratelimit.charged"  # set once a bucket has been consulted

Scope = MutableMapping[str, Any]


class RateLimited(Throttled):
    code = "RATE_LIMITED"
    message = "Too many requests; retry later."


def _enforce(rt: Runtime, scope: Scope, decision: Decision | None, who: Principal | None) -> None:
    scope[CHARGED] = True
    if decision is None:
        return
    scope[DECISION] = decision
    if decision.allowed:
        return
    bucket = decision.bucket
    # Aggregated per (actor or address, bucket kind) over the audit window: the first refusal of a
    # window makes the row, the others count in it. Never the credential itself.
    rt.audit.failure(
        "ratelimit.exceeded",
        who,
        outcome="denied",
        reason=bucket.kind,
        org_id=who.organization_id if who is not None else None,
    )
    raise RateLimited(
        details=[{"limit": bucket.kind, "retry_after_s": decision.retry_after}],
        retry_after=decision.retry_after,
    )


async def limit_principal(rt: Runtime, scope: Scope, who: Principal) -> None:
    """Take from the principal's buckets; raise RateLimited (429) when one is empty."""
    _enforce(rt, scope, await rt.ratelimit.check_principal(who), who)


async def limit_address(rt: Runtime, scope: Scope) -> None:
    """Take from the source address's bucket (anonymous and failed-auth requests); raise
    RateLimited (429) when it is empty. Only a refusal shows the bucket in its headers: the
    headers belong to authenticated answers, and a 401 carries none."""
    decision = await rt.ratelimit.check_address(request_info.get().source_ip)
    scope[CHARGED] = True
    if decision is not None and not decision.allowed:
        _enforce(rt, scope, decision, None)


def rate_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    decision: Decision | None = scope.get(DECISION)
    return decision.headers() if decision is not None else []
