"""Credentials from HTTP headers to a Principal (security.md §3.3).

The scheme is matched case-insensitively; two credentials that disagree are refused; a credential
that is present but not valid is never ignored. Every rejection looks the same to the client; the
reason goes to the audit log.
"""

from __future__ import annotations

import hashlib
import time

from starlette.requests import Request

from thingbucket.access.principal import ANONYMOUS, Principal
from thingbucket.accounts import service as accounts
from thingbucket.buckets import service as buckets
from thingbucket.errors import Invalid, InvalidCredentials
from thingbucket.runtime import Runtime
from thingbucket.things import service as things
from thingbucket.things.jwt import JwtRejected, looks_like_jwt, peek


class AmbiguousCredentials(Invalid):
    code = "AMBIGUOUS_CREDENTIALS"
    message = "The request carries more than one credential."


def _presented(request: Request) -> str | None:
    authorizations = request.headers.getlist("authorization")
    api_keys = request.headers.getlist("x-api-key")
    if len(authorizations) > 1 or len(api_keys) > 1:
        raise AmbiguousCredentials()
    from_header = None
    if authorizations:
        parts = authorizations[0].strip().split(None, 1)
        if len(parts) != 2 or parts[0].lower() not in ("bearer", "bitpool2"):
            raise InvalidCredentials()
        from_header = parts[1].strip()
    from_key = api_keys[0].strip() if api_keys else None
    if from_header is not None and from_key is not None and from_header != from_key:
        raise AmbiguousCredentials()
    return from_header or from_key


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


async def authenticate_request(rt: Runtime, request: Request) -> Principal:
    secret = _presented(request)
    if not secret:
        return ANONYMOUS
    key = hashlib.sha256(secret.encode()).digest()
    cached = rt.auth_cache.get(key, rt.db.generation)
    if cached is not None:
        return cached
    generation = rt.db.generation
    principal, reason = await authenticate(rt, secret)
    if principal is None:
        rt.audit.failure("auth.credential_rejected", None, reason=reason or "unknown_key")
        raise InvalidCredentials()
    rt.auth_cache.put(
        key, principal, generation, _cache_ttl(secret, rt.settings.security.jwt_leeway_s)
    )
    return principal
