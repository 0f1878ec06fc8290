"""Any presented secret to a Principal: shared by HTTP, MQTT and every adapter (security.md §3.3).

A verified credential is reused for at most 1 s (and never past a JWT's expiry, nor across a
control-plane commit of this process), so revocation takes effect within that time everywhere.
"""

from __future__ import annotations

import hashlib
import time

from thingbucket.access.principal import Principal
from thingbucket.accounts import service as accounts
from thingbucket.buckets import service as buckets
from thingbucket.runtime import Runtime
from thingbucket.things import service as things
from thingbucket.things.jwt import JwtRejected, looks_like_jwt, peek


async def authenticate(rt: Runtime, secret: str) -> tuple[Principal | None, str]:
    """The principal a secret stands for, or None with the reason."""
    async with rt.db.session() as session:
        if secret.startswith(("tb_at_", "tb_p_")):
            return await accounts.authenticate_token(session, rt, secret), "unknown_key"
        if secret.startswith("tb_d_"):
            return await things.authenticate_device_token(session, rt, secret), "unknown_key"
        if looks_like_jwt(secret):
            try:
                return await things.authenticate_jwt(session, rt, secret), ""
            except JwtRejected as exc:
                return None, exc.reason
        if len(secret) <= 128:
            return await buckets.authenticate_key(session, rt, secret), "unknown_key"
        return None, "malformed"


def _cache_ttl(secret: str, leeway_s: int) -> float:
    """How long a verified credential may be reused: 1 s, and never past a JWT's expiry."""
    if not looks_like_jwt(secret):
        return 1.0
    exp = peek(secret)[1].get("exp")
    return float(exp) + leeway_s - time.time() if isinstance(exp, (int, float)) else 0.0


async def authenticate_cached(rt: Runtime, secret: str) -> Principal | None:
    """``authenticate`` through the 1 s cache; a rejection is audited (aggregated)."""
    key = hashlib.sha256(secret.encode()).digest()
    cached = rt.auth_cache.get(key, rt.db.generation)
    if cached is not None:
        return cached
    generation = rt.db.generation
    principal, reason = await rt.flights.run(
        ("auth", key, generation), lambda: authenticate(rt, secret)
    )
    if principal is None:
        rt.audit.failure("auth.credential_rejected", None, reason=reason or "unknown_key")
        return None
    rt.auth_cache.put(
        key, principal, generation, _cache_ttl(secret, rt.settings.security.jwt_leeway_s)
    )
    return principal
